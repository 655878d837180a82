"""Pixel coordinates for fields: the grid a field is rendered on, and random pixels to train it on.

Coordinates are ``(x, y)`` = (column, row) in [-1, 1] at pixel centres, the corners exactly -1 and 1.
"""

from __future__ import annotations

import torch
from einops import rearrange


def make_coordinate_grid(
    height: int,
    width: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pixel-centre coordinates in [-1, 1], row-major, as ``(x, y)`` = (column, row).

    Returns ``[height * width, 2]``; row ``i * width + j`` is pixel ``(i, j)``, so a field evaluated
    on the grid reshapes to ``[height, width, C]`` directly. Corners are exactly -1 and 1.
    """
    if not (isinstance(height, int) and isinstance(width, int)) or height < 1 or width < 1:
        raise ValueError(f"expected positive integer height and width, got {height!r}, {width!r}")
    ys = (
        torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
        if height > 1
        else torch.zeros(1, device=device, dtype=dtype)
    )
    xs = (
        torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
        if width > 1
        else torch.zeros(1, device=device, dtype=dtype)
    )
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # [H, W] each
    return rearrange(torch.stack([xx, yy], dim=-1), "h w c -> (h w) c")  # [H*W, 2]


def sample_pixels(
    images: torch.Tensor, num_pixels: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random subset of pixels per image, for training a field decoder on part of each frame.

    ``images [B, C, H, W]`` -> ``coords [B, num_pixels, 2]`` (in the convention of
    :func:`make_coordinate_grid`) and ``values [B, num_pixels, C]``.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape [B, C, H, W], got {got}")
    b, c, h, w = images.shape
    if not 1 <= num_pixels <= h * w:
        raise ValueError(f"expected 1 <= num_pixels <= {h * w}, got {num_pixels}")
    scores = torch.rand(b, h * w, generator=generator).to(images.device)
    idx = scores.argsort(dim=1)[:, :num_pixels]  # [B, P], without replacement
    dtype = images.dtype if images.is_floating_point() else torch.float32
    grid = make_coordinate_grid(h, w, device=images.device, dtype=dtype)  # [H*W, 2]
    coords = grid[idx]  # [B, P, 2]
    flat = rearrange(images, "b c h w -> b (h w) c")
    values = torch.gather(flat, 1, idx.unsqueeze(-1).expand(-1, -1, c))  # [B, P, C]
    return coords, values
