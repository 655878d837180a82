"""How a run's play changed over training, read back from its replay (no model needed).

The replay holds every step the agent played (up to its capacity), in time order per environment
stream. Cut into learning episodes at ``is_first`` (with ``env.terminal_on_life_loss`` each life
is one) and grouped by the agent step at which they started, it shows what the policy did at each
stage: how long its episodes lasted, how many ended almost at once, what they scored and which
actions it chose. For Breakout the frames also show where the paddle was: a policy that pins the
paddle against a wall misses most balls (measured on the Breakout runs of docs/breakout.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["breakout_paddle", "episode_history", "paddle_at_wall"]

# Breakout at the Atari protocol's 84x84 (INTER_AREA from 210x160): the paddle is drawn in
# (200, 72, 72) on row 76; the side walls cover columns 0-3 and 80-83 (and are red on that row too).
# Against the left wall its first full column is 5 (4 is blended), against the right its last is 79.
_PADDLE_RGB = (200, 72, 72)
_PADDLE_ROWS = slice(74, 79)
_PLAYFIELD = (4, 80)
_AT_WALL = (5, 79)


def breakout_paddle(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paddle's first and last column on Breakout frames, NaN where it is not drawn.

    Args:
        obs: ``uint8 [..., 3, 84, 84]`` frames of the Atari protocol.
    Returns:
        ``left, right``: ``float [...]`` columns in pixels (0 = the screen's left edge); the paddle
        touches the left wall at ``left == 5`` and the right wall at ``right == 79``. The ball has
        the paddle's colour: on the few frames where it crosses the paddle's rows it widens the span.
    """
    if obs.dtype != np.uint8 or obs.ndim < 3 or obs.shape[-3:] != (3, 84, 84):
        raise ValueError(f"breakout_paddle: expected uint8 [..., 3, 84, 84] frames, got {obs.dtype} {obs.shape}")
    lo, hi = _PLAYFIELD
    band = obs[..., _PADDLE_ROWS, lo:hi]  # [..., 3, rows, columns]
    colour = np.array(_PADDLE_RGB, np.uint8).reshape(3, 1, 1)
    drawn = (band == colour).all(axis=-3).any(axis=-2)  # [..., columns]
    found = drawn.any(axis=-1)
    columns = np.arange(lo, hi)
    left = np.where(found, np.where(drawn, columns, hi).min(axis=-1), np.nan)
    right = np.where(found, np.where(drawn, columns, lo - 1).max(axis=-1), np.nan)
    return left.astype(float), right.astype(float)


def paddle_at_wall(obs: np.ndarray, margin: int = 1) -> np.ndarray:
    """``float [...]``: 1 where the Breakout paddle lies within ``margin`` pixels of touching a
    side wall, 0 where it does not, NaN where it is not drawn (``obs``: ``uint8 [..., 3, 84, 84]``)."""
    left, right = breakout_paddle(obs)
    near = (left <= _AT_WALL[0] + margin) | (right >= _AT_WALL[1] - margin)
    return np.where(np.isnan(left), np.nan, near.astype(float))


def episode_history(
    data: Mapping[str, np.ndarray],
    first_step: int,
    every: int,
    short: int = 25,
    num_actions: int | None = None,
    step_feature: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[dict[str, float]]:
    """Per-stage statistics of the finished episodes in replay rows.

    Args:
        data: ``ReplayBuffer.newest`` rows in time order, ``[S, L]`` fields ``action``, ``reward``,
            ``is_first`` (and ``obs [S, L, ...]`` when ``step_feature`` is given).
        first_step: the agent step of the first row (steps count all ``S`` streams: row ``i`` is at
            ``first_step + i * S``).
        every: agent steps per stage (stage ``k`` holds steps ``[k * every, (k + 1) * every)``);
            an episode belongs to the stage it started in.
        short: an episode of at most this many steps counts as ended almost at once (Breakout: 25
            steps is a life whose first ball was missed).
        num_actions: the action count (default: the largest action seen + 1).
        step_feature: ``obs [n, ...] -> float [n]`` per step (NaN where undefined), averaged over
            the stage's steps, e.g. :func:`paddle_at_wall`.
    Returns:
        One dict per stage that has episodes: ``start`` (its first agent step), ``episodes``,
        ``mean_length``, ``short_share``, ``mean_return``, ``action_<i>`` (the share of the stage's
        steps that chose action ``i``) and ``feature`` (when ``step_feature`` is given). Episodes
        cut by the rows (begun before the first or unfinished at the last) are left out.
    """
    if every < 1 or short < 0:
        raise ValueError(f"episode_history: expected every >= 1 and short >= 0, got every={every}, short={short}")
    action, reward, first = data["action"], data["reward"], data["is_first"]
    streams, rows = action.shape
    num_actions = int(action.max()) + 1 if num_actions is None else num_actions
    stages: dict[int, list[tuple[int, int, int]]] = {}  # stage -> (stream, start row, end row)
    for s in range(streams):  # a few streams: the episodes' bounds, not a hot path
        starts = np.flatnonzero(first[s])
        for begin, end in zip(starts[:-1], starts[1:]):
            stage = (first_step + int(begin) * streams) // every
            stages.setdefault(stage, []).append((s, int(begin), int(end)))
    feature = None
    if step_feature is not None:
        feature = step_feature(data["obs"].reshape(streams * rows, *data["obs"].shape[2:]))
    history = []
    for stage in sorted(stages):
        episodes = stages[stage]
        lengths = np.array([end - begin for _, begin, end in episodes])
        steps = np.concatenate([np.arange(begin, end) + s * rows for s, begin, end in episodes])
        chosen = np.bincount(action.reshape(-1)[steps], minlength=num_actions) / steps.size
        row = {
            "start": float(stage * every),
            "episodes": float(len(episodes)),
            "mean_length": float(lengths.mean()),
            "short_share": float((lengths <= short).mean()),
            "mean_return": float(np.mean([reward[s, begin:end].sum() for s, begin, end in episodes])),
            **{f"action_{i}": float(share) for i, share in enumerate(chosen)},
        }
        if feature is not None:
            row["feature"] = float(np.nanmean(feature[steps]))
        history.append(row)
    return history
