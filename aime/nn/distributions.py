"""Distributions and transforms of the world model and the agent.

- ``symlog`` / ``symexp``: sign(x) log(1 + |x|) and its inverse (DreamerV3), for targets of any scale.
- :class:`TwoHot`: a categorical over fixed bins in symlog space whose mean is a real number;
  targets are encoded as two-hot weights on the two nearest bins (reward and value heads).
- :func:`sample_index`: categorical draws by inverse CDF (one uniform per draw).
- :class:`StraightThroughCategorical`: ``G`` independent categoricals of ``C`` classes with a
  uniform mixture (unimix) and straight-through one-hot samples (the DreamerV3 latent).
- :class:`DiagGaussian`: a diagonal Gaussian with a floor on the standard deviation.
- Stick-breaking pieces of the Dirichlet-process mixture prior: Kumaraswamy samples, the
  stick-breaking weights, KL(Kumaraswamy || Beta), KL(Gamma || Gamma), the mixture log-density and
  the Monte-Carlo KL between a Gaussian posterior and a Gaussian mixture (Nalisnick & Smyth 2017).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

EULER_GAMMA = 0.5772156649015329


def symlog(x: Tensor) -> Tensor:
    """sign(x) * log(1 + |x|)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """sign(x) * (exp(|x|) - 1), the inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(x.abs())


def twohot(x: Tensor, bins: Tensor) -> Tensor:
    """Two-hot encoding of ``x [...]`` over sorted ``bins [K]`` -> ``[..., K]``.

    The weight is split between the two bins around ``x`` in proportion to closeness, so that
    ``(twohot(x, bins) * bins).sum(-1) == x`` for ``x`` inside the bin range (clamped outside).
    """
    if bins.dim() != 1 or bins.numel() < 2:
        raise ValueError(f"bins: expected a 1-D tensor of >= 2 values, got shape {tuple(bins.shape)}")
    x = x.clamp(bins[0], bins[-1])
    above = torch.searchsorted(bins, x.detach().contiguous(), right=True).clamp(1, bins.numel() - 1)
    below = above - 1
    lo, hi = bins[below], bins[above]
    w_hi = (x - lo) / (hi - lo)
    out = torch.zeros(*x.shape, bins.numel(), dtype=x.dtype, device=x.device)
    out.scatter_(-1, below.unsqueeze(-1), (1 - w_hi).unsqueeze(-1))
    out.scatter_add_(-1, above.unsqueeze(-1), w_hi.unsqueeze(-1))
    return out


def symlog_bins(num_bins: int = 255, low: float = -20.0, high: float = 20.0, device=None) -> Tensor:
    """``num_bins`` bins spaced uniformly in symlog space (DreamerV3: 255 bins in [-20, 20])."""
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    return torch.linspace(low, high, num_bins, device=device)


class TwoHot:
    """Categorical over symlog bins with a real-valued mean.

    Args:
        logits: ``[..., K]``.
        bins: ``[K]`` bin centres in symlog space.
    """

    def __init__(self, logits: Tensor, bins: Tensor) -> None:
        if logits.shape[-1] != bins.numel():
            raise ValueError(f"logits: expected last dim {bins.numel()} (bins), got {tuple(logits.shape)}")
        self.logits = logits
        self.bins = bins

    def mean(self) -> Tensor:
        """``[...]``: symexp of the expected bin."""
        return symexp((self.logits.softmax(-1) * self.bins).sum(-1))

    def log_prob(self, target: Tensor) -> Tensor:
        """``[...]``: log-likelihood of ``target [...]`` (two-hot of symlog(target))."""
        weights = twohot(symlog(target), self.bins)
        return (weights * self.logits.log_softmax(-1)).sum(-1)


def sample_index(probs: Tensor) -> Tensor:
    """Class indices ``[...]`` drawn from categoricals ``probs [..., C]`` (non-negative, any scale).

    Inverse CDF: ``index = #{j : cdf_j <= u * cdf_C}`` with one ``u ~ U[0, 1)`` per draw, so class
    ``j`` is drawn with probability ``p_j / sum(p)`` and a zero-probability class never. Exact like
    ``torch.multinomial``, which draws an exponential per class: 25 ms against 1.4 ms for the
    ``32768 x 32`` latent draws of one imagination step on 2 CPU cores.
    """
    cdf = probs.detach().float().cumsum(-1)
    u = torch.rand(cdf.shape[:-1] + (1,), device=cdf.device) * cdf[..., -1:]
    return (cdf <= u).sum(-1).clamp_max(probs.shape[-1] - 1)


class StraightThroughCategorical:
    """``G`` categoricals of ``C`` classes with unimix and straight-through one-hot samples.

    Args:
        logits: ``[..., G, C]``.
        unimix: mixing weight of the uniform distribution (0.01 in DreamerV3), which keeps every
            class reachable and the KL finite.
    """

    def __init__(self, logits: Tensor, unimix: float = 0.01) -> None:
        if logits.dim() < 2:
            raise ValueError(f"logits: expected [..., G, C], got shape {tuple(logits.shape)}")
        if not 0.0 <= unimix < 1.0:
            raise ValueError(f"unimix must lie in [0, 1), got {unimix}")
        probs = logits.softmax(-1)
        if unimix > 0:
            probs = (1 - unimix) * probs + unimix / logits.shape[-1]
        self.probs = probs
        self.log_probs = probs.log()

    def sample(self) -> Tensor:
        """``[..., G, C]`` one-hot samples whose gradient is that of the probabilities."""
        onehot = F.one_hot(sample_index(self.probs), self.probs.shape[-1]).to(self.probs)
        return onehot + self.probs - self.probs.detach()

    def mode(self) -> Tensor:
        """``[..., G, C]`` one-hot of the most likely class (straight-through)."""
        onehot = F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]).to(self.probs)
        return onehot + self.probs - self.probs.detach()

    def entropy(self) -> Tensor:
        """``[...]``: summed over the ``G`` variables."""
        return -(self.probs * self.log_probs).sum((-2, -1))

    def kl(self, other: StraightThroughCategorical) -> Tensor:
        """``[...]``: KL(self || other) summed over the ``G`` variables."""
        return (self.probs * (self.log_probs - other.log_probs)).sum((-2, -1))


class DiagGaussian:
    """Diagonal Gaussian over the last dimension.

    Args:
        mean: ``[..., D]``.
        std: ``[..., D]``, positive.
    """

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        if mean.shape != std.shape:
            raise ValueError(f"mean and std must match, got {tuple(mean.shape)} and {tuple(std.shape)}")
        self.mean = mean
        self.std = std

    @classmethod
    def from_params(cls, params: Tensor, min_std: float = 0.1) -> DiagGaussian:
        """Split ``params [..., 2D]`` into mean and a softplus std floored at ``min_std``."""
        mean, raw = params.chunk(2, dim=-1)
        return cls(mean, F.softplus(raw) + min_std)

    def sample(self) -> Tensor:
        """``[..., D]`` reparameterised sample."""
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, x: Tensor) -> Tensor:
        """``[...]``: summed over ``D``."""
        z = (x - self.mean) / self.std
        return (-0.5 * z.square() - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + self.std.log()).sum(-1)

    def kl(self, other: DiagGaussian) -> Tensor:
        """``[...]``: closed-form KL(self || other) summed over ``D``."""
        var_ratio = (self.std / other.std).square()
        mean_term = ((self.mean - other.mean) / other.std).square()
        return 0.5 * (var_ratio + mean_term - 1 - var_ratio.log()).sum(-1)


# ---------------------------------------------------------------------------------------------
# Stick-breaking (Dirichlet-process) mixture pieces
# ---------------------------------------------------------------------------------------------


def kumaraswamy_sample(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Reparameterised Kumaraswamy(a, b) sample in (0, 1): v = (1 - (1 - u)^(1/b))^(1/a)."""
    u = torch.rand_like(a).clamp(eps, 1 - eps)
    return (1 - (1 - u).pow(1 / b)).clamp(eps, 1 - eps).pow(1 / a)


