"""The images a run shows in TensorBoard, built from a replayed batch.

Tags (every one present in each image summary; attention tags only with the schema on). Each
value is a float tensor ``[N, 3, H, W]`` in [0, 1]; grids are one image (``N = 1``) with a
label over every tile; frames are enlarged (nearest) so that the text stays legible.

=============================  ===============================================================
``attention/posterior``        per sequence, the posterior's map A_t over frame t (252 px), on
                               the absolute scale (log of the ratio over uniform; untinted at
                               or below uniform, full colour at 50x), with ``peak x..`` (max
                               over uniform), ``H/Hu ..`` (entropy over uniform) and a colour
                               bar from 1x (bottom) to 50x (top)
``attention/prior``            the same for the prior's prediction of A_{t+1} over frame t+1
``attention/slots``            one grid: a row per sequence, a column per slot, each tile the
                               slot's map over the frame in its colour (relative to the slot's
                               maximum), labelled ``slot k`` / its share of the slots' total
                               mass and its peak over uniform
``attention/segmentation``     per sequence, frame + dominant-slot segmentation, edges and slot
                               centres (252 px)
``reconstruction``             one grid: a row per sequence, ``real`` | ``recon`` at step t
``imagination/open_loop``      one grid: per sequence a row ``real h1..`` over a row
                               ``imagined h1..`` (hk = k steps after the last observed frame),
                               at most 8 columns, wrapping into further row pairs
=============================  ===============================================================
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from aime.attention.overlays import attention_heatmap_overlay, tile_grid, visualize_multi_object_attention
from aime.attention.posterior import dominant_slot
from aime.world_model.vrnn import VRNN

IMAGE_TAGS = ("reconstruction", "imagination/open_loop")
ATTENTION_TAGS = ("attention/posterior", "attention/prior", "attention/slots", "attention/segmentation")

OVERLAY_UPSCALE = 3  # attention overlays and segmentation: 84 -> 252 px
GRID_UPSCALE = 2  # slot and reconstruction tiles: 84 -> 168 px
MAX_COLUMNS = 8  # open-loop frames per row


def _columns(length: int, limit: int = MAX_COLUMNS) -> int:
    """Columns for ``length`` tiles at most ``limit`` to a row, the rows as even as possible."""
    rows = math.ceil(length / limit)
    return math.ceil(length / rows)


def open_loop_grid(real: Tensor, imagined: Tensor, max_columns: int = MAX_COLUMNS) -> Tensor:
    """``real``, ``imagined`` ``[B, H, 3, S, S]`` -> one labelled grid ``[3, H', W']``.

    Per sequence, row pairs ``real h1..hc`` over ``imagined h1..hc`` (``c <= max_columns``),
    wrapping after ``c`` steps; the last pair's missing cells are left empty.
    """
    b, horizon = imagined.shape[:2]
    cols = _columns(horizon, max_columns)
    blank = torch.full_like(imagined[0, 0], float("nan"))
    tiles, labels = [], []
    for i in range(b):
        for start in range(0, horizon, cols):
            steps = range(start, min(start + cols, horizon))
            for source, name in ((real, "real"), (imagined, "imagined")):
                row = [source[i, s].float() for s in steps] + [blank] * (cols - len(steps))
                tiles += row
                labels += [f"{name} h{s + 1}" for s in steps] + [None] * (cols - len(steps))
    return tile_grid(torch.stack(tiles), cols, labels)


@torch.no_grad()
def image_summaries(model: VRNN, batch: dict[str, Tensor], rows: int = 2, context: int = 5) -> dict[str, Tensor]:
    """``{tag: float [N, 3, H, W] in [0, 1]}`` for the first ``rows`` sequences of ``batch``.

    ``batch`` holds tensors ``obs uint8 [B, T, 3, H, W]``, ``action``, ``is_first`` ``[B, T]``.
    """
    was_training = model.training
    model.eval()
    try:
        obs = batch["obs"][:rows]
        action, is_first = batch["action"][:rows], batch["is_first"][:rows].bool()
        b, t = obs.shape[:2]
        out = model.observe(obs, action, is_first)
        real = obs.float() / 255.0  # [B, T, 3, H, W]
        recon = model.decode(out["feat"], out.get("attention"), out.get("attention_detail")).clamp(0, 1)
        step = min(t - 1, max(0, t // 2))
        pairs = torch.stack([real[:, step], recon[:, step]], 1).flatten(0, 1)  # [B*2, 3, H, W]
        images = {"reconstruction": tile_grid(pairs, 2, ["real", "recon"] * b, upscale=GRID_UPSCALE)[None]}

        context = max(1, min(context, t - 1))
        predicted = model.open_loop(obs, action, is_first, context)["frames"].clamp(0, 1)
        horizon = predicted.shape[1]
        images["imagination/open_loop"] = open_loop_grid(real[:, context : context + horizon], predicted)[None]

        if model.attention_on:
            frames = obs[:, step]
            images["attention/posterior"] = attention_heatmap_overlay(
                frames, out["attention"][:, step], upscale=OVERLAY_UPSCALE
            )
            nxt = min(step + 1, t - 1)
            prior = model.perception.predict(out["attention"][:, step], out["deter"][:, step], out["stoch"][:, step])
            images["attention/prior"] = attention_heatmap_overlay(obs[:, nxt], prior, upscale=OVERLAY_UPSCALE)

            maps, centers = out["slot_maps"][:, step].float(), out["slot_centers"][:, step]
            groups = dominant_slot(maps)
            k = maps.shape[1]
            big = F.interpolate(real[:, step], scale_factor=GRID_UPSCALE, mode="nearest")
            slots = visualize_multi_object_attention(big, maps, centers, groups, return_mode="slot_overlays")
            mass = maps.sum(dim=(-2, -1)).clamp_min(1e-12)  # [B, K]
            share = (mass / mass.sum(-1, keepdim=True)).tolist()
            peak = (maps.amax(dim=(-2, -1)) * maps.shape[-2] * maps.shape[-1] / mass).tolist()
            labels = [f"slot {j}\n{share[i][j]:.0%} x{peak[i][j]:.1f}" for i in range(b) for j in range(k)]
            images["attention/slots"] = tile_grid(slots["slot_overlays"], k, labels)[None]
            big = F.interpolate(real[:, step], scale_factor=OVERLAY_UPSCALE, mode="nearest")
            images["attention/segmentation"] = visualize_multi_object_attention(
                big, maps, centers, groups, return_mode="combined_with_contours"
            )["combined_with_contours"]
        return images
    finally:
        model.train(was_training)
