"""relearn_behavior.py on a real (tiny) run: new actor and critic in its world model, games played."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_script_learns_anew_and_plays_between_updates(tiny_catch_run, tmp_path):
    out = tmp_path / "rows.json"
    command = [sys.executable, str(ROOT / "scripts" / "relearn_behavior.py"), str(tiny_catch_run), "--updates", "3"]
    command += ["--every", "2", "--episodes", "2", "--fresh", "--set", "train.entropy=0.01", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [row["updates"] for row in rows] == [0, 2, 3]
    assert all(-1.0 <= row["score"] <= 1.0 for row in rows)  # Catch: one catch or miss per game
    assert 0.0 < rows[-1]["actor_entropy"] <= 1.1 and "paddle at a wall" not in rows[-1]
    assert "| updates | score |" in result.stdout
    bad = subprocess.run(command[:3] + ["--set", "train.entropyy=1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "train.entropy" in bad.stderr
    other = subprocess.run(command[:3] + ["--replay", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "no checkpoint found" in other.stderr