def stick_breaking_weights(v: Tensor) -> Tensor:
    """Mixture weights from stick fractions ``v [..., K-1]`` -> ``pi [..., K]``.

    pi_k = v_k prod_{j<k} (1 - v_j) for k < K, and the last component takes what is left, so the
    weights sum to 1 exactly (the truncation of Sethuraman's construction).
    """
    remaining = torch.cumprod(1 - v, dim=-1)  # prod_{j<=k} (1 - v_j)
    before = torch.cat([torch.ones_like(v[..., :1]), remaining[..., :-1]], dim=-1)
    return torch.cat([v * before, remaining[..., -1:]], dim=-1)


def kl_kumaraswamy_beta(a: Tensor, b: Tensor, alpha: Tensor, beta: Tensor, terms: int = 10) -> Tensor:
    """KL(Kumaraswamy(a, b) || Beta(alpha, beta)), elementwise (Nalisnick & Smyth 2017, eq. 12).

    KL = (a - alpha)/a (-gamma - psi(b) - 1/b) + log(a b) + log B(alpha, beta) - (b - 1)/b
         + (beta - 1) b sum_{m=1}^{M} B(m/a, b) / (m + a b)

    with the infinite series truncated at ``M = terms``.
    """
    m = torch.arange(1, terms + 1, dtype=a.dtype, device=a.device)
    a_, b_ = a.unsqueeze(-1), b.unsqueeze(-1)
    log_beta_fn = torch.lgamma(m / a_) + torch.lgamma(b_) - torch.lgamma(m / a_ + b_)
    series = (torch.exp(log_beta_fn) / (m + a_ * b_)).sum(-1)
    log_b_ab = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)
    return (
        (a - alpha) / a * (-EULER_GAMMA - torch.digamma(b) - 1 / b)
        + torch.log(a * b)
        + log_b_ab
        - (b - 1) / b
        + (beta - 1) * b * series
    )


