"""scripts/map_gradients.py end to end: a small Breakout world model's terms against its maps' entropy."""

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

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "map_gradients.py"


@pytest.fixture(scope="module")
def script() -> dict:
    return runpy.run_path(str(SCRIPT), run_name="map_gradients_under_test")


def test_map_gradients_prints_a_row_per_model_and_writes_the_figures(script, tmp_path, capsys):
    paths = []
    for attention in ("true", "false"):
        cfg = load_config(["debug"], ["env.name=Breakout", f"model.attention={attention}"])
        torch.manual_seed(0)
        paths.append(tmp_path / f"wm_{attention}.pt")
        save_world_model(paths[-1], VRNN.from_config(cfg.model, 4, cfg.train), cfg, 4)
    out = tmp_path / "grads.json"
    results = script["main"]([str(paths[0]), "--batch", "2", "--seq-len", "4", "--terms", "kl", "attention_target"])
    res = results[str(paths[0])]
    assert set(res["terms"]) == {"kl", "attention_target"} and 0 < res["entropy_ratio"] <= 1
    assert all(-1 <= t["alignment"] <= 1 and t["grad_norm"] >= 0 for t in res["terms"].values())
    assert f"| {paths[0]} |" in capsys.readouterr().out
    script["main"]([str(paths[0]), "--batch", "2", "--seq-len", "4", "--terms", "kl", "--json", str(out)])
    assert set(json.loads(out.read_text())["models"][str(paths[0])]["terms"]) == {"kl"}
    with pytest.raises(SystemExit) as exit_info:  # the ablation has no maps
        script["main"]([str(paths[1]), "--batch", "2", "--seq-len", "4"])
    assert exit_info.value.code == 2 and "no attention schema" in capsys.readouterr().err
