"""Object-level evaluation: cells and windows of boxes, lifts, centroids, and the whole evaluation
on a synthetic game whose object is known."""

import math

import numpy as np
import pytest
import torch

from aime.eval.objects import (
    ObjectData,
    box_cells,
    box_window,
    cell_oracle,
    centroid_pixels,
    episode_medians,
    evaluate_objects,
    format_seed_table,
    format_table,
    map_lift,
    window_error,
)
from aime.world_model.vrnn import VRNN


def test_box_cells_and_window():
    boxes = torch.tensor([[4.0, 8.0, 6.0, 10.0], [0.0, 0.0, 8.5, 4.0]])  # 84 px frame, 4 px cells
    cells = box_cells(boxes, 21, 84)
    assert cells[0].nonzero().tolist() == [[2, 1]]
    assert cells[1].sum() == 3 and cells[1][0, :3].all()  # 8.5 px reaches into the third column
    window = box_window(boxes[:1], 84, margin=1)
    assert window.sum() == 4 * 4 and window[0, 7:11, 3:7].all()


def test_map_lift_is_one_for_uniform_and_the_cap_for_a_map_on_the_object():
    cells = torch.zeros(2, 21, 21, dtype=torch.bool)
    cells[:, 3:5, 3:5] = True
    uniform = torch.full((2, 21, 21), 1 / 441)
    torch.testing.assert_close(map_lift(uniform, cells), torch.ones(2))
    on = cells.float()
    torch.testing.assert_close(map_lift(on, cells), torch.full((2,), 441 / 4))
    assert math.isnan(map_lift(uniform[:1], torch.zeros(1, 21, 21, dtype=torch.bool)).item())


def test_centroid_pixels_puts_cell_centres_at_pixel_centres_of_cells():
    centres = torch.tensor([[-1.0, -1.0], [1.0, 0.0]])
    torch.testing.assert_close(centroid_pixels(centres, 21, 84), torch.tensor([[2.0, 2.0], [82.0, 42.0]]))


def square_game(rows=60, episode=20, seed=0) -> ObjectData:
    """A 6x6 square bouncing right and left on mid-grey; its box is the ground truth."""
    rng = np.random.default_rng(seed)
    obs = np.full((rows, 3, 84, 84), 128, np.uint8)  # what an untrained decoder draws (0.5)
    boxes = np.zeros((rows, 1, 4), np.float32)
    x, y, dx = 10, 30, 4
    for t in range(rows):
        if t % episode == 0:
            x, y = int(rng.integers(6, 70)), int(rng.integers(6, 70))
        x += dx
        if not 4 <= x <= 74:
            dx, x = -dx, x - 2 * dx
        obs[t, :, y : y + 6, x : x + 6] = 250
        boxes[t, 0] = (x, y, x + 6, y + 6)
    is_first = np.arange(rows) % episode == 0
    return ObjectData(
        obs,
        np.zeros(rows, np.int64),
        np.zeros(rows, np.float32),
        is_first,
        boxes,
        np.ones((rows, 1), bool),
        ("square",),
    )


def test_window_error_is_zero_for_the_real_frame_and_equal_to_the_scene_without_the_object():
    data = square_game(rows=4)
    real = torch.as_tensor(data.obs).float()[None] / 255  # [1, 4, 3, 84, 84]
    window = box_window(torch.as_tensor(data.boxes)[None], 84, margin=2)  # [1, 4, 1, 84, 84]
    scene = torch.full_like(real, 128 / 255)
    assert window_error(real, real, window).abs().max() == 0
    expected = 36 * 3 * (250 / 255 - 128 / 255) ** 2  # the 6x6 square's pixels, 3 channels
    torch.testing.assert_close(window_error(scene, real, window), torch.full((4, 1), expected))


def test_cell_oracle_spreads_a_dot_over_its_cell_and_keeps_the_scene_elsewhere():
    scene = torch.full((1, 3, 84, 84), 0.5)
    real = scene.clone()
    real[..., 10, 10] = 1.0  # a one-pixel object in the 4x4 cell [8:12, 8:12]
    window = box_window(torch.tensor([[[8.0, 8.0, 12.0, 12.0]]]), 84, margin=0)  # [1, 1, 84, 84]: the cell
    oracle = cell_oracle(real, scene, window, cell=4)
    torch.testing.assert_close(oracle[..., 8:12, 8:12], torch.full((1, 3, 4, 4), 0.5 + 0.5 / 16))
    outside = torch.ones(84, 84, dtype=torch.bool)
    outside[8:12, 8:12] = False
    assert (oracle[..., outside] == 0.5).all()
    # a point's share of its cell is 1/cell^2: the oracle removes that share of the scene's error
    ratio = window_error(oracle[None], real[None], window[None]) / window_error(scene[None], real[None], window[None])
    torch.testing.assert_close(ratio, torch.tensor([[1 - 1 / 16]]))
    assert window_error(cell_oracle(real, scene, window, cell=1)[None], real[None], window[None]).item() == 0
    with pytest.raises(ValueError, match="cell must be >= 1"):
        cell_oracle(real, scene, window, cell=0)


