"""Attention overlays: shapes, value ranges, colours, segmentation, contours, markers, heatmaps
(absolute scale, annotation, colour bar), entropy ratio, labelled grids."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aime.attention.overlays import (
    SLOT_COLORS,
    apply_colormap,
    attention_heatmap_overlay,
    entropy_ratio,
    slot_palette,
    tile_grid,
    to_unit_float,
    visualize_multi_object_attention,
)

KEYS = ("slot_overlays", "semantic_segmentation", "combined_with_contours")


def quadrant_slots(b: int = 2, size: int = 21) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 4, size, size] maps where slot k owns quadrant k (row-major), and their centres."""
    maps = torch.full((b, 4, size, size), 0.02)
    half = size // 2
    maps[:, 0, :half, :half] = 1.0
    maps[:, 1, :half, half + 1 :] = 1.0
    maps[:, 2, half + 1 :, :half] = 1.0
    maps[:, 3, half + 1 :, half + 1 :] = 1.0
    centers = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]).expand(b, 4, 2)
    return maps, centers


def test_palette_colours_are_distinct_and_in_range():
    palette = slot_palette(12)
    torch.testing.assert_close(palette, torch.tensor(SLOT_COLORS))
    distances = torch.cdist(palette, palette) + torch.eye(12) * 10
    assert distances.min() > 0.2
    extended = slot_palette(20)
    assert extended.shape == (20, 3)
    assert extended.min() >= 0 and extended.max() <= 1
    assert (torch.cdist(extended, extended) + torch.eye(20) * 10).min() > 0.05
    with pytest.raises(ValueError, match="positive int"):
        slot_palette(0)


def test_colormap_endpoints_and_range():
    values = torch.tensor([0.0, 0.5, 1.0, 2.0, -1.0])
    colours = apply_colormap(values, "inferno")
    assert colours.shape == (5, 3)
    torch.testing.assert_close(colours[0], torch.tensor([0.001, 0.0, 0.014]))
    torch.testing.assert_close(colours[2], torch.tensor([0.988, 0.998, 0.645]))
    torch.testing.assert_close(colours[3], colours[2])  # clamped
    torch.testing.assert_close(colours[4], colours[0])
    assert colours[1].sum() > colours[0].sum() and colours[1].sum() < colours[2].sum()
    with pytest.raises(ValueError, match="expected name"):
        apply_colormap(values, "rainbow")


def test_frames_may_be_uint8_or_float():
    frames = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    torch.testing.assert_close(to_unit_float(frames), frames.float() / 255)
    torch.testing.assert_close(to_unit_float(torch.tensor([-1.0, 0.5, 2.0])), torch.tensor([0.0, 0.5, 1.0]))
    maps, centers = quadrant_slots()
    out_uint8 = visualize_multi_object_attention(frames.expand(2, 3, 8, 8), maps, centers)
    out_float = visualize_multi_object_attention(frames.float() / 255, maps, centers)
    for key in KEYS:
        torch.testing.assert_close(out_uint8[key], out_float[key])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_shapes_and_ranges(dtype):
    b, k = 2, 4
    frames = torch.randint(0, 256, (b, 3, 84, 84)).to(dtype)
    if dtype == torch.float32:
        frames = torch.randn(b, 3, 84, 84)  # out-of-range floats are clamped
    maps = torch.rand(b, k, 21, 21).softmax(dim=1)
    centers = torch.rand(b, k, 2) * 2 - 1
    groups = torch.nn.functional.one_hot(maps.argmax(1), k).float()  # [B, 21, 21, K]
    out = visualize_multi_object_attention(frames, maps, centers, groups, return_mode="all")
    assert set(out) == set(KEYS)
    assert out["slot_overlays"].shape == (b * k, 3, 84, 84)
    assert out["semantic_segmentation"].shape == (b, 3, 84, 84)
    assert out["combined_with_contours"].shape == (b, 3, 84, 84)
    for image in out.values():
        assert image.dtype == torch.float32
        assert image.min() >= 0.0 and image.max() <= 1.0
    for key in KEYS:
        single = visualize_multi_object_attention(frames, maps, centers, groups, return_mode=key)
        assert set(single) == {key}
        torch.testing.assert_close(single[key], out[key])


