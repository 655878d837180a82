"""Benchmarks of AIME's modules: a table of named benchmarks, each a function returning result rows.

Prints the machine (CPU count, torch version, threads, device) and a Markdown table; ``--json``
writes the same as JSON; ``--out`` writes ``benchmark.md`` and ``benchmark.json`` into a folder.
Timings are the median over ``--repeats`` of one forward + backward (after ``--warmup`` untimed
ones); compare them as ratios within one run, since shared machines are noisy.

    python scripts/benchmark.py                           # everything, B = 16 at 84x84
    python scripts/benchmark.py --only prior --repeats 5
    python scripts/benchmark.py --list
    python scripts/benchmark.py --quick --out runs/bench  # a smoke run (B = 2, 1 repeat)

To add a benchmark, decorate a function ``fn(settings) -> list[dict]`` with
``@benchmark("name", "description")``; each row has ``item``, ``value``, ``unit`` (and optionally
``note``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from aime.attention import AttentionPosterior, AttentionPrior, AttentionSchema, ConvGRUCell, SlotAttention
from aime.config import load_config
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
    """Presets whose ``model`` sizes the world-model benchmarks use."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[[Settings], list[dict]]


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, description: str) -> Callable:
    """Register ``fn(settings) -> rows`` under ``name``."""

    def register(fn: Callable[[Settings], list[dict]]) -> Callable[[Settings], list[dict]]:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = Benchmark(name, description, fn)
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
    cfg = load_config([preset])
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

            medians[label], times = _time_calls(update, settings, settings.repeats)
            rows.append({"item": f"VRNN {preset} {label} ({count_parameters(model):,} params), B {b} x T {t}",
                         "value": round(medians[label], 4), "unit": "s/update", "note": f"median of {len(times)}"})
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


def machine_info(device: str) -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def markdown(machine: dict, settings: Settings, results: list[dict]) -> str:
    lines = [
        f"Machine: {machine['cpu_count']} CPUs, torch {machine['torch']}, {machine['threads']} threads, "
        f"device {machine['device']}" + (f" ({machine['cuda']})" if machine["cuda"] else "")
        + f", Python {machine['python']}",
        f"Settings: batch {settings.batch}, image {settings.image_size}, repeats {settings.repeats}, "
        f"warmup {settings.warmup}, world model: T {settings.seq_len}, presets {', '.join(settings.wm_presets)} (84x84)",
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
                        help="comma-separated presets for the world-model sizes (default cpu,atari100k)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 2, 1 repeat, no warmup; world model at debug sizes, T 4")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.repeats, args.warmup = 2, 1, 0
        args.seq_len, args.wm_presets = 4, "debug"
    args.wm_presets = tuple(p for p in args.wm_presets.split(",") if p)
    for name in ("batch", "image_size", "repeats", "seq_len"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.list:
        for bench in BENCHMARKS.values():
            print(f"{bench.name:12s} {bench.description}")
        return {"benchmarks": sorted(BENCHMARKS)}
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = Settings(args.batch, args.image_size, args.repeats, args.warmup, args.device, args.seed,
                        args.seq_len, args.wm_presets)
    results = []
    for name in args.only or list(BENCHMARKS):
        for row in BENCHMARKS[name].run(settings):
            results.append({"benchmark": name, **row})
    machine = machine_info(args.device)
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
