"""The images a run shows in TensorBoard, built from a replayed batch.

Tags (every one present in each image summary; attention tags only with the schema on):

=============================  ===============================================================
``attention/posterior``        the posterior's map A_t over the frame
``attention/prior``            the prior's prediction of A_{t+1} over frame t+1
``attention/slots``            one overlay per slot, in the slot's colour
``attention/segmentation``     frame + dominant-slot segmentation, edges and slot centres
``reconstruction``             real frame | reconstruction, side by side
``imagination/open_loop``      top row real frames, bottom row frames imagined from actions
=============================  ===============================================================
"""

from __future__ import annotations

import torch
from torch import Tensor

from aime.attention.overlays import attention_heatmap_overlay, visualize_multi_object_attention
from aime.attention.posterior import dominant_slot
from aime.world_model.vrnn import VRNN

IMAGE_TAGS = ("reconstruction", "imagination/open_loop")
ATTENTION_TAGS = ("attention/posterior", "attention/prior", "attention/slots", "attention/segmentation")


def _strip(frames: Tensor) -> Tensor:
    """``[T, 3, H, W]`` -> one image ``[3, H, T*W]``."""
    return torch.cat(list(frames), dim=-1)


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
        recon = model.decoder(out["feat"].flatten(0, 1)).unflatten(0, (b, t)).clamp(0, 1)
        step = min(t - 1, max(0, t // 2))
        images = {"reconstruction": torch.cat([real[:, step], recon[:, step]], dim=-1)}

        context = max(1, min(context, t - 1))
        predicted = model.open_loop(obs, action, is_first, context)["frames"].clamp(0, 1)
        horizon = predicted.shape[1]
        images["imagination/open_loop"] = torch.stack(
            [torch.cat([_strip(real[i, context:context + horizon]), _strip(predicted[i])], dim=-2) for i in range(b)]
        )

        if model.attention_on:
            frames = obs[:, step]
            images["attention/posterior"] = attention_heatmap_overlay(frames, out["attention"][:, step])
            nxt = min(step + 1, t - 1)
            prior, _ = model.schema.prior_net(out["attention"][:, step], out["deter"][:, step], out["stoch"][:, step])
            images["attention/prior"] = attention_heatmap_overlay(obs[:, nxt], prior)
            vis = visualize_multi_object_attention(
                frames, out["slot_maps"][:, step], out["slot_centers"][:, step], dominant_slot(out["slot_maps"][:, step])
            )
            images["attention/slots"] = vis["slot_overlays"]
            images["attention/segmentation"] = vis["combined_with_contours"]
        return images
    finally:
        model.train(was_training)
