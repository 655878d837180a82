"""refit_world_model.py on a real (tiny) Breakout run: a new world model trained on its replay,
imagination measured between updates, overrides applied, bad input refused."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aime.agent.agent import Agent, world_model_update
from aime.runtime.checkpoint import CheckpointError, load_agent_state

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "refit_world_model.py")


def test_the_script_trains_a_new_world_model_and_measures_imagination(tiny_breakout_run, tmp_path):
    out = tmp_path / "rows.json"
    command = [sys.executable, SCRIPT, str(tiny_breakout_run), "--updates", "3", "--every", "2", "--windows", "2"]
    result = subprocess.run(command + ["--json", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [row["updates"] for row in rows] == [0, 2, 3]
    assert "losses/reconstruction" not in rows[0] and rows[1]["losses/reconstruction"] > 0
    horizon = load_agent_state(tiny_breakout_run / "checkpoint" / "agent.pt")["config"]["train"]["horizon"]
    assert all(len(row["right ball_drawn_by_step"]) == horizon for row in rows)
    assert all(0.0 <= row["follow survival"] <= 1.0 for row in rows)
    assert "| updates | seconds |" in result.stdout


def test_overrides_reach_the_new_model_and_bad_input_is_refused(tiny_breakout_run, tiny_catch_run, tmp_path):
    out = tmp_path / "rows.json"
    written = (tiny_breakout_run / "checkpoint" / "agent.pt").stat().st_mtime_ns
    command = [sys.executable, SCRIPT, str(tiny_breakout_run), "--updates", "1", "--windows", "1"]
    longer = subprocess.run(command + ["--set", "train.seq_len=8", "--json", str(out)], capture_output=True, text=True)
    assert longer.returncode == 0, longer.stderr
    assert json.loads(out.read_text())["overrides"] == ["train.seq_len=8"]
    assert json.loads(out.read_text())["continue"] is False
    resumed = subprocess.run(command + ["--continue", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(out.read_text())["continue"] is True
    reshaped = subprocess.run(command + ["--continue", "--set", "model.deter=40"], capture_output=True, text=True)
    assert reshaped.returncode == 2 and "--continue needs the run's own world-model shapes" in reshaped.stderr
    bad = subprocess.run(command + ["--set", "train.seq_lenn=8"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "train.seq_len" in bad.stderr
    catch = subprocess.run([sys.executable, SCRIPT, str(tiny_catch_run)], capture_output=True, text=True, timeout=120)
    assert catch.returncode == 2 and "the scripts play Breakout" in catch.stderr
    assert (tiny_breakout_run / "checkpoint" / "agent.pt").stat().st_mtime_ns == written  # only read


def test_continue_starts_from_the_runs_own_world_model_and_refuses_new_shapes(tiny_breakout_run):
    script = runpy.run_path(SCRIPT, run_name="refit_under_test")
    cfg, replay, payload = script["read_run"](str(tiny_breakout_run), ["train.model_lr=1e-5"])
    trained = Agent(cfg, int(payload["num_actions"]), "cpu")  # a world model one update on, as a run's would be
    trained.load_state_dict(payload["agent"])
    batch = trained.to_tensors(replay.sample(2, 8))
    world_model_update(trained.world_model, trained.model_opt, batch, cfg.train.grad_clip)
    payload["agent"], payload["optimizers"]["model"] = trained.state_dict(), trained.model_opt.state_dict()
    agent = Agent(cfg, int(payload["num_actions"]), "cpu")
    script["continue_from"](agent, payload)
    ours, theirs = agent.world_model.state_dict(), trained.world_model.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in ours.items())
    moments = [
        (a["exp_avg"], b["exp_avg"]) for a, b in zip(agent.model_opt.state.values(), trained.model_opt.state.values())
    ]
    assert len(agent.model_opt.state) == len(trained.model_opt.state) > 0
    assert all(torch.equal(a, b) for a, b in moments)
    assert agent.model_opt.param_groups[0]["lr"] == 1e-5  # the override, not the saved rate
    cfg, _, payload = script["read_run"](str(tiny_breakout_run), ["model.deter=40"])
    with pytest.raises(CheckpointError, match="--continue needs the run's own world-model shapes"):
        script["continue_from"](Agent(cfg, int(payload["num_actions"]), "cpu"), payload)
