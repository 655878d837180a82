"""Losses of the attention schema: centre of mass, dynamics, slot diversity, prior cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aime.attention.losses import (
    attention_dynamics_loss,
    attention_prior_cross_entropy,
    center_of_mass,
    slot_diversity_loss,
)


def one_hot_map(b: int, h: int, w: int, row: int, col: int) -> torch.Tensor:
    maps = torch.zeros(b, h, w)
    maps[:, row, col] = 1.0
    return maps


def random_maps(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(*shape, generator=g)
    return maps / maps.sum(dim=(-2, -1), keepdim=True)


# --- centre of mass -------------------------------------------------------------------------------


def test_center_of_mass_of_one_hot_maps():
    com = center_of_mass(one_hot_map(2, 21, 11, row=5, col=3))
    torch.testing.assert_close(com, torch.tensor([[-1 + 2 * 3 / 10, -1 + 2 * 5 / 20]] * 2))
    corners = torch.stack([one_hot_map(1, 5, 5, 0, 0)[0], one_hot_map(1, 5, 5, 4, 4)[0]])
    torch.testing.assert_close(center_of_mass(corners), torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))


def test_center_of_mass_is_the_weighted_mean_and_handles_leading_dims():
    maps = random_maps(2, 3, 6, 5)
    com = center_of_mass(maps)
    assert com.shape == (2, 3, 2)
    xs, ys = torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 6)
    torch.testing.assert_close(com[..., 0], (maps * xs).sum(dim=(-2, -1)))
    torch.testing.assert_close(com[..., 1], (maps * ys[:, None]).sum(dim=(-2, -1)))
    # unnormalised maps: same centre
    torch.testing.assert_close(center_of_mass(maps * 7.0), com)


def test_center_of_mass_ignores_negative_values_and_stays_in_range():
    maps = torch.randn(50, 9, 9)
    com = center_of_mass(maps)
    assert com.abs().max() <= 1.0
    torch.testing.assert_close(com, center_of_mass(maps.clamp_min(0)))
    torch.testing.assert_close(center_of_mass(torch.zeros(1, 4, 4)), torch.zeros(1, 2))


def test_center_of_mass_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[\.\.\., H, W\], got \(5,\)"):
        center_of_mass(torch.rand(5))
    with pytest.raises(ValueError, match="floating-point"):
        center_of_mass(torch.ones(2, 3, 3, dtype=torch.long))


# --- attention dynamics -----------------------------------------------------------------------------


def moving_blob_sequence(b: int = 2, t: int = 5, size: int = 11) -> torch.Tensor:
    """[B, T, H, W]: a one-hot that moves one column right and one row down each step."""
    seq = torch.zeros(b, t, size, size)
    for step in range(t):
        seq[:, step, 2 + step, 1 + step] = 1.0
    return seq


def test_dynamics_loss_is_zero_for_the_true_shift_and_positive_otherwise():
    seq = moving_blob_sequence()
    step = 2.0 / 10  # one pixel in [-1, 1] coordinates on an 11-pixel axis
    exact = torch.full((2, 4, 2), step)
    assert attention_dynamics_loss(seq, exact).item() == pytest.approx(0.0, abs=1e-7)
    wrong = exact.clone()
    wrong[..., 0] = -step
    loss = attention_dynamics_loss(seq, wrong)
    # SmoothL1 of an error of 2*step in x on every element (y exact): 0.5 * (2*step)^2
    assert loss.item() == pytest.approx(0.5 * (2 * step) ** 2, rel=1e-5)


def test_dynamics_loss_spatial_fields_are_averaged():
    seq = moving_blob_sequence()
    step = 2.0 / 10
    field = torch.randn(2, 4, 2, 11, 11)
    field = field - field.mean(dim=(-2, -1), keepdim=True) + step  # mean = true shift
    assert attention_dynamics_loss(seq, field).item() == pytest.approx(0.0, abs=1e-6)


def test_dynamics_loss_matches_the_seed_formula():
    seq = random_maps(3, 6, 21, 21)
    pred = torch.randn(3, 5, 2) * 0.5
    centers = center_of_mass(seq)
    actual = centers[:, 1:] - centers[:, :-1]
    expected = F.smooth_l1_loss(pred[..., 0], actual[..., 0]) + F.smooth_l1_loss(pred[..., 1], actual[..., 1])
    torch.testing.assert_close(attention_dynamics_loss(seq, pred), expected)


def test_dynamics_loss_list_and_tensor_forms_agree():
    seq = random_maps(2, 6, 21, 21)
    field = torch.randn(2, 5, 2, 21, 21)
    tensor_loss = attention_dynamics_loss(seq, field)
    as_lists = attention_dynamics_loss(
        [seq[:, t] for t in range(6)], [(field[:, t, 0], field[:, t, 1]) for t in range(5)]
    )
    as_stacked_items = attention_dynamics_loss(list(seq.unbind(1)), list(field.unbind(1)))
    vectors = field.mean(dim=(-2, -1))
    as_vectors = attention_dynamics_loss(list(seq.unbind(1)), list(vectors.unbind(1)))
    torch.testing.assert_close(as_lists, tensor_loss)
    torch.testing.assert_close(as_stacked_items, tensor_loss)
    torch.testing.assert_close(as_vectors, tensor_loss)


def test_dynamics_loss_gradients_and_detach_target():
    seq = random_maps(2, 4, 7, 7).requires_grad_(True)
    pred = torch.randn(2, 3, 2, requires_grad=True)
    attention_dynamics_loss(seq, pred).backward()
    assert pred.grad.abs().sum() > 0 and seq.grad.abs().sum() > 0
    seq.grad = None
    attention_dynamics_loss(seq, pred, detach_target=True).backward()
    assert seq.grad is None


def test_dynamics_loss_rejects_bad_shapes():
    seq = random_maps(2, 5, 7, 7)
    with pytest.raises(ValueError, match=r"\[2, 4, 2\] or \[2, 4, 2, H, W\], got \(2, 5, 2\)"):
        attention_dynamics_loss(seq, torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match=r"\[B, T, H, W\], got \(5, 7, 7\)"):
        attention_dynamics_loss(seq[0], torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="at least 2 attention maps, got T=1"):
        attention_dynamics_loss(seq[:, :1], torch.zeros(2, 0, 2))
    with pytest.raises(ValueError, match=r"got shapes \[\(2, 7, 7\), \(2, 6, 6\)\]"):
        attention_dynamics_loss([seq[:, 0], torch.zeros(2, 6, 6)], [torch.zeros(2, 2)])
    with pytest.raises(ValueError, match="length 3"):
        attention_dynamics_loss(list(seq.unbind(1)), [(seq[:, 0],) * 3] * 4)
    with pytest.raises(ValueError, match=r"\[2, 4, 2\] or \[2, 4, 2, H, W\], got \(2, 3, 2\)"):
        attention_dynamics_loss(list(seq.unbind(1)), [torch.zeros(2, 2)] * 3)


# --- slot diversity ---------------------------------------------------------------------------------


def test_diversity_is_zero_for_disjoint_one_hot_maps():
    maps = torch.zeros(2, 4, 6, 6)
    for k in range(4):
        maps[:, k, k, k] = 1.0
    assert slot_diversity_loss(maps, from_logits=False).item() == pytest.approx(0.0, abs=1e-7)
    # the seed's form (softmax over positions) with very sharp logits tends to the same
    assert slot_diversity_loss(maps * 50.0, from_logits=True).item() == pytest.approx(0.0, abs=1e-6)


def test_diversity_is_largest_for_identical_maps():
    same = random_maps(2, 1, 6, 6).expand(2, 4, 6, 6)
    partial = random_maps(2, 4, 6, 6, seed=3)
    identical = slot_diversity_loss(same, from_logits=False).item()
    assert identical == pytest.approx(1.0, abs=1e-5)
    assert 0.0 < slot_diversity_loss(partial, from_logits=False).item() < identical
    assert slot_diversity_loss(same, from_logits=True).item() == pytest.approx(1.0, abs=1e-5)


# --- prior vs next posterior --------------------------------------------------------------------------


def test_prior_cross_entropy_is_minimised_by_the_target():
    target = random_maps(3, 7, 7)
    entropy = -(target * target.log()).sum(dim=(-2, -1)).mean()
    at_target = attention_prior_cross_entropy(target, target)
    torch.testing.assert_close(at_target, entropy, rtol=1e-5, atol=1e-6)
    other = random_maps(3, 7, 7, seed=1)
    assert attention_prior_cross_entropy(other, target) > at_target


def test_prior_cross_entropy_logits_form_and_leading_dims():
    logits = torch.randn(2, 3, 5, 5)
    target = random_maps(2, 3, 5, 5)
    probs = logits.flatten(-2).softmax(-1).view_as(logits)
    torch.testing.assert_close(
        attention_prior_cross_entropy(logits, target, prior_is_logits=True),
        attention_prior_cross_entropy(probs, target),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match=r"prior \(2, 3, 5, 5\) and target \(2, 3, 4, 4\)"):
        attention_prior_cross_entropy(logits, torch.rand(2, 3, 4, 4))


def test_per_item_reductions_average_to_the_seeds_scalars_and_bad_reductions_raise():
    torch.manual_seed(0)
    att = torch.softmax(torch.randn(3, 4, 25), -1).view(3, 4, 5, 5)
    moves = torch.randn(3, 3, 2)
    per_move = attention_dynamics_loss(att, moves, reduction="none")
    assert per_move.shape == (3, 3)
    torch.testing.assert_close(per_move.mean(), attention_dynamics_loss(att, moves))
    # each move's loss is its own: changing one prediction changes one entry
    other = moves.clone()
    other[1, 2] += 1.0
    changed = attention_dynamics_loss(att, other, reduction="none") != per_move
    assert changed.sum() == 1 and changed[1, 2]
    logits, target = torch.randn(3, 4, 5, 5), att
    per_map = attention_prior_cross_entropy(logits, target, prior_is_logits=True, reduction="none")
    assert per_map.shape == (3, 4)
    torch.testing.assert_close(per_map.mean(), attention_prior_cross_entropy(logits, target, prior_is_logits=True))
    for fn, args in ((attention_dynamics_loss, (att, moves)), (attention_prior_cross_entropy, (logits, target))):
        with pytest.raises(ValueError, match="reduction must be 'mean' or 'none'"):
            fn(*args, reduction="sum")
