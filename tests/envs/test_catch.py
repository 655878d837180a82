"""Catch: dynamics, rewards, rendering, determinism, vector == single, autoreset."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs
from envs.catch import PALETTE

BALL_RGB = PALETTE[:, 1]
PADDLE_RGB = PALETTE[:, 2]
BACKGROUND_RGB = PALETTE[:, 0]


def _cells(frame: np.ndarray, rgb: np.ndarray, rows: int = 10, columns: int = 5) -> set:
    """Grid cells whose pixels have colour ``rgb`` in a [3, size, size] frame."""
    size = frame.shape[-1]
    ys, xs = np.nonzero((frame == rgb[:, None, None]).all(0))
    return set(zip((ys * rows // size).tolist(), (xs * columns // size).tolist()))


def _ball(frame):
    (cell,) = _cells(frame, BALL_RGB)
    return cell


def test_shapes_spaces_and_rendering():
    env = envs.make("Catch")
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 84, 84) and obs.dtype == np.uint8 and info == {}
    assert env.observation_space.contains(obs) and env.action_space.n == 3
    # one ball cell in row 0, one paddle cell in the middle of the bottom row, the rest background
    ball = _ball(obs)
    assert ball[0] == 0
    assert _cells(obs, PADDLE_RGB) == {(9, 2)}
    ball_px = (obs == BALL_RGB[:, None, None]).all(0).sum()
    paddle_px = (obs == PADDLE_RGB[:, None, None]).all(0).sum()
    assert ((obs == BACKGROUND_RGB[:, None, None]).all(0).sum() + ball_px + paddle_px) == 84 * 84
    # cells are about 84/10 x 84/5 pixels
    assert 8 * 16 <= ball_px <= 9 * 17 and 8 * 16 <= paddle_px <= 9 * 17
    small = envs.make("Catch", size=32, rows=6, columns=4)
    obs, _ = small.reset(seed=0)
    assert obs.shape == (3, 32, 32)
    ((ball_row, _),) = _cells(obs, BALL_RGB, 6, 4)
    assert ball_row == 0 and _cells(obs, PADDLE_RGB, 6, 4) == {(5, 2)}


def test_gymnasium_env_checker_passes():
    check_env(envs.make("Catch"), skip_render_check=True)


def test_ball_falls_one_row_per_step_and_paddle_moves():
    env = envs.make("Catch")
    obs, _ = env.reset(seed=1)
    row, col = _ball(obs)
    paddle = 2
    for t, action in enumerate([0, 0, 0, 2, 1, 2, 2, 2]):
        obs, reward, terminated, truncated, _ = env.step(action)
        paddle = min(max(paddle + action - 1, 0), 4)
        assert _ball(obs) == (row + t + 1, col)
        assert _cells(obs, PADDLE_RGB) == {(9, paddle)}
        assert reward == 0.0 and not terminated and not truncated


@pytest.mark.parametrize("catch", [True, False])
def test_catching_gives_plus_one_missing_minus_one_and_ends(catch):
    env = envs.make("Catch")
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        target = _ball(obs)[1] if catch else (0 if _ball(obs)[1] >= 2 else 4)
        paddle, steps = 2, 0
        while True:
            action = 1 + int(np.sign(target - paddle))
            paddle += action - 1
            obs, reward, terminated, truncated, _ = env.step(action)
            steps += 1
            if terminated:
                break
            assert reward == 0.0
        assert steps == 9 and not truncated
        assert reward == (1.0 if catch else -1.0)
        with pytest.raises(RuntimeError, match="reset"):
            env.step(1)
    short = envs.make("Catch", rows=4)
    short.reset(seed=0)
    assert [short.step(1)[2] for _ in range(3)] == [False, False, True]


def test_determinism_and_seeds():
    def columns(seed, episodes=12):
        env = envs.make("Catch")
        cols = [_ball(env.reset(seed=seed)[0])[1]]
        for _ in range(episodes - 1):
            cols.append(_ball(env.reset()[0])[1])
        return cols

    assert columns(7) == columns(7)
    assert columns(7) != columns(8)
    assert set(columns(0, 60)) == set(range(5))  # every column occurs


def test_vector_matches_single_and_autoresets_next_step():
    n = 3
    vec = envs.make_vector("Catch", n)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    singles = [envs.make("Catch") for _ in range(n)]
    vobs, _ = vec.reset(seed=40)
    assert vobs.shape == (n, 3, 84, 84) and vobs.dtype == np.uint8
    np.testing.assert_array_equal(vobs, np.stack([s.reset(seed=40 + i)[0] for i, s in enumerate(singles)]))
    rng = np.random.default_rng(0)
    done = np.zeros(n, dtype=bool)
    ends = 0
    for _ in range(25):
        actions = rng.integers(0, 3, n)
        vobs, vrew, vterm, vtrunc, info = vec.step(actions)
        assert vrew.dtype == np.float32 and not vtrunc.any() and info == {}
        for i, single in enumerate(singles):
            if done[i]:
                # actions[i] ignored: a new episode's first frame, ball in row 0, paddle centred
                obs, rew, term = single.reset()[0], 0.0, False
                assert _ball(vobs[i])[0] == 0 and _cells(vobs[i], PADDLE_RGB) == {(9, 2)}
            else:
                obs, rew, term, _, _ = single.step(int(actions[i]))
            np.testing.assert_array_equal(vobs[i], obs)
            assert vrew[i] == rew and vterm[i] == term
        done = vterm
        ends += int(vterm.sum())
    assert ends == 2 * n  # episodes of 9 steps + 1 reset step: ends at steps 9 and 19


def test_partial_reset_and_bad_arguments():
    vec = envs.make_vector("Catch", 2)
    with pytest.raises(RuntimeError):
        vec.step(np.array([1, 1]))
    first, _ = vec.reset(seed=3)
    moved, *_ = vec.step(np.array([0, 2]))
    again, _ = vec.reset(seed=[3], options={"reset_mask": np.array([True, False])})
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], moved[1])
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        vec.step(np.array([0, 3]))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        vec.step(np.array([[0, 1]]))
    with pytest.raises(ValueError, match="frame_skip"):
        envs.make("Catch", frame_skip=4)
    with pytest.raises(ValueError, match="num_threads"):
        envs.make_vector("Catch", 2, num_threads=2)
    with pytest.raises(ValueError, match="rows"):
        envs.make("Catch", rows=1)
    with pytest.raises(ValueError, match="num_envs"):
        envs.make_vector("Catch", 0)
