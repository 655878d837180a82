"""Names and options: resolution, close-match errors, list_games, option validation."""

import subprocess
import sys

import pytest
from ale_py import roms

import envs


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Breakout", ("Breakout", "breakout")),
        ("breakout", ("Breakout", "breakout")),
        ("BREAKOUT", ("Breakout", "breakout")),
        ("ALE/Breakout-v5", ("Breakout", "breakout")),
        ("MsPacman", ("MsPacman", "ms_pacman")),
        ("ms_pacman", ("MsPacman", "ms_pacman")),
        ("ALE/MsPacman-v5", ("MsPacman", "ms_pacman")),
        ("SpaceInvaders", ("SpaceInvaders", "space_invaders")),
        ("Pong", ("Pong", "pong")),
        ("catch", ("Catch", None)),
        ("Catch", ("Catch", None)),
    ],
)
def test_resolve(name, expected):
    assert envs.resolve(name) == expected


def test_every_ale_game_resolves_and_is_listed():
    games = envs.list_games()
    assert games == sorted(games) and "Catch" in games and "Breakout" in games
    assert len(games) == len(roms.get_all_rom_ids()) + 1
    for rom in roms.get_all_rom_ids():
        name, resolved = envs.resolve(rom)
        assert resolved == rom and name in games and envs.resolve(f"ALE/{name}-v5")[1] == rom


@pytest.mark.parametrize(
    "name, suggestion", [("Breakot", "Breakout"), ("spaceinvader", "SpaceInvaders"), ("Catc", "Catch")]
)
def test_unknown_name_lists_close_matches(name, suggestion):
    with pytest.raises(ValueError, match="list_games") as err:
        envs.make(name)
    assert suggestion in str(err.value) and repr(name) in str(err.value)


def test_other_versions_and_bad_names_rejected():
    with pytest.raises(ValueError, match="v5"):
        envs.resolve("ALE/Breakout-v4")
    for bad in ("", None, 3):
        with pytest.raises(ValueError):
            envs.resolve(bad)


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(frame_skip=0), "frame_skip must be an int >= 1"),
        (dict(frame_skip=2.0), "frame_skip"),
        (dict(noop_max=-1), "noop_max"),
        (dict(repeat_action_probability=1.5), r"\[0.0, 1.0\]"),
        (dict(full_action_space="yes"), "True or False"),
        (dict(terminal_on_life_loss=1), "True or False"),
        (dict(max_episode_frames=0), "max_episode_frames"),
        (dict(size=4), "size"),
        (dict(framskip=4), "frame_skip"),  # close match suggested
    ],
)
def test_bad_options_raise_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        envs.make("Pong", **options)


def test_defaults_are_the_benchmark_protocol():
    o = envs.AtariOptions()
    assert (o.frame_skip, o.max_pool, o.noop_max, o.repeat_action_probability) == (4, True, 30, 0.0)
    assert (o.full_action_space, o.max_episode_frames, o.terminal_on_life_loss) == (False, 108_000, False)
    assert o.fire_reset and o.size == 84


def test_envs_imports_neither_torch_nor_aime():
    code = "import sys, envs; envs.make('Catch'); print('torch' in sys.modules, 'aime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
