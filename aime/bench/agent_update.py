"""Benchmarks of the agent's whole update, ``Agent.train_step`` on a replay-like numpy batch (world
model, then actor and critic on imagined rollouts, with clipping and the three optimisers), at
preset sizes: full vs ablation with the behaviour part timed inside the same calls, peak memory and
arithmetic (``update``), and eager vs ``torch.compile`` (``compile``, opt-in)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from aime.agent.agent import Agent
from aime.bench.measure import (
    clock,
    count_parameters,
    flops_row,
    operations_row,
    peak_memory_row,
    ratio_row,
    reset_peak_memory,
    synchronize,
    time_calls,
)
from aime.bench.registry import Settings, benchmark
from aime.bench.world_model import WM_ACTIONS
from aime.config import load_config
from aime.runtime.device import resolve_precision

__all__ = ["agent_config", "agents", "build_agent", "bench_compile", "bench_update", "replay_batch"]


def agent_config(settings: Settings, preset: str, attention: bool):
    """A preset's configuration (with ``--set`` overrides) with the attention schema on (full) or off (ablation)."""
    cfg = load_config([preset], settings.overrides)
    cfg.model.attention = attention
    return cfg


def build_agent(cfg, num_actions: int, device: str) -> Agent:
    """An agent in the precision a training run would give it: ``train.precision`` resolved as the
    training loop resolves it (``auto``: bf16 where the device computes it natively, this CPU's
    AVX512-BF16 or AMX included)."""
    return Agent(cfg, num_actions, device, precision=resolve_precision(cfg.train.precision, device).name)


def agents(settings: Settings, preset: str, num_actions: int) -> dict[str, Agent]:
    """The full agent and the ablation at a preset's sizes, seeded alike."""
    built = {}
    for label, attention in (("full", True), ("ablation", False)):
        torch.manual_seed(settings.seed)
        built[label] = build_agent(agent_config(settings, preset, attention), num_actions, settings.device)
    return built


def replay_batch(b: int, t: int, seed: int) -> dict[str, np.ndarray]:
    """What ``ReplayBuffer.sample(B, T)`` returns: numpy ``[B, T]`` fields (frames ``[B, T, 3, 84, 84]``
    uint8, random), one episode start per window."""
    rng = np.random.default_rng(seed)
    is_first = np.zeros((b, t), dtype=bool)
    is_first[:, 0] = True
    return {
        "obs": rng.integers(0, 256, (b, t, 3, 84, 84), dtype=np.uint8),
        "action": rng.integers(0, WM_ACTIONS, (b, t), dtype=np.int64),
        "reward": rng.standard_normal((b, t), dtype=np.float32),
        "is_first": is_first,
        "is_terminal": np.zeros((b, t), dtype=bool),
    }


def time_behavior_inside(agent: Agent, device: str, now: Callable[[], float] = time.perf_counter) -> list[float]:
    """Time the behaviour part of every later ``agent.train_step``, inside the real calls.

    The clock starts when ``train_step`` calls ``behavior.loss`` (imagination from the world model's
    posterior states, the actor and critic losses) and stops when it has called
    ``behavior.update_slow_critic`` (after the backward, the clipping and both optimiser steps).
    ``now``: the clock (:func:`aime.bench.measure.clock`). Returns the list the times are appended to.
    """
    times: list[float] = []
    loss, update_slow_critic = agent.behavior.loss, agent.behavior.update_slow_critic
    started: list[float] = []

    def timed_loss(*args, **kwargs):
        synchronize(device)
        started.append(now())
        return loss(*args, **kwargs)

    def timed_update_slow_critic(*args, **kwargs) -> None:
        update_slow_critic(*args, **kwargs)
        synchronize(device)
        times.append(now() - started.pop())

    agent.behavior.loss = timed_loss  # instance attributes shadow the methods
    agent.behavior.update_slow_critic = timed_update_slow_critic
    return times


