"""refit_world_model.py on a real (tiny) Breakout run: a new world model trained on its replay,
imagination measured between updates, overrides applied, bad input refused."""

import json
import subprocess
import sys
from pathlib import Path

from aime.runtime.checkpoint import load_agent_state

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
    bad = subprocess.run(command + ["--set", "train.seq_lenn=8"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "train.seq_len" in bad.stderr
    catch = subprocess.run([sys.executable, SCRIPT, str(tiny_catch_run)], capture_output=True, text=True, timeout=120)
    assert catch.returncode == 2 and "the scripts play Breakout" in catch.stderr
    assert (tiny_breakout_run / "checkpoint" / "agent.pt").stat().st_mtime_ns == written  # only read
