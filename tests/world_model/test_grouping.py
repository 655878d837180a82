import pytest
import torch

from aime.config import LossScales
from aime.world_model import grouping
from aime.world_model.vrnn import VRNN

from .test_vrnn import SMALL, make_batch


def test_components_label_separate_blobs_apart_and_join_near_pieces():
    moving = torch.zeros(1, 21, 21, dtype=torch.bool)
    moving[0, 3, 3] = moving[0, 3, 6] = True  # two pieces 3 cells apart: one object after dilation 2
    moving[0, 15, 10:14] = True  # a bar far away
    labels = grouping.motion_components(moving, dilation=2)[0]
    assert labels[3, 3] == labels[3, 6] > 0
    assert labels[15, 10] == labels[15, 13] > 0 and labels[15, 10] != labels[3, 3]
    assert labels[10, 18] == 0  # outside the dilated mask
    apart = grouping.motion_components(moving, dilation=0)[0]
    assert apart[3, 3] != apart[3, 6]
    diagonal = torch.zeros(1, 5, 5, dtype=torch.bool)
    diagonal[0, 0, 0] = diagonal[0, 1, 1] = True  # 8-connected
    assert grouping.motion_components(diagonal, dilation=0)[0, 1, 1] == grouping.motion_components(diagonal, 0)[0, 0, 0]


def _ball_and_paddle():
    motion = torch.zeros(1, 21, 21)
    motion[0, 4, 4] = 1.0  # the ball
    motion[0, 18, 8:12] = 1.0  # the paddle
    return motion


def _slots(owner_of_ball: int, owner_of_paddle: int, k: int = 3) -> torch.Tensor:
    """Hard responsibilities: the background in slot k-1, ball and paddle in the given slots."""
    maps = torch.zeros(1, k, 21, 21)
    maps[0, k - 1] = 1.0
    maps[0, :, 4, 4] = 0.0
    maps[0, owner_of_ball, 4, 4] = 1.0
    maps[0, :, 18, 8:12] = 0.0
    maps[0, owner_of_paddle, 18, 8:12] = 1.0
    return maps.clamp_min(1e-6) / maps.clamp_min(1e-6).sum(1, keepdim=True)


def test_loss_is_lowest_when_each_moving_thing_has_its_own_slot():
    torch.manual_seed(0)
    motion = _ball_and_paddle()
    apart, _ = grouping.slot_grouping_loss(_slots(0, 1), motion)
    together, _ = grouping.slot_grouping_loss(_slots(0, 0), motion)
    with_background, _ = grouping.slot_grouping_loss(_slots(2, 1), motion)  # the ball in the background's slot
    uniform, valid = grouping.slot_grouping_loss(torch.full((1, 3, 21, 21), 1 / 3), motion)
    assert valid.all()
    assert apart < 0.01 < uniform
    assert together > 10 * apart and with_background > 10 * apart
    # the order of the slots does not matter
    swapped, _ = grouping.slot_grouping_loss(_slots(1, 0), motion)
    torch.testing.assert_close(swapped, apart)


def test_loss_splits_one_slot_holding_two_objects_by_gradient():
    torch.manual_seed(0)
    motion = _ball_and_paddle()
    together = _slots(0, 0).clamp_min(0.1)  # ball and paddle in slot 0, the other slots spread thin
    logits = (together.log() + 0.1 * torch.randn(1, 3, 21, 21)).requires_grad_()
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(300):
        loss, _ = grouping.slot_grouping_loss(logits.softmax(1), motion)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    owner = logits.detach().softmax(1)[0].argmax(0)
    assert owner[4, 4] != owner[18, 9]
    assert owner[4, 4] != owner[10, 10] and owner[18, 9] != owner[10, 10]


def test_no_motion_scores_nothing_and_bad_shapes_raise():
    loss, valid = grouping.slot_grouping_loss(torch.full((2, 3, 21, 21), 1 / 3), torch.zeros(2, 21, 21))
    assert not valid.any() and (loss == 0).all()
    with pytest.raises(ValueError, match="slot_maps"):
        grouping.slot_grouping_loss(torch.zeros(3, 21, 21), torch.zeros(3, 21, 21))
    with pytest.raises(ValueError, match="dilation"):
        grouping.motion_components(torch.zeros(1, 4, 4, dtype=torch.bool), dilation=-1)


def test_the_world_model_trains_its_slots_with_it():
    torch.manual_seed(0)
    model = VRNN(3, fpn_norm="none", loss_scales=LossScales(slot_grouping=1.0), **SMALL)
    batch = make_batch(2, 5)
    _, metrics, _ = model.loss(batch)
    assert "slot_grouping" in metrics and torch.isfinite(metrics["slot_grouping"])
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])
    terms = model.perception.losses(out, batch["is_first"], batch["obs"])
    terms["slot_grouping"].backward()
    assert model.schema.posterior_net.slot_attention.to_q.weight.grad.abs().sum() > 0
    off = VRNN(3, fpn_norm="none", **SMALL)
    assert "slot_grouping" not in off.loss(batch)[1]
