"""A uniformly random policy with the agent's acting interface: the baseline every return is read against."""

from __future__ import annotations

from typing import Any

import numpy as np


class RandomPolicy:
    """Picks each environment's action uniformly at random; ``act`` mirrors :meth:`Agent.act`.

    Passing it where an :class:`~aime.agent.agent.Agent` acts (e.g. ``aime.runtime.evaluation.evaluate``)
    measures a random policy under exactly the protocol the agent is evaluated with.

    Args:
        num_actions: size of the discrete action space (>= 1).
        seed: seeds the action stream.
    """

    def __init__(self, num_actions: int, seed: int = 0) -> None:
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}")
        self.num_actions = num_actions
        self.rng = np.random.default_rng(seed)

    def act(self, obs: dict[str, np.ndarray], state: Any, explore: bool = True) -> tuple[np.ndarray, Any, dict]:
        """``obs["obs"]`` uint8 ``[N, 3, H, W]`` -> ``(actions int64 [N], state unchanged, {})``."""
        n = len(obs["obs"])
        return self.rng.integers(0, self.num_actions, size=n), state, {}
