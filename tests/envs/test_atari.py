"""Atari envs: protocol semantics against raw ALE, determinism, single == vector, autoreset, lives."""

import cv2
import numpy as np
import pytest
from ale_py import Action, ALEInterface, LoggerMode, roms
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import envs

ALEInterface.setLoggerMode(LoggerMode.Error)


def _raw_ale(game: str, seed: int) -> ALEInterface:
    ale = ALEInterface()
    ale.setInt("random_seed", seed)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.loadROM(str(roms.get_rom_path(game)))
    ale.reset_game()
    return ale


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    # [210, 160, 3] -> [3, size, size], the resize the protocol specifies
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)


def test_shapes_dtypes_spaces():
    env = envs.make("Breakout")
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 84, 84) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert env.action_space.n == 4 and env.get_action_meanings() == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert info["lives"] == 5
    obs, reward, terminated, truncated, info = env.step(1)
    assert obs.shape == (3, 84, 84) and obs.dtype == np.uint8
    assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    assert set(info) == {"lives", "frame_number", "episode_frame_number", "life_loss"}

    vec = envs.make_vector("Breakout", 2)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = vec.reset(seed=0)
    assert obs.shape == (2, 3, 84, 84) and obs.dtype == np.uint8 and obs.flags.c_contiguous
    assert vec.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = vec.step(np.array([1, 0]))
    assert obs.shape == (2, 3, 84, 84) and reward.dtype == np.float32 and reward.shape == (2,)
    assert terminated.dtype == bool and terminated.shape == (2,) and truncated.shape == (2,)
    assert info["lives"].tolist() == [5, 5]

    assert envs.make("Pong", full_action_space=True).action_space.n == 18
    assert envs.make("Pong", size=64).reset(seed=0)[0].shape == (3, 64, 64)


def test_gymnasium_env_checker_passes():
    check_env(envs.make("Pong"), skip_render_check=True)


def test_same_seed_same_frames_and_different_seeds_differ():
    actions = np.random.default_rng(0).integers(0, 4, 25)
    runs = []
    for seed in (3, 3, 4):
        env = envs.make("Breakout")
        frames = [env.reset(seed=seed)[0]]
        frames += [env.step(int(a))[0] for a in actions]
        runs.append(np.stack(frames))
    np.testing.assert_array_equal(runs[0], runs[1])
    # seeds 3 and 4 draw different numbers of no-op starts, so the ball is elsewhere
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize(
    "game, options",
    [
        # FIRE reset and no-op starts, the benchmark defaults
        ("breakout", dict()),
        # a flickering game, without max-pool, another skip and size
        ("ms_pacman", dict(frame_skip=3, max_pool=False, noop_max=0, size=64)),
        # max-pool matters here: sprites are drawn on alternate frames; rewards of 10
        ("alien", dict(noop_max=5)),
    ],
)
def test_frames_match_raw_ale(game, options):
    """Replay the protocol by hand on a raw ALEInterface: FIRE + no-ops at reset, each action
    repeated frame_skip times, max over the last two frames, INTER_AREA resize; frames and rewards
    must match exactly."""
    opts = envs.AtariOptions(**options)
    seed = 11
    env = envs.AtariEnv(game, opts)
    obs, info = env.reset(seed=seed)
    ale = _raw_ale(game, seed)
    action_set = ale.getMinimalActionSet()
    played = info["episode_frame_number"]  # FIRE (if any) + no-ops
    fire = opts.fire_reset and Action.FIRE in action_set
    assert 0 <= played <= max(opts.noop_max - 1, 0) + int(fire)
    if fire:
        ale.act(Action.FIRE)
    for _ in range(played - int(fire)):
        ale.act(Action.NOOP)
    np.testing.assert_array_equal(obs, _resize(ale.getScreenRGB(), opts.size))

    rng = np.random.default_rng(1)
    pooled_differs = False
    rewards = []
    for _ in range(30):
        a = int(rng.integers(len(action_set)))
        obs, reward, terminated, truncated, _ = env.step(a)
        assert not (terminated or truncated)
        frames, raw_reward = [], 0
        for _ in range(opts.frame_skip):
            raw_reward += ale.act(action_set[a])
            frames.append(ale.getScreenRGB())
        last = np.maximum(frames[-2], frames[-1]) if opts.max_pool else frames[-1]
        pooled_differs |= opts.max_pool and not np.array_equal(frames[-2], frames[-1])
        np.testing.assert_array_equal(obs, _resize(last, opts.size))
        assert reward == raw_reward
        rewards.append(reward)
    if game == "alien":
        assert max(rewards) >= 10  # eggs score 10: rewards are raw, not clipped
        assert pooled_differs  # the check above really exercised the max-pool


