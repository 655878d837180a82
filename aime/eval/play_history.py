"""How a run's play changed over training, read back from its replay (no model needed).

The replay holds every step the agent played (up to its capacity), in time order per environment
stream. Cut into learning episodes at ``is_first`` (with ``env.terminal_on_life_loss`` each life
is one) and grouped by the agent step at which they started, it shows what the policy did at each
stage: how long its episodes lasted, how many ended almost at once, what they scored and which
actions it chose. For Breakout the frames also show where the paddle and the ball were: how often
the paddle stood against a wall, and how far it was from the ball coming down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = [
    "BREAKOUT_FEATURES",
    "ball_paddle_distance",
    "breakout_ball",
    "breakout_paddle",
    "episode_history",
    "paddle_at_wall",
]

# Breakout at the Atari protocol's 84x84 (INTER_AREA from 210x160): the paddle is drawn in
# (200, 72, 72) on row 76; the side walls cover columns 0-3 and 80-83 (and are red on that row too).
# Against the left wall its first full column is 5 (4 is blended), against the right its last is 79.
_PADDLE_RGB = (200, 72, 72)
_PADDLE_ROWS = slice(74, 79)
_PLAYFIELD = (4, 80)
_AT_WALL = (5, 79)
# the ball is drawn in the same red, blended over up to 2 x 2 pixels: red-hued (R > 2G, G = B) and
# not dark; looked for between the bricks' lowest row and the paddle's rows
_BALL_ROWS = (38, 74)
_BALL_MIN_RED = 40
_FRAMES_PER_CHUNK = 4096  # frames a feature is computed on at once (its int16 copies stay small)


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


def breakout_ball(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ball's centre on Breakout frames while it is between the bricks and the paddle.

    Args:
        obs: ``uint8 [N, 3, 84, 84]`` frames of the Atari protocol.
    Returns:
        ``x, y``: ``float [N]`` in pixels, the red-weighted centre of the ball's pixels in rows
        38-73; NaN where no ball is drawn there (among the bricks, behind the paddle, or not in
        play). Against OCAtari's boxes from RAM on 2,000 frames of random play: every ball in those
        rows found, 0.5 px mean error.
    """
    if obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[1:] != (3, 84, 84):
        raise ValueError(f"breakout_ball: expected uint8 [N, 3, 84, 84] frames, got {obs.dtype} {obs.shape}")
    top, bottom = _BALL_ROWS
    lo, hi = _PLAYFIELD
    r, g, b = obs[:, :, top:bottom, lo:hi].astype(np.int16).transpose(1, 0, 2, 3)
    weight = np.where((r >= _BALL_MIN_RED) & (r > 2 * g) & (np.abs(g - b) <= 1), r, 0).astype(np.float64)
    total = weight.sum(axis=(1, 2))
    ys, xs = np.arange(top, bottom, dtype=np.float64), np.arange(lo, hi, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.einsum("nyx,x->n", weight, xs) / total
        y = np.einsum("nyx,y->n", weight, ys) / total
    return np.where(total > 0, x, np.nan), np.where(total > 0, y, np.nan)


def ball_paddle_distance(obs: np.ndarray, low: float = 42.0) -> np.ndarray:
    """``float [N]``: the horizontal distance in pixels between the ball's centre and the paddle's
    while the ball is below row ``low`` (coming down to the paddle, or leaving it), NaN elsewhere
    (``obs``: ``uint8 [N, 3, 84, 84]`` Breakout frames). A paddle that follows the ball keeps it small."""
    x, y = breakout_ball(obs)
    left, right = breakout_paddle(obs)
    return np.where(y > low, np.abs(x - (left + right) / 2), np.nan)


# the per-step features scripts/play_history.py tables for Breakout
BREAKOUT_FEATURES = {"paddle at a wall": paddle_at_wall, "ball-paddle distance (px), ball low": ball_paddle_distance}


def episode_history(
    data: Mapping[str, np.ndarray],
    first_step: int,
    every: int,
    short: int = 25,
    num_actions: int | None = None,
    features: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> list[dict[str, float]]:
    """Per-stage statistics of the finished episodes in replay rows.

    Args:
        data: ``ReplayBuffer.newest`` rows in time order, ``[S, L]`` fields ``action``, ``reward``,
            ``is_first`` (and ``obs [S, L, ...]`` when ``features`` are given).
        first_step: the agent step of the first row (steps count all ``S`` streams: row ``i`` is at
            ``first_step + i * S``).
        every: agent steps per stage (stage ``k`` holds steps ``[k * every, (k + 1) * every)``);
            an episode belongs to the stage it started in.
        short: an episode of at most this many steps counts as ended almost at once (Breakout: 25
            steps is a life whose first ball was missed).
        num_actions: the action count (default: the largest action seen + 1).
        features: ``name -> (obs [n, ...] -> float [n])`` per-step figures (NaN where undefined),
            each averaged over the stage's steps where it is defined, e.g. :data:`BREAKOUT_FEATURES`.
    Returns:
        One dict per stage that has episodes: ``start`` (its first agent step), ``episodes``,
        ``mean_length``, ``short_share``, ``mean_return``, ``action_<i>`` (the share of the stage's
        steps that chose action ``i``) and one entry per feature (NaN where it is nowhere defined). Episodes
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
    per_step = {}
    if features:
        obs = data["obs"].reshape(streams * rows, *data["obs"].shape[2:])
        chunks = range(0, len(obs), _FRAMES_PER_CHUNK)
        for name, feature in features.items():
            per_step[name] = np.concatenate([feature(obs[i : i + _FRAMES_PER_CHUNK]) for i in chunks])
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
        for name, values in per_step.items():
            chosen = values[steps]
            defined = chosen[~np.isnan(chosen)]
            row[name] = float(defined.mean()) if defined.size else float("nan")
        history.append(row)
    return history
