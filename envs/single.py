"""One environment as a vector environment with one sub-env: what ``AtariEnv`` and ``CatchEnv`` share.

The vector envs are the implementation (the native ALE vector env, the batched Catch core); a single env
is sub-env 0 of one, with gymnasium's ``Env`` API: unbatched observations, python scalars, and an explicit
``reset()`` after an episode ends instead of the vector env's autoreset.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import VectorEnv

from envs._checks import check_action, check_seed

__all__ = ["SingleEnv"]


class SingleEnv(gymnasium.Env):
    """Sub-env 0 of ``vector_env`` (built with one sub-env), as a ``gymnasium.Env``.

    ``reset`` returns ``obs`` ``[3, size, size]`` and ``info`` with python scalars; ``step(action)``
    returns ``(obs, reward: float, terminated: bool, truncated: bool, info)``. After ``terminated``
    or ``truncated`` call ``reset()`` before stepping again (stepping raises ``RuntimeError``).
    Subclasses may change how a reset reaches the vector env (:meth:`_reset_vector`).
    """

    metadata = {"render_modes": []}

    def __init__(self, vector_env: VectorEnv) -> None:
        if vector_env.num_envs != 1:
            raise ValueError(f"a single env wraps a vector env with 1 sub-env, got num_envs={vector_env.num_envs}")
        self._vec = vector_env
        self.options = vector_env.options
        self.observation_space = vector_env.single_observation_space
        self.action_space = vector_env.single_action_space
        self._needs_reset = True

    def get_action_meanings(self) -> list[str]:
        """Names of the actions, e.g. ``['NOOP', 'FIRE', 'RIGHT', 'LEFT']`` for Breakout."""
        return self._vec.get_action_meanings()

    @staticmethod
    def _info(info: dict[str, np.ndarray]) -> dict[str, Any]:
        """Sub-env 0's entries of a vector env's ``info`` as python scalars (without the vector env's ``env_id``)."""
        return {k: v[0].item() for k, v in info.items() if k != "env_id"}

    def _reset_vector(self, seed: int | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Reset the vector env: observations ``[1, 3, size, size]`` and its batched ``info``."""
        return self._vec.reset(seed=seed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode.

        Args:
            seed: ``None`` or an int in ``[0, 2**31 - 1]``.
            options: not supported (must be ``None`` or empty).

        Returns:
            ``obs`` uint8 ``[3, size, size]`` and ``info``.
        """
        if options:
            raise ValueError(f"{type(self).__name__}.reset takes no options, got {sorted(options)}")
        if seed is not None:
            check_seed(seed)
            seed = int(seed)
        super().reset(seed=seed)
        obs, info = self._reset_vector(seed)
        self._needs_reset = False
        return obs[0], self._info(info)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One agent step.

        Args:
            action: int in ``[0, action_space.n)``.

        Returns:
            ``obs`` uint8 ``[3, size, size]``, ``reward``, ``terminated``, ``truncated``, ``info``.
        """
        if self._needs_reset:
            raise RuntimeError("call reset() first (at the start and after terminated or truncated)")
        a = check_action(action, int(self.action_space.n))
        obs, reward, terminated, truncated, info = self._vec.step(np.array([a], dtype=np.int64))
        term, trunc = bool(terminated[0]), bool(truncated[0])
        self._needs_reset = term or trunc
        return obs[0], float(reward[0]), term, trunc, self._info(info)

    def close(self) -> None:
        """Release the vector env."""
        self._vec.close()
