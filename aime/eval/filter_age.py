"""Whether a filtered state still draws what it sees after many more frames than training showed it.

The world model learns on short windows filtered from a zero state (the ``cpu`` preset's T = 16),
while an agent acting in a game filters whole lives of hundreds of frames. A recurrent state older
than any state in training may drift, and then the actor, which reads it, would act on what the
model no longer holds. To tell this apart from frames late in a life simply being harder (a faster
ball, fewer bricks), the same frames are filtered from different window positions: the last
``last`` frames of windows of ``T`` frames with no episode start after their first frame, filtered
from position ``s``, are seen by states of age ``T - last - s`` to ``T - 1 - s`` (frames filtered
before them). Each start's decoder drawings of those frames are compared with the real frames:

- ``frame_error``: the squared error summed over a frame's pixels (in [0, 1]), mean over frames;
- with ``ball``: ``ball_drawn``, the share of frames with a Breakout ball between the bricks and
  the paddle where the drawing has one too, and ``ball_near``, the share where it is drawn within
  ``4`` pixels of the real one (read by redness, :func:`aime.eval.imagined_play.red_positions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from aime.eval.imagined_play import red_positions

__all__ = ["filter_age", "whole_windows"]

_NEAR = 4.0  # pixels: a drawn ball this close to the real one on both axes is where it is


def whole_windows(replay, count: int, seq_len: int, rounds: int = 50) -> dict[str, np.ndarray]:
    """``count`` replay windows of ``seq_len`` rows with no episode start after their first row.

    Draws uniform window positions (``replay.sample_indices``, with the replay's own generator),
    ``4 * count`` a round for at most ``rounds`` rounds, and gathers the frames of the whole ones
    only. Returns the fields ``[count, seq_len, ...]`` (:meth:`ReplayBuffer.gather`). Raises
    ``ValueError`` when the replay's episodes are too short to give that many.
    """
    if count < 1 or seq_len < 2:
        raise ValueError(f"whole_windows: need count >= 1 and seq_len >= 2, got {count} and {seq_len}")
    streams, rows = [], []
    for _ in range(rounds):
        stream, row = replay.sample_indices(4 * count, seq_len)
        whole = ~replay.is_first[stream[:, None], row][:, 1:].any(1)
        streams.append(stream[whole])
        rows.append(row[whole])
        if sum(len(s) for s in streams) >= count:
            return replay.gather(np.concatenate(streams)[:count], np.concatenate(rows)[:count])
    found = sum(len(s) for s in streams)
    raise ValueError(
        f"whole_windows: found {found} of {count} windows of {seq_len} rows without an episode start in "
        f"{rounds * 4 * count} draws; ask for shorter windows or fewer"
    )


@torch.no_grad()
def filter_age(
    world_model,
    batch: Mapping[str, Tensor],
    starts: Sequence[int],
    last: int,
    ball: bool = False,
    seed: int = 0,
) -> list[dict[str, float]]:
    """The decoder's drawings of each window's last ``last`` frames, filtered from each position in ``starts``.

    Args:
        world_model: an :class:`aime.world_model.vrnn.VRNN`.
        batch: ``obs uint8 [B, T, 3, S, S]``, ``action [B, T]``, ``is_first [B, T]`` on the model's
            device: whole windows (no episode start after the first frame; :func:`whole_windows`).
        starts: window positions to filter from, each in ``[0, T - last]``.
        last: frames compared at the end of each window.
        ball: also the Breakout ball's figures (84 x 84 frames).
        seed: seeds the posterior's draws, alike for every start.
    Returns:
        one row per start: ``start``, ``age_min`` and ``age_max`` (frames filtered before the first
        and the last compared frame), ``frame_error`` and with ``ball`` ``ball_drawn``, ``ball_near``
        and ``ball_frames`` (the compared frames that show a ball).
    """
    obs, action, is_first = batch["obs"], batch["action"], batch["is_first"]
    t = obs.shape[1]
    if not 1 <= last < t:
        raise ValueError(f"filter_age: last must lie in [1, {t - 1}] for windows of {t} frames, got {last}")
    bad = [s for s in starts if not 0 <= s <= t - last]
    if bad or not starts:
        raise ValueError(f"filter_age: starts must be a non-empty list in [0, {t - last}], got {list(starts)}")
    if bool(is_first[:, 1:].bool().any()):
        raise ValueError("filter_age: a window has an episode start after its first frame (see whole_windows)")
    real = obs[:, t - last :].flatten(0, 1).float() / 255
    seen_real = red_positions(real) if ball else None
    rows = []
    for s in starts:
        torch.manual_seed(seed)
        out = world_model.observe(obs[:, s:], action[:, s:], is_first[:, s:])
        maps, detail = (out[k][:, -last:] if k in out else None for k in ("attention", "attention_detail"))
        drawn = world_model.decode(out["feat"][:, -last:], maps, detail).clamp(0, 1).flatten(0, 1)
        row = {
            "start": int(s),
            "age_min": t - last - s,
            "age_max": t - 1 - s,
            "frame_error": float((drawn - real).square().sum((1, 2, 3)).mean()),
        }
        if seen_real is not None:
            row.update(_ball_figures(red_positions(drawn), seen_real))
        rows.append(row)
    return rows


def _ball_figures(seen: dict[str, Tensor], real: dict[str, Tensor]) -> dict[str, float]:
    has = ~real["ball_x"].isnan()
    drawn = ~seen["ball_x"].isnan() & has
    near = drawn & ((seen["ball_x"] - real["ball_x"]).abs() < _NEAR) & ((seen["ball_y"] - real["ball_y"]).abs() < _NEAR)
    n = int(has.sum())
    share = (lambda m: float(m.sum()) / n) if n else (lambda m: float("nan"))
    return {"ball_drawn": share(drawn), "ball_near": share(near), "ball_frames": n}
