"""Attention overlays as image tensors (seed 003's visualisation), for TensorBoard and figures.

Everything here is tensor arithmetic on the inputs' device (no plotting library). Frames may be
``uint8`` (0..255) or floating point (read as [0, 1] and clamped); every output is a floating-point
image ``[N, 3, H, W]`` with values in [0, 1], at the frames' resolution.

- ``visualize_multi_object_attention``: per-slot overlays, segmentation by dominant slot, and the
  segmentation over the frame with segment edges and slot centres marked.
- ``attention_heatmap_overlay``: one attention map per frame, upsampled, coloured and blended.
- ``slot_palette`` / ``apply_colormap``: the fixed slot colours and a torch colormap.

Slot centres are ``(x, y)`` in [-1, 1] with -1/+1 at the centres of the first/last pixel (the
convention of ``aime.attention.losses.center_of_mass``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = [
    "SLOT_COLORS",
    "slot_palette",
    "apply_colormap",
    "to_unit_float",
    "attention_heatmap_overlay",
    "visualize_multi_object_attention",
]

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
        (0.001, 0.000, 0.014), (0.129, 0.047, 0.291), (0.342, 0.062, 0.429),
        (0.541, 0.135, 0.415), (0.736, 0.216, 0.330), (0.894, 0.353, 0.194),
        (0.978, 0.558, 0.035), (0.975, 0.798, 0.206), (0.988, 0.998, 0.645),
    ),
    "viridis": (
        (0.267, 0.005, 0.329), (0.279, 0.175, 0.483), (0.230, 0.322, 0.546),
        (0.173, 0.449, 0.558), (0.128, 0.567, 0.551), (0.158, 0.684, 0.502),
        (0.369, 0.789, 0.383), (0.678, 0.864, 0.190), (0.993, 0.906, 0.144),
    ),
}

_RETURN_MODES = ("all", "slot_overlays", "semantic_segmentation", "combined_with_contours")


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


def to_unit_float(frames: torch.Tensor) -> torch.Tensor:
    """``uint8`` frames -> float in [0, 1] (divided by 255); float frames are clamped to [0, 1]."""
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    if not frames.is_floating_point():
        raise ValueError(f"expected uint8 or floating-point frames, got {frames.dtype}")
    return frames.clamp(0.0, 1.0)


def _check_frames(name: str, frames: torch.Tensor) -> None:
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"{name}: expected frames of shape [B, 3, H, W], got {tuple(frames.shape)}")


def _normalise_maps(maps: torch.Tensor, mode: str) -> torch.Tensor:
    """Per-map rescaling to [0, 1] over the last two dimensions. ``[..., h, w]``."""
    maps = maps.float()
    if mode == "max":
        maps = maps.clamp_min(0.0)
        return maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    if mode == "minmax":
        low = maps.amin(dim=(-2, -1), keepdim=True)
        span = maps.amax(dim=(-2, -1), keepdim=True) - low
        return (maps - low) / span.clamp_min(1e-12)
    raise ValueError(f"expected normalize in ('max', 'minmax'), got {mode!r}")


def attention_heatmap_overlay(
    frames: torch.Tensor,
    attention: torch.Tensor,
    *,
    alpha: float = 0.6,
    colormap: str = "inferno",
    normalize: str = "max",
) -> torch.Tensor:
    """Blend a coloured attention map over each frame.

    ``m`` = attention rescaled per map to [0, 1] (``"max"``: divided by its maximum, so a uniform
    map is uniformly bright; ``"minmax"``: stretched to the full range) and upsampled bilinearly to
    the frame size; ``out = frame * (1 - alpha * m) + alpha * m * colormap(m)``: unattended pixels
    show the frame, attended ones the colour.

    Args:
        frames: ``[B, 3, H, W]`` uint8 or float in [0, 1].
        attention: ``[B, h, w]`` (e.g. ``[B, 21, 21]``).

    Returns:
        ``[B, 3, H, W]`` float in [0, 1].
    """
    _check_frames("attention_heatmap_overlay", frames)
    if attention.dim() != 3 or attention.shape[0] != frames.shape[0]:
        raise ValueError(
            f"attention_heatmap_overlay: expected attention of shape [{frames.shape[0]}, h, w], "
            f"got {tuple(attention.shape)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"attention_heatmap_overlay: expected alpha in [0, 1], got {alpha!r}")
    image = to_unit_float(frames).float()
    weight = F.interpolate(
        _normalise_maps(attention, normalize).unsqueeze(1), size=image.shape[-2:],
        mode="bilinear", align_corners=False,
    ).clamp(0.0, 1.0)  # [B, 1, H, W]
    heat = rearrange(apply_colormap(weight.squeeze(1), colormap), "b h w c -> b c h w")
    return (image * (1.0 - alpha * weight) + alpha * weight * heat).clamp(0.0, 1.0)


def _center_markers(
    centers: torch.Tensor, height: int, width: int, radius: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Square markers at slot centres ``[B, K, 2]``: (fill ``[B, K, H, W]``, outline ``[B, K, H, W]``)."""
    px = (centers[..., 0].float() + 1.0) * 0.5 * (width - 1)  # [B, K]
    py = (centers[..., 1].float() + 1.0) * 0.5 * (height - 1)
    cols = torch.arange(width, device=centers.device, dtype=torch.float32)
    rows = torch.arange(height, device=centers.device, dtype=torch.float32)
    dx = (cols[None, None, None, :] - px[..., None, None]).abs()  # [B, K, 1, W]
    dy = (rows[None, None, :, None] - py[..., None, None]).abs()  # [B, K, H, 1]
    distance = torch.maximum(dx, dy)  # [B, K, H, W], Chebyshev distance
    return distance <= radius + 0.5, distance <= radius + 1.5


