"""A run's environments as its configuration asks for them, and the episodes they play.

:func:`env_options` maps ``cfg.env`` to the keyword options of ``envs.make`` / ``envs.make_vector``;
:class:`EpisodeTracker` follows the returns and lengths of a vector env's episodes under
gymnasium's NEXT_STEP autoreset (the step after an ending resets that sub-env).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aime.config import Config


def env_options(cfg: Config, evaluation: bool = False) -> dict[str, Any]:
    """Keyword options of ``envs.make`` from ``cfg.env``, and the frame size the model sees
    (``cfg.model.image_size``); Catch takes none of the Atari options."""
    if cfg.env.name.lower() == "catch":
        return {"size": cfg.model.image_size}
    e = cfg.env
    return {
        "size": cfg.model.image_size,
        "frame_skip": e.frame_skip,
        "noop_max": e.noop_max,
        "repeat_action_probability": e.repeat_action_probability,
        "full_action_space": e.full_action_space,
        "max_episode_frames": e.max_episode_frames,
        "terminal_on_life_loss": e.terminal_on_life_loss and not evaluation,
    }


class EpisodeTracker:
    """Returns and lengths of the episodes of a vector env under NEXT_STEP autoreset."""

    def __init__(self, num_envs: int) -> None:
        self.ret = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)
        self.done = np.zeros(num_envs, dtype=bool)

    def step(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> list[tuple[int, float, int]]:
        """Account one step; returns ``(env, return, length)`` of the episodes that just ended."""
        restarted = self.done  # these sub-envs were reset by this step (reward 0)
        self.ret[restarted] = 0.0
        self.length[restarted] = 0
        self.ret += reward
        self.length += ~restarted
        self.done = np.logical_or(terminated, truncated)
        return [(int(i), float(self.ret[i]), int(self.length[i])) for i in np.flatnonzero(self.done)]
