"""Smoke test of scripts/benchmark.py: a tiny run in-process, its table and files."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"


@pytest.fixture(scope="module")
def bench() -> dict:
    return runpy.run_path(str(SCRIPT), run_name="benchmark_under_test")


def test_quick_run_writes_table_and_json(bench, tmp_path, capsys):
    json_path = tmp_path / "extra" / "bench.json"
    threads = torch.get_num_threads()
    try:
        report = bench["main"](["--quick", "--image-size", "32", "--threads", "1",
                                "--out", str(tmp_path / "out"), "--json", str(json_path)])
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide; leave other tests alone
    printed = capsys.readouterr().out
    assert "Machine:" in printed and "torch" in printed and "| benchmark | item |" in printed
    md = (tmp_path / "out" / "benchmark.md").read_text()
    assert "AttentionPrior" in md and "AttentionPosterior" in md
    for path in (tmp_path / "out" / "benchmark.json", json_path):
        data = json.loads(path.read_text())
        assert data["machine"]["threads"] == 1
        assert {r["benchmark"] for r in data["results"]} == {"params", "posterior", "prior", "world_model", "acting"}
    params = {r["item"]: r["value"] for r in report["results"] if r["benchmark"] == "params"}
    assert params["AttentionSchema"] == params["AttentionPosterior"] + params["AttentionPrior"]
    times = [r["value"] for r in report["results"] if r["unit"] == "s fwd+bwd"]
    assert len(times) == 7 and all(t > 0 for t in times)


def test_world_model_rows_compare_full_and_ablation(bench):
    report = bench["main"](["--quick", "--only", "world_model", "--only", "acting"])
    rows = {r["item"]: r for r in report["results"]}
    assert report["settings"]["seq_len"] == 4 and list(report["settings"]["wm_presets"]) == ["debug"]
    for bench_name, unit, prefix in (("world_model", "s/update", "VRNN debug"), ("acting", "s/step", "VRNN.observe_step debug")):
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


def test_only_selects_benchmarks(bench, capsys):
    report = bench["main"](["--quick", "--image-size", "32", "--only", "params"])
    assert {r["benchmark"] for r in report["results"]} == {"params"}
    assert "| params |" in capsys.readouterr().out


def test_list_and_bad_arguments(bench, capsys):
    assert bench["main"](["--list"])["benchmarks"] == ["acting", "params", "posterior", "prior", "world_model"]
    assert "prior" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench["main"](["--only", "nonexistent"])
    with pytest.raises(SystemExit):
        bench["main"](["--repeats", "0"])
    with pytest.raises(SystemExit):
        bench["main"](["--seq-len", "0"])
