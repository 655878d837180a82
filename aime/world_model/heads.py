"""Heads on the model state ``s = [h, z]``: reward (two-hot symlog), continuation (Bernoulli), the
attention-map field head that gives imagined states an attention map, and the object head that gives
them the posterior's slots.

The heads' outputs are fp32 whatever their networks compute in (bf16 under autocast): their
log-softmaxes and losses need fp32's resolution, and CPU autocast would keep them in bf16."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class ObjectHead(nn.Module):
    """The posterior's slots predicted from the state: ``feat [..., F]`` -> object tokens ``[..., K, d + 2]``
    (each slot's features, layer-normalised, then its centre ``(x, y)`` in ``[-1, 1]``).

    Imagined states have no frame and so no slots; this head gives them (and filtered states, so
    that acting reads what learning read) the objects an object-centric actor and critic attend to
    (:mod:`aime.agent.object_reader`). :meth:`loss` trains it against the posterior's slots, and
    through ``s`` it asks the state to carry where each object is.

    Args:
        feat_dim: size of ``s``.
        hidden: width of its MLP.
        num_slots, slot_dim: ``K`` and the slots' feature size ``d``.
        resolution: the attention map's side ``R``: centre errors are counted in cells.
    """

    def __init__(self, feat_dim: int, hidden: int, num_slots: int, slot_dim: int, resolution: int) -> None:
        super().__init__()
        self.num_slots, self.slot_dim, self.resolution = num_slots, slot_dim, resolution
        self.token_dim = slot_dim + 2
        self.net = mlp(feat_dim, hidden, num_slots * self.token_dim, layers=1)

    def forward(self, feat: Tensor) -> Tensor:
        tokens = self.net(feat).float().unflatten(-1, (self.num_slots, self.token_dim))
        return torch.cat([tokens[..., :-2], torch.tanh(tokens[..., -2:])], -1)

    def loss(self, feat: Tensor, slot_features: Tensor, slot_centers: Tensor) -> Tensor:
        """Squared error against the posterior's slots (detached), ``[...]``: ``feat [..., F]``,
        ``slot_features [..., K, d]``, ``slot_centers [..., K, 2]`` -> the features' mean squared error
        (of their layer norm) plus the centres' squared distance in map cells."""
        tokens = self(feat)
        target = F.layer_norm(slot_features.detach().float(), (self.slot_dim,))
        features = (tokens[..., :-2] - target).pow(2).mean((-2, -1))
        cells = (tokens[..., -2:] - slot_centers.detach().float()) * (self.resolution / 2)
        return features + cells.pow(2).sum(-1).mean(-1)
