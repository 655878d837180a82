"""Losses of the attention schema (seed 003), as pure functions of tensors.

- ``center_of_mass``: where a map's mass sits, ``[..., H, W] -> [..., 2]`` as ``(x, y)`` in [-1, 1].
- ``attention_dynamics_loss``: predicted attention movement vs the actual centre-of-mass shift.
- ``slot_diversity_loss``: off-diagonal correlation of slot maps.
- ``attention_prior_cross_entropy``: the prior's map against the next posterior map.

Coordinates: ``x`` runs along the width (columns) and ``y`` along the height (rows); the centres of
the first and last pixels sit at -1 and +1 (``torch.linspace(-1, 1, W)``), as with
``align_corners=True`` in ``grid_sample``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = [
    "center_of_mass",
    "attention_dynamics_loss",
    "slot_diversity_loss",
    "attention_prior_cross_entropy",
]


def _axis(size: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel-centre coordinates of one axis in [-1, 1] (a single pixel sits at 0). ``[size]``."""
    if size == 1:
        return torch.zeros(1, device=like.device, dtype=like.dtype)
    return torch.linspace(-1.0, 1.0, size, device=like.device, dtype=like.dtype)


def center_of_mass(maps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Centre of mass of non-negative maps.

    ``com = sum_{i,j} w_ij * (x_j, y_i) / sum_{i,j} w_ij`` with ``w = max(maps, 0)``: negative
    values carry no mass (pass probabilities, not logits), so the result always lies in [-1, 1];
    a map with no mass has its centre at ``(0, 0)``.

    Args:
        maps: ``[..., H, W]`` (e.g. ``[B, H, W]`` or ``[B, T, H, W]``), floating point.

    Returns:
        ``[..., 2]``: ``(x, y)`` per map.
    """
    if maps.dim() < 2:
        raise ValueError(f"center_of_mass: expected maps of shape [..., H, W], got {tuple(maps.shape)}")
    if not maps.is_floating_point():
        raise ValueError(f"center_of_mass: expected a floating-point tensor, got {maps.dtype}")
    weights = maps.clamp_min(0.0)
    total = weights.sum(dim=(-2, -1)).clamp_min(eps)  # [...]
    xs = _axis(maps.shape[-1], maps)  # [W]
    ys = _axis(maps.shape[-2], maps)  # [H]
    x = (weights.sum(dim=-2) * xs).sum(dim=-1) / total  # marginal over rows, then mean column
    y = (weights.sum(dim=-1) * ys).sum(dim=-1) / total
    return torch.stack([x, y], dim=-1)


def slot_diversity_loss(slot_maps: torch.Tensor, from_logits: bool = True) -> torch.Tensor:
    """Seed 003's slot diversity loss: mean squared off-diagonal correlation of the slot maps.

    Each map is turned into a distribution over positions (``softmax`` when ``from_logits``, the
    seed's definition; division by its sum otherwise, for maps that are already non-negative),
    L2-normalised, and the K x K correlation ``p @ p^T`` is compared with the identity:
    ``sum((corr - I)^2) / (B * K * (K - 1))``. It lies in [0, 1]: 0 for disjoint maps, 1 when all
    K maps are identical.

    Args:
        slot_maps: ``[B, K, H, W]`` per-slot maps.
        from_logits: see above.
    Returns:
        a scalar tensor (0 when K == 1: there is no pair to decorrelate).
    """
    if slot_maps.dim() != 4:
        raise ValueError(f"slot_diversity_loss: expected slot_maps [B, K, H, W], got {tuple(slot_maps.shape)}")
    b, k = slot_maps.shape[:2]
    flat = rearrange(slot_maps, "b k h w -> b k (h w)")
    if from_logits:
        p = flat.softmax(dim=-1)
    else:
        p = flat / flat.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    p = F.normalize(p, p=2, dim=-1)
    corr = torch.einsum("bkn,bjn->bkj", p, p)  # [B, K, K]
    eye = torch.eye(k, device=corr.device, dtype=corr.dtype)
    return ((corr - eye) ** 2).sum() / max(b * k * (k - 1), 1)


def _stack_attention(attention_sequence: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """List of ``[B, H, W]`` or a ``[B, T, H, W]`` tensor -> ``[B, T, H, W]``."""
    if isinstance(attention_sequence, torch.Tensor):
        attention = attention_sequence
    else:
        items = list(attention_sequence)
        shapes = {tuple(a.shape) for a in items}
        if not items or len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(
                "attention_dynamics_loss: expected attention_sequence as a non-empty list of "
                f"[B, H, W] tensors of one shape, got shapes {[tuple(a.shape) for a in items]}"
            )
        attention = torch.stack(items, dim=1)
    if attention.dim() != 4:
        raise ValueError(
            f"attention_dynamics_loss: expected attention_sequence of shape [B, T, H, W], got {tuple(attention.shape)}"
        )
    return attention


def _stack_movements(predicted_movements) -> torch.Tensor:
    """List of ``(dx, dy)`` / ``[B, 2]`` / ``[B, 2, H, W]``, or a stacked tensor -> ``[B, T-1, 2, ...]``."""
    if isinstance(predicted_movements, torch.Tensor):
        return predicted_movements
    steps = []
    for item in predicted_movements:
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError(
                    "attention_dynamics_loss: expected each predicted movement as (dx, dy), "
                    f"got a sequence of length {len(item)}"
                )
            item = torch.stack(list(item), dim=1)  # [B, 2] or [B, 2, H, W]
        steps.append(item)
    shapes = {tuple(s.shape) for s in steps}
    if not steps or len(shapes) != 1:
        raise ValueError(
            "attention_dynamics_loss: expected predicted_movements as a non-empty list of one "
            f"shape ((dx, dy) each [B, H, W], [B, 2] or [B, 2, H, W]), got shapes "
            f"{[tuple(s.shape) for s in steps]}"
        )
    return torch.stack(steps, dim=1)


def attention_dynamics_loss(
    attention_sequence: Sequence[torch.Tensor] | torch.Tensor,
    predicted_movements: Sequence | torch.Tensor,
    *,
    detach_target: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Smooth-L1 between predicted and actual movement of the attention's centre of mass (seed 003).

    With ``c_t = center_of_mass(A_t)`` and ``d_t = c_{t+1} - c_t`` (``t = 0 .. T-2``), and the
    prediction ``p_t`` (a spatial field is averaged over ``H, W`` first):

        loss = SmoothL1(p_t.x, d_t.x) + SmoothL1(p_t.y, d_t.y)      (each a mean over B and t)

    Args:
        attention_sequence: ``T`` maps as a list of ``[B, H, W]`` or a tensor ``[B, T, H, W]``.
        predicted_movements: ``T-1`` predictions, ``predicted_movements[t]`` for the move from
            ``t`` to ``t+1``: a list of ``(dx, dy)`` pairs (each ``[B, H, W]`` or ``[B]``), of
            ``[B, 2]`` or of ``[B, 2, H, W]``; or a tensor ``[B, T-1, 2]`` / ``[B, T-1, 2, H, W]``.
        detach_target: stop the gradient through the actual movement (the seed does not), so the
            loss trains only the predictor.
        reduction: ``mean`` (the seed's scalar) or ``none``: ``[B, T-1]``, the x and y terms summed
            per move (for a masked mean over moves that stay inside an episode).

    Returns:
        A scalar, or ``[B, T-1]``.
    """
    _check_reduction("attention_dynamics_loss", reduction)
    attention = _stack_attention(attention_sequence)
    movements = _stack_movements(predicted_movements)
    b, t = attention.shape[:2]
    if t < 2:
        raise ValueError(f"attention_dynamics_loss: expected at least 2 attention maps, got T={t}")
    if movements.dim() not in (3, 5) or tuple(movements.shape[:3]) != (b, t - 1, 2):
        raise ValueError(
            "attention_dynamics_loss: expected predicted_movements of shape "
            f"[{b}, {t - 1}, 2] or [{b}, {t - 1}, 2, H, W], got {tuple(movements.shape)}"
        )
    if movements.dim() == 5:
        movements = movements.mean(dim=(-2, -1))  # [B, T-1, 2]
    centers = center_of_mass(attention)  # [B, T, 2]
    actual = centers[:, 1:] - centers[:, :-1]  # [B, T-1, 2]
    if detach_target:
        actual = actual.detach()
    movements = movements.to(actual.dtype)
    per_move = F.smooth_l1_loss(movements, actual, reduction="none").sum(-1)  # [B, T-1]
    # the mean over moves of the x and y sums is the seed's mean(x term) + mean(y term)
    return per_move if reduction == "none" else per_move.mean()


def attention_prior_cross_entropy(
    prior: torch.Tensor,
    target: torch.Tensor,
    *,
    prior_is_logits: bool = False,
    eps: float = 1e-8,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of the prior's predicted map against the (next) posterior map.

        CE = - sum_{i,j} q_ij * log p_ij          (mean over all leading dimensions)

    where ``q`` is the target map (e.g. the posterior at ``t+1``; pass ``target.detach()`` to
    train only the prior) and ``p`` the prior's map at ``t+1``. Both should sum to 1 over ``H, W``;
    with ``prior_is_logits`` the prior is given as logits and normalised with a log-softmax over
    ``H*W`` (more stable than ``log(p + eps)``).

    Args:
        prior: ``[..., H, W]`` probabilities (or logits).
        target: ``[..., H, W]`` probabilities, same shape.
        reduction: ``mean`` (a scalar) or ``none`` (``[...]``, one cross-entropy per map).

    Returns:
        A scalar, or ``[...]``.
    """
    _check_reduction("attention_prior_cross_entropy", reduction)
    if prior.dim() < 2 or tuple(prior.shape) != tuple(target.shape):
        raise ValueError(
            "attention_prior_cross_entropy: expected prior and target of one shape [..., H, W], "
            f"got prior {tuple(prior.shape)} and target {tuple(target.shape)}"
        )
    flat_prior = prior.flatten(-2)  # [..., H*W]
    if prior_is_logits:
        log_prior = torch.log_softmax(flat_prior, dim=-1)
    else:
        log_prior = torch.log(flat_prior.clamp_min(0.0) + eps)
    per_map = -(target.flatten(-2).to(log_prior.dtype) * log_prior).sum(dim=-1)
    return per_map if reduction == "none" else per_map.mean()


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in ("mean", "none"):
        raise ValueError(f"{name}: reduction must be 'mean' or 'none', got {reduction!r}")
