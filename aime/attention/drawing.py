"""Image primitives of the overlays: frames to float, text on dark boxes, a colour bar, labelled grids.

Tensor arithmetic on the inputs' device; text is drawn with OpenCV (``cv2.putText``) into a ``uint8`` mask
that is blended into the torch image. Frames may be ``uint8`` (0..255) or floating point (read as [0, 1]
and clamped); every output is a floating-point image with values in [0, 1].

- ``to_unit_float``: frames -> float in [0, 1]; ``check_frames``: ``[B, 3, H, W]`` or ``ValueError``;
- ``enlarge``: nearest-neighbour enlargement (Atari pixels stay sharp);
- ``label_box``: lines of text on a dark box; ``colour_bar``: a labelled vertical colour bar;
- ``tile_grid``: images laid out in a grid, each under a label.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from aime.attention.palette import apply_colormap


def to_unit_float(frames: torch.Tensor) -> torch.Tensor:
    """``uint8`` frames -> float in [0, 1] (divided by 255); float frames are clamped to [0, 1]."""
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    if not frames.is_floating_point():
        raise ValueError(f"expected uint8 or floating-point frames, got {frames.dtype}")
    return frames.clamp(0.0, 1.0)


def check_frames(name: str, frames: torch.Tensor) -> None:
    """Raise ``ValueError`` (naming the caller ``name``) unless ``frames`` is ``[B, 3, H, W]``."""
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"{name}: expected frames of shape [B, 3, H, W], got {tuple(frames.shape)}")


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


def label_box(
    image: torch.Tensor,
    lines: list[str],
    x: int,
    y: int,
    height: float,
    *,
    opacity: float = 0.8,
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


def colour_bar(image: torch.Tensor, colormap: str, ratio_cap: float, text_height: float) -> torch.Tensor:
    """A vertical colour bar on the right edge of ``image [3, H, W]``: 1x (bottom) to cap x (top).

    A dark outline around it; its ends labelled when the image is at least 160 px wide.
    """
    _, height, width = image.shape
    bar = max(3, round(0.03 * width))
    margin = max(2, round(0.04 * height))
    top, bottom = margin, height - margin  # rows of the gradient: [top, bottom)
    left = width - bar - 1
    image = image.clone()
    image[:, top - 1 : bottom + 1, left - 1 :] = 0.0  # outline
    levels = torch.linspace(1.0, 0.0, bottom - top, device=image.device, dtype=image.dtype)
    colours = rearrange(apply_colormap(levels, colormap), "h c -> c h 1")  # [3, rows, 1]
    image[:, top:bottom, left : width - 1] = colours.expand(3, bottom - top, width - 1 - left)
    if width >= 160:
        small = 0.8 * text_height
        image = label_box(image, [f"x{ratio_cap:g}"], left - 1, top - 1, small, anchor="right")
        _, line_height, _ = _text_size(["x1"], *_font(small))
        box_h = line_height + max(1, round(0.2 * line_height))
        image = label_box(image, ["x1"], left - 1, bottom + 1 - box_h, small, anchor="right")
    return image


def enlarge(image: torch.Tensor, factor: int) -> torch.Tensor:
    """``image [B, C, H, W]`` enlarged ``factor`` times (nearest): ``[B, C, H * factor, W * factor]``."""
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"expected upscale to be a positive int, got {factor!r}")
    return image if factor == 1 else F.interpolate(image, scale_factor=factor, mode="nearest")


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
    check_frames(name, tiles)
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
    images = enlarge(to_unit_float(tiles).float(), upscale)
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
        (3, rows * cell_h + (rows + 1) * pad, ncols * tw + (ncols + 1) * pad),
        float(background),
        device=images.device,
    )
    mask = np.zeros(canvas.shape[1:], np.uint8) if strip else None
    for i in range(n):
        if empty[i]:
            continue
        row, col = divmod(i, ncols)
        y = pad + row * (cell_h + pad)
        x = pad + col * (tw + pad)
        canvas[:, y + strip : y + cell_h, x : x + tw] = images[i]
        if strip and any(lines[i]):
            canvas[:, y : y + strip, x : x + tw] = 0.0
            _put_lines(mask, lines[i], x + 2, y + max(1, round(0.1 * line_height)), scale, thickness)
    if mask is not None:
        canvas = _blend_text(canvas, mask)
    return canvas.clamp(0.0, 1.0)
