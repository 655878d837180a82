"""Motion grouping: a per-slot training signal from what moves together.

The attention target (``objectives.motion_saliency``) trains the fused map, not the slots: one
slot can carry the whole map, holding the Breakout ball and the paddle together. Motion grouping
asks the slots themselves to split the frame the way motion does (the common-fate cue of
"Guess What Moves" and motion-grouping object discovery):

- the cells where something moves now (``objectives.current_motion_saliency``) are grouped into
  connected components after a small dilation, so the pieces of one object stay together;
- the slot of each moving cell should hold that cell's component and nothing else: the share of
  its mass on the component (its purity, :func:`slot_grouping_loss`) is pushed to 1. Another
  moving thing, or the static scene, in the same slot lowers it, and two moving things are pushed
  apart directly. The static scene is otherwise free: the background may take any number of slots.

The loss is invariant to the slots' order and needs no matching. The grouping is a training target
only: the posterior still sees the frame, ``h`` and ``c``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["motion_components", "slot_grouping_loss"]


def motion_components(moving: Tensor, dilation: int = 2) -> Tensor:
    """Label the connected components of a mask of moving cells (8-connectivity after dilation).

    Labels are propagated by repeated 3x3 max-pooling inside the dilated mask, all maps at once.

    Args:
        moving: ``[N, R, R]`` bool, the cells where something moves.
        dilation: cells by which the mask grows before labelling (pieces of one object that lie up
            to ``2 * dilation`` cells apart join one component); 0 keeps the mask as it is.
    Returns:
        ``[N, R, R]`` int64: 0 outside the dilated mask, otherwise a component label ``> 0`` that is
        equal for two cells exactly when they are connected.
    """
    if moving.dim() != 3:
        raise ValueError(f"motion_components: expected moving [N, R, R], got {tuple(moving.shape)}")
    if dilation < 0:
        raise ValueError(f"motion_components: dilation must be >= 0, got {dilation}")
    n, r, _ = moving.shape
    mask = moving.float()[:, None]
    if dilation > 0:
        mask = F.max_pool2d(mask, 2 * dilation + 1, stride=1, padding=dilation)
    # float labels: max_pool2d has no integer kernel; R*R <= 2^24 stays exact in fp32
    labels = torch.arange(1, r * r + 1, device=moving.device, dtype=torch.float32).view(1, 1, r, r) * mask
    for _ in range(r * r):  # a path in an R x R grid is at most R*R cells long; most maps stop in a few steps
        grown = F.max_pool2d(labels, 3, stride=1, padding=1) * mask
        if torch.equal(grown, labels):
            break
        labels = grown
    return labels[:, 0].long()


def slot_grouping_loss(
    slot_maps: Tensor, motion: Tensor, moving_cells: int = 16, threshold: float = 0.1, dilation: int = 2
) -> tuple[Tensor, Tensor]:
    """The motion-grouping loss of each map (module docstring): the purity of the slots of moving cells.

    For a moving cell ``i`` of component ``G``, ``purity_i = sum_k r_k(i) m_k(G) / sum_k r_k(i) m_k``,
    with ``m_k(G)`` slot ``k``'s mass on ``G`` and ``m_k`` its mass on the whole map: the share of the
    mass of ``i``'s slot that lies on ``i``'s own object. It is 1 when that slot holds the object and
    nothing else, so the slot's centre of mass is the object's. The loss is ``-log purity``, averaged
    over the cells of each component and then over the components, so a small ball counts as much
    as a wide paddle. Two moving cells of different components add ``-log(1 - s_ij)``, with
    ``s_ij = sum_k r_k(i) r_k(j)`` the chance that they share a slot, averaged over the pairs of
    components.

    Args:
        slot_maps: ``[N, K, R, R]`` slot responsibilities (they sum to 1 over ``K``).
        motion: ``[N, R, R]`` non-negative, where things move now (any scale per map).
        moving_cells: the strongest-moving cells scored per map (those above ``threshold`` of the
            map's maximum count as moving).
        threshold: fraction of each map's maximum above which a cell moves.
        dilation: see :func:`motion_components`; a component's cells are those of its dilated mask.
    Returns:
        ``(loss [N], valid [N])``: the loss of each map, and whether it had a moving cell.
    """
    if slot_maps.dim() != 4 or motion.shape != (slot_maps.shape[0], *slot_maps.shape[-2:]):
        raise ValueError(
            f"slot_grouping_loss: expected slot_maps [N, K, R, R] and motion [N, R, R], "
            f"got {tuple(slot_maps.shape)} and {tuple(motion.shape)}"
        )
    n = slot_maps.shape[0]
    cells = slot_maps.shape[-1] * slot_maps.shape[-2]
    peak = motion.flatten(1).amax(-1).view(n, 1, 1)
    moving = (motion > threshold * peak) & (peak > 0)
    labels = motion_components(moving, dilation).flatten(1)  # [N, R*R]
    _, top = motion.flatten(1).topk(min(moving_cells, cells), -1)  # [N, M]
    scored = moving.flatten(1).gather(1, top)  # [N, M]
    label = labels.gather(1, top)  # [N, M]
    r = slot_maps.float().flatten(2)  # [N, K, R*R]
    own = (labels[:, None, :] == label[:, :, None]).float()  # [N, M, R*R]: the cells of i's component
    on_object = torch.einsum("nkc,nmc->nmk", r, own)  # [N, M, K]: m_k(G_i)
    r_i = r.gather(2, top[:, None].expand(-1, r.shape[1], -1)).transpose(1, 2)  # [N, M, K]
    inside = (r_i * on_object).sum(-1)
    total = (r_i * r.sum(-1)[:, None, :]).sum(-1)
    loss = -(inside.clamp_min(1e-8) / total.clamp_min(1e-8)).clamp_max(1.0).log()  # [N, M]
    # each component weighs 1 in its map: a cell's weight is 1 / (its component's scored cells)
    both = scored[:, :, None] & scored[:, None, :]
    same = (label[:, :, None] == label[:, None, :]) & both
    weight = scored.float() / same.sum(-1).clamp_min(1)
    purity = (loss * weight).sum(-1) / weight.sum(-1).clamp_min(1e-8)
    # two moving things in one slot: purity alone has a local minimum there (an empty slot that
    # would take one of them is spread over the background, so moving there lowers purity first)
    apart = (both & ~same).float() * weight[:, :, None] * weight[:, None, :]
    shared = torch.einsum("nmk,nlk->nml", r_i, r_i).clamp(0.0, 1 - 1e-6)  # [N, M, M]: same slot
    repel = (-(1 - shared).log() * apart).sum((1, 2)) / apart.sum((1, 2)).clamp_min(1e-8)
    return purity + repel, scored.any(-1)
