import pytest
import torch

from aime.world_model import objectives


def test_balanced_kl_applies_free_bits_and_balance():
    dyn, rep = torch.tensor([0.5, 3.0]), torch.tensor([0.2, 2.0])
    out = objectives.balanced_kl(dyn, rep, free_bits=1.0, balance=0.8)
    torch.testing.assert_close(out, torch.tensor([1.0, 0.8 * 3.0 + 0.2 * 2.0]))
    # below the free bits there is no gradient
    d = torch.tensor([0.5], requires_grad=True)
    objectives.balanced_kl(d, d, 1.0, 0.5).sum().backward()
    assert d.grad.item() == 0.0


def test_image_loss_sums_pixels_and_applies_weights():
    pred, target = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    torch.testing.assert_close(objectives.image_loss(pred, target), torch.full((2,), 48.0))
    weights = torch.zeros(2, 4, 4)
    weights[:, 0, 0] = 2.0
    torch.testing.assert_close(objectives.image_loss(pred, target, weights), torch.full((2,), 6.0))


def test_attention_precision_is_one_plus_scaled_map():
    attention = torch.full((1, 3, 3), 1 / 9)
    torch.testing.assert_close(objectives.attention_precision(attention, 6, 0.5), torch.full((1, 6, 6), 1.5))
    peaked = torch.zeros(1, 3, 3)
    peaked[0, 1, 1] = 1.0
    w = objectives.attention_precision(peaked, 6, 1.0)
    assert w[0, 2, 2] == 10.0 and w[0, 0, 0] == 1.0


def test_continue_loss_and_masked_mean():
    logits = torch.tensor([10.0, -10.0])
    loss = objectives.continue_loss(logits, torch.tensor([False, True]))
    assert (loss < 1e-3).all()
    x = torch.tensor([1.0, 2.0, 3.0])
    assert objectives.masked_mean(x, torch.tensor([True, False, True])) == 2.0
    assert objectives.masked_mean(x, torch.zeros(3, dtype=torch.bool)) == 0.0


def test_entropy_of_map():
    uniform = torch.full((2, 4, 4), 1 / 16)
    expected = torch.full((2,), torch.log(torch.tensor(16.0)).item())
    torch.testing.assert_close(objectives.entropy_of_map(uniform), expected)


def test_motion_saliency_marks_the_cells_that_changed():
    obs = torch.zeros(2, 3, 3, 84, 84, dtype=torch.uint8)
    obs[:, 1, :, 40:44, 8:12] = 255  # a square appears in cell (10, 2) of the 21x21 grid
    obs[1, 2] = obs[1, 1]  # sequence 1: nothing changes from step 1 to step 2
    maps, moved = objectives.motion_saliency(obs, 21)
    assert maps.shape == (2, 2, 21, 21) and moved.tolist() == [[True, True], [True, False]]
    assert maps[0, 0, 10, 2] == 1.0 and maps[0, 1, 10, 2] == 1.0  # appeared, then vanished
    torch.testing.assert_close(maps[moved].sum((-2, -1)), torch.ones(3))
    assert maps[1, 1].abs().sum() == 0
    obs[0, 2, :, 0:4, 80:84] = 255  # a second change, 3x smaller in area, in another cell
    obs[0, 2, :, 1:4, 80:84] = 0
    maps, _ = objectives.motion_saliency(obs, 21)
    assert maps[0, 1, 0, 20] > 0 and maps[0, 1, 10, 2] > maps[0, 1, 0, 20]


def test_motion_change_of_uint8_frames_equals_that_of_their_floats():
    """Frames kept uint8 until the channel sum give the float path's values exactly: both signs of
    every difference, no wrapping (``a - b`` in uint8 would wrap where ``b > a``)."""
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (2, 5, 3, 84, 84), dtype=torch.uint8, generator=g)
    for fn in (objectives.motion_saliency, objectives.current_motion_saliency):
        for got, want in zip(fn(obs, 21), fn(obs.float(), 21)):
            assert torch.equal(got, want)
    change = objectives.current_motion_change(obs)
    assert change.dtype == torch.float32 and torch.equal(change, objectives.current_motion_change(obs.float()))
    assert change.max() > 255  # sums of three channels' differences, not one


