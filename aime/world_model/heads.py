"""Heads on the model state ``s = [h, z]``: reward (two-hot symlog), continuation (Bernoulli), and the
attention-map field head that gives imagined states an attention map.

The heads' outputs are fp32 whatever their networks compute in (bf16 under autocast): their
log-softmaxes and losses need fp32's resolution, and CPU autocast would keep them in bf16."""

from __future__ import annotations

from torch import Tensor, nn

from aime.nn.distributions import TwoHot, symlog_bins
from aime.nn.mlp import mlp
from aime.nn.spatialnet import FieldDecoder


class RewardHead(nn.Module):
    """``feat [..., F]`` -> :class:`~aime.nn.distributions.TwoHot` over 255 symlog bins."""

    def __init__(self, feat_dim: int, hidden: int, bins: int = 255) -> None:
        super().__init__()
        self.net = mlp(feat_dim, hidden, bins, zero_last=True)
        self.register_buffer("bins", symlog_bins(bins), persistent=False)

    def forward(self, feat: Tensor) -> TwoHot:
        return TwoHot(self.net(feat).float(), self.bins)


class ContinueHead(nn.Module):
    """``feat [..., F]`` -> continuation logits ``[...]`` (1 - is_terminal)."""

    def __init__(self, feat_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp(feat_dim, hidden, 1)

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat).float().squeeze(-1)


class AttentionMapHead(nn.Module):
    """A SpatialNet field head: ``feat [..., F]`` -> attention logits ``[..., R, R]`` (seed 000's field
    conditioned on the state), so that imagined states carry an attention map without a frame.

    Trained by cross-entropy against the posterior's map (see ``VRNN.loss``);
    ``probs(feat)`` gives maps that sum to 1 over ``R*R``.
    """

    def __init__(self, feat_dim: int, resolution: int = 21, neurons: int = 32, hidden_dim: int = 16) -> None:
        super().__init__()
        self.resolution = resolution
        self.field = FieldDecoder(feat_dim, 1, num_neurons=(neurons, neurons), hidden_dims=(hidden_dim,))

    def forward(self, feat: Tensor) -> Tensor:
        lead = feat.shape[:-1]
        logits = self.field.render(feat.reshape(-1, feat.shape[-1]), self.resolution, self.resolution)
        return logits.float().reshape(*lead, self.resolution, self.resolution)

    def probs(self, feat: Tensor) -> Tensor:
        logits = self(feat)
        return logits.flatten(-2).softmax(-1).view_as(logits)
