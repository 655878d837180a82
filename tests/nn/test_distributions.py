import math

import pytest
import torch

from aime.nn.distributions import (
    DiagGaussian,
    StraightThroughCategorical,
    TwoHot,
    kl_gamma,
    kl_kumaraswamy_beta,
    kumaraswamy_sample,
    mc_kl_gaussian_mixture,
    mixture_log_prob,
    sample_index,
    stick_breaking_weights,
    symexp,
    symlog,
    symlog_bins,
    twohot,
)


def test_symlog_symexp_are_inverse_and_compress():
    x = torch.tensor([-1000.0, -3.0, -0.5, 0.0, 0.5, 3.0, 1000.0])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-5, atol=1e-5)
    assert symlog(torch.tensor(1000.0)) < 7.0 and symlog(torch.tensor(-1.0)) == -math.log(2)


def test_twohot_weights_reconstruct_the_value():
    bins = symlog_bins(11, -5.0, 5.0)
    x = torch.tensor([[-5.0, -0.3, 0.0], [2.2, 4.99, 7.0]])
    w = twohot(x, bins)
    assert w.shape == (2, 3, 11)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3))
    assert ((w > 0).sum(-1) <= 2).all()
    torch.testing.assert_close((w * bins).sum(-1), x.clamp(-5, 5))


def test_twohot_distribution_mean_and_log_prob():
    bins = symlog_bins(255)
    target = torch.tensor([0.0, 1.0, -37.5, 250.0])
    logits = torch.log(twohot(symlog(target), bins) + 1e-8)  # a distribution peaked on the targets
    dist = TwoHot(logits, bins)
    torch.testing.assert_close(dist.mean(), target, rtol=1e-3, atol=1e-3)
    assert (dist.log_prob(target) > dist.log_prob(target + 5.0)).all()
    with pytest.raises(ValueError, match="last dim 255"):
        TwoHot(torch.zeros(3, 10), bins)


def test_sample_index_draws_each_class_with_its_probability():
    torch.manual_seed(0)
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 0.0, 2.0]])  # unnormalised rows are fine
    draws = sample_index(probs.expand(50_000, 2, 4))
    assert draws.shape == (50_000, 2) and draws.dtype == torch.long
    freq = torch.stack([torch.bincount(draws[:, i], minlength=4).float() / 50_000 for i in range(2)])
    torch.testing.assert_close(freq, probs / probs.sum(-1, keepdim=True), atol=0.01, rtol=0)
    assert (draws[:, 0] != 1).all() and (draws[:, 1] == 3).all()  # zero-probability classes never


