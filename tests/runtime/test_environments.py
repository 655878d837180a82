import numpy as np

from aime.config import load_config
from aime.runtime.environments import EpisodeTracker, env_options


def test_episode_tracker_follows_next_step_autoreset():
    tracker = EpisodeTracker(2)
    no = np.zeros(2, bool)
    assert tracker.step(np.array([1.0, 0.0]), no, no) == []
    ended = tracker.step(np.array([2.0, 5.0]), np.array([True, False]), no)
    assert ended == [(0, 3.0, 2)]
    # the next step resets env 0: its reward (0) and step do not count for the new episode
    assert tracker.step(np.array([0.0, 1.0]), no, np.array([False, True])) == [(1, 6.0, 3)]
    ended = tracker.step(np.array([4.0, 0.0]), np.array([True, False]), no)
    assert ended == [(0, 4.0, 1)]


def test_env_options_for_atari_and_catch():
    cfg = load_config(["cpu"], ["env.terminal_on_life_loss=true", "env.name=Breakout"])
    train, evaluation = env_options(cfg), env_options(cfg, evaluation=True)
    assert train["terminal_on_life_loss"] and not evaluation["terminal_on_life_loss"]
    assert train["frame_skip"] == 4 and train["max_episode_frames"] == 108_000
    assert train["size"] == 84
    # Catch takes none of the Atari options, only the frame size
    assert env_options(load_config(["debug"], ["model.image_size=64", "model.attention_resolution=16"])) == {"size": 64}
