"""Attention overlays: shapes, value ranges, colours, segmentation, contours, markers, heatmaps."""

from __future__ import annotations

import pytest
import torch

from aime.attention.overlays import (
    SLOT_COLORS,
    apply_colormap,
    attention_heatmap_overlay,
    slot_palette,
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
    out = attention_heatmap_overlay(frames, attention, alpha=0.6)
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