def test_segmentation_colours_each_pixel_by_its_dominant_slot():
    maps, centers = quadrant_slots()
    frames = torch.zeros(2, 3, 84, 84)
    seg = visualize_multi_object_attention(frames, maps, centers)["semantic_segmentation"]
    palette = slot_palette(4)
    for k, (row, col) in enumerate([(10, 10), (10, 73), (73, 10), (73, 73)]):
        torch.testing.assert_close(seg[:, :, row, col], palette[k].expand(2, 3))
    # group_assignments take precedence over the maps
    flipped = torch.flip(maps, dims=[1]).permute(0, 2, 3, 1)  # slot 3 owns the top-left, ...
    seg2 = visualize_multi_object_attention(frames, maps, centers, flipped)["semantic_segmentation"]
    torch.testing.assert_close(seg2[:, :, 10, 10], palette[3].expand(2, 3))


def test_slot_overlays_are_ordered_frame_major_and_tinted_where_the_slot_attends():
    maps, centers = quadrant_slots()
    frames = torch.full((2, 3, 84, 84), 0.5)
    frames[1] = 0.2
    overlays = visualize_multi_object_attention(frames, maps, centers, alpha=0.6)["slot_overlays"]
    palette = slot_palette(4)
    for b in range(2):
        for k, (row, col) in enumerate([(10, 10), (10, 73), (73, 10), (73, 73)]):
            image = overlays[b * 4 + k]
            expected = frames[b, :, row, col] * 0.4 + 0.6 * palette[k]
            torch.testing.assert_close(image[:, row, col], expected, rtol=1e-4, atol=1e-4)
            # far from the slot's quadrant the frame is nearly untouched
            far_row, far_col = 84 - 1 - row, 84 - 1 - col
            assert (image[:, far_row, far_col] - frames[b, :, far_row, far_col]).abs().max() < 0.05


def test_contours_mark_segment_edges_and_slot_centres():
    maps, centers = quadrant_slots(b=1)
    frames = torch.zeros(1, 3, 84, 84)
    combined = visualize_multi_object_attention(frames, maps, centers)["combined_with_contours"][0]
    palette = slot_palette(4)
    white = torch.ones(3)
    # a vertical boundary between slots 0 and 1 in the top half: some white pixels on row 5
    row = combined[:, 5, :]
    assert any(torch.equal(row[:, c], white) for c in range(35, 49))
    # inside a segment, away from edges and markers: half frame + half colour
    torch.testing.assert_close(combined[:, 5, 5], 0.5 * palette[0])
    # centre markers: slot colour at the centre, black outline around it
    for k, (x, y) in enumerate(centers[0].tolist()):
        col = round((x + 1) / 2 * 83)
        row_px = round((y + 1) / 2 * 83)
        torch.testing.assert_close(combined[:, row_px, col], palette[k])
        assert torch.equal(combined[:, row_px, col + 3], torch.zeros(3))


def test_heatmap_overlay_shows_the_frame_where_attention_is_zero():
    frames = torch.rand(2, 3, 84, 84)
    attention = torch.zeros(2, 21, 21)
    attention[:, 10, 10] = 1.0
    out = attention_heatmap_overlay(frames, attention, alpha=0.6, normalize="max")
    assert out.shape == (2, 3, 84, 84)
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out[:, :, 0, 0], frames[:, :, 0, 0])
    assert (out[:, :, 42, 42] - frames[:, :, 42, 42]).abs().max() > 0.05
    uint8 = attention_heatmap_overlay((frames * 255).round().to(torch.uint8), attention)
    assert uint8.dtype == torch.float32 and uint8.shape == (2, 3, 84, 84)
    stretched = attention_heatmap_overlay(frames, attention + 0.5, normalize="minmax")
    torch.testing.assert_close(stretched, out)


def test_bad_inputs_raise_naming_shapes():
    frames = torch.rand(2, 3, 84, 84)
    maps, centers = quadrant_slots()
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\], got \(2, 1, 84, 84\)"):
        visualize_multi_object_attention(frames[:, :1], maps, centers)
    with pytest.raises(ValueError, match=r"slot_centers of shape \(2, 4, 2\), got \(2, 3, 2\)"):
        visualize_multi_object_attention(frames, maps, centers[:, :3])
    with pytest.raises(ValueError, match=r"group_assignments of shape \(2, 21, 21, 4\), got \(2, 4, 21, 21\)"):
        visualize_multi_object_attention(frames, maps, centers, maps)
    with pytest.raises(ValueError, match="return_mode"):
        visualize_multi_object_attention(frames, maps, centers, return_mode="everything")
    with pytest.raises(ValueError, match=r"attention of shape \[2, h, w\], got \(2, 1, 21, 21\)"):
        attention_heatmap_overlay(frames, torch.rand(2, 1, 21, 21))
    attention = torch.full((2, 21, 21), 1 / 441)
    with pytest.raises(ValueError, match="normalize"):
        attention_heatmap_overlay(frames, attention, normalize="sum")
    with pytest.raises(ValueError, match="ratio_cap"):
        attention_heatmap_overlay(frames, attention, ratio_cap=1.0)
    with pytest.raises(ValueError, match="upscale"):
        attention_heatmap_overlay(frames, attention, upscale=0)
    with pytest.raises(ValueError, match="interpolation"):
        attention_heatmap_overlay(frames, attention, interpolation="bicubic")
    with pytest.raises(ValueError, match="expected 2 labels, got 1"):
        tile_grid(frames, 2, ["a"])
    with pytest.raises(ValueError, match="ncols"):
        tile_grid(frames, 0)
    with pytest.raises(ValueError, match=r"maps \[\.\.\., H, W\]"):
        entropy_ratio(torch.rand(5))