def _update_rows(
    agent: Agent, batch: dict[str, np.ndarray], settings: Settings, preset: str, label: str
) -> tuple[float, list[dict]]:
    """The unrounded median time of ``agent.train_step(batch)`` and its rows: time, behaviour part, peak memory,
    arithmetic, operations."""
    b, t = settings.batch, settings.seq_len
    agent.train()
    behavior_times = time_behavior_inside(agent, settings.device, clock(settings))
    skipped = []

    def update() -> None:
        if not agent.train_step(batch)[1]:
            skipped.append(1)

    reset_peak_memory(settings.device)
    median, times = time_calls(update, settings, settings.repeats)
    if skipped:
        raise RuntimeError(f"update {preset} {label}: {len(skipped)} updates had a non-finite loss")
    behavior = statistics.median(behavior_times[settings.warmup :])
    horizon = agent.cfg.train.horizon
    return median, [
        {
            "item": f"Agent.train_step {preset} {label} ({count_parameters(agent):,} params), B {b} x T {t}",
            "value": round(median, 4),
            "unit": "s/update",
            "note": f"median of {len(times)}, {agent.precision}",
        },
        {
            "item": f"Agent.train_step {preset} {label}: behaviour part ({b * t} starts x H {horizon})",
            "value": round(behavior, 4),
            "unit": "s/update",
            "note": f"median of {len(times)}, {behavior / median:.0%} of the update; the rest is the world model",
        },
        peak_memory_row(f"Agent.train_step {preset} {label}", settings.device),
        flops_row(f"Agent.train_step {preset} {label}", update, median),
        operations_row(f"Agent.train_step {preset} {label}", update),
    ]


@benchmark(
    "update",
    "Agent.train_step (world model + actor + critic with their optimisers) at preset sizes, "
    "attention schema on vs off; its behaviour part alone",
)
def bench_update(settings: Settings) -> list[dict]:
    batch = replay_batch(settings.batch, settings.seq_len, settings.seed)
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        for label, agent in agents(settings, preset, WM_ACTIONS).items():
            medians[label], label_rows = _update_rows(agent, batch, settings, preset, label)
            rows += label_rows
        rows.append(
            ratio_row(f"Agent.train_step {preset}: update time full / ablation", medians["full"], medians["ablation"])
        )
    return rows


@benchmark(
    "compile",
    "Agent.train_step eager, with train.compile and with train.compile_world_model (torch.compile), "
    "full model at preset sizes: compilation time and the update's median (opt-in: compiling takes minutes)",
    opt_in=True,
)
def bench_compile(settings: Settings) -> list[dict]:
    b, t = settings.batch, settings.seq_len
    batch = replay_batch(b, t, settings.seed)
    # train.compile (the networks and the time step), and train.compile_world_model (the loss whole)
    variants = {"eager": {}, "compiled": {"compile": True}, "loss compiled": {"compile_world_model": True}}
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        for label, switches in variants.items():
            cfg = agent_config(settings, preset, attention=True)
            for key, value in switches.items():
                setattr(cfg.train, key, value)
            torch.manual_seed(settings.seed)
            agent = build_agent(cfg, WM_ACTIONS, settings.device)
            synchronize(settings.device)
            now = clock(settings)
            start = now()
            agent.train_step(batch)  # the first call compiles (imagination's shapes included)
            synchronize(settings.device)
            first = now() - start
            medians[label], times = time_calls(lambda agent=agent: agent.train_step(batch), settings, settings.repeats)
            rows.append(
                {
                    "item": f"Agent.train_step {preset} full, {label}: first call",
                    "value": round(first, 2),
                    "unit": "s",
                    "note": "includes compilation" if switches else "eager",
                }
            )
            rows.append(
                {
                    "item": f"Agent.train_step {preset} full, {label}, B {b} x T {t}",
                    "value": round(medians[label], 4),
                    "unit": "s/update",
                    "note": f"median of {len(times)}",
                }
            )
        for label in variants:
            if label != "eager":
                rows.append(ratio_row(f"Agent.train_step {preset}: eager / {label}", medians["eager"], medians[label]))
    return rows
