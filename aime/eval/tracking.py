"""Does a Breakout policy keep its paddle under the ball? Measured on OCAtari's boxes.

A policy that has learned Breakout moves the paddle to where the ball comes down. On rows recorded
with object boxes (``envs.objects.record_objects``, which can play any policy), this measures the
horizontal distance between the centres of the ball and the paddle while the ball is in the lower
part of the screen, and how often the paddle lies under it; a random policy's rows are the
baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["agent_policy", "paddle_tracking"]


def paddle_tracking(record: Mapping[str, np.ndarray], lower: float = 0.5) -> dict[str, float]:
    """Ball-paddle tracking on Breakout rows with boxes.

    Args:
        record: ``envs.objects.record_objects`` rows: ``boxes [L, C, 4]`` (``(x0, y0, x1, y1)``
            in observation pixels), ``visible [L, C]``, ``classes [C]`` with ``"ball"`` and
            ``"paddle"``, ``obs [L, 3, S, S]``, and ``reward``, ``is_first``, ``is_terminal`` ``[L]``.
        lower: the ball counts on rows where its centre lies below ``lower * S`` (0 = the top).
    Returns:
        ``rows`` (rows counted), ``distance_px`` (mean |ball x - paddle x| between the centres),
        ``under`` (share of those rows where the ball's centre is within the paddle's width), NaN
        when no row counts; ``games`` (games that ended inside the rows: ``is_terminal``) and
        ``game_return`` (their mean score, from ``reward`` and ``is_first``; NaN when none ended).
    """
    classes = list(record["classes"])
    if "ball" not in classes or "paddle" not in classes:
        raise ValueError(f"paddle_tracking needs ball and paddle boxes, got classes {classes}")
    if not 0.0 <= lower < 1.0:
        raise ValueError(f"lower must be in [0, 1), got {lower}")
    ball, paddle = classes.index("ball"), classes.index("paddle")
    boxes, visible, size = record["boxes"], record["visible"], record["obs"].shape[-1]
    centre_x = (boxes[..., 0] + boxes[..., 2]) / 2  # [L, C]
    centre_y = (boxes[..., 1] + boxes[..., 3]) / 2
    counted = visible[:, ball] & visible[:, paddle] & (centre_y[:, ball] > lower * size)
    distance = np.abs(centre_x[counted, ball] - centre_x[counted, paddle])
    half_width = (boxes[counted, paddle, 2] - boxes[counted, paddle, 0]) / 2
    ends = np.flatnonzero(record["is_terminal"])
    game = np.cumsum(record["is_first"]) - 1  # each row's game
    scores = np.bincount(game, weights=record["reward"])
    return {
        "rows": float(counted.sum()),
        "distance_px": float(distance.mean()) if counted.any() else float("nan"),
        "under": float((distance <= half_width).mean()) if counted.any() else float("nan"),
        "games": float(ends.size),
        "game_return": float(scores[game[ends]].mean()) if ends.size else float("nan"),
    }


def agent_policy(agent, explore: bool = True) -> Callable[[np.ndarray, bool], int]:
    """``(obs uint8 [3, S, S], is_first) -> action``: the agent playing one environment, its
    recurrent state carried from call to call (reset where ``is_first``), actions sampled when
    ``explore`` (the evaluation protocol's ``eval.greedy: false``) or the policy's mode."""
    state = None

    def act(obs: np.ndarray, is_first: bool) -> int:
        nonlocal state
        action, state, _ = agent.act({"obs": obs[None], "is_first": np.array([is_first])}, state, explore)
        return int(action[0])

    return act
