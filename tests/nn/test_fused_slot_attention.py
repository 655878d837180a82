import pytest
import torch

from aime.nn.fused_slot_attention import slot_iterations
from aime.nn.slot_attention import SlotAttention


def _pair(dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    fused = SlotAttention(**kwargs).to(dtype)
    with torch.no_grad():  # biases and gains away from their initial 0 and 1, so each one's gradient matters
        for name, p in fused.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    reference = SlotAttention(**kwargs, fused=False).to(dtype)
    reference.load_state_dict(fused.state_dict())
    for sa in (fused, reference):  # two epsilons of their own, large enough to show if swapped
        sa.norm_slots.eps, sa.norm_pre_ff.eps = 0.3, 0.01
    return fused, reference


def _run(sa, x, seeds, weights_slots, weights_attn):
    slots, attn = sa(None, seed_slots=seeds, noise=False, inputs=x)
    loss = (slots * weights_slots).sum() + (0 if weights_attn is None else (attn * weights_attn).sum())
    unused = {"slots_logsigma"}  # no noise (norm_input's affine map is folded into the key and value maps)
    if sa.seed_mode == "replace":
        unused.add("slots_mu")
    params = {"tokens": x, "seeds": seeds, **{n: p for n, p in sa.named_parameters() if n not in unused}}
    return slots, attn, dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


# A bias shared by all queries adds the same logit to every slot for a token: the softmax over slots
# is blind to it, so these two gradients are zero (up to rounding) in any implementation.
_BLIND = {"norm_slots.bias", "to_q.bias"}


@pytest.mark.parametrize("iters", [1, 3])
@pytest.mark.parametrize("use_attn", [True, False])
@pytest.mark.parametrize("seed_mode", ["add", "replace"])
def test_fused_equals_reference_loop_in_float64(iters, use_attn, seed_mode):
    fused, reference = _pair(num_slots=3, dim=8, input_dim=6, hidden_dim=10, iters=iters, seed_mode=seed_mode)
    x = torch.randn(2, 11, 6, dtype=torch.float64, requires_grad=True)
    seeds = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    w_slots, w_attn = torch.randn(2, 3, 8, dtype=torch.float64), torch.randn(2, 3, 11, dtype=torch.float64)
    got = _run(fused, x, seeds, w_slots, w_attn if use_attn else None)
    want = _run(reference, x, seeds, w_slots, w_attn if use_attn else None)
    torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], rtol=1e-10, atol=1e-12)
    # tokens, seeds, the 16 iteration weights (to_v's among them), to_k's, norm_input's, mu
    assert len(got[2]) == 2 + 16 + 2 + 2 + (seed_mode == "add")
    for name, w in want[2].items():
        assert (w.abs().max() < 1e-12) == (name in _BLIND), name
        torch.testing.assert_close(got[2][name], w, rtol=1e-9, atol=1e-12)


def test_gradcheck_of_the_iterations():
    sa, _ = _pair(num_slots=2, dim=4, input_dim=3, hidden_dim=5, iters=2)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    slots = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    key_map = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    w_v = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    b_v = torch.randn(4, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(
        lambda x, s, m, w, b: slot_iterations(sa, x, s, m, (w, b), torch.float64), (x, slots, key_map, w_v, b_v)
    )


def test_bfloat16_autocast_stays_near_float32():
    # Under autocast the products with the tokens run in bfloat16 and the slot side in float32 (the
    # reference loop, all linear layers in bfloat16, strays about 10x further: 0.0095 on these slots)
    fused, reference = _pair(torch.float32, num_slots=4, dim=16, hidden_dim=32)
    x = torch.randn(3, 40, 16, requires_grad=True)
    seeds = torch.randn(3, 4, 16, requires_grad=True)
    w_slots, w_attn = torch.randn(3, 4, 16), torch.randn(3, 4, 40)
    want = _run(reference, x, seeds, w_slots, w_attn)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _run(fused, x, seeds, w_slots, w_attn)
    assert got[0].dtype == got[1].dtype == got[2]["tokens"].dtype == torch.float32
    torch.testing.assert_close(got[1], want[1], rtol=0, atol=0.005)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0.005)
    for name, w in want[2].items():
        if name not in _BLIND:
            assert torch.nn.functional.cosine_similarity(got[2][name].flatten(), w.flatten(), dim=0) > 0.999, name


def test_no_grad_forward_and_double_backward():
    fused, reference = _pair(torch.float32, num_slots=3, dim=8, hidden_dim=16)
    x = torch.randn(2, 10, 8)
    with torch.no_grad():
        torch.testing.assert_close(fused(x, noise=False)[0], reference(x, noise=False)[0])
    x.requires_grad_()
    (g,) = torch.autograd.grad(fused(x, noise=False)[0].square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate"):
        g.sum().backward()
    (g,) = torch.autograd.grad(reference(x, noise=False)[0].square().sum(), x, create_graph=True)
    g.sum().backward()  # the reference loop supports it


def test_tokens_without_gradient_leave_the_weights_gradients_as_they_were():
    fused, reference = _pair(num_slots=3, dim=8, hidden_dim=16)
    x = torch.randn(2, 10, 8, dtype=torch.float64)  # a frozen encoder's tokens
    for sa in (fused, reference):
        sa(None, noise=False, inputs=x)[0].square().sum().backward()
    for (name, p), q in zip(fused.named_parameters(), reference.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_the_backward_sums_the_iterations_without_zero_tensors(monkeypatch):
    """Each weight's gradient starts from its last iteration's term: no zero tensor is written and
    added to (on a GPU each would be one more kernel launch per step of the time loop)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from aime.nn import fused_slot_attention

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.add(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    ops, backward = Ops(), fused_slot_attention._backward

    def counted(*args):
        with ops:
            return backward(*args)

    monkeypatch.setattr(fused_slot_attention, "_backward", counted)
    fused, reference = _pair(num_slots=3, dim=8, hidden_dim=16, iters=3)
    x = torch.randn(2, 10, 8, dtype=torch.float64, requires_grad=True)
    for sa in (fused, reference):
        sa(None, noise=False, inputs=x)[0].square().sum().backward()
    assert {"addmm_", "native_layer_norm_backward"} <= ops.names  # the fused backward ran
    assert not {"zeros_like", "zeros", "zero_", "fill_"} & ops.names, sorted(ops.names)
    for (name, p), q in zip(fused.named_parameters(), reference.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)
