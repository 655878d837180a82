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


def test_a_lost_life_ends_an_episode_for_learning_but_not_the_game():
    tracker = EpisodeTracker(2)
    no = np.zeros(2, bool)
    life = np.array([True, False])
    assert tracker.step(np.array([1.0, 2.0]), life, no, life_loss=life) == []  # env 0 lost a life
    assert tracker.done.tolist() == [True, False]  # the next step starts a new episode for learning
    assert tracker.step(np.array([0.0, 1.0]), no, no, life_loss=no) == []  # env 0's game goes on
    # env 0's game ends: the score of both lives, the continuing step not counted; env 1 is cut
    ended = tracker.step(np.array([4.0, 3.0]), np.array([True, False]), np.array([False, True]), life_loss=no)
    assert ended == [(0, 5.0, 2), (1, 6.0, 3)]
    # a lost life in the game's last step (truncated too) ends the game
    assert tracker.step(np.array([0.0, 1.0]), life, life, life_loss=life) == [(0, 0.0, 0)]
