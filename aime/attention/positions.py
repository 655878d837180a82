"""Position codes of the attention grid: where each cell of an ``R x R`` map lies."""

from __future__ import annotations

import torch

__all__ = ["fourier_grid"]


def fourier_grid(resolution: int, frequencies: int = 4) -> torch.Tensor:
    """Fourier features of the cells of an ``R x R`` grid: ``[4 * frequencies, R, R]``.

    ``sin`` and ``cos`` of ``2^f * pi/2 * x`` and ``2^f * pi/2 * y`` (``f = 0 .. frequencies-1``,
    cell centres ``x, y`` in [-1, 1]): a map's average of them says where its mass lies, and for a
    mixture of a few peaks, where each peak lies; a linear layer of them gives each cell a code that
    varies smoothly with its position.
    """
    if not isinstance(resolution, int) or resolution < 1 or not isinstance(frequencies, int) or frequencies < 1:
        raise ValueError(
            f"fourier_grid: expected a positive int resolution and frequencies, got {resolution!r}, {frequencies!r}"
        )
    coords = torch.linspace(-1.0, 1.0, resolution)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    scales = (2.0 ** torch.arange(frequencies)) * torch.pi / 2
    angles = torch.cat([x[None] * scales[:, None, None], y[None] * scales[:, None, None]])  # [2F, R, R]
    return torch.cat([angles.sin(), angles.cos()])
