"""Attention overlays as image tensors (seed 003's visualisation), for TensorBoard and figures.

Tensor arithmetic on the inputs' device; text is drawn with OpenCV (``cv2.putText``) into a mask
that is blended in. Frames may be ``uint8`` (0..255) or floating point (read as [0, 1] and
clamped); every output is a floating-point image with values in [0, 1].

- ``visualize_multi_object_attention``: per-slot overlays, segmentation by dominant slot, and the
  segmentation over the frame with segment edges and slot centres marked.
- ``attention_heatmap_overlay``: one attention map per frame, coloured and blended, by default on
  an absolute scale (ratio over uniform, log) with its peak ratio, entropy ratio and a colour bar.
- ``entropy_ratio``: a map's entropy over the uniform map's (1 uniform, 0 one-hot).
- ``tile_grid``: images laid out in a grid, each under a label.
- ``slot_palette`` / ``apply_colormap``: the fixed slot colours and a torch colormap.

Slot centres are ``(x, y)`` in [-1, 1] with -1/+1 at the centres of the first/last pixel (the
convention of ``aime.attention.losses.center_of_mass``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

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


# -- text (cv2 draws into a mask, which is blended into the torch image) ---------------------------

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_HEIGHT = cv2.getTextSize("Ag", _FONT, 1.0, 1)[0][1]  # pixels at scale 1


def _font(height: float) -> tuple[float, int]:
    """(scale, thickness) of text about ``height`` pixels tall."""
    scale = max(float(height), 4.0) / _FONT_HEIGHT
    return scale, 1 if scale < 0.9 else 2


def _text_size(lines: list[str], scale: float, thickness: int) -> tuple[int, int, int]:
    """(width, line height, baseline) of a block of lines."""
    sizes = [cv2.getTextSize(line or " ", _FONT, scale, thickness) for line in lines]
    width = max(w for (w, _), _ in sizes)
    baseline = max(b for _, b in sizes)
    height = max(h for (_, h), _ in sizes)
    return width, height + baseline + max(1, round(0.25 * height)), baseline


def _put_lines(mask: np.ndarray, lines: list[str], x: int, y: int, scale: float, thickness: int) -> None:
    """Write ``lines`` into a uint8 ``mask`` with the block's top-left at ``(x, y)``."""
    _, line_height, baseline = _text_size(lines, scale, thickness)
    for i, line in enumerate(lines):
        bottom = y + (i + 1) * line_height - baseline - max(1, round(0.12 * line_height))
        cv2.putText(mask, line, (int(x), int(bottom)), _FONT, scale, 255, thickness, cv2.LINE_AA)


def _blend_text(image: torch.Tensor, mask: np.ndarray, colour: float = 1.0) -> torch.Tensor:
    """``image [3, H, W]`` with the text ``mask [H, W]`` (uint8 coverage) painted in ``colour``."""
    alpha = torch.from_numpy(mask).to(device=image.device, dtype=image.dtype).div_(255.0)
    return image * (1.0 - alpha) + colour * alpha


def _label_box(
    image: torch.Tensor, lines: list[str], x: int, y: int, height: float, *, opacity: float = 0.8,
    anchor: str = "left",
) -> torch.Tensor:
    """Write ``lines`` (text ``height`` px) on a dark box at ``(x, y)`` of ``image [3, H, W]``.

    ``anchor="right"``: ``x`` is the box's right edge. The box is clipped to the image.
    """
    _, h_img, w_img = image.shape
    scale, thickness = _font(height)
    width, line_height, _ = _text_size(lines, scale, thickness)
    margin = max(1, round(0.2 * line_height))
    box_w, box_h = width + 2 * margin, len(lines) * line_height + margin
    if anchor == "right":
        x = x - box_w
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w_img, x + box_w), min(h_img, y + box_h)
    image = image.clone()
    if x1 > x0 and y1 > y0:
        image[:, y0:y1, x0:x1] *= 1.0 - opacity
    mask = np.zeros((h_img, w_img), np.uint8)
    _put_lines(mask, lines, x + margin, y, scale, thickness)
    return _blend_text(image, mask)


def _colour_bar(
    image: torch.Tensor, colormap: str, ratio_cap: float, text_height: float
) -> torch.Tensor:
    """A vertical colour bar on the right edge of ``image [3, H, W]``: 1x (bottom) to cap x (top).

    A dark outline around it; its ends labelled when the image is at least 160 px wide.
    """
    _, height, width = image.shape
    bar = max(3, round(0.03 * width))
    margin = max(2, round(0.04 * height))
    top, bottom = margin, height - margin  # rows of the gradient: [top, bottom)
    left = width - bar - 1
    image = image.clone()
    image[:, top - 1:bottom + 1, left - 1:] = 0.0  # outline
    levels = torch.linspace(1.0, 0.0, bottom - top, device=image.device, dtype=image.dtype)
    colours = rearrange(apply_colormap(levels, colormap), "h c -> c h 1")  # [3, rows, 1]
    image[:, top:bottom, left:width - 1] = colours.expand(3, bottom - top, width - 1 - left)
    if width >= 160:
        small = 0.8 * text_height
        image = _label_box(image, [f"x{ratio_cap:g}"], left - 1, top - 1, small, anchor="right")
        _, line_height, _ = _text_size(["x1"], *_font(small))
        box_h = line_height + max(1, round(0.2 * line_height))
        image = _label_box(image, ["x1"], left - 1, bottom + 1 - box_h, small, anchor="right")
    return image


