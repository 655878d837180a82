"""The image primitives of the overlays (aime.attention.drawing, aime.attention.palette), and the public names
that aime.attention.overlays had before they moved there: every one still imports from it."""

from __future__ import annotations

import pytest
import torch

import aime.attention.overlays as overlays
from aime.attention import drawing, palette

# recorded from the single module (commit abe5ec3)
OLD_PUBLIC_NAMES = (
    "SLOT_COLORS slot_palette apply_colormap to_unit_float attention_heatmap_overlay entropy_ratio tile_grid "
    "visualize_multi_object_attention"
).split()


@pytest.mark.parametrize("name", OLD_PUBLIC_NAMES)
def test_every_public_name_still_imports_from_overlays(name):
    assert name in overlays.__all__
    value = getattr(overlays, name)
    home = getattr(drawing, name, None) if hasattr(drawing, name) else getattr(palette, name, value)
    assert home is value


def test_check_frames_names_the_caller_and_the_shape():
    drawing.check_frames("f", torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"f: expected frames of shape \[B, 3, H, W\], got \(2, 1, 4, 5\)"):
        drawing.check_frames("f", torch.zeros(2, 1, 4, 5))


def test_enlarge_repeats_pixels():
    image = torch.arange(4.0).view(1, 1, 2, 2)
    big = drawing.enlarge(image, 3)
    assert big.shape == (1, 1, 6, 6)
    assert torch.equal(big[0, 0, :3, :3], torch.zeros(3, 3)) and torch.equal(big[0, 0, 3:, 3:], torch.full((3, 3), 3.0))
    assert drawing.enlarge(image, 1) is image
    with pytest.raises(ValueError, match="positive int"):
        drawing.enlarge(image, 0)


def test_label_box_darkens_and_writes_only_in_its_box():
    image = torch.full((3, 60, 80), 0.5)
    out = drawing.label_box(image, ["peak x3.0"], 0, 0, 8.0)
    changed = (out != image).any(dim=0)
    rows, cols = changed.nonzero(as_tuple=True)
    assert rows.max() < 30 and cols.max() < 79  # a box in the top-left corner
    assert (out[:, ~changed] == 0.5).all()
    assert (out > 0.9).any() and (out < 0.2).any()  # white text on a dark box
    assert torch.equal(image, torch.full((3, 60, 80), 0.5))  # the input is left alone


def test_colour_bar_runs_from_the_colormaps_bottom_to_its_top():
    image = drawing.colour_bar(torch.full((3, 100, 100), 0.5), "inferno", 50.0, 6.0)
    column = image[:, :, 98]  # inside the bar, left of the image's last column
    top, bottom = palette.apply_colormap(torch.tensor([1.0, 0.0]), "inferno")
    torch.testing.assert_close(column[:, 4], top, atol=0.02, rtol=0)
    torch.testing.assert_close(column[:, 95], bottom, atol=0.02, rtol=0)
