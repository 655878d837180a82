"""The attention schema's losses inside the world model: over a whole sequence, batched.

What the posterior is taught (its target, the slots' diversity, and the optional compactness and
motion grouping) and what the prior and the attention-map head are taught (predict the next
posterior map, its movement, and the map from the state alone). Steps whose frames span two
episodes are masked. The formulas of the seed's losses are :mod:`aime.attention.losses`; the
targets are :mod:`aime.world_model.objectives` and :mod:`aime.world_model.grouping`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from aime.attention.losses import attention_dynamics_loss, attention_prior_cross_entropy, slot_diversity_loss
from aime.config import LossScales
from aime.world_model import grouping, objectives


def random_subset(n: int, fraction: float, device: torch.device) -> Tensor:
    """Indices of a random ``fraction`` of ``n`` items (at least one; all of them when it is 1)."""
    k = max(1, math.ceil(fraction * n))
    if k >= n:
        return torch.arange(n, device=device)
    return torch.randperm(n, device=device)[:k]


def schema_losses(
    out: dict,
    is_first: Tensor,
    obs: Tensor,
    *,
    prior_net: nn.Module,
    attention_head: nn.Module,
    scales: LossScales,
    target: str,
    resolution: int,
    fraction: float,
) -> dict[str, Tensor]:
    """The schema's loss terms (unweighted) of one observed sequence.

    Args:
        out: :meth:`aime.world_model.vrnn.VRNN.observe`'s output: ``attention [B, T, R, R]``,
            ``slot_maps [B, T, K, R, R]``, ``deter``, ``stoch``, ``feat [B, T, ...]`` (and
            ``attention_detail [B, T, P*P, R, R]``).
        is_first: ``[B, T]`` bool; obs: ``uint8 [B, T, 3, S, S]``.
        prior_net: the attention prior (``schema.prior_net``); attention_head: the map head.
        scales: which optional terms to compute (those whose weight is above 0).
        target: the posterior's target, ``motion``, ``current_motion`` or ``none``.
        resolution: ``R``; fraction: the share of steps the prior's and the head's losses use.
    Returns:
        ``{name: scalar}``: ``slot_diversity`` always; with ``T >= 2`` also ``attention_prior``,
        ``attention_dynamics``, ``attention_map`` and, as configured, ``attention_target``,
        ``slot_compactness``, ``slot_grouping``, ``attention_detail`` (with ``T >= 3``: each
        moving cell's sub-cell distribution ``out["attention_detail"]`` against where the current
        motion lies inside it, weighted by the cell's share of the motion).
    """
    attention = out["attention"]  # [B, T, R, R]
    # the slot maps are responsibilities in [0, 1]: the seed's softmax over positions would flatten
    # them to near-uniform (loss ~0.997 whatever the maps); normalising by the sum measures overlap
    with torch.autocast(attention.device.type, enabled=False):  # its correlation matmul in fp32, not bf16
        terms = {"slot_diversity": slot_diversity_loss(out["slot_maps"].flatten(0, 1), from_logits=False)}
    if attention.shape[1] < 2:
        return terms
    if scales.slot_compactness > 0:
        terms["slot_compactness"] = objectives.slot_compactness(out["slot_maps"], attention).mean()
    # the current-motion change, computed once for the terms that read it (steps t = 2 .. T-1)
    detail_on = "attention_detail" in out
    change = current = None
    if attention.shape[1] > 2 and (scales.slot_grouping > 0 or target == "current_motion" or detail_on):
        change = objectives.current_motion_change(obs)  # [B, T-2, S, S]
        steady = ~is_first[:, 2:] & ~is_first[:, 1:-1]  # t and t-1 inside one episode
    if change is not None and (scales.slot_grouping > 0 or target == "current_motion"):
        current, moved_now = objectives.current_motion_saliency(obs, resolution, change)  # [B, T-2, R, R]
    if current is not None and scales.slot_grouping > 0:
        loss, scored = grouping.slot_grouping_loss(out["slot_maps"][:, 2:].flatten(0, 1), current.flatten(0, 1))
        terms["slot_grouping"] = objectives.masked_mean(loss, (moved_now & steady).flatten() & scored)
    if target == "motion":
        saliency, moved = objectives.motion_saliency(obs, resolution)  # [B, T-1, R, R], [B, T-1]
        ce = -(saliency * attention[:, 1:].clamp_min(1e-12).log()).sum((-2, -1))
        terms["attention_target"] = objectives.masked_mean(ce, moved & ~is_first[:, 1:])
    elif current is not None and target == "current_motion":
        ce = -(current * attention[:, 2:].clamp_min(1e-12).log()).sum((-2, -1))
        terms["attention_target"] = objectives.masked_mean(ce, moved_now & steady)
    if change is not None and detail_on:
        detail, weight, moved = objectives.current_motion_detail(obs, resolution, change)  # [B, T-2, P*P, R, R]
        ce = -(weight * (detail * out["attention_detail"][:, 2:]).sum(2)).sum((-2, -1))  # [B, T-2]
        terms["attention_detail"] = objectives.masked_mean(ce, moved & steady)
    # the prior's and the map head's losses are means over (b, t): an unbiased estimate from a
    # random subset of the steps costs a fraction of the prior's 441-position passes
    valid = (~is_first[:, 1:]).flatten()  # [B*(T-1)]: a step t -> t+1 inside one episode
    pick = random_subset(valid.numel(), fraction, attention.device)
    prev = attention[:, :-1].flatten(0, 1)[pick]  # [K, R, R]
    nxt = attention[:, 1:].flatten(0, 1)[pick]
    deter, stoch = out["deter"][:, :-1].flatten(0, 1)[pick], out["stoch"][:, :-1].flatten(0, 1)[pick]
    _, info = prior_net(prev, deter, stoch, movement="mean")  # the loss reads each field's mean alone
    ce = attention_prior_cross_entropy(  # the prior's prediction of A_{t+1}
        info["attention_logits"].float(), nxt.detach(), prior_is_logits=True, reduction="none"
    )
    terms["attention_prior"] = objectives.masked_mean(ce, valid[pick])
    moved = torch.stack(info["predicted_movement"], -1)[:, None]  # [K, 1, 2]: one move per pair
    err = attention_dynamics_loss(torch.stack([prev, nxt], 1), moved, reduction="none")[:, 0]
    terms["attention_dynamics"] = objectives.masked_mean(err, valid[pick])
    frames = random_subset(attention.shape[0] * attention.shape[1], fraction, attention.device)
    head = torch.log_softmax(attention_head(out["feat"].flatten(0, 1)[frames]).flatten(1), -1)
    terms["attention_map"] = -(attention.flatten(0, 1)[frames].detach().flatten(1) * head).sum(-1).mean()
    return terms
