"""Smoke test of scripts/train_world_model.py: a tiny run on Catch in-process, its files and JSON."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import numpy as np
import pytest

from aime.config import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_world_model.py"


@pytest.fixture(scope="module")
def script() -> dict:
    return runpy.run_path(str(SCRIPT), run_name="train_world_model_under_test")


@pytest.fixture(scope="module")
def quick_run(script, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("wm")
    return script["main"](["--quick", "--out", str(out)]), out


def test_quick_run_writes_outputs(quick_run, capsys):
    results, out = quick_run
    for name in ("results.json", "openloop_strip.png", "tb/metrics.jsonl"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert any((out / "tb").glob("events.out.tfevents.*"))
    assert (out / "openloop_strip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tags = set()
    for line in (out / "tb" / "metrics.jsonl").read_text().splitlines():
        tags |= set(json.loads(line))
    assert {"full/loss", "full/reconstruction", "ablation/loss", "ablation/kl"} <= tags
    assert json.loads((out / "results.json").read_text())["models"].keys() == {"full", "ablation"}
    from aime.runtime.checkpoint import load_world_model

    for label, attention in (("full", True), ("ablation", False)):  # the saved models load as trained
        model, cfg = load_world_model(out / f"{label}.pt")
        assert model.attention_on is attention and cfg.model.attention is attention and cfg.env.name == "Catch"


def test_results_have_finite_metrics_per_horizon(quick_run):
    results, _ = quick_run
    horizon = results["settings"]["horizon"]
    full, ablation = results["models"]["full"], results["models"]["ablation"]
    assert full["attention"] is True and ablation["attention"] is False
    # the schema adds parameters; the ablation keeps encoder, decoder and heads
    assert full["parameters"] > ablation["parameters"] > 0
    for stats in (full, ablation):
        assert stats["median_update_s"] > 0 and stats["nonfinite_updates"] == 0
        assert all(math.isfinite(v) for v in stats["final_losses"].values())
        ol = stats["open_loop"]
        for key in ("mse", "psnr", "reward_abs_error"):
            assert len(ol[key]) == horizon and all(math.isfinite(v) for v in ol[key]), key
        # PSNR is derived from the per-frame MSE: a frame error in (0, 1] gives PSNR >= 0
        assert all(0 < m <= 1 for m in ol["mse"]) and all(p >= 0 for p in ol["psnr"])
    base = results["baselines"]["copy_last"]
    assert len(base["psnr"]) == horizon and all(math.isfinite(v) for v in base["psnr"])
    assert results["update_time_ratio"] == pytest.approx(full["median_update_s"] / ablation["median_update_s"])
    assert results["data"]["eval_windows"] >= 1 and results["data"]["train_rows"] > 0


def test_record_follows_the_replay_row_convention(script):
    cfg = load_config(["debug"], ["env.name=Catch"])
    data, num_actions = script["record"](cfg, 2, 40, 0, 0)
    assert num_actions == 3 and data["obs"].shape == (2, 20, 3, 84, 84) and data["obs"].dtype == np.uint8
    first, terminal, reward = data["is_first"], data["is_terminal"], data["reward"]
    # Catch episodes are 10 rows: a first row, 8 falling rows and a terminal row with reward +-1
    assert first[:, 0].all() and first[:, 10].all() and first.sum() == 4
    assert terminal[:, 9].all() and terminal[:, 19].all() and terminal.sum() == 4
    assert (np.abs(reward[terminal]) == 1).all() and (reward[~terminal] == 0).all()


def test_eval_windows_skip_episode_boundaries(script):
    first = np.zeros((1, 12), dtype=bool)
    first[0, [0, 5]] = True
    held_out = {
        "obs": np.zeros((1, 12, 3, 2, 2), np.uint8),
        "action": np.arange(12)[None],
        "reward": np.zeros((1, 12), np.float32),
        "is_first": first,
        "is_terminal": np.zeros_like(first),
    }
    windows = script["eval_windows"](held_out, 4, 100)
    # starts 0..1 lie in the first episode (rows 0-4), 5..8 in the second (rows 5-11)
    assert windows["action"][:, 0].tolist() == [0, 1, 5, 6, 7, 8]
    assert not windows["is_first"][:, 1:].any()
    assert script["eval_windows"](held_out, 7, 100)["action"][:, 0].tolist() == [5]
    assert script["eval_windows"](held_out, 8, 100)["action"].shape == (0, 8)
    assert script["eval_windows"](held_out, 4, 2)["action"].shape == (2, 4)


def test_bad_arguments_exit(script):
    with pytest.raises(SystemExit):
        script["main"](["--updates", "0"])
    with pytest.raises(SystemExit):
        script["main"](["--num-envs", "2", "--eval-envs", "2"])
    with pytest.raises(SystemExit):
        script["main"](["--quick", "--set", "model.detr=8"])


class _Configured(Exception):
    """Raised by the stand-in for configure_process: the test stops the script there."""


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_start_up_tunes_the_process_for_the_chosen_device(script, monkeypatch, tmp_path, device):
    import torch

    names = script["main"].__globals__  # the functions' own globals (run_path returns a copy)
    seen = []

    def configure(chosen):
        seen.append(chosen)
        raise _Configured

    monkeypatch.setitem(names, "configure_process", configure)
    with pytest.raises(_Configured):
        names["main"](["--quick", "--device", device, "--out", str(tmp_path / "wm")])
    assert seen == [torch.device(device)]
