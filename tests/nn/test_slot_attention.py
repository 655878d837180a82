import pytest
import torch

from aime.nn.slot_attention import SlotAttention


def _module(**kwargs) -> SlotAttention:
    torch.manual_seed(0)
    return SlotAttention(**kwargs).eval()


def test_shapes_and_responsibilities_sum_over_slots():
    sa = _module(num_slots=5, dim=16, input_dim=12, hidden_dim=32)
    slots, attn = sa(torch.randn(3, 20, 12))
    assert slots.shape == (3, 5, 16)
    assert attn.shape == (3, 5, 20)
    assert (attn >= 0).all()
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(3, 20))
    # competition over slots, not over inputs: rows over N do not sum to 1 in general
    assert not torch.allclose(attn.sum(dim=2), torch.ones(3, 5))


def test_identical_initial_slots_share_every_token_equally():
    # No seeds and no noise: all slots start at mu, stay equal, and split each token 1/K.
    sa = _module(num_slots=4, dim=8)
    slots, attn = sa(torch.randn(2, 10, 8), noise=False)
    torch.testing.assert_close(attn, torch.full_like(attn, 0.25))
    torch.testing.assert_close(slots, slots[:, :1].expand_as(slots))


@pytest.mark.parametrize("seed_mode", ["add", "replace"])
def test_equivariant_to_permuting_seed_slots(seed_mode):
    sa = _module(num_slots=4, dim=16, seed_mode=seed_mode)
    x, seeds = torch.randn(2, 30, 16), torch.randn(2, 4, 16)
    perm = torch.tensor([2, 0, 3, 1])
    slots, attn = sa(x, seed_slots=seeds, noise=False)
    slots_p, attn_p = sa(x, seed_slots=seeds[:, perm], noise=False)
    torch.testing.assert_close(slots_p, slots[:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_p, attn[:, perm], atol=1e-5, rtol=1e-5)


def test_invariant_to_permuting_inputs():
    sa = _module(num_slots=3, dim=16)
    x, seeds = torch.randn(2, 25, 16), torch.randn(2, 3, 16)
    perm = torch.randperm(25)
    slots, attn = sa(x, seed_slots=seeds, noise=False)
    slots_p, attn_p = sa(x[:, perm], seed_slots=seeds, noise=False)
    torch.testing.assert_close(slots_p, slots, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_p, attn[:, :, perm], atol=1e-5, rtol=1e-5)


def test_seed_modes_and_noise():
    x, seeds = torch.randn(2, 12, 8), torch.randn(2, 4, 8)
    sa = _module(num_slots=4, dim=8, seed_mode="replace")
    out = sa(x, seed_slots=seeds, noise=True)[0]
    with torch.no_grad():
        sa.slots_mu.add_(3.0)  # replace mode ignores the Gaussian entirely
    torch.testing.assert_close(sa(x, seed_slots=seeds, noise=True)[0], out)

    sa = _module(num_slots=4, dim=8, seed_mode="add")
    det = sa(x, seed_slots=seeds, noise=False)[0]
    torch.testing.assert_close(sa(x, seed_slots=seeds, noise=False)[0], det)
    assert not torch.allclose(sa(x, seed_slots=seeds, noise=True)[0], det)
    assert not torch.allclose(sa(x, noise=False)[0], det)  # the seeds do move the slots


def test_no_mixing_across_batch():
    sa = _module(num_slots=3, dim=8)
    x, seeds = torch.randn(4, 9, 8), torch.randn(4, 3, 8)
    slots, attn = sa(x, seed_slots=seeds, noise=False)
    slots_1, attn_1 = sa(x[2:3], seed_slots=seeds[2:3], noise=False)
    torch.testing.assert_close(slots_1, slots[2:3], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_1, attn[2:3], atol=1e-5, rtol=1e-5)


def test_gradients_reach_all_parameters():
    torch.manual_seed(0)
    sa = SlotAttention(num_slots=3, dim=8, hidden_dim=16)
    slots, attn = sa(torch.randn(2, 10, 8))
    (slots.square().mean() + (attn * torch.randn_like(attn)).sum()).backward()
    for name, p in sa.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_raise_value_error():
    sa = _module(num_slots=4, dim=8)
    with pytest.raises(ValueError, match=r"\[B, N, 8\].*\(2, 10, 7\)"):
        sa(torch.randn(2, 10, 7))
    with pytest.raises(ValueError, match=r"\(2, 4, 8\).*\(2, 3, 8\)"):
        sa(torch.randn(2, 10, 8), seed_slots=torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="seed_mode"):
        SlotAttention(seed_mode="concat")
    with pytest.raises(ValueError, match="num_slots"):
        SlotAttention(num_slots=0)


def test_one_iteration_matches_weighted_mean_update():
    # Written out: softmax over slots, then a weighted MEAN of the values over the inputs.
    sa = _module(num_slots=3, dim=8, iters=1, eps=0.0)
    x, seeds = torch.randn(2, 6, 8), torch.randn(2, 3, 8)
    slots, attn = sa(x, seed_slots=seeds, noise=False)
    init = sa.slots_mu + seeds
    xn = sa.norm_input(x)
    q, k, v = sa.to_q(sa.norm_slots(init)), sa.to_k(xn), sa.to_v(xn)
    resp = (q @ k.transpose(1, 2) / 8**0.5).softmax(dim=1)
    updates = (resp / resp.sum(-1, keepdim=True)) @ v
    expected = sa.gru(updates.reshape(-1, 8), init.reshape(-1, 8)).reshape(2, 3, 8)
    expected = expected + sa.mlp(sa.norm_pre_ff(expected))
    torch.testing.assert_close(attn, resp)
    torch.testing.assert_close(slots, expected)


def test_precomputed_inputs_equal_tokens():
    torch.manual_seed(0)
    sa = SlotAttention(num_slots=3, dim=8, input_dim=6)
    x = torch.randn(2, 10, 6)
    seeds = torch.randn(2, 3, 8)
    a = sa(x, seed_slots=seeds, noise=False)
    b = sa(None, seed_slots=seeds, noise=False, inputs=sa.project_inputs(x))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    with pytest.raises(ValueError, match=r"inputs \(project_inputs of the tokens\) of shape \[B, N, 6\]"):
        sa(None, inputs=(torch.randn(2, 10, 6), torch.randn(2, 10, 6)))
    with pytest.raises(ValueError, match=r"\[B, N, 6\], got \(2, 10, 8\)"):
        sa(None, inputs=torch.randn(2, 10, 8))


def test_three_iterations_equal_the_keys_and_values_form():
    # forward never forms the keys and values; slots, maps and gradients must be those of the form that does
    torch.manual_seed(0)
    sa = SlotAttention(num_slots=3, dim=8, input_dim=6, iters=3)
    with torch.no_grad():
        sa.to_k.bias.normal_(), sa.to_v.bias.normal_()  # biases large enough to matter
    x, seeds = torch.randn(2, 10, 6, requires_grad=True), torch.randn(2, 3, 8)

    def reference():
        xn = sa.norm_input(x)
        k, v = sa.to_k(xn), sa.to_v(xn)
        slots = sa.slots_mu + seeds
        for _ in range(3):
            q = sa.to_q(sa.norm_slots(slots))
            attn = (q @ k.transpose(1, 2) * 8**-0.5).softmax(dim=1)
            w = attn + sa.eps
            updates = (w / w.sum(-1, keepdim=True)) @ v
            slots = sa.gru(updates.reshape(-1, 8), slots.reshape(-1, 8)).reshape(2, 3, 8)
            slots = slots + sa.mlp(sa.norm_pre_ff(slots))
        return slots, attn

    params = [x, *sa.parameters()]
    want_slots, want_attn = reference()
    want_grads = torch.autograd.grad(want_slots.square().sum() + want_attn.square().sum(), params, allow_unused=True)
    slots, attn = sa(x, seed_slots=seeds, noise=False)
    grads = torch.autograd.grad(slots.square().sum() + attn.square().sum(), params, allow_unused=True)
    torch.testing.assert_close(slots, want_slots, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn, want_attn, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, want_grads):
        if want is None:  # slots_logsigma: no noise drawn
            assert got is None or got.abs().max() == 0
        else:
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
