import pytest
import torch

from aime.nn.nca import ConvAttentionNCA, inject_noise, nca_refine


def _red(hw: int) -> torch.Tensor:
    target = torch.zeros(1, 3, hw, hw)
    target[:, 0] = 1.0
    return target


@pytest.mark.parametrize("padding_mode", ["zeros", "circular", "replicate", "reflect"])
def test_output_shape_and_attention_normalised_on_5x5(padding_mode):
    torch.manual_seed(0)
    nca = ConvAttentionNCA(channels=3, hidden=16, padding_mode=padding_mode, zero_init_output=False)
    state = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5) / 150.0
    nxt, attn = nca(state, return_attention=True)
    assert nxt.shape == state.shape
    assert attn.shape == (2, 25, 9)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 25), atol=1e-6)
    assert (attn >= 0).all()
    assert not torch.allclose(nxt, state)  # the update does something


def test_update_matches_explicit_neighbourhood_attention():
    torch.manual_seed(0)
    nca = ConvAttentionNCA(channels=2, hidden=4, zero_init_output=False)
    with torch.no_grad():
        nca.offset_bias.copy_(torch.randn(9))
    state = torch.randn(1, 2, 4, 5)
    delta, attn = nca.update(state, return_attention=True)
    padded = torch.nn.functional.pad(state, (1, 1, 1, 1))
    wq, bq = nca.query.weight[:, :, 0, 0], nca.query.bias
    wkv, bkv = nca.key_value.weight[:, :, 0, 0], nca.key_value.bias
    wo, bo = nca.out.weight[:, :, 0, 0], nca.out.bias
    i, j = 2, 0  # a border cell: its left neighbours are padding
    q = wq @ state[0, :, i, j] + bq
    neigh = padded[0, :, i : i + 3, j : j + 3].reshape(2, 9).T  # [9, C], row-major window
    kv = neigh @ wkv.T + bkv
    k, v = kv[:, :4], kv[:, 4:]
    a = torch.softmax(k @ q / 2.0 + nca.offset_bias, dim=0)
    expected = wo @ (a @ v) + bo
    assert torch.allclose(attn[0, i * 5 + j], a, atol=1e-5)
    assert torch.allclose(delta[0, :, i, j], expected, atol=1e-5)


def test_residual_update_and_bad_shapes():
    nca = ConvAttentionNCA(zero_init_output=False)
    s = torch.randn(1, 3, 6, 6)
    assert torch.allclose(nca(s), s + nca.update(s), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        nca(torch.randn(1, 4, 6, 6))
    with pytest.raises(ValueError):
        nca(torch.randn(3, 6, 6))
    with pytest.raises(ValueError):
        ConvAttentionNCA(padding_mode="mirror")


@pytest.mark.parametrize("sigma", [0.01, 0.1])
def test_noise_injection_has_the_right_variance(sigma):
    state = torch.full((4, 3, 64, 64), 0.5)
    noisy = inject_noise(state, sigma, torch.Generator().manual_seed(0))
    noise = noisy - state
    assert abs(noise.mean().item()) < 0.05 * sigma
    assert noise.var().item() == pytest.approx(sigma**2, rel=0.05)
    # reproducible with the same generator seed, different with another
    again = inject_noise(state, sigma, torch.Generator().manual_seed(0))
    other = inject_noise(state, sigma, torch.Generator().manual_seed(1))
    assert torch.equal(noisy, again) and not torch.equal(noisy, other)
    assert torch.equal(state, torch.full((4, 3, 64, 64), 0.5))  # input untouched


def test_gradient_cut_between_steps_but_flows_into_f():
    torch.manual_seed(0)
    nca = ConvAttentionNCA(zero_init_output=False)
    start = torch.randn(1, 3, 6, 6, requires_grad=True)
    target = _red(6)
    refined, losses = nca_refine(nca, start, steps=3, target=target)
    assert losses.shape == (3,)
    losses.sum().backward()
    assert start.grad is None  # the incoming state is detached
    for p in nca.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    # the last loss depends on f only through the last step: its gradient equals that of a single
    # step from the detached second state
    nca.zero_grad()
    s = start.detach()
    for _ in range(2):
        s = nca(s).detach()
    one = ((nca(s) - target) ** 2).mean()
    g_one = torch.autograd.grad(one, list(nca.parameters()))
    nca.zero_grad()
    refined, losses = nca_refine(nca, start, steps=3, target=target)
    g_last = torch.autograd.grad(losses[-1], list(nca.parameters()))
    for a, b in zip(g_one, g_last):
        assert torch.allclose(a, b, atol=1e-6)


def test_refine_can_keep_gradient_into_input_when_asked():
    nca = ConvAttentionNCA(zero_init_output=False)
    start = torch.randn(1, 3, 5, 5, requires_grad=True)
    refined, losses = nca_refine(nca, start, steps=1, target=_red(5), detach_input=False)
    losses.sum().backward()
    assert start.grad is not None and start.grad.abs().sum() > 0
    out, no_losses = nca_refine(nca, start, steps=2)
    assert out.shape == start.shape and no_losses.numel() == 0


def test_noise_validation():
    with pytest.raises(ValueError):
        inject_noise(torch.zeros(2), -1.0)