def kl_gamma(shape_q: Tensor, rate_q: Tensor, shape_p: Tensor, rate_p: Tensor) -> Tensor:
    """KL(Gamma(shape_q, rate_q) || Gamma(shape_p, rate_p)), elementwise (closed form)."""
    return (
        (shape_q - shape_p) * torch.digamma(shape_q)
        - torch.lgamma(shape_q)
        + torch.lgamma(shape_p)
        + shape_p * (torch.log(rate_q) - torch.log(rate_p))
        + shape_q * (rate_p - rate_q) / rate_q
    )


def mixture_log_prob(x: Tensor, log_weights: Tensor, means: Tensor, stds: Tensor) -> Tensor:
    """log sum_k pi_k N(x | mu_k, diag sigma_k^2).

    Args:
        x: ``[..., D]``; log_weights: ``[..., K]``; means, stds: ``[..., K, D]``.
    Returns:
        ``[...]``.
    """
    if means.shape != stds.shape or means.shape[:-1] != log_weights.shape:
        raise ValueError(
            f"expected log_weights [..., K] and means/stds [..., K, D], got {tuple(log_weights.shape)}, "
            f"{tuple(means.shape)}, {tuple(stds.shape)}"
        )
    component = DiagGaussian(means, stds).log_prob(x.unsqueeze(-2))  # [..., K]
    return torch.logsumexp(log_weights + component, dim=-1)


def mc_kl_gaussian_mixture(
    posterior: DiagGaussian, log_weights: Tensor, means: Tensor, stds: Tensor, samples: int = 1
) -> Tensor:
    """Monte-Carlo KL(q || p) of a Gaussian q and a Gaussian mixture p (no closed form exists).

    KL ~= 1/S sum_s [log q(z_s) - log p(z_s)],  z_s ~ q (reparameterised).
    Returns ``[...]``.
    """
    total = 0.0
    for _ in range(samples):  # S is 1-3: a loop over samples, not over batch or components
        z = posterior.sample()
        total = total + posterior.log_prob(z) - mixture_log_prob(z, log_weights, means, stds)
    return total / samples
