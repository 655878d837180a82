"""Image decoders from the model state ``s = [h, z]``, chosen by name (:data:`DECODERS`).

- ``conv``: transposed convolutions ``s -> [4d, 7, 7] -> 21 -> 42 -> 84`` (for 84x84 frames;
  ``S/12 -> S/4`` by a stride-3 step, or ``S/8 -> S/4`` by a stride-2 step, for other sizes).
- ``field``: a SpatialNet field (pixel coordinates -> RGB) conditioned on ``s`` (seed 000); it
  trains on a random subset of pixels per frame and renders full frames for evaluation.
- ``nca``: the conv decoder's coarse frame refined over ``k`` steps by the convolutional-attention
  NCA with the shortsighted rule (seed 001).

All decoders render frames ``[N, 3, S, S]`` (``S = image_size``, 84 for Atari) on the scale of
``obs / 255`` (about [0, 1]) with ``forward(feat [N, F], attention=None)``, and give the reconstruction loss with
``loss(feat, target, weights, attention=None)``: squared error summed over pixels (``[N]``),
precision-weighted by ``weights [N, H, W]`` if given. Extra terms (the NCA's refinement loss) come
from ``aux_losses``.

The conv decoders built with ``reads_attention=True`` also take an attention map
``attention [N, R, R]`` (``R = S / 4``, 21 for 84x84; summing to 1): ``log(R^2 A)`` joins the
features as a channel at the ``R x R`` stage, so the decoder is told where the attention rests and
can draw what is there. Built with ``detail_cells = P*P`` (``P = S / R``, 16 for 84x84) they also
take ``detail [N, P*P, R, R]``, the log-probabilities ``log q`` of where inside each cell the
attention lies: ``P*P`` more channels ``min(1, R^2 A) log(P^2 q)``, one per pixel of a cell, so the
decoder can draw an object smaller than a cell where it is. The gate keeps the detail where the map
attends: elsewhere the channels are 0, as for an even spread. Without ``detail`` (an imagined
state, whose map is the prior's) they are 0 everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from aime.nn.nca import ConvAttentionNCA, nca_refine
from aime.nn.spatialnet import FieldDecoder, make_coordinate_grid
from aime.world_model.objectives import image_loss

_FLOOR = 1e-3  # the attention channels are log(max(R^2 A, 1e-3)): a log that stays finite


class ImageDecoder(nn.Module):
    """The decoders' interface: ``forward(feat, attention=None, detail=None) -> [N, 3, S, S]``, the
    reconstruction loss (squared error summed over pixels, ``[N]``) and extra terms (none here)."""

    def loss(
        self,
        feat: Tensor,
        target: Tensor,
        weights: Tensor | None = None,
        attention: Tensor | None = None,
        detail: Tensor | None = None,
    ) -> Tensor:
        return image_loss(self(feat, attention, detail), target, weights)

    def aux_losses(
        self, feat: Tensor, target: Tensor, attention: Tensor | None = None, detail: Tensor | None = None
    ) -> dict[str, Tensor]:
        return {}


class ConvDecoder(ImageDecoder):
    """``feat [N, F]`` (and ``attention [N, R, R]``) -> ``[N, 3, S, S]`` by transposed
    convolutions: ``[4d, r, r] -> R -> 2R -> 4R = S``, with ``r = R / 3`` (a stride-3 step; 84 =
    7 * 3 * 2 * 2) where 3 divides ``R = S / 4``, else ``r = R / 2`` (a stride-2 step; 64 = 8 * 2 * 2 * 2).

    Args:
        feat_dim: ``F``.
        depth: channel base ``d``.
        image_size: ``S``, a multiple of 4 whose quarter ``R`` is a multiple of 2 or 3 (84, 64, 96, ...).
        reads_attention: ``forward`` also takes an attention map, read at the 21x21 stage as the
            channel ``log(R^2 A)`` (0 where the map is uniform, clamped below at ``log 1e-3``).
        detail_cells: ``P*P`` (the pixels of a cell) to read the attention's sub-cell detail as
            ``P*P`` more channels (module docstring); 0: the map alone. Needs ``reads_attention``.
    """

    def __init__(
        self,
        feat_dim: int,
        depth: int = 32,
        image_size: int = 84,
        reads_attention: bool = False,
        detail_cells: int = 0,
    ) -> None:
        super().__init__()
        if detail_cells and not reads_attention:
            raise ValueError("ConvDecoder: detail_cells needs reads_attention=True")
        res = image_size // 4
        if image_size % 4 or res % 3 and res % 2:
            raise ValueError(
                f"ConvDecoder: image_size must be a multiple of 4 whose quarter is a multiple of 2 or 3 "
                f"(84, 64, 96, ...), got {image_size}"
            )
        self.depth, self.reads_attention, self.detail_cells = depth, reads_attention, detail_cells
        self.start = res // 3 if res % 3 == 0 else res // 2
        first = (  # r -> R: stride 3 (84: 7 -> 21), or stride 2 (64: 8 -> 16)
            nn.ConvTranspose2d(4 * depth, 2 * depth, 3, stride=3)
            if res % 3 == 0
            else nn.ConvTranspose2d(4 * depth, 2 * depth, 4, stride=2, padding=1)
        )
        self.project = nn.Linear(feat_dim, 4 * depth * self.start**2)
        self.net = nn.Sequential(  # one Sequential, split at R x R in forward: checkpoints keep their keys
            nn.SiLU(),
            first,
            nn.SiLU(),
            nn.ConvTranspose2d(2 * depth + int(reads_attention) + detail_cells, depth, 4, stride=2, padding=1),
            nn.SiLU(),  # 21 -> 42
            nn.ConvTranspose2d(depth, 3, 4, stride=2, padding=1),  # 42 -> 84
        )

    def forward(self, feat: Tensor, attention: Tensor | None = None, detail: Tensor | None = None) -> Tensor:
        x = self.net[:3](self.project(feat).unflatten(-1, (4 * self.depth, self.start, self.start)))  # [N, 2d, R, R]
        if self.reads_attention:
            n, r = x.shape[0], x.shape[-1]
            if attention is None or attention.shape != (n, r, r):
                got = None if attention is None else tuple(attention.shape)
                raise ValueError(f"ConvDecoder: expected attention [{n}, {r}, {r}], got {got}")
            relative = (attention.to(x.dtype) * r * r).unsqueeze(1)  # R^2 A: 1 where the map is uniform
            log_map = relative.clamp_min(_FLOOR).log()
            x = torch.cat([x, log_map], 1)
            if self.detail_cells:
                if detail is None:  # the mass spread evenly over each cell: log(P^2 q) = 0
                    fine = torch.zeros_like(log_map).expand(-1, self.detail_cells, -1, -1)
                elif detail.shape != (n, self.detail_cells, r, r):
                    raise ValueError(
                        f"ConvDecoder: expected detail [{n}, {self.detail_cells}, {r}, {r}], got {tuple(detail.shape)}"
                    )
                else:  # log(P^2 q) (0: an even spread), where the map is at least uniform, less below
                    fine = relative.clamp_max(1.0) * (detail.to(x.dtype) + math.log(self.detail_cells)).clamp_min(
                        math.log(_FLOOR)
                    )
                x = torch.cat([x, fine], 1)
        return self.net[3:](x) + 0.5


class FieldImageDecoder(ImageDecoder):
    """SpatialNet field decoder: ``(x, y)`` -> RGB, conditioned on ``s`` (seed 000).

    Args:
        feat_dim: ``F``, the condition.
        depth: scales the neurons: ``(4d, 4d)`` neurons with ``2d``-dimensional hidden beliefs.
        image_size: side of the rendered frames.
        train_pixels: pixels per frame the loss sees in training (``0``: all); the sum over them is
            rescaled by ``S*S / train_pixels`` so the loss keeps the scale of a full frame.
    """

    def __init__(self, feat_dim: int, depth: int = 32, image_size: int = 84, train_pixels: int = 1024) -> None:
        super().__init__()
        if not 0 <= train_pixels <= image_size * image_size:
            raise ValueError(f"train_pixels must lie in [0, {image_size * image_size}], got {train_pixels}")
        self.image_size, self.train_pixels = image_size, train_pixels
        self.field = FieldDecoder(
            feat_dim, 3, num_neurons=(4 * depth, 4 * depth), hidden_dims=(2 * depth,), modulate=("beliefs",)
        )

    def forward(self, feat: Tensor, attention: Tensor | None = None, detail: Tensor | None = None) -> Tensor:
        return self.field.render(feat, self.image_size, self.image_size) + 0.5

    def at(self, feat: Tensor, index: Tensor) -> Tensor:
        """Values at flat pixel indices ``index [N, P]`` -> ``[N, P, 3]``."""
        grid = make_coordinate_grid(self.image_size, self.image_size, device=feat.device, dtype=feat.dtype)
        return self.field(grid[index], feat) + 0.5

    def loss(
        self,
        feat: Tensor,
        target: Tensor,
        weights: Tensor | None = None,
        attention: Tensor | None = None,
        detail: Tensor | None = None,
    ) -> Tensor:
        n, c, h, w = target.shape
        if not self.training or self.train_pixels in (0, h * w):
            return image_loss(self(feat), target, weights)
        index = torch.rand(n, h * w, device=feat.device).argsort(1)[:, : self.train_pixels]  # [N, P]
        pred = self.at(feat, index)  # [N, P, 3]
        values = target.flatten(2).gather(2, index.unsqueeze(1).expand(-1, c, -1)).transpose(1, 2)
        err = (pred - values).square().sum(-1)  # [N, P]
        if weights is not None:
            err = err * weights.flatten(1).gather(1, index)
        return err.sum(-1) * (h * w / self.train_pixels)


class NCARefinementDecoder(ImageDecoder):
    """A conv decoder's coarse frame, refined over ``steps`` NCA steps (seed 001).

    The coarse frame is trained by the reconstruction loss; the NCA by its own shortsighted loss
    (``aux_losses``: the per-step MSE of ``nca_refine`` from the detached coarse frame, each step's
    gradient cut from the previous one), on ``refine_frames`` frames per batch to bound memory.
    """

    def __init__(
        self,
        feat_dim: int,
        depth: int = 32,
        image_size: int = 84,
        reads_attention: bool = False,
        detail_cells: int = 0,
        steps: int = 4,
        refine_frames: int = 8,
        hidden: int = 16,
    ) -> None:
        super().__init__()
        if steps < 1 or refine_frames < 1:
            raise ValueError(f"steps and refine_frames must be >= 1, got {steps} and {refine_frames}")
        self.coarse = ConvDecoder(feat_dim, depth, image_size, reads_attention, detail_cells)
        self.nca = ConvAttentionNCA(channels=3, hidden=hidden)
        self.steps, self.refine_frames = steps, refine_frames

    def forward(self, feat: Tensor, attention: Tensor | None = None, detail: Tensor | None = None) -> Tensor:
        return nca_refine(self.nca, self.coarse(feat, attention, detail), self.steps).state

    def loss(
        self,
        feat: Tensor,
        target: Tensor,
        weights: Tensor | None = None,
        attention: Tensor | None = None,
        detail: Tensor | None = None,
    ) -> Tensor:
        return self.coarse.loss(feat, target, weights, attention, detail)

    def aux_losses(
        self, feat: Tensor, target: Tensor, attention: Tensor | None = None, detail: Tensor | None = None
    ) -> dict[str, Tensor]:
        pick = torch.randperm(feat.shape[0], device=feat.device)[: self.refine_frames]
        coarse = self.coarse(
            feat[pick], None if attention is None else attention[pick], None if detail is None else detail[pick]
        ).detach()
        losses = nca_refine(self.nca, coarse, self.steps, target=target[pick]).losses
        return {"nca_refinement": losses.sum()}


DECODERS: dict[str, type[nn.Module]] = {
    "conv": ConvDecoder,
    "field": FieldImageDecoder,
    "nca": NCARefinementDecoder,
}
