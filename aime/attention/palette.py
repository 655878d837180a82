"""Colours of the overlays: the fixed slot palette and torch colormaps (no matplotlib needed).

- ``SLOT_COLORS`` / ``slot_palette``: slot ``k`` of ``K`` is drawn in ``slot_palette(K)[k]``;
- ``apply_colormap``: values in [0, 1] -> RGB, from nine samples of matplotlib's ``inferno`` or ``viridis``.
"""

from __future__ import annotations

import torch

# Distinct, saturated colours (after Trubetskoy's "20 simple distinct colours"), RGB in [0, 1].
SLOT_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.902, 0.098, 0.294),  # red
    (0.235, 0.706, 0.294),  # green
    (0.263, 0.388, 0.847),  # blue
    (1.000, 0.882, 0.098),  # yellow
    (0.961, 0.510, 0.192),  # orange
    (0.569, 0.118, 0.706),  # purple
    (0.275, 0.941, 0.941),  # cyan
    (0.941, 0.196, 0.902),  # magenta
    (0.737, 0.965, 0.047),  # lime
    (0.980, 0.745, 0.831),  # pink
    (0.000, 0.502, 0.502),  # teal
    (0.667, 0.431, 0.157),  # brown
)

# Nine evenly spaced samples of matplotlib's colormaps, interpolated linearly in between.
_COLORMAPS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "inferno": (
        (0.001, 0.000, 0.014),
        (0.129, 0.047, 0.291),
        (0.342, 0.062, 0.429),
        (0.541, 0.135, 0.415),
        (0.736, 0.216, 0.330),
        (0.894, 0.353, 0.194),
        (0.978, 0.558, 0.035),
        (0.975, 0.798, 0.206),
        (0.988, 0.998, 0.645),
    ),
    "viridis": (
        (0.267, 0.005, 0.329),
        (0.279, 0.175, 0.483),
        (0.230, 0.322, 0.546),
        (0.173, 0.449, 0.558),
        (0.128, 0.567, 0.551),
        (0.158, 0.684, 0.502),
        (0.369, 0.789, 0.383),
        (0.678, 0.864, 0.190),
        (0.993, 0.906, 0.144),
    ),
}


def slot_palette(
    num_slots: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Colours of ``num_slots`` slots, ``[K, 3]`` in [0, 1].

    The first 12 are ``SLOT_COLORS``; beyond that, hues step by the golden angle (distinct, but
    less so than the fixed ones).
    """
    if not isinstance(num_slots, int) or num_slots < 1:
        raise ValueError(f"slot_palette: expected num_slots to be a positive int, got {num_slots!r}")
    fixed = torch.tensor(SLOT_COLORS[:num_slots], dtype=dtype, device=device)
    extra = num_slots - fixed.shape[0]
    if extra <= 0:
        return fixed
    hue = (torch.arange(extra, dtype=dtype, device=device) * 0.618034 + 0.1) % 1.0  # [E]
    # HSV -> RGB with saturation 0.75 and value 0.95.
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=dtype, device=device) + hue[:, None] * 6.0) % 6.0
    rgb = 0.95 - 0.95 * 0.75 * (torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))  # [E, 3]
    return torch.cat([fixed, rgb], dim=0)


def apply_colormap(values: torch.Tensor, name: str = "inferno") -> torch.Tensor:
    """Map values in [0, 1] (clamped) to RGB: ``[...]`` -> ``[..., 3]`` in [0, 1]."""
    if name not in _COLORMAPS:
        raise ValueError(f"apply_colormap: expected name in {sorted(_COLORMAPS)}, got {name!r}")
    dtype = values.dtype if values.is_floating_point() else torch.float32
    table = torch.tensor(_COLORMAPS[name], dtype=dtype, device=values.device)  # [S, 3]
    position = values.to(dtype).clamp(0.0, 1.0) * (table.shape[0] - 1)
    low = position.floor().long().clamp(max=table.shape[0] - 2)
    frac = (position - low.to(dtype)).unsqueeze(-1)
    return table[low] * (1.0 - frac) + table[low + 1] * frac
