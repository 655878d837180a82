"""The model report: returns that followed, the figures against known predictions, and the script
on a real (tiny) run's checkpoint and replay."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aime.eval.model_report import discounted_returns, model_report
from aime.runtime.checkpoint import load_agent_and_replay
from aime.runtime.replay import ReplayBuffer

ROOT = Path(__file__).resolve().parents[2]


def test_discounted_returns_end_at_terminals_and_are_unknown_past_a_cut():
    #               t:  0    1    2    3    4    5    6
    reward = np.array([[0.0, 1.0, 0.0, 2.0, 0.0, 5.0, 0.0]])
    terminal = np.array([[0, 0, 0, 1, 0, 0, 0]], bool)
    first = np.array([[1, 0, 0, 0, 1, 0, 0]], bool)  # row 4 starts an episode after the terminal
    g = discounted_returns(reward, terminal, first, gamma=0.5)
    # G_2 = r_3 = 2 (o_3 ends it); G_1 = r_2 + 0.5 G_2 = 1; G_0 = r_1 + 0.5 G_1 = 1.5
    assert g[0, :3].tolist() == [1.5, 1.0, 2.0]
    assert np.isnan(g[0, 3])  # a terminal row has no future
    assert np.isnan(g[0, 4:]).all()  # the second episode does not end inside the rows
    cut = discounted_returns(reward, np.zeros_like(terminal), first, gamma=0.5)
    assert np.isnan(cut[0, :4]).all()  # a new episode without a terminal: a time limit, tail unknown


def test_the_report_scores_perfect_and_blind_predictions():
    rng = np.random.default_rng(0)
    s, t = 2, 200
    reward = (rng.random((s, t)) < 0.1).astype(np.float32)
    terminal = rng.random((s, t)) < 0.05
    first = np.zeros((s, t), bool)
    first[:, 0] = True
    first[:, 1:] = terminal[:, :-1]  # an episode starts after each terminal
    rows = {"reward": reward, "is_terminal": terminal, "is_first": first, "action": rng.integers(0, 3, (s, t))}
    returns = np.nan_to_num(discounted_returns(reward, terminal, first, 0.9))
    perfect = {"reward": reward, "continue": 1.0 - terminal, "value": returns}
    report = model_report(perfect, rows, gamma=0.9, num_actions=4, burn_in=10)
    assert report["steps"] == s * (t - 10)
    assert report["reward_event_recall"] == 1.0 and report["reward_false_alarms"] == 0.0
    assert report["continue_at_terminals"] == 0.0 and report["continue_elsewhere"] == 1.0
    assert report["value_return_corr"] == pytest.approx(1.0) and report["value_mean"] == pytest.approx(
        report["return_mean"]
    )
    assert sum(report[f"action_{a}"] for a in range(4)) == pytest.approx(1.0) and report["action_3"] == 0.0
    blind = {"reward": np.zeros((s, t)), "continue": np.ones((s, t)), "value": rng.normal(size=(s, t))}
    report = model_report(blind, rows, gamma=0.9, num_actions=4, burn_in=10)
    assert report["reward_event_recall"] == 0.0 and report["continue_at_terminals"] == 1.0
    assert abs(report["value_return_corr"]) < 0.2
    with pytest.raises(ValueError, match="burn_in must be in"):
        model_report(blind, rows, gamma=0.9, num_actions=4, burn_in=t)


@pytest.fixture
def run(tiny_catch_run):
    return tiny_catch_run


def test_the_script_reports_on_a_runs_newest_rows(run, tmp_path):
    out = tmp_path / "report.json"
    command = [sys.executable, str(ROOT / "scripts" / "model_report.py"), str(run), "--rows", "16", "--burn-in", "4"]
    result = subprocess.run(command + ["--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| terminals |" in result.stdout and "| action 2 share |" in result.stdout
    report = json.loads(out.read_text())["report"][str(run)]
    assert report["steps"] == 2 * (16 - 4)
    assert 0.0 <= report["continue_elsewhere"] <= 1.0
    result = subprocess.run(command[:3] + ["--rows", "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "need --rows >= 2" in result.stderr
    result = subprocess.run(command[:2] + [str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no checkpoint found" in result.stderr
    result = subprocess.run(command + ["--tracking", "10"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "--tracking is for Breakout runs" in result.stderr


def test_survival_before_terminals_multiplies_the_continue_probabilities_of_the_window():
    t = 12
    terminal = np.zeros((1, t), bool)
    terminal[0, 7] = True
    first = np.zeros((1, t), bool)
    first[0, [0, 8, 10]] = True  # an episode starts after the terminal, at 8, and another at 10 (a cut)
    rows = {"reward": np.zeros((1, t)), "is_terminal": terminal, "is_first": first, "action": np.zeros((1, t), int)}
    cont = np.ones((1, t))
    cont[0, 5:8] = [0.5, 0.5, 0.2]  # the loss foreseen over the three steps before and at the terminal
    predicted = {"reward": np.zeros((1, t)), "continue": cont, "value": np.zeros((1, t))}
    report = model_report(predicted, rows, gamma=0.9, num_actions=1, burn_in=0, window=4)
    assert report["survival_before_terminals"] == pytest.approx(0.05)  # the window 4..7: 1 * 0.5 * 0.5 * 0.2
    # windows inside one episode without a terminal end at 3, 4, 5 and 6 (not 8..11, which crosses 10)
    assert report["survival_elsewhere"] == pytest.approx((1 + 1 + 0.5 + 0.25) / 4)
    report = model_report(predicted, rows, gamma=0.9, num_actions=1, burn_in=0, window=1)
    assert report["survival_before_terminals"] == pytest.approx(0.2) and report["continue_at_terminals"] == 0.2
    with pytest.raises(ValueError, match="window must be in"):
        model_report(predicted, rows, gamma=0.9, num_actions=1, burn_in=4, window=9)


def test_a_checkpoint_replaced_while_it_is_read_is_read_again(run, tmp_path, monkeypatch):
    real = ReplayBuffer.load
    calls = []

    def saved_meanwhile(directory):  # the run saves a new checkpoint (a new folder) while the replay is read
        calls.append(directory)
        if len(calls) == 1:
            shutil.copytree(run / "checkpoint", tmp_path / "new")
            shutil.rmtree(run / "checkpoint")
            (tmp_path / "new").rename(run / "checkpoint")
            raise ValueError("action.npy: expected int64 (2, 20), got int64 (2, 24)")
        return real(directory)

    def damaged(directory):
        calls.append(directory)
        raise ValueError("obs.npy is damaged")

    monkeypatch.setattr(ReplayBuffer, "load", staticmethod(saved_meanwhile))
    agent, cfg, replay = load_agent_and_replay(str(run), "cpu")
    assert len(calls) == 2 and replay.filled == 20 and cfg.env.num_envs == 2
    calls.clear()
    monkeypatch.setattr(ReplayBuffer, "load", staticmethod(damaged))
    with pytest.raises(ValueError, match="damaged"):
        load_agent_and_replay(str(run), "cpu")
    assert len(calls) == 1  # nothing was replaced: no second try