def visualize_multi_object_attention(
    observation: torch.Tensor,
    slot_attention_maps: torch.Tensor,
    slot_centers: torch.Tensor,
    group_assignments: torch.Tensor | None = None,
    return_mode: str = "all",
    *,
    alpha: float = 0.6,
    marker_radius: int | None = None,
) -> dict[str, torch.Tensor]:
    """Per-slot overlays, a segmentation by dominant slot, and the segmentation with contours.

    Slot ``k`` is drawn in ``slot_palette(K)[k]``. Segments are the argmax over slots of
    ``group_assignments`` (or of ``slot_attention_maps`` when it is ``None``), upsampled
    bilinearly to the frame before the argmax so boundaries are smooth.

    Args:
        observation: ``[B, 3, H, W]`` uint8 or float in [0, 1] (e.g. ``[B, 3, 84, 84]``).
        slot_attention_maps: ``[B, K, h, w]`` (e.g. ``[B, 4, 21, 21]``).
        slot_centers: ``[B, K, 2]`` as ``(x, y)`` in [-1, 1].
        group_assignments: ``[B, h, w, K]`` soft or hard assignments, or ``None``.
        return_mode: ``"all"`` or one of the keys below (then only that key is returned).
        alpha: opacity of slot colour at a slot map's maximum.
        marker_radius: half-size in pixels of the centre markers (default ``max(1, H // 42)``).

    Returns:
        A dict of float images in [0, 1]:
        ``slot_overlays`` ``[B*K, 3, H, W]`` (frame ``b``, slot ``k`` at ``b*K + k``): each slot's
        map, rescaled to [0, 1], blended over the frame in the slot's colour;
        ``semantic_segmentation`` ``[B, 3, H, W]``: every pixel in its dominant slot's colour;
        ``combined_with_contours`` ``[B, 3, H, W]``: frame and segmentation blended half and half,
        white pixels on boundaries between segments, and each slot centre as a square in its
        colour with a black outline.
    """
    name = "visualize_multi_object_attention"
    _check_frames(name, observation)
    b = observation.shape[0]
    if slot_attention_maps.dim() != 4 or slot_attention_maps.shape[0] != b:
        raise ValueError(
            f"{name}: expected slot_attention_maps of shape [{b}, K, h, w], "
            f"got {tuple(slot_attention_maps.shape)}"
        )
    k, h, w = slot_attention_maps.shape[1:]
    if tuple(slot_centers.shape) != (b, k, 2):
        raise ValueError(
            f"{name}: expected slot_centers of shape {(b, k, 2)}, got {tuple(slot_centers.shape)}"
        )
    if group_assignments is not None and tuple(group_assignments.shape) != (b, h, w, k):
        raise ValueError(
            f"{name}: expected group_assignments of shape {(b, h, w, k)}, "
            f"got {tuple(group_assignments.shape)}"
        )
    if return_mode not in _RETURN_MODES:
        raise ValueError(f"{name}: expected return_mode in {_RETURN_MODES}, got {return_mode!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{name}: expected alpha in [0, 1], got {alpha!r}")

    image = to_unit_float(observation).float()  # [B, 3, H, W]
    height, width = image.shape[-2:]
    palette = slot_palette(k, device=image.device)  # [K, 3]
    outputs: dict[str, torch.Tensor] = {}

    if return_mode in ("all", "slot_overlays"):
        weight = F.interpolate(
            _normalise_maps(slot_attention_maps.detach(), "max"), size=(height, width),
            mode="bilinear", align_corners=False,
        ).clamp(0.0, 1.0).unsqueeze(2)  # [B, K, 1, H, W]
        colour = palette[None, :, :, None, None]  # [1, K, 3, 1, 1]
        overlays = image.unsqueeze(1) * (1.0 - alpha * weight) + alpha * weight * colour
        outputs["slot_overlays"] = rearrange(overlays.clamp(0.0, 1.0), "b k c h w -> (b k) c h w")
    if return_mode == "slot_overlays":
        return outputs

    source = slot_attention_maps if group_assignments is None else rearrange(
        group_assignments, "b h w k -> b k h w"
    )
    labels = F.interpolate(
        source.detach().float(), size=(height, width), mode="bilinear", align_corners=False
    ).argmax(dim=1)  # [B, H, W]
    segmentation = rearrange(palette[labels], "b h w c -> b c h w")  # [B, 3, H, W]
    if return_mode in ("all", "semantic_segmentation"):
        outputs["semantic_segmentation"] = segmentation
    if return_mode == "semantic_segmentation":
        return outputs

    combined = 0.5 * image + 0.5 * segmentation
    edge = torch.zeros_like(labels, dtype=torch.bool)
    edge[:, :, :-1] |= labels[:, :, 1:] != labels[:, :, :-1]
    edge[:, :-1, :] |= labels[:, 1:, :] != labels[:, :-1, :]
    combined = torch.where(edge.unsqueeze(1), torch.ones_like(combined), combined)
    radius = max(1, height // 42) if marker_radius is None else int(marker_radius)
    fill, outline = _center_markers(slot_centers.detach(), height, width, radius)
    combined = torch.where(outline.any(dim=1, keepdim=True), torch.zeros_like(combined), combined)
    # Where markers overlap, the later slot is drawn on top.
    order = torch.arange(1, k + 1, device=image.device).view(1, k, 1, 1)
    top = (fill.long() * order).amax(dim=1)  # [B, H, W], 0 where no marker
    marker_colour = rearrange(palette[(top - 1).clamp_min(0)], "b h w c -> b c h w")
    combined = torch.where((top > 0).unsqueeze(1), marker_colour, combined)
    outputs["combined_with_contours"] = combined.clamp(0.0, 1.0)
    return outputs
