"""Attention overlays as image tensors (seed 003's visualisation), for TensorBoard and figures.

- ``visualize_multi_object_attention``: per-slot overlays, segmentation by dominant slot, and the
  segmentation over the frame with segment edges and slot centres marked.
- ``attention_heatmap_overlay``: one attention map per frame, coloured and blended, by default on
  an absolute scale (ratio over uniform, log) with its peak ratio, entropy ratio and a colour bar.
- ``entropy_ratio``: a map's entropy over the uniform map's (1 uniform, 0 one-hot).

The image primitives they draw with live beside them and are re-exported here: ``tile_grid`` and
``to_unit_float`` (:mod:`aime.attention.drawing`, with the text and the colour bar), ``SLOT_COLORS``,
``slot_palette`` and ``apply_colormap`` (:mod:`aime.attention.palette`). Frames may be ``uint8`` (0..255)
or floating point (read as [0, 1] and clamped); every output is a floating-point image in [0, 1].

Slot centres are ``(x, y)`` in [-1, 1] with -1/+1 at the centres of the first/last pixel (the
convention of ``aime.attention.losses.center_of_mass``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from aime.attention.drawing import check_frames, colour_bar, enlarge, label_box, tile_grid, to_unit_float
from aime.attention.palette import SLOT_COLORS, apply_colormap, slot_palette

__all__ = [
    "SLOT_COLORS",
    "slot_palette",
    "apply_colormap",
    "to_unit_float",
    "attention_heatmap_overlay",
    "entropy_ratio",
    "tile_grid",
    "visualize_multi_object_attention",
]

_RETURN_MODES = ("all", "slot_overlays", "semantic_segmentation", "combined_with_contours")
_NORMALIZE_MODES = ("uniform", "max", "minmax")


def _normalise_maps(maps: torch.Tensor, mode: str, ratio_cap: float = 50.0) -> torch.Tensor:
    """Map values to [0, 1] over the last two dimensions. ``[..., h, w]``.

    ``"uniform"``: ``log(v * h * w) / log(ratio_cap)`` clipped to [0, 1] (an absolute scale for
    maps that sum to 1: uniform -> 0, ``ratio_cap`` times uniform -> 1); ``"max"``: divided by the
    map's maximum; ``"minmax"``: stretched to the map's full range.
    """
    maps = maps.float()
    if mode == "uniform":
        cells = maps.shape[-2] * maps.shape[-1]
        ratio = (maps * cells).clamp_min(1e-30)
        return (ratio.log() / math.log(ratio_cap)).clamp(0.0, 1.0)
    if mode == "max":
        maps = maps.clamp_min(0.0)
        return maps / maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    if mode == "minmax":
        low = maps.amin(dim=(-2, -1), keepdim=True)
        span = maps.amax(dim=(-2, -1), keepdim=True) - low
        return (maps - low) / span.clamp_min(1e-12)
    raise ValueError(f"expected normalize in {_NORMALIZE_MODES}, got {mode!r}")


def entropy_ratio(maps: torch.Tensor) -> torch.Tensor:
    """Entropy of each map over its last two dimensions divided by that of the uniform map.

    ``[..., H, W]`` -> ``[...]`` (float): ``H(p) / ln(H * W)`` with ``p`` the map divided by its
    sum (negative values read as 0), so 1 is uniform and 0 is one-hot. A map with one cell
    (``H * W == 1``) has ratio 1.
    """
    if maps.dim() < 2:
        raise ValueError(f"entropy_ratio: expected maps [..., H, W], got {tuple(maps.shape)}")
    flat = maps.detach().float().flatten(-2).clamp_min(0.0)
    cells = flat.shape[-1]
    if cells < 2:
        return torch.ones(flat.shape[:-1], device=flat.device)
    p = flat / flat.sum(-1, keepdim=True).clamp_min(1e-30)
    return -torch.special.xlogy(p, p).sum(-1) / math.log(cells)


def attention_heatmap_overlay(
    frames: torch.Tensor,
    attention: torch.Tensor,
    *,
    alpha: float = 0.6,
    colormap: str = "inferno",
    normalize: str = "uniform",
    ratio_cap: float = 50.0,
    annotate: bool | None = None,
    upscale: int = 1,
    interpolation: str | None = None,
) -> torch.Tensor:
    """Blend a coloured attention map over each frame.

    ``m`` = attention mapped to [0, 1] per cell and upsampled to the output size;
    ``out = frame * (1 - alpha * m) + alpha * m * colormap(m)``: where ``m = 0`` the frame shows
    untouched, where ``m = 1`` it is ``alpha`` of the way to the colormap's top colour.

    ``normalize``:
        ``"uniform"`` (default, an absolute scale for maps that sum to 1): ``m = log(v * h * w) /
        log(ratio_cap)`` clipped to [0, 1], so a cell at or below uniform (``1 / (h * w)``) is
        not tinted, and one ``ratio_cap`` times above uniform gets the full colour. The same
        colour means the same ratio in every image.
        ``"max"``: divided by the map's maximum (a uniform map is uniformly bright);
        ``"minmax"``: stretched to the map's full range. Both are relative to each map.

    ``annotate`` (default: on for ``"uniform"``, off otherwise) writes, top left on a dark box,
    ``peak x{r:.1f}`` (the map's maximum over uniform, ``max(v) * h * w``) and
    ``H/Hu {e:.2f}`` (:func:`entropy_ratio`); with ``"uniform"`` it also draws a colour bar on the
    right edge from 1x (bottom) to ``ratio_cap`` x (top), its ends labelled at 160 px and wider.
    The text is sized to the output; at 84 px it is small, use ``upscale >= 3`` to read it.

    Args:
        frames: ``[B, 3, H, W]`` uint8 or float in [0, 1].
        attention: ``[B, h, w]`` (e.g. ``[B, 21, 21]``), read as probabilities for ``"uniform"``
            and for the annotation.
        ratio_cap: the ratio over uniform that gets the full colour (``"uniform"``), > 1.
        upscale: the frame is enlarged this many times (nearest: Atari pixels stay sharp) before
            the map is blended in, so the output is ``[B, 3, H * upscale, W * upscale]``.
        interpolation: how the map is upsampled, ``"nearest"`` (each cell a block: its colour is
            its ratio, as on the colour bar) or ``"bilinear"``; default nearest for
            ``"uniform"``, bilinear otherwise.

    Returns:
        ``[B, 3, H * upscale, W * upscale]`` float in [0, 1].
    """
    name = "attention_heatmap_overlay"
    check_frames(name, frames)
    if attention.dim() != 3 or attention.shape[0] != frames.shape[0]:
        raise ValueError(f"{name}: expected attention of shape [{frames.shape[0]}, h, w], got {tuple(attention.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{name}: expected alpha in [0, 1], got {alpha!r}")
    if normalize not in _NORMALIZE_MODES:
        raise ValueError(f"{name}: expected normalize in {_NORMALIZE_MODES}, got {normalize!r}")
    if not ratio_cap > 1.0:
        raise ValueError(f"{name}: expected ratio_cap > 1, got {ratio_cap!r}")
    interpolation = interpolation or ("nearest" if normalize == "uniform" else "bilinear")
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"{name}: expected interpolation 'nearest' or 'bilinear', got {interpolation!r}")
    annotate = normalize == "uniform" if annotate is None else annotate

    image = enlarge(to_unit_float(frames).float(), upscale)
    attention = attention.detach()
    scaled = _normalise_maps(attention, normalize, ratio_cap).unsqueeze(1)  # [B, 1, h, w]
    options = {"align_corners": False} if interpolation == "bilinear" else {}
    weight = F.interpolate(scaled, size=image.shape[-2:], mode=interpolation, **options).clamp(0.0, 1.0)
    heat = rearrange(apply_colormap(weight.squeeze(1), colormap), "b h w c -> b c h w")
    out = (image * (1.0 - alpha * weight) + alpha * weight * heat).clamp(0.0, 1.0)
    if not annotate:
        return out

    cells = attention.shape[-2] * attention.shape[-1]
    peaks = (attention.float().amax(dim=(-2, -1)) * cells).tolist()
    entropies = entropy_ratio(attention).tolist()
    height = max(5.0, out.shape[-1] / 21.0)
    annotated = []
    for b in range(out.shape[0]):
        tile = label_box(out[b], [f"peak x{peaks[b]:.1f}", f"H/Hu {entropies[b]:.2f}"], 0, 0, height)
        if normalize == "uniform":
            tile = colour_bar(tile, colormap, ratio_cap, height)
        annotated.append(tile)
    return torch.stack(annotated).clamp(0.0, 1.0)


def _center_markers(centers: torch.Tensor, height: int, width: int, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
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
    check_frames(name, observation)
    b = observation.shape[0]
    if slot_attention_maps.dim() != 4 or slot_attention_maps.shape[0] != b:
        raise ValueError(
            f"{name}: expected slot_attention_maps of shape [{b}, K, h, w], got {tuple(slot_attention_maps.shape)}"
        )
    k, h, w = slot_attention_maps.shape[1:]
    if tuple(slot_centers.shape) != (b, k, 2):
        raise ValueError(f"{name}: expected slot_centers of shape {(b, k, 2)}, got {tuple(slot_centers.shape)}")
    if group_assignments is not None and tuple(group_assignments.shape) != (b, h, w, k):
        raise ValueError(
            f"{name}: expected group_assignments of shape {(b, h, w, k)}, got {tuple(group_assignments.shape)}"
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
        weight = (
            F.interpolate(
                _normalise_maps(slot_attention_maps.detach(), "max"),
                size=(height, width),
                mode="bilinear",
                align_corners=False,
            )
            .clamp(0.0, 1.0)
            .unsqueeze(2)
        )  # [B, K, 1, H, W]
        colour = palette[None, :, :, None, None]  # [1, K, 3, 1, 1]
        overlays = image.unsqueeze(1) * (1.0 - alpha * weight) + alpha * weight * colour
        outputs["slot_overlays"] = rearrange(overlays.clamp(0.0, 1.0), "b k c h w -> (b k) c h w")
    if return_mode == "slot_overlays":
        return outputs

    source = slot_attention_maps if group_assignments is None else rearrange(group_assignments, "b h w k -> b k h w")
    labels = F.interpolate(source.detach().float(), size=(height, width), mode="bilinear", align_corners=False).argmax(
        dim=1
    )  # [B, H, W]
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
