"""Smoke test of scripts/train_nca.py: a tiny run writes its snapshot grid, loss plot and summary."""

import json
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_nca.py"


def _script():
    return runpy.run_path(str(SCRIPT), run_name="train_nca")


def test_quick_run_writes_outputs(tmp_path):
    pytest.importorskip("matplotlib")
    summary = _script()["main"](["--quick", "--out", str(tmp_path)])
    for tag in ("red", "breakout"):
        assert (tmp_path / f"snapshots_{tag}.png").stat().st_size > 0
        assert (tmp_path / f"loss_{tag}.png").stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == json.loads(json.dumps(summary))
    for tag in ("red", "breakout"):
        row = saved["results"][tag]
        assert row["steps"] == 30
        assert row["spikes"] >= 0 and row["min_loss"] <= row["final_loss_mean_last_100"] + 1e-9


def test_targets_load():
    ns = _script()
    red = ns["load_target"]("red", 8)
    assert red.shape == (1, 3, 8, 8) and torch.equal(red[0, 0], torch.ones(8, 8)) and red[0, 1:].abs().sum() == 0
    img = ns["load_target"]("breakout", 16)
    assert img.shape == (1, 3, 16, 16) and 0 <= img.min() and img.max() <= 1 and img.std() > 0.05


def test_help_exits_cleanly():
    with pytest.raises(SystemExit) as exc:
        _script()["main"](["--help"])
    assert exc.value.code == 0
