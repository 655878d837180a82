"""The play history: episodes grouped by the step they began, the Breakout paddle read from real
frames, and the script on a real (tiny) run's replay."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import envs
from aime.eval.play_history import (
    ball_paddle_distance,
    breakout_ball,
    breakout_paddle,
    episode_history,
    paddle_at_wall,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_paddle_is_found_on_real_breakout_frames_and_against_each_wall():
    env = envs.make("Breakout")  # actions NOOP, FIRE, RIGHT, LEFT
    obs, _ = env.reset(seed=0)
    frames = [obs]
    for action in [2] * 12 + [3] * 20:
        frames.append(env.step(action)[0])
    env.close()
    left, right = breakout_paddle(np.stack(frames))
    assert not np.isnan(left).any() and (right - left >= 3).all()
    assert 20 < left[0] and right[0] < 70  # it starts in the middle
    assert (right[4:12] == 79).all() and (left[-8:] == 5).all()  # against the right wall, then the left
    at_wall = paddle_at_wall(np.stack(frames))
    assert at_wall[0] == 0 and at_wall[4:12].all() and at_wall[-8:].all() and at_wall[17] == 0
    blank = np.zeros((2, 3, 84, 84), np.uint8)
    assert np.isnan(paddle_at_wall(blank)).all()
    with pytest.raises(ValueError, match=r"uint8 \[..., 3, 84, 84\]"):
        breakout_paddle(np.zeros((3, 64, 64), np.uint8))


@pytest.mark.skipif(importlib.util.find_spec("ocatari") is None, reason="needs OCAtari (the objects extra)")
def test_the_ball_and_paddle_read_from_frames_match_the_boxes_from_ram():
    from envs.objects import record_objects

    record = record_objects("breakout", 400, seed=1)  # random play
    box, visible = record["boxes"], record["visible"]
    centre_x, centre_y = (box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2
    x, y = breakout_ball(record["obs"])
    low = visible[:, 0] & (centre_y[:, 0] > 39) & (centre_y[:, 0] < 73)  # well inside the rows looked at
    assert low.sum() > 100 and not np.isnan(x[low]).any()
    assert np.abs(x[low] - centre_x[low, 0]).mean() < 1.0 and np.abs(y[low] - centre_y[low, 0]).mean() < 1.0
    assert np.isnan(x[~visible[:, 0]]).all()  # no ball in play, none found
    left, right = breakout_paddle(record["obs"])
    assert np.median(np.abs((left + right) / 2 - centre_x[:, 1])) < 1.5
    distance = ball_paddle_distance(record["obs"])
    counted = ~np.isnan(distance)
    assert (y[counted] > 42).all() and np.nanmax(distance) < 76
    assert np.abs(distance[counted] - np.abs(centre_x[counted, 0] - centre_x[counted, 1])).mean() < 2.0


def test_episodes_are_grouped_by_the_stage_they_began_in_and_cut_ones_are_left_out():
    first = np.zeros((2, 10), bool)
    first[0, [0, 3, 8]] = True  # stream 0: episodes at rows 0-2 and 3-7; 8-9 is unfinished
    first[1, [2, 4]] = True  # stream 1: rows 0-1 began before the rows; 2-3 is an episode; 4-9 unfinished
    reward = np.zeros((2, 10))
    reward[0, 5], reward[1, 3] = 4.0, 1.0
    action = np.zeros((2, 10), int)
    action[0, 3:8] = 2
    feature = np.arange(20.0)  # step n of the flattened [S, L] rows carries n
    data = {"action": action, "reward": reward, "is_first": first, "obs": np.zeros((2, 10, 1))}
    # rows are 2 agent steps apart (2 streams); the first row is agent step 100; stages of 5 steps
    undefined = lambda obs: np.full(len(obs), np.nan)  # noqa: E731
    history = episode_history(data, 100, 5, 3, 3, features={"n": lambda obs: feature, "none": undefined})
    assert [row["start"] for row in history] == [100, 105]
    early, late = history
    assert early["episodes"] == 2  # stream 0 rows 0-2 (step 100) and stream 1 rows 2-3 (step 104)
    assert early["mean_length"] == 2.5 and early["short_share"] == 1.0 and early["mean_return"] == 0.5
    assert early["action_0"] == 1.0 and early["action_2"] == 0.0
    assert early["n"] == pytest.approx(np.mean([0, 1, 2, 12, 13])) and np.isnan(early["none"])
    assert late["episodes"] == 1 and late["mean_length"] == 5 and late["short_share"] == 0.0
    assert late["mean_return"] == 4.0 and late["action_2"] == 1.0 and "action_1" in late
    with pytest.raises(ValueError, match="every >= 1"):
        episode_history(data, 0, 0)


def test_the_script_tables_a_runs_replay(tiny_catch_run, tmp_path):
    out = tmp_path / "history.json"
    command = [sys.executable, str(ROOT / "scripts" / "play_history.py"), str(tiny_catch_run), "--every", "20"]
    result = subprocess.run(command + ["--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| agent steps | episodes | mean length |" in result.stdout and "paddle" not in result.stdout
    history = json.loads(out.read_text())[str(tiny_catch_run)]
    assert history and all(row["start"] % 20 == 0 for row in history)
    shares = [sum(v for k, v in row.items() if k.startswith("action_")) for row in history]
    assert shares == pytest.approx([1.0] * len(history))
    result = subprocess.run(command[:2] + [str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no checkpoint found" in result.stderr
