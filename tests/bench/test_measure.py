"""aime.bench.measure's clocks and timers, on Settings from aime.bench.registry."""

from __future__ import annotations

import time

import pytest
import torch

from aime.bench.measure import CLOCKS, clock, count_operations, operations_row, ratio_row, time_calls
from aime.bench.registry import Settings

SETTINGS = dict(batch=1, image_size=32, repeats=1, warmup=0, device="cpu", seed=0)


def nap() -> None:
    time.sleep(0.2)


def test_the_cpu_clock_counts_the_process_not_the_wall():
    """A sleeping call costs wall time and next to no CPU time."""
    assert Settings(**SETTINGS).clock == "wall" and CLOCKS == ("wall", "cpu")
    wall, _ = time_calls(nap, Settings(**SETTINGS), 1)
    cpu, _ = time_calls(nap, Settings(**SETTINGS, clock="cpu"), 1)
    assert wall >= 0.2 > 0.05 > cpu


def test_time_calls_times_only_the_repeats_after_the_warmup():
    calls = []
    median, times = time_calls(lambda: calls.append(1), Settings(**{**SETTINGS, "warmup": 2}), 3)
    assert len(calls) == 5 and len(times) == 3 and median == sorted(times)[1]


def test_an_unknown_clock_is_refused():
    with pytest.raises(ValueError, match="unknown clock 'cpus'; expected one of wall, cpu"):
        clock(Settings(**SETTINGS, clock="cpus"))


def test_ratio_row_divides_the_unrounded_medians():
    row = ratio_row("full / ablation", 10.93, 8.09)
    assert row == {"item": "full / ablation", "value": 1.35, "unit": "ratio", "note": "same run"}
    assert ratio_row("x", 1.0049, 1.0)["value"] == 1.0 and ratio_row("x", 1.0, 3.0)["value"] == 0.33


def test_count_operations_counts_kernels_and_views_forward_and_backward():
    x = torch.ones(3, 4, requires_grad=True)

    def step() -> None:
        x.grad = None  # each call alike (a second backward would accumulate: one more operation)
        y = (x * 2).t()  # mul runs a kernel; t is a view
        y.sum().backward()

    total, views = count_operations(step)
    assert views >= 1 and total - views >= 2  # mul and sum forward, at least one more backward
    forward_only, _ = count_operations(lambda: (x.detach() * 2).t().sum())
    assert total > forward_only  # the backward's operations are counted too
    row = operations_row("f", step)
    assert row["unit"] == "ops" and row["value"] == total - views and f"{total:,}" in row["note"]
