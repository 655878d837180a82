"""Names -> environments: ``make``, ``make_vector`` and ``list_games``."""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any

import gymnasium
from ale_py import roms

from envs._checks import check_num_envs
from envs.atari import AtariEnv, AtariVectorEnv
from envs.catch import CatchEnv, CatchVectorEnv
from envs.options import AtariOptions, CatchOptions, build_options

CATCH = "Catch"
_FULL_ID = re.compile(r"ALE/([A-Za-z0-9_]+)-v(\d+)")


def _key(name: str) -> str:
    # case and underscores do not distinguish games: MsPacman == ms_pacman == mspacman
    return name.replace("_", "").lower()


def _display_name(rom_id: str) -> str:
    # the PascalCase names of gymnasium's ALE/<Name>-v5 ids (ale_py.registration.rom_id_to_name)
    return rom_id.title().replace("_", "")


@functools.lru_cache(maxsize=1)
def _games() -> dict[str, tuple[str, str | None]]:
    """key -> (display name, ROM id or None for Catch)."""
    table = {_key(rom): (_display_name(rom), rom) for rom in roms.get_all_rom_ids()}
    table[_key(CATCH)] = (CATCH, None)
    return table


def list_games() -> list[str]:
    """All names ``make`` accepts in their canonical spelling: ``'Catch'`` and every ALE game
    ale-py ships (``'Breakout'``, ``'MsPacman'``, ...), sorted."""
    return sorted(name for name, _ in _games().values())


def resolve(name: str) -> tuple[str, str | None]:
    """Map an environment name to ``(canonical name, ale-py ROM id)`` (ROM id ``None`` for Catch).

    Accepted spellings (case-insensitive, underscores ignored): ``"Breakout"``, ``"breakout"``,
    ``"ALE/Breakout-v5"``, ``"MsPacman"``, ``"ms_pacman"``, ``"Catch"``.

    Raises:
        ValueError: an unknown name (the message lists close matches and how to list all names), or
            a full id of another ALE version than v5.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"environment name must be a non-empty string, got {name!r}")
    short = name.strip()
    full = _FULL_ID.fullmatch(short)
    if full:
        if full.group(2) != "5":
            raise ValueError(
                f"{name!r}: only ALE v5 ids (ALE/<Game>-v5) are accepted; the protocol options of "
                f"envs.make replace what other versions fix"
            )
        short = full.group(1)
    games = _games()
    found = games.get(_key(short))
    if found is None:
        close = difflib.get_close_matches(_key(short), list(games), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(games[k][0] for k in close)}" if close else ""
        raise ValueError(
            f"unknown environment {name!r}{hint}. envs.list_games() lists all {len(games)} names "
            f"(any ALE game as Name, name or ALE/Name-v5, and Catch)"
        )
    return found


def make(name: str, **options: Any) -> gymnasium.Env:
    """Make one environment: an Atari game under the Atari-100k protocol, or Catch.

    Args:
        name: ``"Breakout"``, ``"breakout"``, ``"ALE/Breakout-v5"``, any ALE game (see
            ``list_games()``), or ``"Catch"``.
        **options: Atari: the fields of ``envs.options.AtariOptions`` (``frame_skip=4``,
            ``max_pool=True``, ``noop_max=30``, ``repeat_action_probability=0.0``,
            ``full_action_space=False``, ``max_episode_frames=108000``,
            ``terminal_on_life_loss=False``, ``fire_reset=True``, ``size=84``). Catch: the fields of
            ``envs.options.CatchOptions`` (``rows=10``, ``columns=5``, ``size=84``); Atari-only
            options are rejected.

    Returns:
        An ``AtariEnv`` or ``CatchEnv``: observations uint8 ``[3, size, size]`` RGB; seed with
        ``reset(seed=...)``.

    Raises:
        ValueError: an unknown name (with close matches), an unknown option or a bad value.
    """
    canonical, rom = resolve(name)
    if rom is None:
        return CatchEnv(build_options(CatchOptions, canonical, options))
    return AtariEnv(rom, build_options(AtariOptions, canonical, options))


def make_vector(name: str, num_envs: int, *, num_threads: int | None = None, **options: Any):
    """Make ``num_envs`` environments stepped together (``gymnasium.vector.VectorEnv``).

    Observations uint8 ``[N, 3, size, size]``, rewards float32 ``[N]``, ``terminated``/``truncated``
    bool ``[N]``. Sub-env ``i`` of ``reset(seed=s)`` produces exactly the frames of
    ``make(name, **options)`` reset with ``seed=s + i``, given the same actions.

    Autoreset (gymnasium 1.x ``AutoresetMode.NEXT_STEP``, in ``metadata["autoreset_mode"]``):
      * a step that returns ``terminated[i]`` or ``truncated[i]`` carries the *last* observation of
        that episode in ``obs[i]`` (there is no ``final_obs`` in ``info``; for an Atari game that
        ends before the last frame of a frame skip, that observation lags by up to
        ``frame_skip - 1`` frames, see ``envs.atari``);
      * the next ``step`` call ignores ``actions[i]``, starts a new episode in sub-env ``i`` and
        returns its *first* observation with ``reward[i] == 0`` and
        ``terminated[i] == truncated[i] == False``; the other sub-envs step normally;
      * so a transition ``(obs_t, a_t, r_{t+1}, obs_{t+1})`` is valid unless step ``t`` returned
        ``terminated`` or ``truncated`` for that sub-env;
      * Atari with ``terminal_on_life_loss=True``: a life-loss step returns ``terminated[i]`` (and
        ``info["life_loss"][i]``); its "new episode" is the same game continued: the next step plays
        FIRE (``fire_reset`` and the game has FIRE) or NOOP instead of ``actions[i]`` and returns
        its observation with reward 0, not terminal;
      * new episodes draw their randomness from each sub-env's generator, seeded by the last
        ``reset(seed=...)``, so a seeded run is reproducible end to end.

    Args:
        name: as for ``make``.
        num_envs: number of sub-environments (>= 1).
        num_threads: Atari only: ale-py worker threads (``None``/0: ale-py's choice).
        **options: as for ``make``.

    Returns:
        An ``AtariVectorEnv`` (ale-py's native threaded vector env) or a ``CatchVectorEnv``.

    Raises:
        ValueError: as for ``make``; a bad ``num_envs``; ``num_threads`` given for Catch.
    """
    canonical, rom = resolve(name)
    num_envs = check_num_envs(num_envs)
    if rom is None:
        if num_threads is not None:
            raise ValueError("num_threads applies to Atari games only; Catch runs in one numpy batch")
        return CatchVectorEnv(num_envs, build_options(CatchOptions, canonical, options))
    opts = build_options(AtariOptions, canonical, options)
    return AtariVectorEnv(rom, num_envs, opts, num_threads=0 if num_threads is None else num_threads)
