"""The training loop's ``objects/...`` scalars: where the world model's attention falls on the objects of
games OCAtari covers, measured on held-out rows with object boxes (:mod:`aime.eval.objects`).

The rows are recorded once, when first needed, with their own seed, so every reading of a run is
on the same rows; a game without boxes, or a machine without the optional ``ocatari`` package,
turns the metrics off (the latter says so once).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import envs
from aime.eval.objects import ObjectData, evaluate_objects
from envs.objects import OBJECT_CLASSES, record_objects

OBJECT_ROWS, OBJECT_WINDOWS = 600, 24  # held-out rows with object boxes, windows of 10 evaluated
OBJECT_TAGS = {
    "lift": "attention_lift",
    "lift_state": "state_map_lift",
    "lift_best_slot": "best_slot_lift",
    "centroid_error_px": "centroid_error_px",
    "lift_motion": "motion_map_lift",
    "lift_prior_h1": "prior_lift_h1",
    "window_ratio_recon": "window_ratio_recon",
    "window_ratio_state": "window_ratio_state",
    "window_ratio_h1": "window_ratio_h1",
    "window_ratio_h5": "window_ratio_h5",
}


class ObjectMetrics:
    """The ``objects/...`` scalars of one run.

    Args:
        env_name: the run's game (``cfg.env.name``).
        seed: the seed of the rows with object boxes (the run's own seed plus an offset, so they
            are not the rows it trains on).
    """

    def __init__(self, env_name: str, seed: int) -> None:
        self.env_name, self.seed = env_name, seed
        self.objects: ObjectData | bool | None = None  # rows with object boxes; False: metrics off

    def data(self) -> ObjectData | None:
        """The rows with object boxes, recorded on the first call; None where the metrics are off."""
        if self.objects is None:
            _, game = envs.resolve(self.env_name)
            self.objects = False
            if game in OBJECT_CLASSES:
                try:
                    self.objects = ObjectData.from_record(record_objects(game, OBJECT_ROWS, seed=self.seed))
                except ModuleNotFoundError as error:  # ocatari is an optional extra
                    tqdm.write(f"objects/ metrics off: {error}")
        return None if self.objects is False else self.objects

    def scalars(self, world_model: nn.Module, device: torch.device) -> dict[str, float] | None:
        """``objects/{tag}_{object}`` (tags in ``OBJECT_TAGS``); None where the metrics are off.

        Per object: the posterior map's lift (``attention_lift``), the attention-map head's from
        ``[h, z]`` alone (``state_map_lift``), the best slot's, the centroid error in pixels, the motion
        map's and the one-step prior's lift; the reconstruction's window ratio with the posterior map
        (``window_ratio_recon``) and with an even map (``window_ratio_state``: what the state alone
        draws), and the open-loop ratios at 1 and 5 steps; for the whole frame, the smallest slot's
        share of the cells (``objects/smallest_slot_share``: near 0 while a slot holds a small object,
        tenths once the slots have split the screen into regions). Figures a model lacks (no map
        without the schema) are left out.

        ``device``: the world model's; its random stream (and the CPU's) is left as it was, so that
        measuring does not change the training run."""
        objects = self.data()
        if objects is None:
            return None
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            result = evaluate_objects(world_model, objects, windows=OBJECT_WINDOWS)
        values = {}
        if "smallest_slot_share" in result["frames"]:
            values["objects/smallest_slot_share"] = result["frames"]["smallest_slot_share"]
        for name, row in result["classes"].items():
            for key, tag in OBJECT_TAGS.items():
                if key in row and np.isfinite(row[key]):
                    values[f"objects/{tag}_{name}"] = row[key]
        return values