def test_time_limit_observation_follows_the_native_rule():
    """The step that reaches the time limit stops before grabbing its last frame; its observation
    is max(previous pooled frame, second-to-last frame), as documented in envs.atari."""
    env = envs.AtariEnv("ms_pacman", envs.AtariOptions(noop_max=0, fire_reset=False, max_episode_frames=20))
    env.reset(seed=7)
    ale = _raw_ale("ms_pacman", 7)
    action_set = ale.getMinimalActionSet()
    pooled = None
    for t in range(5):
        obs, _, terminated, truncated, _ = env.step(3)
        frames = []
        for _ in range(4):
            ale.act(action_set[3])
            frames.append(ale.getScreenRGB())
        assert truncated == (t == 4) and not terminated
        if t < 4:
            np.testing.assert_array_equal(obs, _resize(np.maximum(frames[2], frames[3]), 84))
        else:
            np.testing.assert_array_equal(obs, _resize(np.maximum(pooled, frames[2]), 84))
        pooled = np.maximum(frames[2], frames[3])


def test_vector_matches_single_across_autoresets():
    """Sub-env i of a vector env seeded s == a single env seeded s + i, through autoresets
    (a short time limit forces several episode ends)."""
    opts = dict(max_episode_frames=48)  # 12 agent steps per episode
    vec = envs.make_vector("Breakout", 2, **opts)
    singles = [envs.make("Breakout", **opts) for _ in range(2)]
    vobs, _ = vec.reset(seed=20)
    sobs = [s.reset(seed=20 + i)[0] for i, s in enumerate(singles)]
    np.testing.assert_array_equal(vobs, np.stack(sobs))
    done = [False, False]
    rng = np.random.default_rng(2)
    episode_ends = 0
    for _ in range(30):
        actions = rng.integers(0, 4, 2)
        vobs, vrew, vterm, vtrunc, _ = vec.step(actions)
        for i, single in enumerate(singles):
            if done[i]:  # the vector autoresets: action ignored, first frame, reward 0
                obs, rew, term, trunc = single.reset()[0], 0.0, False, False
            else:
                obs, rew, term, trunc, _ = single.step(int(actions[i]))
            np.testing.assert_array_equal(vobs[i], obs)
            assert (vrew[i], vterm[i], vtrunc[i]) == (rew, term, trunc)
            done[i] = term or trunc
            episode_ends += done[i]
    assert episode_ends >= 4


def test_autoreset_next_step_semantics_and_time_limit():
    vec = envs.make_vector("Pong", 2, max_episode_frames=20)  # ceil(20 / 4) = 5 steps
    first, info = vec.reset(seed=5)
    start_frames = info["episode_frame_number"].copy()
    for t in range(5):
        obs, reward, terminated, truncated, info = vec.step(np.array([1, 2]))
        assert truncated.tolist() == [t == 4] * 2 and not terminated.any()
    assert (info["episode_frame_number"] == start_frames + 20).all()
    # next step: actions ignored, a new episode's first frame, reward 0, not done
    obs, reward, terminated, truncated, info = vec.step(np.array([3, 3]))
    assert reward.tolist() == [0.0, 0.0] and not terminated.any() and not truncated.any()
    assert (info["episode_frame_number"] <= 30).all()
    # the new episode continues each sub-env's seeded generator: a single env that reset()s
    # after its own time limit shows the same first frame
    single = envs.make("Pong", max_episode_frames=20)
    single.reset(seed=6)
    for _ in range(5):
        single.step(0)
    with pytest.raises(RuntimeError):
        single.step(0)
    np.testing.assert_array_equal(single.reset()[0], obs[1])
    # and the step after the autoreset step is an ordinary step of the new episode
    _, _, _, _, info2 = vec.step(np.array([0, 0]))
    assert (info2["episode_frame_number"] == info["episode_frame_number"] + 4).all()


def _play_until_life_loss(env, max_steps=300):
    """Random Breakout play (seeded) until info['life_loss']; returns the step index and info."""
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(max_steps):
        _, _, terminated, truncated, info = env.step(int(rng.integers(4)))
        assert not truncated
        if terminated:
            return t, info
    raise AssertionError("no life lost")


