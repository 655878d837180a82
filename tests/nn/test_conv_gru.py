import pytest
import torch
import torch.nn.functional as F

from aime.nn.conv_gru import ConvGRUCell


def _reference_step(cell: ConvGRUCell, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The seed's formulation written out with functional ops and the cell's own parameters."""
    pad = cell.kernel_size // 2
    gates = F.conv2d(torch.cat([x, h], 1), cell.gates.weight, cell.gates.bias, padding=pad)
    gates = F.group_norm(gates, cell.gates_norm.num_groups, cell.gates_norm.weight, cell.gates_norm.bias)
    r, u = torch.sigmoid(gates).split(cell.hidden_size, dim=1)
    cand = F.conv2d(torch.cat([x, r * h], 1), cell.candidate.weight, cell.candidate.bias, padding=pad)
    norm = cell.candidate_norm
    cand = F.group_norm(cand, norm.num_groups, norm.weight, norm.bias)
    c = torch.tanh(cand)
    return u * h + (1 - u) * c


def test_shape_and_seed_usage_loop():
    torch.manual_seed(0)
    cell = ConvGRUCell(input_size=1, hidden_size=32, kernel_size=5, cuda_flag=True)
    maps = torch.rand(4, 2, 21, 21)  # [T, B, H, W]
    h = None
    for t in range(4):
        h = cell(maps[t].unsqueeze(1), h)
    assert h.shape == (2, 32, 21, 21)
    assert torch.isfinite(h).all()


def test_none_hidden_equals_explicit_zeros():
    torch.manual_seed(0)
    cell = ConvGRUCell(3, 8, 3)
    x = torch.randn(2, 3, 7, 9)
    assert torch.equal(cell(x, None), cell(x, torch.zeros(2, 8, 7, 9)))


@pytest.mark.parametrize("hidden", [8, 5])  # gate norm of 8 groups (halves) / 5 groups (not halves)
def test_zero_state_shortcut_matches_the_full_step_with_gradients(hidden):
    """The shortcut from ``hidden=None`` (one convolution for the update gate and the candidate,
    the update half normalised alone) against the reference formula on explicit zeros, values
    and gradients, with the GroupNorm affine away from identity."""
    torch.manual_seed(2)
    cell = ConvGRUCell(1, hidden, 5)
    for p in cell.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.rand(3, 1, 9, 9, requires_grad=True)
    fast = cell(x, None)
    ref = _reference_step(cell, x, torch.zeros(3, hidden, 9, 9))
    torch.testing.assert_close(fast, ref)
    weights = torch.randn_like(ref)
    grads = torch.autograd.grad((fast * weights).sum(), [x, *cell.parameters()], allow_unused=True)
    ref_grads = torch.autograd.grad((ref * weights).sum(), [x, *cell.parameters()], allow_unused=True)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_matches_reference_formula_with_random_weights():
    torch.manual_seed(1)
    cell = ConvGRUCell(2, 6, 3)
    for p in cell.parameters():  # move GroupNorm affine away from identity too
        torch.nn.init.normal_(p, std=0.5)
    x, h = torch.randn(3, 2, 5, 5), torch.randn(3, 6, 5, 5)
    torch.testing.assert_close(cell(x, h), _reference_step(cell, x, h))


def test_hand_computed_update():
    # Zero conv weights and biases: every pre-norm activation is 0, GroupNorm maps it to its bias,
    # so r = sigmoid(b_r), u = sigmoid(b_u), c = tanh(b_c) and h' = u*h + (1-u)*c by hand.
    cell = ConvGRUCell(1, 2, 3, norm_groups=1)
    with torch.no_grad():
        for conv in (cell.gates, cell.candidate):
            conv.weight.zero_()
            conv.bias.zero_()
        cell.gates_norm.bias.copy_(torch.tensor([0.0, 0.0, 2.0, -1.0]))  # r (2 ch), then u (2 ch)
        cell.candidate_norm.bias.copy_(torch.tensor([0.5, -0.25]))
    h = torch.tensor([1.0, -2.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    out = cell(torch.randn(1, 1, 2, 2), h)
    u = torch.sigmoid(torch.tensor([2.0, -1.0]))
    c = torch.tanh(torch.tensor([0.5, -0.25]))
    expected = u * torch.tensor([1.0, -2.0]) + (1 - u) * c
    torch.testing.assert_close(out, expected.view(1, 2, 1, 1).expand(1, 2, 2, 2))


def test_cuda_flag_is_ignored():
    torch.manual_seed(0)
    a = ConvGRUCell(1, 4, 3, cuda_flag=True)
    torch.manual_seed(0)
    b = ConvGRUCell(1, 4, 3)
    assert all(p.device.type == "cpu" for p in a.parameters())
    x = torch.randn(1, 1, 5, 5)
    assert torch.equal(a(x), b(x))


def test_gradients_reach_all_parameters_through_time():
    cell = ConvGRUCell(1, 4, 3)
    h = None
    for _ in range(3):
        h = cell(torch.randn(2, 1, 6, 6), h)
    h.square().mean().backward()
    for name, p in cell.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_raise_value_error():
    cell = ConvGRUCell(1, 4, 3)
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\].*\(2, 3, 5, 5\)"):
        cell(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 5\).*\(2, 4, 5, 6\)"):
        cell(torch.randn(2, 1, 5, 5), torch.randn(2, 4, 5, 6))
    with pytest.raises(ValueError, match="odd kernel_size"):
        ConvGRUCell(1, 4, 4)
    with pytest.raises(ValueError, match="hidden_size"):
        ConvGRUCell(1, 0, 3)
