import pytest
import torch
from torch import nn

from aime.nn.layer_norm import BF16_MAX_ROWS, LayerNorm, normalize


def _norms(channels: int) -> tuple[LayerNorm, nn.LayerNorm]:
    torch.manual_seed(0)
    reference = nn.LayerNorm(channels).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5), reference.bias.uniform_(-0.5, 0.5)
    norm = LayerNorm(channels)
    norm.load_state_dict(reference.state_dict())  # the same parameters, so the same checkpoints
    return norm, reference


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want).norm() / want.norm())


def test_in_float32_it_is_nn_layer_norm():
    norm, reference = _norms(16)
    x = torch.randn(3, 10, 16) * 3 + 1
    torch.testing.assert_close(norm(x), reference.float()(x), rtol=0, atol=0)


def test_a_large_bf16_input_gets_accurate_weight_and_bias_gradients():
    # 16,384 rows, as the critic's norms see under bf16 autocast
    norm, reference = _norms(64)
    x = (torch.randn(16384, 64) * 2 + 0.5).bfloat16()
    grad = torch.randn(16384, 64).bfloat16()
    out = norm(x)
    assert out.dtype == torch.float32  # promoted, as CUDA autocast runs layer_norm
    out.backward(grad.float())
    reference(x.double()).backward(grad.double())
    assert _rel(norm.weight.grad, reference.weight.grad) < 1e-3
    assert _rel(norm.bias.grad, reference.bias.grad) < 1e-3


@pytest.mark.parametrize("rows", [16, BF16_MAX_ROWS])
def test_a_time_step_sized_bf16_input_stays_bf16(rows):
    norm, reference = _norms(32)
    x = torch.randn(rows, 32).bfloat16()
    out = norm(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), reference(x.double()), rtol=2e-2, atol=2e-2)


def test_normalize_keeps_the_dtype_and_has_no_affine_map():
    x = torch.randn(4, 50, 64) * 3 + 2
    y = normalize(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 50), rtol=0, atol=1e-5)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(4, 50), rtol=0, atol=1e-3)
    low = normalize(x.bfloat16())
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), y, rtol=2e-2, atol=3e-2)
