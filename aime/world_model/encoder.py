"""The observation encoder: one convolutional pass per frame, shared by everything that sees pixels.

    frames uint8 [N, 3, 84, 84] -> /255 -> FeaturePyramid -> features [N, F, 21, 21]
        features -> conv s2 -> conv s2 -> flatten -> Linear -> embed [N, E]   (global code)
        features -> 1x1 conv -> readout [N, R, 21, 21]                           (per position)

The attention posterior and the context encoder consume ``features``; the posterior over z consumes
``embed`` and, with the attention schema on, the attention-weighted readout
``sum_n A_t[n] readout_t[:, n]`` (precision weighting, computed in :mod:`aime.world_model.vrnn`).
Everything here runs batched over ``N = B*T`` frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aime.nn.feature_pyramid import FeaturePyramid
from aime.nn.layer_norm import LayerNorm


def _trunk_layout(frames: Tensor, norm: str) -> Tensor:
    """The frames in the memory layout the pyramid runs fastest in (a convolution's output takes
    its input's layout): channels-last, which keeps oneDNN's convolutions off their slow NCHW path
    (about 1.5x in fp32), except for a pyramid with GroupNorm under CPU bf16 autocast: there
    GroupNorm's channels-last kernel is 4-6x slower than its NCHW one and outweighs the
    convolutions' gain (the pyramid's forward + backward, 1,024 frames, one thread: 3.23 s NCHW
    against 4.23 s channels-last; without the norm 2.94 s against 2.16 s, so it stays channels-last)."""
    if norm == "group" and frames.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return frames.contiguous()
    return frames.contiguous(memory_format=torch.channels_last)


class Encoder(nn.Module):
    """Frames -> ``features [N, F, R, R]``, ``embed [N, embed_dim]``, ``readout [N, readout_dim, R, R]``.

    ``features`` keep the pyramid's memory layout (channels-last, except NCHW for a GroupNorm
    pyramid under CPU bf16 autocast: :func:`_trunk_layout`); call ``.contiguous()`` before ``view``.

    Args:
        embed_dim: size of the global code.
        depth: channel base of the two downsampling convolutions after the pyramid.
        feature_channels: ``F``, the pyramid's output channels (64 in the seed); its inner levels
            have ``F/2`` and ``3F/4`` channels (the seed's 32 and 48 for 64).
        readout_dim: channels of the per-position readout (0: none).
        image_size: side of the square frames (84).
        norm: pyramid normalisation, ``"group"`` (the seed's) or ``"none"`` (cheaper on CPU).
    """

    def __init__(
        self,
        embed_dim: int,
        depth: int = 32,
        feature_channels: int = 64,
        readout_dim: int = 0,
        image_size: int = 84,
        norm: str = "group",
    ) -> None:
        super().__init__()
        self.image_size, self.feature_channels, self.norm = image_size, feature_channels, norm
        widths = (feature_channels // 2, 3 * feature_channels // 4)  # 32/48/64 for 64 features, as the seed
        self.trunk = FeaturePyramid(3, feature_channels, norm, widths)
        self.resolution = ((image_size + 1) // 2 + 1) // 2
        self.down = nn.Sequential(
            nn.Conv2d(feature_channels, 2 * depth, 4, 2, 1),
            nn.SiLU(),
            nn.Conv2d(2 * depth, 4 * depth, 4, 2, 1),
            nn.SiLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.down(torch.zeros(1, feature_channels, self.resolution, self.resolution)).shape[-1]
        self.to_embed = nn.Sequential(nn.Linear(flat, embed_dim), LayerNorm(embed_dim), nn.SiLU())
        self.readout = nn.Conv2d(feature_channels, readout_dim, 1) if readout_dim else None

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """``frames [N, 3, S, S]`` (uint8 or float in [0, 1]) -> ``(features, embed, readout)``."""
        expected = (3, self.image_size, self.image_size)
        if frames.dim() != 4 or tuple(frames.shape[1:]) != expected:
            raise ValueError(
                f"Encoder: expected frames [N, {', '.join(map(str, expected))}], got {tuple(frames.shape)}"
            )
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        # the features keep the trunk's layout: in channels-last the consumers' tokens
        # (b c h w -> b (h w) c) are views, not copies (the cpu preset's full update 2-3% faster)
        features = self.trunk(_trunk_layout(frames, self.norm))
        embed = self.to_embed(self.down(features))
        readout = self.readout(features) if self.readout is not None else None
        return features, embed, readout
