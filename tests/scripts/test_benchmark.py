"""Smoke test of scripts/benchmark.py (the harness is aime.bench): a tiny run in-process, its table and files."""

from __future__ import annotations

import json
import platform
import runpy
import time
from pathlib import Path

import pytest
import torch

import envs
from aime.agent.agent import Agent

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"
NAMES = ["acting", "acting_loop", "env", "params", "pooling", "posterior", "prior", "slots", "update", "world_model"]


@pytest.fixture(scope="module")
def bench() -> dict:
    """The script's ``main``, and what the harness calls (for monkeypatching): the agent class and the envs module."""
    namespace = runpy.run_path(str(SCRIPT), run_name="benchmark_under_test")
    return {"main": namespace["main"], "Agent": Agent, "envs": envs}


def test_quick_run_writes_table_and_json(bench, tmp_path, capsys):
    json_path = tmp_path / "extra" / "bench.json"
    threads = torch.get_num_threads()
    try:
        report = bench["main"](
            [
                "--quick",
                "--image-size",
                "32",
                "--threads",
                "1",
                "--system-allocator",
                "--keep-denormals",
                "--out",
                str(tmp_path / "out"),
                "--json",
                str(json_path),
            ]
        )
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide; leave other tests alone
    printed = capsys.readouterr().out
    assert "Machine:" in printed and "torch" in printed and "| benchmark | item |" in printed
    md = (tmp_path / "out" / "benchmark.md").read_text()
    assert "AttentionPrior" in md and "AttentionPosterior" in md
    for path in (tmp_path / "out" / "benchmark.json", json_path):
        data = json.loads(path.read_text())
        assert data["machine"]["threads"] == 1
        assert data["machine"]["allocator"] == "C library defaults"
        assert data["machine"]["denormals"] == "kept"
        assert {r["benchmark"] for r in data["results"]} == set(NAMES)
    params = {r["item"]: r["value"] for r in report["results"] if r["benchmark"] == "params"}
    assert params["AttentionSchema"] == params["AttentionPosterior"] + params["AttentionPrior"]
    times = [r["value"] for r in report["results"] if r["unit"] == "s fwd+bwd"]
    assert len(times) == 15 and all(t > 0 for t in times)
    slots = {r["item"]: r["value"] for r in report["results"] if r["benchmark"] == "slots"}
    assert "SlotAttention fused, bf16, T 4 x B 2, 64 tokens" in slots  # --quick: T 4, B 2, 32x32 frames
    for precision in ("fp32", "bf16"):
        fused, reference = (
            slots[f"SlotAttention {v}, {precision}, T 4 x B 2, 64 tokens"] for v in ("fused", "reference")
        )
        assert slots[f"SlotAttention {precision}: fused / reference"] == pytest.approx(fused / reference, abs=0.02)
    pooling = {r["item"]: r["value"] for r in report["results"] if r["benchmark"] == "pooling"}
    for precision in ("fp32", "bf16"):  # --quick: B 2 x T 4 frames of 32x32, pooled from 16x16 to 8x8
        ours, adaptive = (
            pooling[f"2x2 pooling, {v}, {precision}, 8 frames of 16x16"] for v in ("written-out", "adaptive_avg_pool2d")
        )
        assert ours > 0 and adaptive > 0  # times this small round too coarsely to check their ratio
        assert pooling[f"2x2 pooling {precision}: written-out / adaptive"] > 0