def test_episode_medians_are_the_static_scene():
    data = square_game()
    medians = episode_medians(data.obs, data.is_first)
    assert (medians == 128).all()  # the square never stays put, so the median is the background


@pytest.mark.parametrize("attention, decoder_attention", [(True, False), (True, True), (False, False)])
def test_evaluate_objects_reports_the_figures_and_their_baselines(attention, decoder_attention):
    torch.manual_seed(0)
    model = VRNN(
        3,
        deter=32,
        stoch=4,
        classes=4,
        hidden=32,
        cnn_depth=8,
        context_dim=16,
        num_slots=2,
        attention=attention,
        decoder_attention=decoder_attention,
    )
    data = square_game()
    result = evaluate_objects(model, data, context=3, horizons=(1, 2), windows=8)
    row = result["classes"]["square"]
    assert row["frames"] > 0 and row["lift_uniform"] == 1.0
    assert row["lift_motion"] > 20  # the frame difference sits on the square (at most 441/4 or /9)
    assert row["lift_motion_current"] > 20  # zero on the frames where it bounces back to where it was
    # an untrained decoder draws a grey field near the scene grey, and no square
    assert 0.5 < row["window_ratio_recon"] < 1.5 and 0.5 < row["window_ratio_h1"] < 1.5
    assert 0 < row["window_ratio_copy_h1"] < 3  # the square moved 4 px: copy-last misses most of it
    assert 0 < row["window_ratio_cell_oracle"] < 1  # the 6x6 square fills part of the 4x4 cells it touches
    # an even map in place of the posterior's changes what a decoder that reads the map draws
    assert (row["window_ratio_state"] == row["window_ratio_recon"]) != decoder_attention
    assert ("lift" in row) == attention and ("entropy_ratio" in result["frames"]) == attention
    if attention:
        assert 0.5 < row["lift"] < 3  # an untrained posterior is near uniform
        assert row["lift_best_slot"] >= row["lift"] * 0.5 and row["centroid_error_px"] >= 0
        assert 0.5 < row["lift_state"] < 3  # so is an untrained map head
    table = format_table({"model": result})
    assert table.count("\n") == 2 and "| model | square |" in table
    other = {"classes": {"square": {**row, "lift_motion": row["lift_motion"] + 2}}, "frames": result["frames"]}
    seeds = format_seed_table({"model": [result, other]})
    mean, sd = row["lift_motion"] + 1, 2**0.5
    assert "| model | square | 2 | " in seeds and f"{mean:.2f} ± {sd:.2f}" in seeds


def test_state_map_lift_reads_the_attention_map_head(monkeypatch):
    torch.manual_seed(0)
    model = VRNN(3, deter=32, stoch=4, classes=4, hidden=32, cnn_depth=8, context_dim=16, num_slots=2)
    corner = torch.zeros(21, 21)
    corner[0, 0] = 1.0  # the square never reaches the top-left cell

    def head_maps(feat):
        return corner.expand(*feat.shape[:-1], 21, 21)

    monkeypatch.setattr(model.perception, "head_maps", head_maps)
    row = evaluate_objects(model, square_game(), context=3, horizons=(1,), windows=8)["classes"]["square"]
    assert row["lift_state"] == 0.0 and row["lift"] > 0.5


@pytest.mark.parametrize("split", [False, True])
def test_smallest_slot_share_tells_a_slot_on_one_object_from_slots_that_split_the_screen(monkeypatch, split):
    torch.manual_seed(0)
    model = VRNN(3, deter=32, stoch=4, classes=4, hidden=32, cnn_depth=8, context_dim=16, num_slots=2)
    observe = model.observe

    def observe_with_slots(*args, **kwargs):
        out = observe(*args, **kwargs)
        maps = torch.zeros_like(out["slot_maps"])  # [B, T, 2, R, R]
        if split:  # slot 0 holds the 10 left columns, slot 1 the rest
            maps[:, :, 0, :, :10] = 1.0
        else:  # slot 0 holds one cell, an object's
            maps[:, :, 0, 5, 5] = 1.0
        maps[:, :, 1] = 1.0 - maps[:, :, 0]
        return {**out, "slot_maps": maps}

    monkeypatch.setattr(model, "observe", observe_with_slots)
    result = evaluate_objects(model, square_game(), context=3, horizons=(1,), windows=8)
    share = result["frames"]["smallest_slot_share"]
    assert share == pytest.approx(10 / 21 if split else 1 / 441)
    assert f"| {share:.3f} |" in format_table({"model": result})
