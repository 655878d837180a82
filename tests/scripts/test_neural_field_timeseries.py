"""Smoke test of scripts/neural_field_timeseries.py: a tiny run trains every model and writes its outputs."""

import json
import math
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "neural_field_timeseries.py"


def _script():
    return runpy.run_path(str(SCRIPT), run_name="neural_field_timeseries")


@pytest.mark.parametrize("series", ["mackey-glass", "sines"])
def test_quick_run_writes_table_json_and_plot(tmp_path, series):
    pytest.importorskip("matplotlib")
    summary = _script()["main"](["--quick", "--series", series, "--out", str(tmp_path)])
    assert (tmp_path / "predictions.png").stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    names = [row["model"] for row in saved["table"]]
    assert names[:5] == ["NeuralField", "NeuralField (BPTT)", "SimpleNeuralField", "SimpleNeuralField (BPTT)", "GRU"]
    for row in saved["table"]:
        for key in ("one_step_rmse", "free_run_rmse", "free_run_rmse_short"):
            assert math.isfinite(row[key]) and row[key] >= 0
    params = {row["model"]: row["parameters"] for row in saved["table"]}
    assert params["NeuralField"] == params["NeuralField (BPTT)"] > 0
    assert abs(params["GRU"] - params["NeuralField"]) <= 0.5 * params["NeuralField"]
    assert len(saved["free_run_rmse_per_step"]["GRU"]) == 10  # the quick horizon
    assert summary["table"] == saved["table"]


def test_mackey_glass_is_bounded_and_not_constant():
    series = _script()["mackey_glass"](300)
    assert series.shape == (300,)
    assert 0.2 < series.min() < series.max() < 1.6  # the attractor's usual range
    assert series.std() > 0.1


def test_bad_arguments_exit():
    main = _script()["main"]
    with pytest.raises(SystemExit):
        main(["--window", "4", "--burn-in", "8"])
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
