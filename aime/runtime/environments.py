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
    """Returns and lengths of the games of a vector env under NEXT_STEP autoreset.

    ``done`` marks the sub-envs whose episode, for learning, ended at the last step (the next step
    starts a new one: ``is_first``). With ``terminal_on_life_loss`` a lost life ends such an episode
    but not the game, which goes on: :meth:`step` reports a game when it really ends, with the
    return of all its lives, as a score is counted (the ``life_loss`` flags of ``envs``' infos).
    """

    def __init__(self, num_envs: int) -> None:
        self.ret = np.zeros(num_envs)
        self.length = np.zeros(num_envs, dtype=np.int64)
        self.done = np.zeros(num_envs, dtype=bool)
        self.goes_on = np.zeros(num_envs, dtype=bool)  # ended for learning, the game continued

    def step(
        self,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        life_loss: np.ndarray | None = None,
    ) -> list[tuple[int, float, int]]:
        """Account one step; returns ``(env, return, length)`` of the games that just ended.
        ``life_loss`` (bool ``[N]``): which ``terminated`` flags are a lost life in a game that goes on."""
        restarted = self.done & ~self.goes_on  # these sub-envs were reset by this step (reward 0)
        self.ret[restarted] = 0.0
        self.length[restarted] = 0
        self.ret += reward
        self.length += ~self.done  # the step after an ending starts the next episode (or life)
        self.done = np.logical_or(terminated, truncated)
        lives = np.zeros_like(self.done) if life_loss is None else np.asarray(life_loss, dtype=bool)
        self.goes_on = self.done & lives & ~truncated
        return [(int(i), float(self.ret[i]), int(self.length[i])) for i in np.flatnonzero(self.done & ~self.goes_on)]