def test_world_model_rows_compare_full_and_ablation(bench):
    report = bench["main"](["--quick", "--only", "world_model", "--only", "acting"])
    rows = {r["item"]: r for r in report["results"]}
    if platform.libc_ver()[0] == "glibc":  # the default, as in the training scripts
        assert report["machine"]["allocator"].startswith("freed memory retained")
    assert report["settings"]["seq_len"] == 4 and list(report["settings"]["wm_presets"]) == ["debug"]
    expected = (("world_model", "s/update", "VRNN debug"), ("acting", "s/step", "VRNN.observe_step debug"))
    for bench_name, unit, prefix in expected:
        timed = [r for r in report["results"] if r["benchmark"] == bench_name and r["unit"] == unit]
        assert len(timed) == 2 and all(r["value"] > 0 for r in timed)
        full = next(r["value"] for r in timed if " full" in r["item"])
        ablation = next(r["value"] for r in timed if " ablation" in r["item"])
        ratio = next(r for r in report["results"] if r["benchmark"] == bench_name and r["unit"] == "ratio")
        assert ratio["item"].startswith(prefix)
        # the ratio is computed from unrounded medians; the rows are rounded
        assert ratio["value"] == pytest.approx(full / ablation, rel=0.05, abs=0.02)
    # the parameter counts in the labels: the schema adds parameters
    counts = [int(item.split("(")[1].split(" params")[0].replace(",", "")) for item in rows if "params)" in item]
    assert len(counts) == 2 and counts[0] > counts[1] > 0
    memory = [r for r in report["results"] if r["benchmark"] == "world_model" and r["unit"] == "MiB"]
    assert [r["item"] for r in memory] == ["VRNN debug full: peak memory", "VRNN debug ablation: peak memory"]
    assert all(r["value"] > 0 and "ru_maxrss" in r["note"] for r in memory)  # CPU: the process high-water mark


def _ratio_checked(results: list[dict], bench_name: str, times: dict[str, float]) -> None:
    """The benchmark's one ratio row is time full / time ablation (from unrounded medians)."""
    ratios = [r for r in results if r["benchmark"] == bench_name and r["unit"] == "ratio"]
    assert len(ratios) == 1 and "full / ablation" in ratios[0]["item"]
    assert ratios[0]["value"] == pytest.approx(times["full"] / times["ablation"], rel=0.05, abs=0.02)


def test_update_rows_time_the_agents_train_step(bench, monkeypatch):
    agent_cls, calls = bench["Agent"], []
    train_step = agent_cls.train_step

    def counted(self, batch):
        assert batch["obs"].dtype.name == "uint8" and batch["obs"].shape == (2, 4, 3, 84, 84)
        assert batch["is_first"][:, 0].all() and batch["is_terminal"].dtype.name == "bool"
        calls.append(self.cfg.model.attention)
        return train_step(self, batch)

    monkeypatch.setattr(agent_cls, "train_step", counted)
    report = bench["main"](["--quick", "--only", "update", "--repeats", "2"])
    results = report["results"]
    # the real update: full, then the ablation, 2 repeats each, one more under the FLOP counter and
    # one under the operation counter
    assert calls == [True] * 4 + [False] * 4
    gflop = {
        label: next(r for r in results if r["unit"] == "GFLOP" and f" {label}: arithmetic" in r["item"])
        for label in ("full", "ablation")
    }
    assert gflop["full"]["value"] > gflop["ablation"]["value"] > 0  # the schema adds arithmetic
    assert "GFLOP/s" in gflop["full"]["note"]
    ops = {
        label: next(r for r in results if r["unit"] == "ops" and f" {label}: operations" in r["item"])
        for label in ("full", "ablation")
    }
    assert ops["full"]["value"] > ops["ablation"]["value"] > 0  # the schema adds operations
    update = {
        label: next(r for r in results if r["unit"] == "s/update" and f" {label} (" in r["item"])
        for label in ("full", "ablation")
    }
    behavior = {
        label: next(r for r in results if r["unit"] == "s/update" and f"{label}: behaviour part" in r["item"])
        for label in ("full", "ablation")
    }
    assert len([r for r in results if r["unit"] == "s/update"]) == 4
    for label in ("full", "ablation"):
        assert update[label]["item"].startswith(f"Agent.train_step debug {label} (")
        assert (
            update[label]["item"].endswith("B 2 x T 4") and update[label]["note"] == "median of 2, fp32"
        )  # debug: precision fp32
        # the behaviour part is timed inside the same calls, so it is a positive part of the whole
        assert 0 < behavior[label]["value"] < update[label]["value"]
        # debug: horizon 15, B*T starts
        assert "H 15" in behavior[label]["item"] and "8 starts" in behavior[label]["item"]
    counts = {label: int(r["item"].split("(")[1].split(" params")[0].replace(",", "")) for label, r in update.items()}
    assert counts["full"] > counts["ablation"] > 0
    memory = [r for r in results if r["unit"] == "MiB"]
    assert len(memory) == 2 and all(r["value"] > 0 for r in memory)
    _ratio_checked(results, "update", {label: r["value"] for label, r in update.items()})


