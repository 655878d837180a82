"""Smoke test of scripts/fit_image_field.py: a tiny run writes its figures and its table."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fit_image_field.py"


def _script():
    return runpy.run_path(str(SCRIPT), run_name="fit_image_field")


def test_quick_run_writes_figures_and_table(tmp_path):
    pytest.importorskip("matplotlib")
    table = _script()["main"](["--quick", "--out", str(tmp_path)])
    for tag in ("breakout", "landscape"):
        for kind in ("comparison", "loss", "layout"):
            assert (tmp_path / f"{kind}_{tag}.png").stat().st_size > 0, (kind, tag)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == json.loads(json.dumps(table))
    for tag in ("breakout", "landscape"):
        rows = saved["results"][tag]
        assert set(rows) == {"rmf", "dot", "mlp"}
        assert rows["rmf"]["parameters"] == rows["dot"]["parameters"] == 1420
        assert abs(rows["mlp"]["parameters"] - 1420) <= 0.02 * 1420
        for row in rows.values():
            assert np.isfinite(row["psnr_db"]) and row["final_mse"] >= 0
            assert row["psnr_db"] == pytest.approx(10 * np.log10(1 / row["final_mse"]), rel=1e-6)


def test_images_are_valid():
    ns = _script()
    breakout = ns["load_image"]("breakout")
    assert breakout.shape == (64, 64, 3) and breakout.dtype == np.float32
    assert 0.0 <= breakout.min() and breakout.max() <= 1.0 and breakout.std() > 0.05
    land = ns["load_image"]("landscape", 32)
    assert land.shape == (32, 32, 3) and 0.0 <= land.min() and land.max() <= 1.0 and land.std() > 0.05
    with pytest.raises(ValueError):
        ns["load_image"]("/nonexistent/image.png")


def test_help_exits_cleanly():
    with pytest.raises(SystemExit) as exc:
        _script()["main"](["--help"])
    assert exc.value.code == 0


def test_a_missing_plotting_package_stops_at_start_with_the_extra_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the extra looks like
    with pytest.raises(SystemExit) as exc:
        _script()["main"](["--quick", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib is not installed" in err[0] and 'pip install -e ".[plots]"' in err[0]
    assert not (tmp_path / "out").exists()  # nothing was fitted
