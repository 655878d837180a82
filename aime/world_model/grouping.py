"""Motion grouping: a per-slot training signal from what moves together.

The attention target (``objectives.motion_saliency``) trains the fused map, not the slots: one
slot can carry the whole map, holding the Breakout ball and the paddle together. Motion grouping
asks the slots themselves to split the frame the way motion does (the common-fate cue of
"Guess What Moves" and motion-grouping object discovery):

- the cells where something moves now (``objectives.current_motion_saliency``) are grouped into
  connected components after a small dilation, so the pieces of one object stay together;
- for pairs of sampled cells, ``s_ij = sum_k r_k(i) r_k(j)`` is the chance that both fall in one
  slot (``r`` the slot responsibilities, which sum to 1 over the slots at each cell);
- two moving cells of one component should share a slot: ``-log s_ij``; a moving cell and a cell of
  another component or of the static scene should not: ``-log(1 - s_ij)``. Pairs of static cells
  are free, so the background may take any number of slots.

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


def slot_grouping_loss(slot_maps: Tensor, motion: Tensor, moving_cells: int = 12, static_cells: int = 12,
                       threshold: float = 0.1, dilation: int = 2) -> tuple[Tensor, Tensor]:
    """The motion-grouping loss of each map (module docstring).

    Args:
        slot_maps: ``[N, K, R, R]`` slot responsibilities (they sum to 1 over ``K``).
        motion: ``[N, R, R]`` non-negative, where things move now (any scale per map).
        moving_cells: the strongest-moving cells sampled per map (those above ``threshold`` of the
            map's maximum count as moving).
        static_cells: cells sampled at random outside the dilated moving mask.
        threshold: fraction of each map's maximum above which a cell moves.
        dilation: see :func:`motion_components`.
    Returns:
        ``(loss [N], valid [N])``: the mean pair loss of each map, and whether the map had a pair
        to score (a moving cell and any other sampled cell).
    """
    if slot_maps.dim() != 4 or motion.shape != (slot_maps.shape[0], *slot_maps.shape[-2:]):
        raise ValueError(
            f"slot_grouping_loss: expected slot_maps [N, K, R, R] and motion [N, R, R], "
            f"got {tuple(slot_maps.shape)} and {tuple(motion.shape)}"
        )
    n, _, r, _ = slot_maps.shape
    cells = r * r
    moving_cells, static_cells = min(moving_cells, cells), min(static_cells, cells)
    peak = motion.flatten(1).amax(-1).view(n, 1, 1)
    moving = (motion > threshold * peak) & (peak > 0)
    labels = motion_components(moving, dilation).flatten(1)  # [N, R*R]
    _, top = motion.flatten(1).topk(moving_cells, -1)  # [N, M]
    is_moving = moving.flatten(1).gather(1, top)
    # random static cells: random scores, the dilated mask pushed below every static cell
    score = torch.rand(n, cells, device=motion.device) - 2.0 * (labels > 0).float()
    _, rest = score.topk(static_cells, -1)  # [N, S]
    is_static = labels.gather(1, rest) == 0
    picked = torch.cat([top, rest], 1)  # [N, M+S]
    moving_pick = torch.cat([is_moving, torch.zeros_like(is_static)], 1)
    kept = torch.cat([is_moving, is_static], 1)
    label = torch.where(moving_pick, labels.gather(1, picked), torch.zeros_like(picked))  # 0: static
    r_picked = slot_maps.float().flatten(2).gather(2, picked[:, None].expand(-1, slot_maps.shape[1], -1))
    same_slot = torch.einsum("nki,nkj->nij", r_picked, r_picked).clamp(1e-6, 1 - 1e-6)  # [N, P, P]
    pair = kept[:, :, None] & kept[:, None, :] & (moving_pick[:, :, None] | moving_pick[:, None, :])
    pair &= ~torch.eye(picked.shape[1], dtype=torch.bool, device=picked.device)
    together = label[:, :, None] == label[:, None, :]  # both moving in one component (static have 0)
    loss = torch.where(together, -same_slot.log(), -(1 - same_slot).log())
    count = pair.sum((1, 2))
    per_map = (loss * pair).sum((1, 2)) / count.clamp_min(1)
    return per_map, count > 0