class _SlowEnv:
    """An environment whose every ``step`` call takes at least ``DELAY`` seconds (a known throughput).

    The sleep must dwarf the real step's CPU time even on a loaded machine: at 0.02 s, eight
    Breakout environments stepping beside three training runs took long enough to bring the
    vector / single ratio from about 8 to 3.3."""

    DELAY = 0.08

    def __init__(self, env, steps: list) -> None:
        self.env, self.steps = env, steps

    def __getattr__(self, name: str):
        return getattr(self.env, name)

    def step(self, action):
        self.steps.append(getattr(self.env, "num_envs", 1))
        time.sleep(self.DELAY)
        return self.env.step(action)


def _slow_envs(bench, monkeypatch) -> list:
    steps: list = []
    envs_module = bench["envs"]
    make, make_vector = envs_module.make, envs_module.make_vector
    monkeypatch.setattr(envs_module, "make", lambda name, **kw: _SlowEnv(make(name, **kw), steps))
    monkeypatch.setattr(envs_module, "make_vector", lambda name, n, **kw: _SlowEnv(make_vector(name, n, **kw), steps))
    return steps


def test_env_rows_count_every_sub_env(bench, monkeypatch):
    steps = _slow_envs(bench, monkeypatch)
    report = bench["main"](["--quick", "--only", "env", "--env-steps", "16"])
    rows = {r["item"]: r for r in report["results"]}
    assert list(rows) == [
        f"{game}, {kind}, random actions" for game in ("Breakout", "Catch") for kind in ("1 env", "8-env vector env")
    ]
    # 16 agent steps per repeat: 16 steps of one env (Catch's 10-row episodes reset on the way), 2 of 8 envs
    assert steps == ([1] * 16 + [8] * 2) * 2
    for item, row in rows.items():
        envs_per_step = 8 if "8-env" in item else 1
        assert row["unit"] == "agent steps/s"
        assert row["note"] == ("median of 1 x 2 steps x 8 envs" if envs_per_step == 8 else "median of 1 x 16 steps")
        # each step call takes >= DELAY, so at most envs_per_step / DELAY agent steps/s
        assert 0 < row["value"] <= envs_per_step / _SlowEnv.DELAY + 0.1
    for game in ("Breakout", "Catch"):
        # a vector env's row is ~8x a single env's only when it counts every sub-env's step; a ratio
        # within one run, so a busy machine slows both rows alike
        vector, single = (rows[f"{game}, {kind}, random actions"]["value"] for kind in ("8-env vector env", "1 env"))
        assert 4 < vector / single < 12


