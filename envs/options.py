"""Typed, validated options of the environments (Atari protocol and Catch).

Each options class is a frozen dataclass whose ``__post_init__`` checks every value, so a bad value
fails where the environment is made, with a ``ValueError`` that names the allowed values.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    # bool is an int subclass; True as a frame skip is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int {allowed}, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {allowed}, got {value}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class AtariOptions:
    """The Atari-100k protocol (DreamerV3, IRIS, DIAMOND); every item is configurable.

    Attributes:
        frame_skip: emulator frames per agent step; the action is repeated on each (>= 1).
        max_pool: the observation is the pixel-wise max of the last two of those frames (removes
            the flicker of sprites drawn on alternate frames).
        noop_max: at every reset, ``k`` no-op frames are played, ``k`` uniform in
            ``[0, noop_max - 1]`` (ale-py's native draw; the FIRE of ``fire_reset`` counts as one of
            them). 0 disables them. Drawn from the sub-environment's seeded generator.
        repeat_action_probability: sticky actions; each frame repeats the previous action with this
            probability. 0.0 in the Atari-100k benchmark, 0.25 is ALE v5's recommendation.
        full_action_space: all 18 ALE actions instead of the game's minimal set.
        max_episode_frames: time limit in emulator frames stepped by agent actions (reset no-ops
            excluded); reaching it truncates the episode. 108,000 frames = 27,000 agent steps = 30
            minutes of play.
        terminal_on_life_loss: a lost life (lives decrease and some remain) returns
            ``terminated=True``; the game is then *continued*, not restarted (see ``AtariEnv``).
            For learning only; evaluation plays full games with this off.
        fire_reset: press FIRE at reset (and when continuing after a life-loss terminal) in games
            whose action set contains FIRE, as the usual FireResetEnv does.
        size: observations are ``size x size`` RGB, resized from 210x160 with OpenCV ``INTER_AREA``.
    """

    frame_skip: int = 4
    max_pool: bool = True
    noop_max: int = 30
    repeat_action_probability: float = 0.0
    full_action_space: bool = False
    max_episode_frames: int = 108_000
    terminal_on_life_loss: bool = False
    fire_reset: bool = True
    size: int = 84

    def __post_init__(self) -> None:
        _check_int("frame_skip", self.frame_skip, 1)
        _check_bool("max_pool", self.max_pool)
        _check_int("noop_max", self.noop_max, 0)
        p = self.repeat_action_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"repeat_action_probability must be a float in [0.0, 1.0], got {p!r}")
        _check_bool("full_action_space", self.full_action_space)
        _check_int("max_episode_frames", self.max_episode_frames, 1, 2**31 - 1)
        _check_bool("terminal_on_life_loss", self.terminal_on_life_loss)
        _check_bool("fire_reset", self.fire_reset)
        _check_int("size", self.size, 8, 1024)


@dataclass(frozen=True)
class CatchOptions:
    """Options of the built-in Catch game.

    Attributes:
        rows: grid rows; the ball starts in row 0 and the paddle lives in row ``rows - 1``, so an
            episode lasts exactly ``rows - 1`` steps (>= 2).
        columns: grid columns (>= 2).
        size: frames are ``size x size`` RGB; each grid cell covers about ``size / rows`` by
            ``size / columns`` pixels (nearest-neighbour upscaling).
    """

    rows: int = 10
    columns: int = 5
    size: int = 84

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 2, 1024)
        _check_int("columns", self.columns, 2, 1024)
        _check_int("size", self.size, 8, 1024)


def build_options(cls: type, game: str, options: Mapping[str, Any]) -> Any:
    """``cls(**options)`` with an error naming the accepted options when a name is unknown.

    Raises:
        ValueError: an option name that ``cls`` does not have (with close matches), or a bad value.
    """
    accepted = [f.name for f in fields(cls)]
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            known = key in {f.name for f in fields(AtariOptions)} | {f.name for f in fields(CatchOptions)}
            what = "does not apply to" if known else "is not an option of"
            raise ValueError(f"{key!r} {what} {game}{hint}; {game} accepts: {', '.join(accepted)}")
    return cls(**options)