def test_straight_through_categorical_samples_and_gradients():
    logits = torch.randn(5, 4, 6, requires_grad=True)
    dist = StraightThroughCategorical(logits, unimix=0.01)
    sample = dist.sample()
    assert sample.shape == (5, 4, 6)
    torch.testing.assert_close(sample.detach().sum(-1), torch.ones(5, 4))
    torch.testing.assert_close(sample.detach(), sample.detach().round(), atol=1e-6, rtol=0)
    assert (sample.detach().round().sum(-1) == 1).all()
    (sample * torch.arange(6.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert (dist.probs >= 0.01 / 6 - 1e-7).all()  # unimix floor


def test_categorical_kl_and_entropy():
    a = StraightThroughCategorical(torch.randn(3, 4, 5))
    b = StraightThroughCategorical(torch.randn(3, 4, 5))
    assert (a.kl(b) > 0).all()
    torch.testing.assert_close(a.kl(a), torch.zeros(3), atol=1e-6, rtol=0)
    uniform = StraightThroughCategorical(torch.zeros(1, 4, 5))
    torch.testing.assert_close(uniform.entropy(), torch.tensor([4 * math.log(5)]))


def test_gaussian_matches_torch_distributions():
    q = DiagGaussian.from_params(torch.randn(7, 6))
    p = DiagGaussian(torch.randn(7, 3), torch.rand(7, 3) + 0.5)
    ref_q = torch.distributions.Independent(torch.distributions.Normal(q.mean, q.std), 1)
    ref_p = torch.distributions.Independent(torch.distributions.Normal(p.mean, p.std), 1)
    x = torch.randn(7, 3)
    torch.testing.assert_close(q.log_prob(x), ref_q.log_prob(x))
    torch.testing.assert_close(q.entropy(), ref_q.entropy())
    torch.testing.assert_close(q.kl(p), torch.distributions.kl_divergence(ref_q, ref_p))
    assert (q.std >= 0.1).all()


def test_stick_breaking_weights_sum_to_one_and_follow_the_construction():
    v = torch.tensor([[0.5, 0.5, 0.5]])
    torch.testing.assert_close(stick_breaking_weights(v), torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
    v = torch.rand(10, 14)
    torch.testing.assert_close(stick_breaking_weights(v).sum(-1), torch.ones(10))


def test_kumaraswamy_samples_match_its_mean():
    a, b = torch.full((200_000,), 2.0), torch.full((200_000,), 3.0)
    v = kumaraswamy_sample(a, b)
    assert ((v > 0) & (v < 1)).all()
    # E[v] = b B(1 + 1/a, b)
    mean = 3.0 * math.exp(math.lgamma(1.5) + math.lgamma(3.0) - math.lgamma(4.5))
    assert abs(v.mean().item() - mean) < 5e-3


def test_kl_kumaraswamy_beta_is_zero_when_they_coincide_and_matches_monte_carlo():
    # Kumaraswamy(1, b) is exactly Beta(1, b)
    b = torch.tensor([1.0, 2.0, 3.0])  # (the series converges slowly for b < 1)
    kl = kl_kumaraswamy_beta(torch.ones(3), b, torch.ones(3), b, terms=200)
    torch.testing.assert_close(kl, torch.zeros(3), atol=2e-3, rtol=0)
    # against a Monte-Carlo estimate for a = 2, b = 3 vs Beta(1, 4)
    a, b, beta = torch.tensor(2.0), torch.tensor(3.0), torch.tensor(4.0)
    v = kumaraswamy_sample(a.expand(400_000), b.expand(400_000)).double()
    a, b = a.double(), b.double()
    log_q = torch.log(a * b) + (a - 1) * v.log() + (b - 1) * torch.log1p(-v.pow(a))
    log_p = torch.distributions.Beta(torch.tensor(1.0).double(), beta.double()).log_prob(v)
    mc = (log_q - log_p).mean().item()
    exact = kl_kumaraswamy_beta(a, b, torch.tensor(1.0).double(), beta.double(), terms=50).item()
    assert abs(mc - exact) < 0.02


def test_kl_gamma_matches_torch():
    args = [torch.rand(5) + 0.5 for _ in range(4)]
    ref = torch.distributions.kl_divergence(
        torch.distributions.Gamma(args[0], args[1]), torch.distributions.Gamma(args[2], args[3])
    )
    torch.testing.assert_close(kl_gamma(*args), ref)


def test_mixture_log_prob_and_monte_carlo_kl():
    means, stds = torch.randn(4, 3, 2), torch.rand(4, 3, 2) + 0.3
    log_w = torch.log_softmax(torch.randn(4, 3), -1)
    x = torch.randn(4, 2)
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=log_w),
        torch.distributions.Independent(torch.distributions.Normal(means, stds), 1),
    ).log_prob(x)
    torch.testing.assert_close(mixture_log_prob(x, log_w, means, stds), ref)
    # a one-component mixture: the MC estimate approaches the closed form
    q = DiagGaussian(torch.zeros(1, 2).expand(20000, 2), torch.ones(20000, 2))
    p_mean, p_std = torch.full((20000, 1, 2), 0.5), torch.full((20000, 1, 2), 2.0)
    mc = mc_kl_gaussian_mixture(q, torch.zeros(20000, 1), p_mean, p_std).mean()
    exact = q.kl(DiagGaussian(p_mean[:, 0], p_std[:, 0])).mean()
    assert abs(mc - exact) < 0.03
    with pytest.raises(ValueError, match="expected log_weights"):
        mixture_log_prob(x, log_w[:, :2], means, stds)