# -- the absolute ("uniform") scale ------------------------------------------------------------

CELLS = 21 * 21


def peaked(ratios: dict[tuple[int, int], float], b: int = 1) -> torch.Tensor:
    """[B, 21, 21] maps summing to 1: the given cells at ``ratio`` times uniform, the rest equal."""
    maps = torch.zeros(b, 21, 21)
    for (row, col), ratio in ratios.items():
        maps[:, row, col] = ratio / CELLS
    rest = 1.0 - maps.sum(dim=(-2, -1), keepdim=True)
    free = (maps == 0).float()
    return maps + free * rest / free.sum(dim=(-2, -1), keepdim=True)


def cell_pixels(image: torch.Tensor, row: int, col: int, size: int = 4) -> torch.Tensor:
    """The [..., 3, size, size] block of 21x21 cell (row, col) in an image of 21 * size pixels."""
    return image[..., row * size : (row + 1) * size, col * size : (col + 1) * size]


def away_from_annotation(image: torch.Tensor) -> torch.Tensor:
    """Pixels below the top third and left of the right 15% (the text box and the colour bar)."""
    height, width = image.shape[-2:]
    return image[..., height // 3 :, : width - (15 * width) // 100]


def test_uniform_attention_leaves_the_frame_untinted():
    frames = torch.rand(2, 3, 84, 84)
    uniform = torch.full((2, 21, 21), 1.0 / CELLS)
    plain = attention_heatmap_overlay(frames, uniform, annotate=False)
    torch.testing.assert_close(plain, frames)  # the whole frame, untouched
    out = attention_heatmap_overlay(frames, uniform)  # "uniform" and annotated by default
    assert out.shape == (2, 3, 84, 84) and out.dtype == torch.float32
    torch.testing.assert_close(away_from_annotation(out), away_from_annotation(frames))
    # while the per-map maximum paints a uniform map everywhere
    relative = attention_heatmap_overlay(frames, uniform, normalize="max")
    assert (away_from_annotation(relative) - away_from_annotation(frames)).abs().mean() > 0.1
    # cells below uniform are untinted too
    below = peaked({(3, 3): 30.0})
    frame = torch.rand(1, 3, 84, 84)
    low = attention_heatmap_overlay(frame, below, annotate=False)
    torch.testing.assert_close(cell_pixels(low, 15, 10), cell_pixels(frame, 15, 10))


def test_upscaled_overlay_of_uniform_attention_is_the_enlarged_frame():
    frames = torch.rand(1, 3, 84, 84)
    out = attention_heatmap_overlay(frames, torch.full((1, 21, 21), 1.0 / CELLS), upscale=3)
    assert out.shape == (1, 3, 252, 252)
    assert out.min() >= 0 and out.max() <= 1
    enlarged = F.interpolate(frames, scale_factor=3, mode="nearest")
    torch.testing.assert_close(away_from_annotation(out), away_from_annotation(enlarged))


def test_a_cell_at_the_cap_gets_the_full_colour_and_weaker_cells_less():
    frames = torch.full((1, 3, 84, 84), 0.5)
    alpha, cap = 0.6, 50.0
    maps = peaked({(10, 10): cap, (4, 15): 7.0, (16, 5): 200.0})
    out = attention_heatmap_overlay(frames, maps, alpha=alpha, ratio_cap=cap, annotate=False)
    top = apply_colormap(torch.tensor(1.0))
    full = (0.5 * (1 - alpha) + alpha * top).view(3, 1, 1).expand(3, 4, 4)
    torch.testing.assert_close(cell_pixels(out[0], 10, 10), full)  # 50x: the full colour
    torch.testing.assert_close(cell_pixels(out[0], 16, 5), full)  # above the cap: clipped
    m = math.log(7.0) / math.log(cap)  # 7x: part of the way
    seven = 0.5 * (1 - alpha * m) + alpha * m * apply_colormap(torch.tensor(m))
    torch.testing.assert_close(cell_pixels(out[0], 4, 15), seven.view(3, 1, 1).expand(3, 4, 4))
    # a lower cap saturates the 7x cell too
    low_cap = attention_heatmap_overlay(frames, maps, alpha=alpha, ratio_cap=7.0, annotate=False)
    torch.testing.assert_close(cell_pixels(low_cap[0], 4, 15), full)


def test_a_2x_bump_is_much_weaker_on_the_absolute_scale_than_under_max():
    frames = torch.full((1, 3, 84, 84), 0.5)
    maps = peaked({(r, c): 2.0 for r in range(9, 12) for c in range(9, 12)})
    absolute = attention_heatmap_overlay(frames, maps, annotate=False)
    relative = attention_heatmap_overlay(frames, maps, normalize="max")
    tint_absolute = (cell_pixels(absolute[0], 10, 10) - 0.5).abs().mean()
    tint_relative = (cell_pixels(relative[0], 10, 10) - 0.5).abs().mean()
    assert tint_relative > 0.15  # under "max" a 2x bump is painted like a 441x one
    assert tint_absolute < 0.25 * tint_relative
    assert tint_absolute > 0.0  # but still visible


def test_annotation_changes_only_the_corner_and_the_colour_bar():
    frames = torch.rand(1, 3, 84, 84)
    maps = peaked({(12, 8): 30.0})
    plain = attention_heatmap_overlay(frames, maps, annotate=False)
    annotated = attention_heatmap_overlay(frames, maps, annotate=True)
    changed = (annotated - plain).abs().amax(dim=1)[0] > 1e-6  # [84, 84]
    corner = torch.zeros_like(changed)
    corner[:28, :50] = True
    bar = torch.zeros_like(changed)
    bar[:, 84 - 6 :] = True
    assert changed[corner].any() and changed[bar].any()
    assert not changed[~(corner | bar)].any()
    # the text is written on a dark box
    assert annotated[0, :, :12, :24].mean() < plain[0, :, :12, :24].mean() * 0.6

    # upscaled, with the colour bar's ends labelled
    plain3 = attention_heatmap_overlay(frames, maps, annotate=False, upscale=3)
    annotated3 = attention_heatmap_overlay(frames, maps, upscale=3)
    changed3 = (annotated3 - plain3).abs().amax(dim=1)[0] > 1e-6
    allowed = torch.zeros_like(changed3)
    allowed[:70, :150] = True
    allowed[:, 252 - 50 :] = True
    assert changed3[:70, :150].any()
    assert not changed3[~allowed].any()


def test_the_annotation_reads_the_map():
    frames = torch.rand(1, 3, 84, 84) * 0.2
    uniform = torch.full((1, 21, 21), 1.0 / CELLS)
    sharp = peaked({(18, 3): 40.0})  # tinted far from the corner
    a = attention_heatmap_overlay(frames, uniform, upscale=3)
    b = attention_heatmap_overlay(frames, sharp, upscale=3)
    # no tint in the corner for either map, so the corner differs only by the text
    assert (a[..., :60, :140] - b[..., :60, :140]).abs().max() > 0.3
    # the colour bar runs from the colormap's top (cap) to its bottom (1x)
    bar = a[0, :, :, 252 - 4]  # a column inside the bar, [3, 252]
    top = apply_colormap(torch.tensor(1.0))
    assert ((bar - top[:, None]).abs().amax(dim=0) < 0.02).any()
    upper, lower = bar[:, 10:126].mean(), bar[:, 126:242].mean()
    assert upper > lower + 0.2


def test_annotate_is_off_by_default_for_relative_scales():
    frames = torch.rand(1, 3, 84, 84)
    maps = peaked({(12, 8): 30.0})
    for mode in ("max", "minmax"):
        default = attention_heatmap_overlay(frames, maps, normalize=mode)
        plain = attention_heatmap_overlay(frames, maps, normalize=mode, annotate=False)
        torch.testing.assert_close(default, plain)
        annotated = attention_heatmap_overlay(frames, maps, normalize=mode, annotate=True)
        changed = (annotated - plain).abs().amax(dim=1)[0] > 1e-6
        assert changed[:28, :50].any() and not changed[:, 60:].any()  # text only, no colour bar


def test_entropy_ratio_is_one_for_uniform_and_zero_for_one_hot():
    uniform = torch.full((2, 3, 21, 21), 1.0 / CELLS)
    torch.testing.assert_close(entropy_ratio(uniform), torch.ones(2, 3))
    one_hot = torch.zeros(4, 21, 21)
    one_hot[torch.arange(4), torch.tensor([0, 5, 10, 20]), torch.tensor([0, 7, 3, 20])] = 1.0
    torch.testing.assert_close(entropy_ratio(one_hot), torch.zeros(4))
    halves = torch.zeros(1, 21, 21)
    halves[0, 0, :2] = 0.5
    torch.testing.assert_close(entropy_ratio(halves), torch.tensor([math.log(2) / math.log(CELLS)]))
    # unnormalised maps are normalised first; more spread means a higher ratio
    torch.testing.assert_close(entropy_ratio(halves * 7), entropy_ratio(halves))
    assert entropy_ratio(peaked({(3, 3): 100.0})) < entropy_ratio(peaked({(3, 3): 10.0})) < 1.0


# -- labelled grids ----------------------------------------------------------------------------


def test_tile_grid_places_tiles_row_major():
    tiles = torch.rand(5, 3, 10, 12)
    grid = tile_grid(tiles, 2, pad=3, background=0.25)
    assert grid.shape == (3, 3 * 10 + 4 * 3, 2 * 12 + 3 * 3)
    for i in range(5):
        row, col = divmod(i, 2)
        y, x = 3 + row * 13, 3 + col * 15
        torch.testing.assert_close(grid[:, y : y + 10, x : x + 12], tiles[i])
    torch.testing.assert_close(grid[:, 29:39, 18:30], torch.full((3, 10, 12), 0.25))  # no 6th tile
    torch.testing.assert_close(grid[:, :3], torch.full((3, 3, grid.shape[-1]), 0.25))  # padding
    # upscaled (nearest), and uint8 tiles read as /255
    big = tile_grid((tiles * 255).round().to(torch.uint8), 5, upscale=2, pad=0)
    assert big.shape == (3, 20, 5 * 24)
    torch.testing.assert_close(big[:, :20, :24], F.interpolate(tiles[:1], scale_factor=2)[0], atol=2 / 255, rtol=0)
    # an all-NaN tile leaves its cell empty
    holes = tiles.clone()
    holes[1] = float("nan")
    grid = tile_grid(holes, 2, pad=3, background=0.25)
    torch.testing.assert_close(grid[:, 3:13, 18:30], torch.full((3, 10, 12), 0.25))
    assert not torch.isnan(grid).any()


def test_tile_grid_labels_draw_text_above_each_tile():
    tiles = torch.full((4, 3, 84, 84), 0.3)
    unlabelled = tile_grid(tiles, 2)
    labelled = tile_grid(tiles, 2, ["slot 0", "slot 1", None, "recon"])
    assert unlabelled.shape == (3, 2 * 84 + 3 * 2, 2 * 84 + 3 * 2)
    strip = labelled.shape[1] - unlabelled.shape[1]
    assert strip % 2 == 0 and strip // 2 >= 8  # a label strip per row, room for the text
    strip //= 2
    assert labelled.shape[2] == unlabelled.shape[2]
    assert labelled.min() >= 0 and labelled.max() <= 1

    def label_area(i: int) -> torch.Tensor:
        row, col = divmod(i, 2)
        y, x = 2 + row * (strip + 84 + 2), 2 + col * (84 + 2)
        return labelled[:, y : y + strip, x : x + 84]

    for i in (0, 1, 3):
        area = label_area(i)
        assert (area.amin(dim=0) > 0.8).sum() >= 10  # white text ...
        assert (area.amax(dim=0) < 0.05).float().mean() > 0.5  # ... on a dark strip
        # and the tile itself is untouched below its label
        row, col = divmod(i, 2)
        y, x = 2 + row * (strip + 84 + 2) + strip, 2 + col * (84 + 2)
        torch.testing.assert_close(labelled[:, y : y + 84, x : x + 84], tiles[i])
    assert (label_area(0) - label_area(1)).abs().max() > 0.5  # different text, different pixels
    torch.testing.assert_close(label_area(2), torch.full_like(label_area(2), 0.2))  # no label: background
    # multi-line labels get a taller strip
    two_lines = tile_grid(tiles, 2, ["slot 0\n25% x3.1"] * 4)
    assert two_lines.shape[1] > labelled.shape[1]
