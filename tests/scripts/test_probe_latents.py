"""scripts/probe_latents.py end to end: a small Breakout world model, probes fitted and scored."""

import importlib.util
import json
import runpy
from pathlib import Path

import pytest
import torch

from aime.config import load_config
from aime.runtime.checkpoint import save_world_model
from aime.world_model.vrnn import VRNN

if importlib.util.find_spec("ocatari") is None:  # `make install` installs it (--no-deps)
    pytest.skip("ocatari is not installed: pip install --no-deps ocatari==2.2.1", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "probe_latents.py"


@pytest.fixture(scope="module")
def script() -> dict:
    return runpy.run_path(str(SCRIPT), run_name="probe_latents_under_test")


def test_probe_latents_fits_every_input_and_target(script, tmp_path, capsys):
    cfg = load_config(["debug"], ["env.name=Breakout"])
    torch.manual_seed(0)
    model = VRNN.from_config(cfg.model, 4, cfg.train)
    path = tmp_path / "wm.pt"
    save_world_model(path, model, cfg, 4)
    out = tmp_path / "probes.json"
    results = script["main"]([str(path), "--streams", "2", "--rows", "120", "--horizons", "4", "--json", str(out)])
    fits = results[str(path)]
    assert sorted(fits) == ["deter/ridge", "imagined 4/ridge", "post/ridge", "prior/ridge"]
    for fit in fits.values():
        assert set(fit) == set(script["TARGETS"])
        assert all(f["rows_test"] > 0 and f["mae_0"] >= 0 for f in fit.values())
    table = capsys.readouterr().out
    assert table.count(f"| {path} |") == 4 and "| the training rows' mean |" in table
    assert json.loads(out.read_text())["models"][str(path)]["post/ridge"]["paddle x"]["rows_train"] == 120
    # imagined rows need 4 earlier rows of their episode: at least the first 4 are left out
    assert fits["imagined 4/ridge"]["paddle x"]["rows_train"] <= 116


def test_probe_latents_rejects_a_game_without_ball_and_paddle(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script["main"]([str(tmp_path / "missing.pt"), "--env", "Pong"])
    assert exit_info.value.code == 2 and "no ball and paddle" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        script["main"]([str(tmp_path / "missing.pt"), "--rows", "10", "--horizons", "10"])
    assert exit_info.value.code == 2 and "--horizons must lie in [1, --rows - 1 = 9]" in capsys.readouterr().err
