"""scripts/evaluate.py as a real process (a random policy on Catch: no training needed), and the
episode recorder it uses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from aime.runtime.recording import EpisodeRecorder, compose_frames

ROOT = Path(__file__).resolve().parents[2]
EVALUATE = [sys.executable, str(ROOT / "scripts" / "evaluate.py")]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def evaluate(*args):
    return subprocess.run(EVALUATE + list(args), capture_output=True, text=True, env=ENV, timeout=120)


@pytest.mark.parametrize("video", ["gif", "mp4"])
def test_every_episode_is_saved_with_its_last_frame_at_3x_and_as_a_video(tmp_path, video):
    frames, results = tmp_path / "frames", tmp_path / "random.json"
    result = evaluate(
        "--random",
        "--env",
        "Catch",
        "--episodes",
        "3",
        "--envs",
        "2",
        "--save-frames",
        str(frames),
        "--video",
        video,
        "--json",
        str(results),
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(results.read_text())
    assert summary["episodes"] == 3 and summary["lengths"] == [9, 9, 9] and summary["capped"] == 0
    assert summary["return_mean"] == pytest.approx(np.mean(summary["returns"]))
    for episode in range(3):  # both environments' episodes, not only the first's
        pngs = sorted(frames.glob(f"episode_{episode:03d}_frame_*.png"))
        assert len(pngs) == 9 + 1  # the first observation, then one per step: the last one included
        assert cv2.imread(str(pngs[0])).shape == (252, 252, 3)  # 84 x 3, nearest neighbour
        if video == "gif":
            ok, animation = cv2.imreadanimation(str(frames / f"episode_{episode:03d}.gif"))
            assert ok and len(animation.frames) == 10
        else:
            capture = cv2.VideoCapture(str(frames / f"episode_{episode:03d}.mp4"))
            assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 10
            capture.release()
    # the last saved frame is the episode's end: Catch's ball has reached the paddle's row
    last = cv2.imread(str(sorted(frames.glob("episode_000_frame_*.png"))[-1]))
    first = cv2.imread(str(sorted(frames.glob("episode_000_frame_*.png"))[0]))
    assert not np.array_equal(first, last)
    assert "saved 30 frames of 3 episodes" in result.stdout


def test_a_cap_on_the_episode_steps_is_reported(tmp_path):
    result = evaluate(
        "--random", "--env", "Catch", "--episodes", "2", "--max-steps", "4", "--json", str(tmp_path / "r.json")
    )
    assert result.returncode == 0, result.stderr
    assert "2 of 2 episodes hit the cap of 4 agent steps" in result.stdout
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["capped"] == 2 and summary["lengths"] == [4, 4] and summary["max_steps"] == 4


def test_video_without_a_folder_is_a_one_line_error():
    result = evaluate("--random", "--env", "Catch", "--video", "gif")
    assert result.returncode == 2 and "--video goes with --save-frames" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_recorder_keeps_the_last_frame_past_max_frames_and_draws_attention_beside_the_frame(tmp_path):
    recorder = EpisodeRecorder(tmp_path, max_frames=3)
    obs = np.zeros((2, 3, 84, 84), np.uint8)
    attention = torch.full((2, 21, 21), 1 / 441)
    for t in range(6):  # sub-env 0 plays episode 4 (6 frames), sub-env 1 no counted episode
        obs[0] = t
        recorder(obs, {"attention": attention}, np.array([4, -1]), np.array([t == 5, False]))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["episode_004_frame_00000.png", "episode_004_frame_00001.png", "episode_004_frame_00005.png"]
    assert cv2.imread(str(tmp_path / names[-1]))[0, 0, 0] == 5  # the true last frame
    assert "3 frames past --max-frames 3" in recorder.summary()
    assert compose_frames(obs, attention).shape == (2, 252, 504, 3)  # frame | attention overlay
