"""How the benchmarks measure: median wall times (with device synchronisation), peak memory, and
the arithmetic of one call (FLOPs of matrix products and convolutions)."""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from aime.bench.registry import Settings

__all__ = [
    "CLOCKS",
    "clock",
    "count_operations",
    "count_parameters",
    "flops_row",
    "operations_row",
    "peak_memory_row",
    "ratio_row",
    "reset_peak_memory",
    "synchronize",
    "time_calls",
    "time_forward_backward",
]


CLOCKS = ("wall", "cpu")


def clock(settings: Settings) -> Callable[[], float]:
    """The clock the benchmarks read, by ``settings.clock``: ``wall`` is ``time.perf_counter``;
    ``cpu`` is ``time.process_time``, the CPU seconds of all the process's threads together.

    On a machine that other processes share, the wall time of one convolution differed up to 7x
    between two profiled updates and its CPU time 0.6-1.2x (docs/benchmarks.md): compare code there
    in CPU time. A run on ``n`` busy threads reads about ``n`` times its wall time, and GPU work is not
    counted, so ``cpu`` is for CPU devices.
    """
    if settings.clock not in CLOCKS:
        raise ValueError(f"unknown clock {settings.clock!r}; expected one of {', '.join(CLOCKS)}")
    return time.process_time if settings.clock == "cpu" else time.perf_counter


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def synchronize(device: str) -> None:
    """Wait for queued CUDA work, so that a clock reading covers the work and not just its launch."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_forward_backward(
    module: nn.Module, make_inputs: Callable[[], tuple], loss_of: Callable, settings: Settings
) -> tuple[float, list[float]]:
    """Median time (s, by :func:`clock`) of ``loss_of(module(*inputs)).backward()`` over the repeats,
    and all timed runs."""
    module.train()
    inputs = make_inputs()
    now = clock(settings)
    times = []
    for i in range(settings.warmup + settings.repeats):
        module.zero_grad(set_to_none=True)
        synchronize(settings.device)
        start = now()
        loss_of(module(*inputs)).backward()
        synchronize(settings.device)
        if i >= settings.warmup:
            times.append(now() - start)
    return statistics.median(times), times


def time_calls(fn: Callable[[], None], settings: Settings, repeats: int) -> tuple[float, list[float]]:
    """Median time (s, by :func:`clock`) of ``fn()`` over ``repeats`` calls after ``settings.warmup`` untimed ones."""
    now = clock(settings)
    times = []
    for i in range(settings.warmup + repeats):
        synchronize(settings.device)
        start = now()
        fn()
        synchronize(settings.device)
        if i >= settings.warmup:
            times.append(now() - start)
    return statistics.median(times), times


def ratio_row(item: str, numerator: float, denominator: float) -> dict:
    """A ``ratio`` row of two medians measured in the same run (from the unrounded values)."""
    return {"item": item, "value": round(numerator / denominator, 2), "unit": "ratio", "note": "same run"}


def reset_peak_memory(device: str) -> None:
    """Start a peak-memory measurement: on CUDA the allocator's peak is reset (the CPU's cannot be)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def flops_row(item: str, fn: Callable[[], None], seconds: float) -> dict:
    """One more call of ``fn`` under ``torch.utils.flop_counter.FlopCounterMode`` (matrix products
    and convolutions, forward and backward): GFLOP per call and the rate at the median time."""
    with FlopCounterMode(display=False) as counter:
        fn()
    gflop = counter.get_total_flops() / 1e9
    return {
        "item": f"{item}: arithmetic",
        "value": round(gflop, 3),
        "unit": "GFLOP",
        "note": f"{gflop / seconds:.0f} GFLOP/s at the median time (matmuls and convolutions)",
    }


class _OperationCounter(TorchDispatchMode):
    """Counts the ATen operations dispatched while it is active: all of them, and the views."""

    def __init__(self) -> None:
        super().__init__()
        self.total = self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.total += 1
        self.views += func.is_view
        return func(*args, **(kwargs or {}))


def count_operations(fn: Callable[[], None]) -> tuple[int, int]:
    """The ATen operations one call of ``fn`` dispatches, forward, backward and optimiser steps
    alike: ``(all, views)``. A view (``view``, ``t``, ``expand``, ``detach``, ...) only re-describes
    a tensor; every other operation runs a kernel, which on a GPU is one launch, so where each
    kernel is short (the schema's time loop at B 16) the count, not the arithmetic, sets the time."""
    with _OperationCounter() as counter:
        fn()
    return counter.total, counter.views


def operations_row(item: str, fn: Callable[[], None]) -> dict:
    """One more call of ``fn`` under :func:`count_operations`: the operations that run kernels."""
    total, views = count_operations(fn)
    return {
        "item": f"{item}: operations",
        "value": total - views,
        "unit": "ops",
        "note": f"ATen operations that run a kernel (of {total:,} dispatched; the rest are views)",
    }


def peak_memory_row(item: str, device: str) -> dict:
    """Peak memory since :func:`reset_peak_memory`: CUDA ``max_memory_allocated``, or on CPU the
    process's resident high-water mark (``ru_maxrss``), which cannot be reset, so it covers
    everything this process ran before too (an upper bound for the measurement)."""
    if device.startswith("cuda"):
        return {
            "item": f"{item}: peak memory",
            "value": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "unit": "MiB",
            "note": "torch.cuda.max_memory_allocated, reset before",
        }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    mib = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    return {
        "item": f"{item}: peak memory",
        "value": round(mib, 1),
        "unit": "MiB",
        "note": "peak RSS (ru_maxrss): the process high-water mark, includes earlier benchmarks",
    }