def test_current_motion_saliency_keeps_the_new_place_and_drops_the_old():
    obs = torch.zeros(1, 4, 3, 84, 84, dtype=torch.uint8)
    for t, col in enumerate((0, 8, 16, 24)):  # a 4x4 square moving right by two cells per frame
        obs[0, t, :, 40:44, col : col + 4] = 255
    maps, moved = objectives.current_motion_saliency(obs, 21)
    assert maps.shape == (1, 2, 21, 21) and moved.all()
    assert maps[0, 0, 10, 4] == 1.0 and maps[0, 1, 10, 6] == 1.0  # only where the square is now
    two_frame, _ = objectives.motion_saliency(obs, 21)
    assert two_frame[0, 1, 10, 2] == 0.5 and two_frame[0, 1, 10, 4] == 0.5  # old and new place alike
    still = obs.clone()
    still[:, 3] = still[:, 2]  # the square stops at the last frame: nothing is moving then
    maps, moved = objectives.current_motion_saliency(still, 21)
    assert moved.tolist() == [[True, False]] and maps[0, 1].abs().sum() == 0
    with pytest.raises(ValueError, match="T >= 3"):
        objectives.current_motion_saliency(obs[:, :2], 21)


def test_current_motion_detail_says_where_inside_its_cell_the_moving_thing_is():
    obs = torch.zeros(1, 3, 3, 84, 84, dtype=torch.uint8)
    # a 1x2-pixel ball moving right: at the last frame it covers pixels (41, 29) and (41, 30), which
    # lie in cell (10, 7) at rows 1 and columns 1, 2 of the cell's 4x4 pixels
    for t, col in enumerate((13, 21, 29)):
        obs[0, t, :, 41, col : col + 2] = 200
    detail, weight, moved = objectives.current_motion_detail(obs, 21)
    assert detail.shape == (1, 1, 16, 21, 21) and weight.shape == (1, 1, 21, 21) and moved.tolist() == [[True]]
    assert weight[0, 0, 10, 7] == 1.0 and weight.sum() == 1.0
    assert detail[0, 0, :, 10, 7].tolist() == [0, 0, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert detail[0, 0, :, 10, 3].sum() == 0  # the place it left is not a target
    # a ball on a cell border splits between two cells, each by its share
    obs[0, 2] = 0
    obs[0, 2, :, 41, 31:34] = 200  # pixel 31 in cell 7, pixels 32 and 33 in cell 8
    detail, weight, _ = objectives.current_motion_detail(obs, 21)
    torch.testing.assert_close(weight[0, 0, 10, 7:9], torch.tensor([1 / 3, 2 / 3]))
    assert detail[0, 0, 7, 10, 7] == 1.0 and detail[0, 0, 4, 10, 8] == 0.5 and detail[0, 0, 5, 10, 8] == 0.5
    with pytest.raises(ValueError, match="multiple"):
        objectives.current_motion_detail(obs, 20)


def test_slot_compactness_is_low_when_each_attended_slot_holds_one_object():
    ball, paddle = torch.zeros(21, 21), torch.zeros(21, 21)
    ball[3, 3], paddle[18, 10] = 1.0, 1.0
    attention = (ball + paddle) / 2
    background = 1 - ball - paddle
    one_slot = torch.stack([ball + paddle, background, torch.zeros(21, 21)])  # both objects in slot 0
    two_slots = torch.stack([ball, paddle, background])
    spread = objectives.slot_compactness(one_slot, attention)
    compact = objectives.slot_compactness(two_slots, attention)
    assert compact.abs() < 1e-6 and spread > 0.3  # slot 0's two points: variance of a 2-point split
    # the background slot carries none of the attention, so its spread does not count
    torch.testing.assert_close(objectives.slot_compactness(two_slots[[2, 0, 1]], attention), compact)
