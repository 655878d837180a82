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
        assert {r["benchmark"] for r in data["results"]} == {"params", "posterior", "prior"}
    params = {r["item"]: r["value"] for r in report["results"] if r["benchmark"] == "params"}
    assert params["AttentionSchema"] == params["AttentionPosterior"] + params["AttentionPrior"]
    times = [r["value"] for r in report["results"] if r["unit"] == "s fwd+bwd"]
    assert len(times) == 7 and all(t > 0 for t in times)


def test_only_selects_benchmarks(bench, capsys):
    report = bench["main"](["--quick", "--image-size", "32", "--only", "params"])
    assert {r["benchmark"] for r in report["results"]} == {"params"}
    assert "| params |" in capsys.readouterr().out


def test_list_and_bad_arguments(bench, capsys):
    assert bench["main"](["--list"])["benchmarks"] == ["params", "posterior", "prior"]
    assert "prior" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench["main"](["--only", "nonexistent"])
    with pytest.raises(SystemExit):
        bench["main"](["--repeats", "0"])
