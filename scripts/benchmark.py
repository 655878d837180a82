"""Benchmarks of AIME's modules: a table of named benchmarks, each a function returning result rows.

Prints the machine (CPU count, torch version, threads, device) and a Markdown table; ``--json``
writes the same as JSON; ``--out`` writes ``benchmark.md`` and ``benchmark.json`` into a folder.
Timings are the median over ``--repeats`` (after ``--warmup`` untimed runs); compare them as ratios
within one run, since shared machines are noisy. Every full / ablation ratio (attention schema on /
off) is computed in the same run from the unrounded medians.

* ``params``, ``posterior``, ``prior``: the attention-schema components (B = ``--batch``), one
  forward + backward each;
* ``world_model``: ``VRNN.loss`` + backward + Adam step, B x T (``--batch`` x ``--seq-len``) at
  each of ``--wm-presets``' sizes, full vs ablation, with peak memory;
* ``acting``: ``VRNN.observe_step``, one filtering step of B / 2 frames;
* ``update``: the agent's whole update, ``Agent.train_step`` on a replay-like numpy batch (world
  model, then actor and critic on imagined rollouts, with clipping and the three optimisers), full
  vs ablation, its behaviour part timed alone inside the same calls, peak memory, and the
  arithmetic of one update (GFLOP of its matrix products and convolutions, and the rate achieved);
* ``env``: environment throughput with random actions, one env and an 8-env vector env (Breakout
  and Catch), in agent steps/s counting every sub-env (``--env-steps`` per repeat);
* ``acting_loop``: what the training loop does per step while collecting: 8 vector Breakout envs +
  ``Agent.act`` (explore), agent steps/s, full vs ablation (``--acting-steps`` per repeat).

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA (reset before each measurement) and
otherwise the process's resident high-water mark (``ru_maxrss``), which cannot be reset: it also
covers everything run before in the process.

Like the training scripts, the benchmark first calls ``aime.runtime.denormals.flush_denormals``
(denormal floats become zero instead of taking the CPU's slow microcode path;
``--keep-denormals`` measures without) and ``aime.runtime.allocator.retain_freed_memory`` (freed
activations are reused instead of handed back to the kernel and faulted in again, about 2x on an
``atari100k`` update on a 2-core VM); ``--system-allocator`` keeps the C library's defaults.

    python scripts/benchmark.py                           # everything, B = 16 at 84x84, T 64
    python scripts/benchmark.py --only prior --repeats 5
    python scripts/benchmark.py --only update --wm-presets cpu
    python scripts/benchmark.py --only update --wm-presets atari100k --system-allocator
    python scripts/benchmark.py --only update --wm-presets atari100k --keep-denormals
    python scripts/benchmark.py --only update --wm-presets atari100k --set model.deter=256  # sizes over a preset
    python scripts/benchmark.py --list
    python scripts/benchmark.py --quick --out runs/bench  # a smoke run (B = 2, 1 repeat, debug sizes)

To add a benchmark, decorate a function ``fn(settings) -> list[dict]`` with
``@benchmark("name", "description")``; each row has ``item``, ``value``, ``unit`` (and optionally
``note``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import envs
from aime.agent.agent import Agent
from aime.attention import AttentionPosterior, AttentionPrior, AttentionSchema, ConvGRUCell, SlotAttention
from aime.config import ConfigError, load_config
from aime.runtime.allocator import retain_freed_memory
from aime.runtime.denormals import denormal_state, flush_denormals
from aime.world_model.vrnn import VRNN


@dataclass(frozen=True)
class Settings:
    """What every benchmark may read."""

    batch: int
    image_size: int
    repeats: int
    warmup: int
    device: str
    seed: int
    seq_len: int = 64
    """World-model window length T (the world model always runs at 84x84)."""
    wm_presets: tuple[str, ...] = ("cpu", "atari100k")
    """Presets whose ``model`` sizes the world-model, update and acting-loop benchmarks use."""
    env_steps: int = 2000
    """Agent steps per timed repeat of the environment benchmark (a vector env steps ``env_steps // N`` times)."""
    acting_steps: int = 50
    """Vector steps (of all ``ACTING_ENVS`` sub-envs) per timed repeat of the acting-loop benchmark."""
    overrides: tuple[str, ...] = ()
    """``key=value`` settings applied over each of ``wm_presets`` (e.g. ``model.deter=256``)."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[[Settings], list[dict]]
    opt_in: bool = False
    """Run only when named by ``--only`` (e.g. minutes of compilation)."""


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, description: str, opt_in: bool = False) -> Callable:
    """Register ``fn(settings) -> rows`` under ``name`` (``opt_in``: only when named by ``--only``)."""

    def register(fn: Callable[[Settings], list[dict]]) -> Callable[[Settings], list[dict]]:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = Benchmark(name, description, fn, opt_in)
        return fn

    return register


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_forward_backward(
    module: nn.Module, make_inputs: Callable[[], tuple], loss_of: Callable, settings: Settings
) -> tuple[float, list[float]]:
    """Median wall time (s) of ``loss_of(module(*inputs)).backward()`` over the repeats."""
    module.train()
    inputs = make_inputs()
    times = []
    for i in range(settings.warmup + settings.repeats):
        module.zero_grad(set_to_none=True)
        _synchronize(settings.device)
        start = time.perf_counter()
        loss_of(module(*inputs)).backward()
        _synchronize(settings.device)
        if i >= settings.warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _seed_sizes_for(settings: Settings) -> tuple[int, int]:
    """(image size, attention resolution): the FPN downsamples by 4 (ceil)."""
    return settings.image_size, ((settings.image_size + 1) // 2 + 1) // 2


@benchmark("params", "parameter counts of the attention-schema components at the seed's sizes")
def bench_params(settings: Settings) -> list[dict]:
    image, res = _seed_sizes_for(settings)
    components = {
        "SlotAttention (K 4, d 64, 3 iters)": SlotAttention(num_slots=4, dim=64, iters=3, hidden_dim=128),
        "ConvGRUCell (1 -> 32, 5x5)": ConvGRUCell(1, 32, 5),
        "AttentionPosterior": AttentionPosterior(image_size=image, attention_resolution=res),
        "AttentionPrior": AttentionPrior(attention_resolution=res),
        "AttentionSchema": AttentionSchema(image_size=image, attention_resolution=res),
    }
    return [
        {"item": name, "value": count_parameters(module), "unit": "parameters"}
        for name, module in components.items()
    ]


def _posterior_rows(settings: Settings, variants: dict[str, dict]) -> list[dict]:
    image, res = _seed_sizes_for(settings)
    b, device = settings.batch, settings.device
    rows = []
    for label, kwargs in variants.items():
        torch.manual_seed(settings.seed)
        model = AttentionPosterior(image_size=image, attention_resolution=res, **kwargs).to(device)

        def make_inputs() -> tuple:
            return (
                torch.rand(b, 3, image, image, device=device),
                torch.randn(b, model.hidden_dim, device=device),
                torch.randn(b, model.context_dim, device=device),
            )

        def loss_of(out: tuple) -> torch.Tensor:
            probs, coords = out
            return probs.square().sum() + coords.square().sum() + model.diversity_loss

        median, times = time_forward_backward(model, make_inputs, loss_of, settings)
        rows.append({
            "item": f"AttentionPosterior {label}, B {b}, {image}x{image}",
            "value": round(median, 4), "unit": "s fwd+bwd",
            "note": f"median of {len(times)}",
        })
    return rows


@benchmark("posterior", "AttentionPosterior forward + backward (train mode), FPN with/without GroupNorm")
def bench_posterior(settings: Settings) -> list[dict]:
    return _posterior_rows(settings, {"(GroupNorm, seed)": {"norm": "group"}, "(no norm)": {"norm": "none"}})


@benchmark("prior", "AttentionPrior forward + backward (train mode): position encodings, dropout, checkpointing")
def bench_prior(settings: Settings) -> list[dict]:
    _, res = _seed_sizes_for(settings)
    b, device = settings.batch, settings.device
    variants = {
        "(relative bias, weight dropout, checkpoint; seed)":
            {"position_bias": "relative", "dropout_mode": "weights", "use_checkpoint": True},
        "(relative bias, checkpoint; default)": {"position_bias": "relative", "use_checkpoint": True},
        "(relative bias)": {"position_bias": "relative", "use_checkpoint": False},
        "(rotary)": {"position_bias": "rotary", "use_checkpoint": False},
        "(absolute only)": {"position_bias": "none", "use_checkpoint": False},
    }
    rows = []
    for label, kwargs in variants.items():
        torch.manual_seed(settings.seed)
        model = AttentionPrior(attention_resolution=res, **kwargs).to(device)

        def make_inputs() -> tuple:
            prev = torch.rand(b, res, res, device=device)
            return (
                prev / prev.sum(dim=(1, 2), keepdim=True),
                torch.randn(b, model.hidden_dim, device=device),
                torch.randn(b, model.latent_dim, device=device),
            )

        def loss_of(out: tuple) -> torch.Tensor:
            probs, info = out
            dx, dy = info["predicted_movement"]
            return probs.square().sum() + dx.square().mean() + dy.square().mean()

        median, times = time_forward_backward(model, make_inputs, loss_of, settings)
        rows.append({
            "item": f"AttentionPrior {label}, B {b}, {res}x{res}",
            "value": round(median, 4), "unit": "s fwd+bwd",
            "note": f"median of {len(times)}",
        })
    return rows


WM_ACTIONS = 4  # Breakout's minimal action set


def _world_models(settings: Settings, preset: str) -> dict[str, VRNN]:
    """The full model and the ablation at a preset's sizes, seeded alike."""
    cfg = load_config([preset], settings.overrides)
    models = {}
    for label, attention in (("full", True), ("ablation", False)):
        torch.manual_seed(settings.seed)
        models[label] = VRNN.from_config(cfg.model, WM_ACTIONS, cfg.train, attention=attention).to(settings.device)
    return models


def _wm_batch(b: int, t: int, device: str) -> dict[str, torch.Tensor]:
    """Random frames and actions ``[B, T]``, one episode start per window."""
    is_first = torch.zeros(b, t, dtype=torch.bool, device=device)
    is_first[:, 0] = True
    return {
        "obs": torch.randint(0, 256, (b, t, 3, 84, 84), dtype=torch.uint8, device=device),
        "action": torch.randint(0, WM_ACTIONS, (b, t), device=device),
        "reward": torch.randn(b, t, device=device),
        "is_first": is_first,
        "is_terminal": torch.zeros(b, t, dtype=torch.bool, device=device),
    }


def _time_calls(fn: Callable[[], None], settings: Settings, repeats: int) -> tuple[float, list[float]]:
    times = []
    for i in range(settings.warmup + repeats):
        _synchronize(settings.device)
        start = time.perf_counter()
        fn()
        _synchronize(settings.device)
        if i >= settings.warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _reset_peak_memory(device: str) -> None:
    """Start a peak-memory measurement: on CUDA the allocator's peak is reset (the CPU's cannot be)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _flops_row(item: str, fn: Callable[[], None], seconds: float) -> dict:
    """One more call of ``fn`` under ``torch.utils.flop_counter.FlopCounterMode`` (matrix products
    and convolutions, forward and backward): GFLOP per call and the rate at the median time."""
    with FlopCounterMode(display=False) as counter:
        fn()
    gflop = counter.get_total_flops() / 1e9
    return {"item": f"{item}: arithmetic", "value": round(gflop, 3), "unit": "GFLOP",
            "note": f"{gflop / seconds:.0f} GFLOP/s at the median time (matmuls and convolutions)"}


def _peak_memory_row(item: str, device: str) -> dict:
    """Peak memory since :func:`_reset_peak_memory`: CUDA ``max_memory_allocated``, or on CPU the
    process's resident high-water mark (``ru_maxrss``), which cannot be reset, so it covers
    everything this process ran before too (an upper bound for the measurement)."""
    if device.startswith("cuda"):
        return {"item": f"{item}: peak memory", "value": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                "unit": "MiB", "note": "torch.cuda.max_memory_allocated, reset before"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    mib = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    return {"item": f"{item}: peak memory", "value": round(mib, 1), "unit": "MiB",
            "note": "peak RSS (ru_maxrss): the process high-water mark, includes earlier benchmarks"}


@benchmark("world_model", "VRNN.loss forward + backward + Adam step at preset sizes, attention schema on vs off")
def bench_world_model(settings: Settings) -> list[dict]:
    b, t = settings.batch, settings.seq_len
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        for label, model in _world_models(settings, preset).items():
            model.train()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
            batch = _wm_batch(b, t, settings.device)

            def update() -> None:
                optimizer.zero_grad(set_to_none=True)
                model.loss(batch)[0].backward()
                optimizer.step()

            _reset_peak_memory(settings.device)
            medians[label], times = _time_calls(update, settings, settings.repeats)
            rows.append({"item": f"VRNN {preset} {label} ({count_parameters(model):,} params), B {b} x T {t}",
                         "value": round(medians[label], 4), "unit": "s/update", "note": f"median of {len(times)}"})
            rows.append(_peak_memory_row(f"VRNN {preset} {label}", settings.device))
        rows.append({"item": f"VRNN {preset}: update time full / ablation", "value": round(medians["full"] / medians["ablation"], 2),
                     "unit": "ratio", "note": "same run"})
    return rows


@benchmark("acting", "VRNN.observe_step (one filtering step for acting) at preset sizes, attention schema on vs off")
def bench_acting(settings: Settings) -> list[dict]:
    b = max(1, settings.batch // 2)  # 8 frames at the default batch of 16
    repeats = max(5, 5 * settings.repeats)  # a step is cheap: more repeats for a stable median
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        for label, model in _world_models(settings, preset).items():
            model.eval()
            frames = torch.randint(0, 256, (b, 3, 84, 84), dtype=torch.uint8, device=settings.device)
            is_first = torch.zeros(b, dtype=torch.bool, device=settings.device)
            state = {"now": model.initial_state(b, settings.device)}

            def step() -> None:
                state["now"], _ = model.observe_step(state["now"], frames, is_first)

            medians[label], times = _time_calls(step, settings, repeats)
            rows.append({"item": f"VRNN.observe_step {preset} {label}, {b} frames", "value": round(medians[label], 5),
                         "unit": "s/step", "note": f"median of {len(times)}"})
        rows.append({"item": f"VRNN.observe_step {preset}: full / ablation", "value": round(medians["full"] / medians["ablation"], 2),
                     "unit": "ratio", "note": "same run"})
    return rows


def _agent_config(settings: Settings, preset: str, attention: bool):
    """A preset's configuration (with ``--set`` overrides) with the attention schema on (full) or off (ablation)."""
    cfg = load_config([preset], settings.overrides)
    cfg.model.attention = attention
    return cfg


def _agents(settings: Settings, preset: str, num_actions: int) -> dict[str, Agent]:
    """The full agent and the ablation at a preset's sizes, seeded alike."""
    agents = {}
    for label, attention in (("full", True), ("ablation", False)):
        torch.manual_seed(settings.seed)
        agents[label] = Agent(_agent_config(settings, preset, attention), num_actions, settings.device)
    return agents


def _replay_batch(b: int, t: int, seed: int) -> dict[str, np.ndarray]:
    """What ``ReplayBuffer.sample(B, T)`` returns: numpy ``[B, T]`` fields, random frames, one
    episode start per window."""
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


def _time_behavior_inside(agent: Agent, device: str) -> list[float]:
    """Time the behaviour part of every later ``agent.train_step``, inside the real calls.

    The clock starts when ``train_step`` calls ``behavior.loss`` (imagination from the world model's
    posterior states, the actor and critic losses) and stops when it has called
    ``behavior.update_slow_critic`` (after the backward, the clipping and both optimiser steps).
    Returns the list the times are appended to.
    """
    times: list[float] = []
    loss, update_slow_critic = agent.behavior.loss, agent.behavior.update_slow_critic
    started: list[float] = []

    def timed_loss(*args, **kwargs):
        _synchronize(device)
        started.append(time.perf_counter())
        return loss(*args, **kwargs)

    def timed_update_slow_critic() -> None:
        update_slow_critic()
        _synchronize(device)
        times.append(time.perf_counter() - started.pop())

    agent.behavior.loss = timed_loss  # instance attributes shadow the methods
    agent.behavior.update_slow_critic = timed_update_slow_critic
    return times


@benchmark("update", "Agent.train_step (world model + actor + critic with their optimisers) at preset sizes, "
                     "attention schema on vs off; its behaviour part alone")
def bench_update(settings: Settings) -> list[dict]:
    b, t = settings.batch, settings.seq_len
    batch = _replay_batch(b, t, settings.seed)
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        for label, agent in _agents(settings, preset, WM_ACTIONS).items():
            agent.train()
            behavior_times = _time_behavior_inside(agent, settings.device)
            skipped = []

            def update() -> None:
                if not agent.train_step(batch)[1]:
                    skipped.append(1)

            _reset_peak_memory(settings.device)
            medians[label], times = _time_calls(update, settings, settings.repeats)
            if skipped:
                raise RuntimeError(f"update {preset} {label}: {len(skipped)} updates had a non-finite loss")
            behavior = statistics.median(behavior_times[settings.warmup:])
            horizon = agent.cfg.train.horizon
            rows.append({"item": f"Agent.train_step {preset} {label} ({count_parameters(agent):,} params), B {b} x T {t}",
                         "value": round(medians[label], 4), "unit": "s/update", "note": f"median of {len(times)}"})
            rows.append({"item": f"Agent.train_step {preset} {label}: behaviour part ({b * t} starts x H {horizon})",
                         "value": round(behavior, 4), "unit": "s/update",
                         "note": f"median of {len(times)}, {behavior / medians[label]:.0%} of the update; "
                                 "the rest is the world model"})
            rows.append(_peak_memory_row(f"Agent.train_step {preset} {label}", settings.device))
            rows.append(_flops_row(f"Agent.train_step {preset} {label}", update, medians[label]))
        rows.append({"item": f"Agent.train_step {preset}: update time full / ablation",
                     "value": round(medians["full"] / medians["ablation"], 2), "unit": "ratio", "note": "same run"})
    return rows


@benchmark("compile", "Agent.train_step with train.compile off vs on (torch.compile), full model at preset "
                      "sizes: compilation time and the update's median (opt-in: compiling takes minutes)", opt_in=True)
def bench_compile(settings: Settings) -> list[dict]:
    b, t = settings.batch, settings.seq_len
    batch = _replay_batch(b, t, settings.seed)
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        for label, compiled in (("eager", False), ("compiled", True)):
            cfg = _agent_config(settings, preset, attention=True)
            cfg.train.compile = compiled
            torch.manual_seed(settings.seed)
            agent = Agent(cfg, WM_ACTIONS, settings.device)
            _synchronize(settings.device)
            start = time.perf_counter()
            agent.train_step(batch)  # the first call compiles (imagination's shapes included)
            _synchronize(settings.device)
            first = time.perf_counter() - start
            medians[label], times = _time_calls(lambda: agent.train_step(batch), settings, settings.repeats)
            rows.append({"item": f"Agent.train_step {preset} full, {label}: first call", "value": round(first, 2),
                         "unit": "s", "note": "includes compilation" if compiled else "eager"})
            rows.append({"item": f"Agent.train_step {preset} full, {label}, B {b} x T {t}",
                         "value": round(medians[label], 4), "unit": "s/update", "note": f"median of {len(times)}"})
        rows.append({"item": f"Agent.train_step {preset}: eager / compiled", "unit": "ratio", "note": "same run",
                     "value": round(medians["eager"] / medians["compiled"], 2)})
    return rows


ENV_GAMES = ("Breakout", "Catch")
VECTOR_ENVS = 8


def _random_steps_single(env, steps: int, rng: np.random.Generator) -> Callable[[], None]:
    """``steps`` random-action steps of one env, resetting it when an episode ends."""
    n = int(env.action_space.n)

    def run() -> None:
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(int(rng.integers(n)))
            if terminated or truncated:
                env.reset()

    return run


def _random_steps_vector(env, steps: int, rng: np.random.Generator) -> Callable[[], None]:
    """``steps`` random-action steps of a vector env (it resets its sub-envs itself)."""
    n, num = int(env.single_action_space.n), env.num_envs

    def run() -> None:
        for _ in range(steps):
            env.step(rng.integers(0, n, size=num))

    return run


@benchmark("env", "environment throughput with random actions: one env and an 8-env vector env (Breakout, Catch)")
def bench_env(settings: Settings) -> list[dict]:
    rows = []
    for game in ENV_GAMES:
        for num_envs in (1, VECTOR_ENVS):
            rng = np.random.default_rng(settings.seed)
            steps = max(1, settings.env_steps // num_envs)  # steps of the (vector) env per repeat
            env = envs.make(game) if num_envs == 1 else envs.make_vector(game, num_envs)
            try:
                env.reset(seed=settings.seed)
                run = (_random_steps_single if num_envs == 1 else _random_steps_vector)(env, steps, rng)
                median, times = _time_calls(run, settings, settings.repeats)
            finally:
                env.close()
            agent_steps = steps * num_envs  # every sub-env's step counts
            label = "1 env" if num_envs == 1 else f"{num_envs}-env vector env"
            how = f"{steps} steps" if num_envs == 1 else f"{steps} steps x {num_envs} envs"
            rows.append({"item": f"{game}, {label}, random actions", "value": round(agent_steps / median, 1),
                         "unit": "agent steps/s", "note": f"median of {len(times)} x {how}"})
    return rows


ACTING_ENVS = VECTOR_ENVS  # what the training loop of the cpu preset runs
ACTING_GAME = "Breakout"


@benchmark("acting_loop", "the training loop's acting: 8 vector Breakout envs + Agent.act (explore) per step, "
                          "at preset sizes, attention schema on vs off")
def bench_acting_loop(settings: Settings) -> list[dict]:
    steps = settings.acting_steps
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        env = envs.make_vector(ACTING_GAME, ACTING_ENVS)
        try:
            num_actions = int(env.single_action_space.n)
            for label, agent in _agents(settings, preset, num_actions).items():
                obs, _ = env.reset(seed=settings.seed)
                loop = {"obs": obs, "is_first": np.ones(ACTING_ENVS, dtype=bool),
                        "done": np.zeros(ACTING_ENVS, dtype=bool), "state": None}

                def run() -> None:
                    for _ in range(steps):
                        action, loop["state"], _ = agent.act({"obs": loop["obs"], "is_first": loop["is_first"]},
                                                             loop["state"], explore=True)
                        loop["obs"], _, terminated, truncated, _ = env.step(action)
                        # NEXT_STEP autoreset: the step after an episode's last returns a first observation
                        loop["is_first"], loop["done"] = loop["done"], np.logical_or(terminated, truncated)

                medians[label], times = _time_calls(run, settings, settings.repeats)
                rows.append({"item": f"{ACTING_GAME} x {ACTING_ENVS} envs + Agent.act {preset} {label}",
                             "value": round(steps * ACTING_ENVS / medians[label], 1), "unit": "agent steps/s",
                             "note": f"median of {len(times)} x {steps} steps x {ACTING_ENVS} envs"})
        finally:
            env.close()
        rows.append({"item": f"{ACTING_GAME} x {ACTING_ENVS} envs + Agent.act {preset}: step time full / ablation",
                     "value": round(medians["full"] / medians["ablation"], 2), "unit": "ratio", "note": "same run"})
    return rows


def machine_info(device: str, allocator: str, denormals: str) -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "allocator": allocator,
        "denormals": denormals,
    }


def markdown(machine: dict, settings: Settings, results: list[dict]) -> str:
    lines = [
        f"Machine: {machine['cpu_count']} CPUs, torch {machine['torch']}, {machine['threads']} threads, "
        f"device {machine['device']}" + (f" ({machine['cuda']})" if machine["cuda"] else "")
        + f", Python {machine['python']}, allocator: {machine['allocator']}, denormals: {machine['denormals']}",
        f"Settings: batch {settings.batch}, image {settings.image_size}, repeats {settings.repeats}, "
        f"warmup {settings.warmup}, world model: T {settings.seq_len}, presets {', '.join(settings.wm_presets)}"
        f"{' with ' + ', '.join(settings.overrides) if settings.overrides else ''} (84x84), "
        f"env: {settings.env_steps} agent steps, acting loop: {settings.acting_steps} steps per repeat",
        "",
        "| benchmark | item | value | unit | note |",
        "| --- | --- | ---: | --- | --- |",
    ]
    lines += [
        f"| {r['benchmark']} | {r['item']} | {r['value']} | {r['unit']} | {r.get('note', '')} |"
        for r in results
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark (repeatable); one of {sorted(BENCHMARKS)}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--batch", type=int, default=16, help="batch size B (default 16)")
    parser.add_argument("--image-size", type=int, default=84, help="frame side (default 84)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON here")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write benchmark.md and benchmark.json into this folder")
    parser.add_argument("--seq-len", type=int, default=64, help="world-model window length T (default 64)")
    parser.add_argument("--wm-presets", default="cpu,atari100k",
                        help="comma-separated presets whose model sizes the world-model, update and acting-loop "
                             "benchmarks use (default cpu,atari100k)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the --wm-presets, e.g. --set model.deter=256 (repeatable)")
    parser.add_argument("--env-steps", type=int, default=2000,
                        help="agent steps per timed repeat of the env benchmark (default 2000)")
    parser.add_argument("--acting-steps", type=int, default=50,
                        help=f"vector steps ({ACTING_ENVS} envs) per timed repeat of the acting loop (default 50)")
    parser.add_argument("--system-allocator", action="store_true",
                        help="keep the C library's malloc defaults (freed blocks go back to the kernel) instead "
                             "of aime.runtime.allocator.retain_freed_memory(), to measure what it buys")
    parser.add_argument("--keep-denormals", action="store_true",
                        help="leave denormal floats on instead of aime.runtime.denormals.flush_denormals(), "
                             "to measure what flushing buys")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 2, 1 repeat, no warmup; world model, update and acting loop at "
                             "debug sizes, T 4; 32 env steps, 2 acting-loop steps (flags given explicitly win)")
    args = parser.parse_args(argv)
    if args.quick:  # new defaults, so that flags given explicitly still apply
        parser.set_defaults(batch=2, repeats=1, warmup=0, seq_len=4, wm_presets="debug", env_steps=32, acting_steps=2)
        args = parser.parse_args(argv)
    args.wm_presets = tuple(p for p in args.wm_presets.split(",") if p)
    for preset in args.wm_presets:  # an unknown preset or setting fails here, with close matches
        try:
            load_config([preset], args.set)
        except ConfigError as error:
            parser.error(str(error))
    for name in ("batch", "image_size", "repeats", "seq_len", "env_steps", "acting_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.list:
        for bench in BENCHMARKS.values():
            print(f"{bench.name:12s} {bench.description}" + (" [only with --only]" if bench.opt_in else ""))
        return {"benchmarks": sorted(BENCHMARKS)}
    # as the training scripts do: before the first parallel operation starts PyTorch's worker threads
    if args.keep_denormals:
        torch.set_flush_denormal(False)  # on this thread, in case the process had turned it on
    else:
        flush_denormals()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    state = denormal_state()
    denormals = "flushed to zero (flush_denormals)" if state == "flushed" else state
    # before any benchmark allocates
    retained = not args.system_allocator and retain_freed_memory()
    allocator = "freed memory retained (retain_freed_memory)" if retained else "C library defaults"
    settings = Settings(args.batch, args.image_size, args.repeats, args.warmup, args.device, args.seed,
                        args.seq_len, args.wm_presets, args.env_steps, args.acting_steps, tuple(args.set))
    results = []
    for name in args.only or [name for name, bench in BENCHMARKS.items() if not bench.opt_in]:
        for row in BENCHMARKS[name].run(settings):
            results.append({"benchmark": name, **row})
    machine = machine_info(args.device, allocator, denormals)
    report = {"machine": machine, "settings": asdict(settings), "results": results}
    table = markdown(machine, settings, results)
    print(table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "benchmark.md").write_text(table + "\n")
        (args.out / "benchmark.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
