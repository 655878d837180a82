"""The stochastic latent z of the VRNN: three kinds behind one interface, chosen by a dispatch table.

Each kind maps the deterministic state ``h [..., deter]`` to the prior p(z | h) and
``(h, e) [..., deter + embed]`` to the posterior q(z | h, e), samples ``z [..., size]`` (flat), and
returns the two KL halves used for KL balancing (DreamerV2/V3):

    dyn = KL(sg(q) || p)   trains the prior (the transition)
    rep = KL(q || sg(p))   trains the posterior (the representation)

=================  ==================================================  ==========================
kind               prior / posterior                                    KL
=================  ==================================================  ==========================
``gaussian``       diagonal Gaussians (the classic VRNN)                closed form
``categorical``    G categoricals of C classes, straight-through        closed form
``stickbreaking``  prior: truncated Dirichlet-process mixture of K      Monte Carlo + sticks
                   Gaussians, weights by Kumaraswamy stick-breaking;
                   posterior: diagonal Gaussian (the original AIME)
=================  ==================================================  ==========================

Distribution parameters travel as dicts of tensors so that they can be stacked over time. They are
fp32 whatever the networks compute in: under bf16 autocast the networks' outputs are cast once, here,
so that the distributions, the samples and the KL are computed in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aime.nn.distributions import (
    DiagGaussian,
    StraightThroughCategorical,
    kl_gamma,
    kl_kumaraswamy_beta,
    kumaraswamy_sample,
    mixture_log_prob,
    sample_index,
    stick_breaking_weights,
)
from aime.nn.mlp import mlp

Params = dict[str, Tensor]


class GaussianLatent(nn.Module):
    """Diagonal Gaussian prior and posterior over ``z [..., stoch]``."""

    def __init__(self, deter: int, embed: int, hidden: int, stoch: int, min_std: float = 0.1, **_) -> None:
        super().__init__()
        self.size, self.min_std = stoch, min_std
        self.prior_net = mlp(deter, hidden, 2 * stoch, layers=1)
        self.post_net = mlp(deter + embed, hidden, 2 * stoch, layers=1)

    def _dist(self, out: Tensor) -> Params:
        d = DiagGaussian.from_params(out.float(), self.min_std)
        return {"mean": d.mean, "std": d.std}

    def prior(self, h: Tensor) -> Params:
        return self._dist(self.prior_net(h))

    def posterior(self, h: Tensor, e: Tensor) -> Params:
        return self._dist(self.post_net(torch.cat([h, e], -1)))

    def sample(self, p: Params) -> Tensor:
        return DiagGaussian(p["mean"], p["std"]).sample()

    def mode(self, p: Params) -> Tensor:
        return p["mean"]

    def kl(self, post: Params, prior: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        q, p = DiagGaussian(post["mean"], post["std"]), DiagGaussian(prior["mean"], prior["std"])
        sg = lambda d: DiagGaussian(d.mean.detach(), d.std.detach())  # noqa: E731
        return sg(q).kl(p), q.kl(sg(p)), {}


class CategoricalLatent(nn.Module):
    """``stoch`` categoricals of ``classes`` classes; ``z`` is their flattened one-hots."""

    def __init__(
        self, deter: int, embed: int, hidden: int, stoch: int, classes: int, unimix: float = 0.01, **_
    ) -> None:
        super().__init__()
        self.groups, self.classes, self.unimix = stoch, classes, unimix
        self.size = stoch * classes
        self.prior_net = mlp(deter, hidden, self.size, layers=1)
        self.post_net = mlp(deter + embed, hidden, self.size, layers=1)

    def _dist(self, p: Params) -> StraightThroughCategorical:
        return StraightThroughCategorical(p["logits"], self.unimix)

    def prior(self, h: Tensor) -> Params:
        return {"logits": self.prior_net(h).float().unflatten(-1, (self.groups, self.classes))}

    def posterior(self, h: Tensor, e: Tensor) -> Params:
        logits = self.post_net(torch.cat([h, e], -1)).float()
        return {"logits": logits.unflatten(-1, (self.groups, self.classes))}

    def sample(self, p: Params) -> Tensor:
        return self._dist(p).sample().flatten(-2)

    def mode(self, p: Params) -> Tensor:
        return self._dist(p).mode().flatten(-2)

    def kl(self, post: Params, prior: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        q, p = self._dist(post), self._dist(prior)
        q_sg = self._dist({"logits": post["logits"].detach()})
        p_sg = self._dist({"logits": prior["logits"].detach()})
        return q_sg.kl(p), q.kl(p_sg), {}


class StickBreakingLatent(nn.Module):
    """Dirichlet-process Gaussian-mixture prior truncated at ``K`` components (the original AIME).

    p(z | h) = sum_k pi_k(h) N(z | mu_k(h), sigma_k(h)^2),  pi_k = v_k prod_{j<k} (1 - v_j),
    v_k ~ Kumaraswamy(a_k(h), b_k(h)) (reparameterisable stand-in for Beta(1, alpha)).
    The concentration alpha has a variational posterior Gamma(shape, rate), a learned global, with
    prior Gamma(1, 1). The KL of the Gaussian posterior to the mixture is estimated by Monte Carlo;
    the KL of the sticks KL(Kuma(a, b) || Beta(1, E[alpha])) and KL(q(alpha) || p(alpha)) are added
    to the prior (``dyn``) half.
    """

    def __init__(
        self,
        deter: int,
        embed: int,
        hidden: int,
        stoch: int,
        mixture_components: int = 15,
        min_std: float = 0.1,
        threshold: float = 0.01,
        **_,
    ) -> None:
        super().__init__()
        if mixture_components < 2:
            raise ValueError(f"mixture_components must be >= 2, got {mixture_components}")
        self.size, self.k, self.min_std, self.threshold = stoch, mixture_components, min_std, threshold
        k = mixture_components
        self.prior_net = mlp(deter, hidden, 2 * (k - 1) + 2 * k * stoch, layers=1)
        self.post_net = mlp(deter + embed, hidden, 2 * stoch, layers=1)
        self.alpha_raw = nn.Parameter(torch.tensor([0.5413, 0.5413]))  # softplus -> (1, 1)

    def alpha_posterior(self) -> tuple[Tensor, Tensor]:
        """(shape, rate) of the variational Gamma posterior over the concentration alpha."""
        shape, rate = F.softplus(self.alpha_raw) + 1e-3
        return shape, rate

    def prior(self, h: Tensor) -> Params:
        k, d = self.k, self.size
        out = self.prior_net(h).float()
        sticks, comps = out.split([2 * (k - 1), 2 * k * d], -1)
        a, b = (F.softplus(sticks) + 1e-2).chunk(2, -1)
        mean, raw_std = comps.unflatten(-1, (k, 2 * d)).chunk(2, -1)
        return {"a": a, "b": b, "means": mean, "stds": F.softplus(raw_std) + self.min_std}

    def posterior(self, h: Tensor, e: Tensor) -> Params:
        d = DiagGaussian.from_params(self.post_net(torch.cat([h, e], -1)).float(), self.min_std)
        return {"mean": d.mean, "std": d.std}

    def weights(self, prior: Params, sample: bool = True) -> Tensor:
        """Mixture weights ``[..., K]``: from sampled sticks, or from the sticks' means."""
        a, b = prior["a"], prior["b"]
        if sample:
            v = kumaraswamy_sample(a, b)
        else:  # E[v] = b B(1 + 1/a, b)
            v = torch.exp(torch.log(b) + torch.lgamma(1 + 1 / a) + torch.lgamma(b) - torch.lgamma(1 + 1 / a + b))
        return stick_breaking_weights(v.clamp(1e-6, 1 - 1e-6))

    def sample(self, p: Params) -> Tensor:
        if "mean" in p:  # posterior
            return DiagGaussian(p["mean"], p["std"]).sample()
        pi = self.weights(p)  # prior: pick a component, then sample it
        index = sample_index(pi)
        pick = lambda x: x.gather(-2, index[..., None, None].expand(*index.shape, 1, self.size))[..., 0, :]  # noqa: E731
        return pick(p["means"]) + pick(p["stds"]) * torch.randn_like(pick(p["means"]))

    def mode(self, p: Params) -> Tensor:
        if "mean" in p:
            return p["mean"]
        pi = self.weights(p, sample=False)
        index = pi.argmax(-1)
        return p["means"].gather(-2, index[..., None, None].expand(*index.shape, 1, self.size))[..., 0, :]

    def kl(self, post: Params, prior: Params) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        q = DiagGaussian(post["mean"], post["std"])
        q_sg = DiagGaussian(post["mean"].detach(), post["std"].detach())
        log_pi = self.weights(prior).clamp_min(1e-8).log()
        z = q.sample()
        z_sg = z.detach()
        # dyn: the mixture learns to cover the (fixed) posterior sample
        dyn = q_sg.log_prob(z_sg) - mixture_log_prob(z_sg, log_pi, prior["means"], prior["stds"])
        # rep: the posterior moves towards the (fixed) mixture
        rep = q.log_prob(z) - mixture_log_prob(z, log_pi.detach(), prior["means"].detach(), prior["stds"].detach())
        shape, rate = self.alpha_posterior()
        alpha = (shape / rate).expand_as(prior["a"])
        sticks = kl_kumaraswamy_beta(prior["a"], prior["b"], torch.ones_like(alpha), alpha).sum(-1)
        alpha_kl = kl_gamma(shape, rate, torch.ones_like(shape), torch.ones_like(rate))
        dyn = dyn + sticks + alpha_kl
        pi = log_pi.exp()
        stats = {
            "stick_kl": sticks.detach().mean(),
            "alpha": (shape / rate).detach(),
            "effective_components": (pi > self.threshold).float().sum(-1).mean().detach(),
        }
        return dyn, rep, stats


LATENTS: dict[str, type[nn.Module]] = {
    "gaussian": GaussianLatent,
    "categorical": CategoricalLatent,
    "stickbreaking": StickBreakingLatent,
}


def make_latent(kind: str, **kwargs) -> nn.Module:
    """Build the latent of ``kind`` (a key of :data:`LATENTS`)."""
    if kind not in LATENTS:
        raise ValueError(f"unknown latent kind {kind!r}; choose one of {', '.join(LATENTS)}")
    return LATENTS[kind](**kwargs)


def stack_params(params: list[Params], dim: int = 1) -> Params:
    """Stack a list of parameter dicts along ``dim`` (time)."""
    return {k: torch.stack([p[k] for p in params], dim) for k in params[0]}
