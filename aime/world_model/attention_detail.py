"""Where inside each cell of the attention grid the attention lies: the map's sub-cell detail.

The attention map has ``R x R`` cells of ``P x P`` pixels (``P = S / R``: 4 for 84x84 frames, 21x21
maps), and an Atari ball is about 1 x 2 pixels: knowing its cell leaves up to 3 pixels of doubt on
each axis, more than the ball. The detail head gives each cell a distribution ``q`` over its
``P*P`` pixels, so that ``A[cell] * q[cell, pixel]`` is the attention at pixel resolution::

    logits = Conv_{P x P, stride P}(frame)  +  Conv_{1 x 1}(features)       [N, P*P, R, R]
    log q  = log_softmax(logits) over the P*P pixels of each cell

The first term sees the cell's own pixels, the second what the pyramid says about the cell. It is
trained against where the current motion lies inside each cell
(:func:`aime.world_model.objectives.current_motion_detail`); the decoder reads it where the map
attends (:class:`aime.world_model.decoders.ConvDecoder`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AttentionDetailHead(nn.Module):
    """``frames [N, 3, S, S]`` (uint8, or float in [0, 1]) and ``features [N, F, R, R]`` ->
    ``[N, P*P, R, R]``, log-probabilities over each cell's pixels (row-major inside the cell).

    Args:
        feature_channels: ``F``.
        image_size: ``S``; resolution: ``R``; ``S`` must be a multiple of ``R``.
    """

    def __init__(self, feature_channels: int, image_size: int, resolution: int) -> None:
        super().__init__()
        if image_size % resolution:
            raise ValueError(
                f"AttentionDetailHead: image_size ({image_size}) must be a multiple of the resolution ({resolution})"
            )
        cell = image_size // resolution
        self.cells = cell * cell
        self.from_pixels = nn.Conv2d(3, self.cells, cell, stride=cell)
        self.from_features = nn.Conv2d(feature_channels, self.cells, 1)

    def forward(self, frames: Tensor, features: Tensor) -> Tensor:
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        logits = self.from_pixels(frames.to(features.dtype) - 0.5) + self.from_features(features)
        return torch.log_softmax(logits.float(), 1)
