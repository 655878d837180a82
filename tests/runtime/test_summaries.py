"""TensorBoard image summaries: every tag, its shape and range, grids with labels, open-loop wrapping."""

from __future__ import annotations

import pytest
import torch

from aime.attention.overlays import tile_grid
from aime.runtime.summaries import (
    ATTENTION_TAGS,
    GRID_UPSCALE,
    IMAGE_TAGS,
    OVERLAY_UPSCALE,
    image_summaries,
    open_loop_grid,
)
from aime.world_model.vrnn import VRNN

TINY = dict(num_actions=3, deter=32, stoch=4, classes=4, hidden=32, cnn_depth=8, context_dim=8, num_slots=2)


def make_batch(b: int = 2, t: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "obs": torch.randint(0, 256, (b, t, 3, 84, 84), dtype=torch.uint8, generator=generator),
        "action": torch.randint(0, 3, (b, t), generator=generator),
        "is_first": torch.zeros(b, t),
    }


@pytest.fixture(scope="module")
def model() -> VRNN:
    torch.manual_seed(0)
    return VRNN(**TINY)


def check_image(tag: str, image: torch.Tensor) -> None:
    assert image.dim() == 4 and image.shape[1] == 3, (tag, tuple(image.shape))
    assert image.dtype == torch.float32, tag
    assert torch.isfinite(image).all(), tag
    assert image.min() >= 0.0 and image.max() <= 1.0, tag


def test_every_tag_with_its_shape_and_range(model):
    model.train()
    images = image_summaries(model, make_batch())
    assert model.training  # the mode is restored
    assert set(images) == set(IMAGE_TAGS) | set(ATTENTION_TAGS)
    for tag, image in images.items():
        check_image(tag, image)
    side = 84 * OVERLAY_UPSCALE
    assert images["attention/posterior"].shape == (2, 3, side, side)
    assert images["attention/prior"].shape == (2, 3, side, side)
    assert images["attention/segmentation"].shape == (2, 3, side, side)
    tile = 84 * GRID_UPSCALE
    # grids are one image each: the slots a row per sequence, a column per slot, labels above
    slots = images["attention/slots"]
    assert slots.shape[0] == 1 and slots.shape[-1] == 2 * tile + 3 * 2
    assert slots.shape[-2] > 2 * tile + 3 * 2
    recon = images["reconstruction"]
    assert recon.shape[0] == 1 and recon.shape[-1] == 2 * tile + 3 * 2 and recon.shape[-2] > 2 * tile + 3 * 2
    # 6 frames, context 5: one imagined step per sequence -> 4 rows (real, imagined) x 1 column
    open_loop = images["imagination/open_loop"]
    assert open_loop.shape[0] == 1 and open_loop.shape[-1] == 84 + 2 * 2 and open_loop.shape[-2] > 4 * 84 + 5 * 2


def test_grids_carry_their_labels(model):
    images = image_summaries(model, make_batch())
    obs = make_batch()["obs"]
    step = 3  # t // 2 for 6 frames
    real = obs[:, step].float() / 255
    unlabelled = tile_grid(torch.stack([real[0], real[0], real[1], real[1]]), 2, upscale=GRID_UPSCALE)
    recon = images["reconstruction"][0]
    strip = (recon.shape[-2] - unlabelled.shape[-2]) // 2
    assert strip >= 8
    # the real frame sits under its label, enlarged
    tile = 84 * GRID_UPSCALE
    torch.testing.assert_close(
        recon[:, 2 + strip : 2 + strip + tile, 2 : 2 + tile], unlabelled[:, 2 : 2 + tile, 2 : 2 + tile]
    )
    # white text on a black strip above it
    label = recon[:, 2 : 2 + strip, 2 : 2 + tile]
    assert (label.amin(dim=0) > 0.8).sum() >= 10 and (label.amax(dim=0) < 0.05).float().mean() > 0.5
    for tag, rows in (("attention/slots", 30), ("imagination/open_loop", 12)):
        first_label = images[tag][0, :, 2 : 2 + rows, 2:80]  # inside the first tile's label strip
        assert (first_label.amin(dim=0) > 0.8).any(), tag


def test_attention_overlays_are_annotated(model):
    images = image_summaries(model, make_batch())
    for tag in ("attention/posterior", "attention/prior"):
        image = images[tag]
        corner = image[:, :, :20, :60]
        assert (corner.amin(dim=1) > 0.8).any(), tag  # text
        bar = image[:, :, 30:200, -4]  # inside the colour bar: bright at the top, dark below
        assert bar[:, :, :20].mean() > bar[:, :, -20:].mean() + 0.2, tag


def test_open_loop_grid_wraps_long_horizons_into_row_pairs():
    b, horizon = 2, 11
    real = torch.rand(b, horizon, 3, 84, 84)
    imagined = torch.rand(b, horizon, 3, 84, 84)
    grid = open_loop_grid(real, imagined)
    cols = 6  # 11 steps -> 2 row pairs of at most 8: 6 + 5
    assert grid.shape[-1] == cols * 84 + (cols + 1) * 2
    rows = b * 2 * 2  # sequences x pairs x (real, imagined)
    reference = tile_grid(torch.rand(rows * cols, 3, 84, 84), cols, ["x"] * (rows * cols))
    assert grid.shape == reference.shape
    strip = (grid.shape[-2] - 2 - rows * (84 + 2)) // rows
    cell = strip + 84 + 2

    def tile(row: int, col: int) -> torch.Tensor:
        y, x = 2 + row * cell + strip, 2 + col * (84 + 2)
        return grid[:, y : y + 84, x : x + 84]

    # sequence 0: real h1..h6 / imagined h1..h6 / real h7..h11 / imagined h7..h11; then sequence 1
    torch.testing.assert_close(tile(0, 0), real[0, 0])
    torch.testing.assert_close(tile(1, 5), imagined[0, 5])
    torch.testing.assert_close(tile(2, 0), real[0, 6])
    torch.testing.assert_close(tile(3, 4), imagined[0, 10])
    torch.testing.assert_close(tile(4, 0), real[1, 0])
    torch.testing.assert_close(tile(7, 4), imagined[1, 10])
    # the missing 12th step leaves its cells empty (background), label strip included
    y, x = 2 + 2 * cell, 2 + 5 * (84 + 2)
    torch.testing.assert_close(grid[:, y : y + strip + 84, x : x + 84], torch.full((3, strip + 84, 84), 0.2))
    # at most 8 columns; short horizons stay on one row pair
    assert open_loop_grid(real[:, :8], imagined[:, :8]).shape[-1] == 8 * 84 + 9 * 2
    assert open_loop_grid(real[:, :9], imagined[:, :9]).shape[-1] == 5 * 84 + 6 * 2


def test_without_the_schema_only_the_image_tags():
    torch.manual_seed(0)
    model = VRNN(**{**TINY, "attention": False})
    images = image_summaries(model, make_batch(t=8), context=3)
    assert set(images) == set(IMAGE_TAGS)
    for tag, image in images.items():
        check_image(tag, image)
    # 8 frames, context 3: 5 imagined steps in one row pair per sequence
    assert images["imagination/open_loop"].shape[-1] == 5 * 84 + 6 * 2
