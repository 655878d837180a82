"""Seed 003's feature pyramid: frames to a feature map at a quarter of their resolution.

The world model's encoder trunk (``aime.world_model.encoder``) and the attention posterior's input;
the world model owns one and passes it to the posterior, so each frame is convolved once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeaturePyramid", "NORMS"]

NORMS = ("group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    # about 4 channels per group, as the seed's FPN (8/12/16 groups for 32/48/64 channels)
    if kind == "group":
        groups = max(g for g in range(1, max(channels // 4, 1) + 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class FeaturePyramid(nn.Module):
    """Seed 003's 3-level feature pyramid, fused at 1/4 resolution.

    ``84 -> conv5 s2 -> 42 (32 ch) -> conv5 s2 -> 21 (48 ch) -> conv3 -> 21 (C ch)``, each
    Conv + norm + SiLU; the 42x42 level is average-pooled to 21x21 and a 1x1 convolution fuses the
    three levels into C channels.

    Args:
        input_channels: image channels.
        feature_channels: C.
        norm: ``"group"`` (GroupNorm, the seed's) or ``"none"`` (about 2.5x cheaper on CPU).
        widths: channels of the 1/2 and 1/4 levels (the seed's 32 and 48); the world model scales
            them with its ``cnn_depth``.
    Forward: ``[B, input_channels, S, S]`` float -> ``[B, C, ceil(S/4), ceil(S/4)]``.
    """

    def __init__(
        self,
        input_channels: int = 3,
        feature_channels: int = 64,
        norm: str = "group",
        widths: tuple[int, int] = (32, 48),
    ) -> None:
        super().__init__()
        if len(widths) != 2 or min(widths) < 1:
            raise ValueError(f"FeaturePyramid: expected two positive widths, got {widths!r}")
        if norm not in NORMS:
            raise ValueError(f"FeaturePyramid: expected norm in {NORMS}, got {norm!r}")

        def block(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
                _norm(norm, c_out),
                nn.SiLU(inplace=True),
            )

        w1, w2 = widths
        self.level1 = block(input_channels, w1, 5, 2)
        self.level2 = block(w1, w2, 5, 2)
        self.level3 = block(w2, feature_channels, 3, 1)
        self.fuse = nn.Conv2d(w1 + w2 + feature_channels, feature_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C_in, S, S]`` -> ``[B, C, S/4, S/4]``."""
        l1 = self.level1(x)  # [B, 32, S/2, S/2]
        l2 = self.level2(l1)  # [B, 48, S/4, S/4]
        l3 = self.level3(l2)  # [B, C, S/4, S/4]
        l1 = F.adaptive_avg_pool2d(l1, l2.shape[-2:])
        return self.fuse(torch.cat([l1, l2, l3], dim=1))
