"""The same frames filtered by states of different ages: whole replay windows, each start's
drawings against the frames, and the script on a real (tiny) Breakout run."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aime.eval.filter_age import filter_age, whole_windows
from aime.eval.imagined_play import red_positions
from aime.runtime.checkpoint import load_agent_and_replay

ROOT = Path(__file__).resolve().parents[2]


class EpisodeStarts:
    """A replay stand-in of 8 streams of 40 rows: window ``i`` of a draw starts at row ``i % 30`` of
    stream ``i % 8``; a new episode starts at row 5 of the odd streams (at ``cut``: every row)."""

    def __init__(self, cut: bool = False) -> None:
        self.is_first = np.zeros((8, 40), dtype=bool)
        self.is_first[1::2, 5] = True
        self.is_first[:, :] |= cut
        self.gathered = 0

    def sample_indices(self, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(batch_size)
        return i % 8, (i % 30)[:, None] + np.arange(seq_len)

    def gather(self, stream: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        self.gathered += len(stream)
        return {"is_first": self.is_first[stream[:, None], rows], "stream": stream, "row": rows[:, 0]}


def test_whole_windows_gathers_windows_without_an_episode_start_after_their_first_frame():
    replay = EpisodeStarts()
    windows = whole_windows(replay, 5, 6)
    assert windows["is_first"].shape == (5, 6) and not windows["is_first"][:, 1:].any()
    # even streams are whole; an odd stream's window is whole where it starts at row 5 or after row 5
    assert all(s % 2 == 0 or r >= 5 for s, r in zip(windows["stream"], windows["row"]))
    assert (windows["stream"] % 2 == 1).any() and replay.gathered == 5  # only the kept windows' frames
    with pytest.raises(ValueError, match="found 0 of 2 windows of 6 rows"):
        whole_windows(EpisodeStarts(cut=True), 2, 6, rounds=3)
    with pytest.raises(ValueError, match="seq_len >= 2"):
        whole_windows(replay, 2, 1)


@pytest.fixture(scope="module")
def tiny_windows(tiny_breakout_run):
    agent, _, replay = load_agent_and_replay(tiny_breakout_run)
    replay.rng = np.random.default_rng(0)
    batch = whole_windows(replay, 3, 12)
    return agent, agent.to_tensors({k: batch[k] for k in ("obs", "action", "is_first")})


def test_each_start_filters_the_window_from_there_and_draws_its_last_frames(tiny_windows):
    agent, data = tiny_windows
    wm = agent.world_model
    rows = filter_age(wm, data, [0, 4, 8], last=4, ball=True, seed=3)
    assert [(r["start"], r["age_min"], r["age_max"]) for r in rows] == [(0, 8, 11), (4, 4, 7), (8, 0, 3)]
    with torch.no_grad():  # start 8: the last four frames filtered alone, with the same draws
        torch.manual_seed(3)
        out = wm.observe(data["obs"][:, 8:], data["action"][:, 8:], data["is_first"][:, 8:])
        drawn = wm.decode(out["feat"]).clamp(0, 1).flatten(0, 1)
    real = data["obs"][:, 8:].flatten(0, 1).float() / 255
    assert rows[2]["frame_error"] == pytest.approx(float((drawn - real).square().sum((1, 2, 3)).mean()), rel=1e-5)
    assert rows[0]["frame_error"] != rows[2]["frame_error"]  # eight more frames filtered before
    shown = int((~red_positions(real)["ball_x"].isnan()).sum())
    assert all(r["ball_frames"] == shown for r in rows)
    assert all(0.0 <= r["ball_near"] <= r["ball_drawn"] <= 1.0 for r in rows if shown)
    assert "ball_drawn" not in filter_age(wm, data, [8], last=4)[0]


def test_filter_age_refuses_starts_outside_the_window_and_windows_with_an_episode_start(tiny_windows):
    agent, data = tiny_windows
    with pytest.raises(ValueError, match=r"starts must be a non-empty list in \[0, 8\]"):
        filter_age(agent.world_model, data, [0, 9], last=4)
    with pytest.raises(ValueError, match=r"last must lie in \[1, 11\]"):
        filter_age(agent.world_model, data, [0], last=12)
    cut = dict(data, is_first=data["is_first"].clone())
    cut["is_first"][0, 5] = True
    with pytest.raises(ValueError, match="episode start after its first frame"):
        filter_age(agent.world_model, cut, [0], last=4)


def test_the_script_prints_one_row_per_start(tiny_breakout_run, tiny_catch_run, tmp_path, capsys):
    out = tmp_path / "age.json"
    script = ROOT / "scripts" / "filter_age.py"
    options = ["--windows", "2", "--seq-len", "10", "--last", "4", "--starts", "0", "6"]
    result = subprocess.run(  # the command line itself, once
        [sys.executable, str(script), str(tiny_breakout_run), *options, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())[str(tiny_breakout_run)]
    assert [r["start"] for r in report["rows"]] == [0, 6] and report["agent_steps"] == 48
    assert "| filtered from | state ages | frame_error | ball_drawn | ball_near |" in result.stdout
    assert "| 6 | 0-3 |" in result.stdout
    main = runpy.run_path(str(script))["main"]
    assert main([str(tiny_catch_run), *options]) == 0  # not Breakout: no ball figures
    printed = capsys.readouterr().out
    assert "| filtered from | state ages | frame_error |" in printed and "ball_drawn" not in printed
    assert torch.is_grad_enabled()  # run in a process of others' work, it leaves autograd as it was
    with pytest.raises(SystemExit) as stop:
        main([str(tiny_breakout_run), *options[:6], "--starts", "7"])
    assert stop.value.code == 2 and "--starts must lie in [0, 6]" in capsys.readouterr().err