def _upscale(image: torch.Tensor, factor: int) -> torch.Tensor:
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"expected upscale to be a positive int, got {factor!r}")
    return image if factor == 1 else F.interpolate(image, scale_factor=factor, mode="nearest")


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
    _check_frames(name, frames)
    if attention.dim() != 3 or attention.shape[0] != frames.shape[0]:
        raise ValueError(
            f"{name}: expected attention of shape [{frames.shape[0]}, h, w], got {tuple(attention.shape)}"
        )
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

    image = _upscale(to_unit_float(frames).float(), upscale)
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
        tile = _label_box(out[b], [f"peak x{peaks[b]:.1f}", f"H/Hu {entropies[b]:.2f}"], 0, 0, height)
        if normalize == "uniform":
            tile = _colour_bar(tile, colormap, ratio_cap, height)
        annotated.append(tile)
    return torch.stack(annotated).clamp(0.0, 1.0)


def tile_grid(
    tiles: torch.Tensor,
    ncols: int,
    labels: Sequence[str | None] | None = None,
    upscale: int = 1,
    pad: int = 2,
    *,
    background: float = 0.2,
) -> torch.Tensor:
    """Lay ``tiles`` out row-major, ``ncols`` to a row, each under its label.

    Each label (``"\\n"`` separates lines) is written in white on a black strip above its tile,
    sized to the tile's width (about a ninth of it tall, smaller if a line would not fit), so
    it stays legible when TensorBoard shrinks the image to its card. Cells are ``pad`` pixels
    apart on a grey ``background``; a tile that is all NaN leaves its cell empty (for ragged
    rows), as do the cells after the last tile.

    Args:
        tiles: ``[N, 3, H, W]`` uint8 or float in [0, 1].
        ncols: tiles per row (rows = ``ceil(N / ncols)``).
        labels: ``N`` strings (``None`` or ``""`` for none), or ``None`` for no label strip.
        upscale: tiles are enlarged this many times (nearest) first.
        pad: pixels between cells and around the grid.

    Returns:
        ``[3, rows * (label strip + H * upscale) + (rows + 1) * pad, ncols * W * upscale +
        (ncols + 1) * pad]`` float in [0, 1].
    """
    name = "tile_grid"
    _check_frames(name, tiles)
    n = tiles.shape[0]
    if n < 1:
        raise ValueError(f"{name}: expected at least one tile, got {tuple(tiles.shape)}")
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"{name}: expected ncols to be a positive int, got {ncols!r}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{name}: expected {n} labels, got {len(labels)}")
    if not isinstance(pad, int) or pad < 0:
        raise ValueError(f"{name}: expected pad to be a non-negative int, got {pad!r}")
    if tiles.is_floating_point():
        empty = torch.isnan(tiles).flatten(1).all(dim=1).tolist()
        tiles = torch.nan_to_num(tiles)
    else:
        empty = [False] * n
    images = _upscale(to_unit_float(tiles).float(), upscale)
    _, _, th, tw = images.shape
    rows = -(-n // ncols)

    lines = [(label or "").split("\n") for label in labels] if labels is not None else []
    strip = 0
    if any(any(line for line in block) for block in lines):
        depth = max(len(block) for block in lines)
        longest = max(
            (line for block in lines for line in block), key=lambda text: cv2.getTextSize(text, _FONT, 1.0, 1)[0][0]
        )
        height = max(6.0, tw / 9.0)
        scale, thickness = _font(height)
        width = _text_size([longest], scale, thickness)[0]
        if width > tw - 4:  # shrink to fit the tile's width
            height *= (tw - 4) / width
            scale, thickness = _font(height)
        _, line_height, _ = _text_size(["Ag"], scale, thickness)
        strip = depth * line_height + max(2, round(0.2 * line_height))

    cell_h = strip + th
    canvas = torch.full(
        (3, rows * cell_h + (rows + 1) * pad, ncols * tw + (ncols + 1) * pad), float(background),
        device=images.device,
    )
    mask = np.zeros(canvas.shape[1:], np.uint8) if strip else None
    for i in range(n):
        if empty[i]:
            continue
        row, col = divmod(i, ncols)
        y = pad + row * (cell_h + pad)
        x = pad + col * (tw + pad)
        canvas[:, y + strip:y + cell_h, x:x + tw] = images[i]
        if strip and any(lines[i]):
            canvas[:, y:y + strip, x:x + tw] = 0.0
            _put_lines(mask, lines[i], x + 2, y + max(1, round(0.1 * line_height)), scale, thickness)
    if mask is not None:
        canvas = _blend_text(canvas, mask)
    return canvas.clamp(0.0, 1.0)


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