def test_life_loss_terminal_continues_the_game():
    env = envs.make("Breakout", terminal_on_life_loss=True)
    t, info = _play_until_life_loss(env)
    assert info["life_loss"] and info["lives"] == 4
    with pytest.raises(RuntimeError):
        env.step(0)
    frame_before = info["episode_frame_number"]
    _, info = env.reset()  # continues: same game, one FIRE step later, lives kept
    assert info["lives"] == 4 and info["episode_frame_number"] == frame_before + 4
    _, info = env.reset(seed=0)  # a seed always starts a new game
    assert info["lives"] == 5 and info["episode_frame_number"] < frame_before

    # without the option the same play loses the life without a terminal
    plain = envs.make("Breakout")
    plain.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(t + 1):
        _, _, terminated, _, info = plain.step(int(rng.integers(4)))
        assert not terminated and not info["life_loss"]
    assert info["lives"] == 4

    # vector: the step after the life-loss terminal is reward 0, not done, same game
    vec = envs.make_vector("Breakout", 1, terminal_on_life_loss=True)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(t + 1):
        _, _, terminated, _, info = vec.step(rng.integers(0, 4, 1))
    assert terminated[0] and info["life_loss"][0]
    _, reward, terminated, truncated, info = vec.step(np.array([3]))
    assert reward[0] == 0 and not terminated[0] and not truncated[0]
    assert info["lives"][0] == 4 and info["episode_frame_number"][0] == frame_before + 4


def test_life_loss_continuation_that_hits_the_time_limit_starts_a_fresh_game():
    env = envs.make("Breakout", terminal_on_life_loss=True)
    t, _ = _play_until_life_loss(env)
    # time limit exactly at the continuation step (step t + 1)
    vec = envs.make_vector("Breakout", 1, terminal_on_life_loss=True, max_episode_frames=4 * (t + 2))
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(t + 1):
        _, _, terminated, _, _ = vec.step(rng.integers(0, 4, 1))
    assert terminated[0]
    _, reward, terminated, truncated, info = vec.step(np.array([0]))
    assert reward[0] == 0 and not terminated[0] and not truncated[0]
    assert info["lives"][0] == 5  # a new game
    start = info["episode_frame_number"][0]
    _, _, _, _, info = vec.step(np.array([0]))
    assert info["episode_frame_number"][0] == start + 4  # no second, spurious reset


def test_sticky_actions_option():
    """With repeat_action_probability=1 every frame repeats the initial NOOP, so any actions
    play exactly like NOOPs; with 0.25 the env runs and stays seed-deterministic."""
    base = dict(noop_max=0, fire_reset=False)
    sticky = envs.make("Breakout", repeat_action_probability=1.0, **base)
    noop = envs.make("Breakout", **base)
    a, _ = sticky.reset(seed=1)
    b, _ = noop.reset(seed=1)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(3)
    moved = False
    for _ in range(20):
        a = sticky.step(int(rng.integers(1, 4)))[0]
        b = noop.step(0)[0]
        np.testing.assert_array_equal(a, b)
    normal = envs.make("Breakout", **base)
    normal.reset(seed=1)
    for _ in range(20):
        moved |= not np.array_equal(normal.step(2)[0], noop.step(0)[0])
    assert moved  # actions do act when not sticky

    runs = []
    for _ in range(2):
        env = envs.make("Breakout", repeat_action_probability=0.25)
        env.reset(seed=9)
        runs.append(np.stack([env.step(i % 4)[0] for i in range(15)]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_bad_arguments_raise():
    env = envs.make("Breakout")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (4, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"\[0, 3\]"):
            env.step(bad)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-3)
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"x": 1})
    vec = envs.make_vector("Breakout", 2)
    with pytest.raises(RuntimeError):
        vec.step(np.array([0, 0]))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(2,\)"):
        vec.step(np.array([0, 0, 0]))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        vec.step(np.array([0, 4]))
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.array([1, 0])})


def test_partial_reset_with_mask():
    vec = envs.make_vector("Pong", 2)
    first, _ = vec.reset(seed=0)
    for _ in range(3):
        obs, *_ = vec.step(np.array([2, 2]))
    again, info = vec.reset(seed=np.array([0]).tolist(), options={"reset_mask": np.array([True, False])})
    np.testing.assert_array_equal(again[0], first[0])  # reseeded with 0: same first frame
    np.testing.assert_array_equal(again[1], obs[1])  # untouched
