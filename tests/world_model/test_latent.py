import pytest
import torch

from aime.world_model.latent import LATENTS, make_latent, stack_params

ARGS = dict(deter=8, embed=6, hidden=16, stoch=3, classes=4, mixture_components=5)


@pytest.mark.parametrize("kind", list(LATENTS))
def test_sample_shapes_and_kl_halves(kind):
    torch.manual_seed(0)
    latent = make_latent(kind, **ARGS)
    h, e = torch.randn(7, 8), torch.randn(7, 6)
    prior, post = latent.prior(h), latent.posterior(h, e)
    z = latent.sample(post)
    assert z.shape == (7, latent.size) and latent.mode(post).shape == (7, latent.size)
    assert latent.sample(prior).shape == (7, latent.size) and latent.mode(prior).shape == (7, latent.size)
    dyn, rep, stats = latent.kl(post, prior)
    assert dyn.shape == rep.shape == (7,)
    # dyn trains only the prior, rep only the posterior
    dyn.sum().backward(retain_graph=True)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in latent.post_net.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in latent.prior_net.parameters())
    latent.zero_grad()
    rep.sum().backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in latent.prior_net.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in latent.post_net.parameters())


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_closed_form_kl_is_zero_for_equal_distributions(kind):
    latent = make_latent(kind, **ARGS)
    h = torch.randn(4, 8)
    prior = latent.prior(h)
    dyn, rep, _ = latent.kl(prior, prior)
    torch.testing.assert_close(dyn, torch.zeros(4), atol=1e-5, rtol=0)


def test_stick_breaking_weights_and_statistics():
    torch.manual_seed(0)
    latent = make_latent("stickbreaking", **ARGS)
    prior = latent.prior(torch.randn(6, 8))
    pi = latent.weights(prior)
    assert pi.shape == (6, 5)
    torch.testing.assert_close(pi.sum(-1), torch.ones(6))
    _, _, stats = latent.kl(latent.posterior(torch.randn(6, 8), torch.randn(6, 6)), prior)
    assert 1 <= stats["effective_components"] <= 5 and stats["alpha"] > 0 and stats["stick_kl"] >= 0
    with pytest.raises(ValueError, match="mixture_components"):
        make_latent("stickbreaking", **{**ARGS, "mixture_components": 1})


def test_stack_params_and_unknown_kind():
    params = [{"mean": torch.zeros(2, 3)}, {"mean": torch.ones(2, 3)}]
    assert stack_params(params)["mean"].shape == (2, 2, 3)
    with pytest.raises(ValueError, match="unknown latent kind"):
        make_latent("beta", **ARGS)
