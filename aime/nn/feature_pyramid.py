"""Seed 003's feature pyramid: frames to a feature map at a quarter of their resolution.

The world model's encoder trunk (``aime.world_model.encoder``) and the attention posterior's input;
the world model owns one and passes it to the posterior, so each frame is convolved once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeaturePyramid", "NORMS", "pool_to"]

NORMS = ("group", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    # about 4 channels per group, as the seed's FPN (8/12/16 groups for 32/48/64 channels)
    if kind == "group":
        groups = max(g for g in range(1, max(channels // 4, 1) + 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


def pool_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average pooling of ``x [B, C, H, W]`` to ``size`` (``adaptive_avg_pool2d``).

    Where ``size`` halves a contiguous NCHW ``x`` exactly (the pyramid's 42 -> 21 at 84x84 frames),
    the backward spreads each gradient over its 2x2 pixels as a broadcast view: the same values,
    and in bf16 about 3x faster than ``adaptive_avg_pool2d``'s backward (forward + backward 2x; in
    fp32 about even. ``scripts/benchmark.py --only pooling``, docs/benchmarks.md).
    """
    h, w = x.shape[-2:]
    if x.dim() == 4 and (h, w) == (2 * size[0], 2 * size[1]) and x.is_contiguous() and x.requires_grad:
        return _Halve.apply(x)
    return F.adaptive_avg_pool2d(x, size)


class _Halve(torch.autograd.Function):
    """2x2 average pooling of a contiguous NCHW map, ``[B, C, 2h, 2w] -> [B, C, h, w]``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, (x.shape[-2] // 2, x.shape[-1] // 2))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        b, c, h, w = grad.shape
        spread = (grad * 0.25)[:, :, :, None, :, None].expand(b, c, h, 2, w, 2)  # each cell's 4 pixels
        return spread.reshape(b, c, 2 * h, 2 * w)


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
        l1 = pool_to(l1, l2.shape[-2:])  # [B, 32, S/4, S/4]
        return self.fuse(torch.cat([l1, l2, l3], dim=1))
