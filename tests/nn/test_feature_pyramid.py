import pytest
import torch
import torch.nn.functional as F

from aime.nn.feature_pyramid import FeaturePyramid, pool_to


@pytest.mark.parametrize(("size", "out"), [(84, 21), (64, 16), (82, 21)])
def test_pyramid_maps_frames_to_a_quarter_resolution(size, out):
    net = FeaturePyramid(3, 16, "group", (8, 12))
    assert net(torch.rand(2, 3, size, size)).shape == (2, 16, out, out)


def test_pyramid_rejects_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        FeaturePyramid(norm="batch")
    with pytest.raises(ValueError, match="widths"):
        FeaturePyramid(widths=(8,))


def _reference(x: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.detach().clone().requires_grad_(True)
    y = F.adaptive_avg_pool2d(leaf, size)
    (grad,) = torch.autograd.grad((y * torch.arange(y.numel()).reshape(y.shape)).sum(), leaf)
    return y.detach(), grad


@pytest.mark.parametrize(
    ("shape", "size", "channels_last"),
    [((2, 3, 10, 12), (5, 6), False), ((2, 3, 10, 12), (5, 6), True), ((2, 3, 11, 12), (6, 6), False)],
)
def test_pool_to_equals_adaptive_average_pooling(shape, size, channels_last):
    # the halving path (contiguous NCHW, exact 2x) and the others must agree with adaptive pooling
    x = torch.randn(*shape, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    leaf = x.clone().requires_grad_(True)
    y = pool_to(leaf, size)
    (grad,) = torch.autograd.grad((y * torch.arange(y.numel()).reshape(y.shape)).sum(), leaf)
    ref_y, ref_grad = _reference(x, size)
    torch.testing.assert_close(y, ref_y, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-12)


def test_pool_to_halving_passes_gradcheck_and_equals_adaptive_pooling_bit_for_bit_in_bf16():
    x = torch.randn(2, 2, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: pool_to(v, (3, 2)), (x,))
    # training under bf16 autocast sees the same numbers as before: each pixel gets a quarter of one gradient
    xb = torch.randn(3, 4, 42, 42, dtype=torch.bfloat16)
    grad = torch.randn(3, 4, 21, 21, dtype=torch.bfloat16)
    ours, ref = xb.clone().requires_grad_(True), xb.clone().requires_grad_(True)
    pool_to(ours, (21, 21)).backward(grad)
    F.adaptive_avg_pool2d(ref, (21, 21)).backward(grad)
    assert ours.grad.dtype == torch.bfloat16
    assert torch.equal(ours.grad, ref.grad)