def test_acting_loop_rows_act_in_eight_breakout_envs(bench, monkeypatch):
    steps = _slow_envs(bench, monkeypatch)
    agent_cls, acts = bench["Agent"], []
    act = agent_cls.act

    def recorded(self, obs, state, explore=True):
        acts.append((self.cfg.model.attention, explore, obs["obs"].shape, obs["is_first"].copy(), state is None))
        return act(self, obs, state, explore)

    monkeypatch.setattr(agent_cls, "act", recorded)
    report = bench["main"](["--quick", "--only", "acting_loop", "--acting-steps", "3"])
    results = report["results"]
    assert steps == [8] * 6  # 3 vector steps of 8 envs, for the full model and the ablation
    frames = (8, 3, 84, 84)
    assert [(a[0], a[1], a[2]) for a in acts] == [(True, True, frames)] * 3 + [(False, True, frames)] * 3
    for i in (0, 3):  # each model starts from a reset: all first observations and no state, then its own state
        assert acts[i][3].all() and acts[i][4]
        assert not acts[i + 1][3].any() and not acts[i + 1][4]
    timed = {
        label: next(r for r in results if r["unit"] == "agent steps/s" and r["item"].endswith(f"debug {label}"))
        for label in ("full", "ablation")
    }
    for row in timed.values():
        assert row["item"].startswith("Breakout x 8 envs + Agent.act")
        assert 0 < row["value"] <= 8 / _SlowEnv.DELAY + 0.1 and row["note"] == "median of 1 x 3 steps x 8 envs"
    # the ratio is of step times: the inverse of the throughputs' ratio
    _ratio_checked(results, "acting_loop", {label: 1 / r["value"] for label, r in timed.items()})


def test_only_selects_benchmarks(bench, capsys):
    report = bench["main"](["--quick", "--image-size", "32", "--only", "params"])
    assert {r["benchmark"] for r in report["results"]} == {"params"}
    assert "| params |" in capsys.readouterr().out


def test_list_and_bad_arguments(bench, capsys):
    assert bench["main"](["--list"])["benchmarks"] == sorted(NAMES + ["compile"])  # compile: opt-in only
    assert "prior" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench["main"](["--only", "nonexistent"])
    with pytest.raises(SystemExit):
        bench["main"](["--repeats", "0"])
    for flag in ("--seq-len", "--env-steps", "--acting-steps"):
        with pytest.raises(SystemExit):
            bench["main"]([flag, "0"])


def test_set_overrides_the_presets_sizes(bench, capsys):
    def full_params(report: dict) -> int:
        row = next(r for r in report["results"] if r["benchmark"] == "update" and " full (" in r["item"])
        return int(row["item"].split("(")[1].split(" params")[0].replace(",", ""))

    plain = bench["main"](["--quick", "--only", "update"])
    narrow = bench["main"](["--quick", "--only", "update", "--set", "model.hidden=24"])
    assert full_params(narrow) < full_params(plain)
    assert list(narrow["settings"]["overrides"]) == ["model.hidden=24"]
    assert "debug with model.hidden=24" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        bench["main"](["--quick", "--only", "update", "--set", "model.hiden=24"])
    assert exit_info.value.code == 2
    assert "Did you mean 'model.hidden'" in capsys.readouterr().err


def test_bench_agents_take_the_training_loops_precision():
    """``auto`` resolves as in the training loop (bf16 on a CPU with AVX512-BF16 or AMX), not as the
    agent's own device-only default; an explicit setting is kept."""
    from aime.bench.agent_update import build_agent
    from aime.config import load_config
    from aime.runtime.device import resolve_precision

    for setting in ("auto", "fp32", "bf16"):
        cfg = load_config(["debug"], [f"train.precision={setting}"])
        agent = build_agent(cfg, 3, "cpu")
        assert agent.precision == resolve_precision(setting, "cpu").name
        assert agent.precision == setting or setting == "auto"


def test_the_clock_flag_reaches_the_report(bench, capsys):
    """--clock cpu reaches the settings and the table's settings line; a CUDA device refuses it
    (what the clock measures: tests/bench/test_measure.py)."""
    report = bench["main"](["--quick", "--image-size", "32", "--only", "params", "--clock", "cpu"])
    assert report["settings"]["clock"] == "cpu"
    assert "clock: CPU seconds of the process, all threads" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        bench["main"](["--quick", "--only", "params", "--clock", "cpu", "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "--clock cpu counts the process's CPU time, not device cuda's work" in capsys.readouterr().err
