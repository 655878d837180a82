"""Benchmarks of AIME's modules (the harness is ``aime.bench``; see its docstring for what each measures).

Prints the machine (CPU count, torch version, threads, device) and a Markdown table; ``--json``
writes the same as JSON; ``--out`` writes ``benchmark.md`` and ``benchmark.json`` into a folder.
Timings are the median over ``--repeats`` (after ``--warmup`` untimed runs); compare them as ratios
within one run, since shared machines are noisy.

Like the training scripts, on a CPU the benchmark first calls ``aime.runtime.denormals.flush_denormals``
(denormal floats become zero instead of taking the CPU's slow microcode path;
``--keep-denormals`` measures without) and ``aime.runtime.allocator.retain_freed_memory`` (freed
activations are reused instead of handed back to the kernel and faulted in again, about 2x on an
``atari100k`` update on a 2-core VM); ``--system-allocator`` keeps the C library's defaults. On
CUDA it sets ``cudnn.benchmark`` instead (``aime.runtime.device.configure_process``).

    python scripts/benchmark.py                           # everything, B = 16 at 84x84, T 64
    python scripts/benchmark.py --only prior --repeats 5
    python scripts/benchmark.py --only update --wm-presets cpu
    python scripts/benchmark.py --only update --wm-presets atari100k --system-allocator
    python scripts/benchmark.py --only update --wm-presets atari100k --keep-denormals
    python scripts/benchmark.py --only update --wm-presets atari100k --set model.deter=256  # sizes over a preset
    python scripts/benchmark.py --list
    python scripts/benchmark.py --quick --out runs/bench  # a smoke run (B = 2, 1 repeat, debug sizes)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from aime.bench import BENCHMARKS, Settings, default_selection, machine_info, markdown, run_benchmarks
from aime.bench.environments import ACTING_ENVS
from aime.bench.measure import CLOCKS
from aime.config import ConfigError, load_config
from aime.runtime.allocator import retain_freed_memory
from aime.runtime.denormals import denormal_state, flush_denormals
from aime.runtime.device import configure_process


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable); one of {sorted(BENCHMARKS)}",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--batch", type=int, default=16, help="batch size B (default 16)")
    parser.add_argument("--image-size", type=int, default=84, help="frame side (default 84)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON here")
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="write benchmark.md and benchmark.json into this folder"
    )
    parser.add_argument("--seq-len", type=int, default=64, help="world-model window length T (default 64)")
    parser.add_argument(
        "--wm-presets",
        default="cpu,atari100k",
        help="comma-separated presets whose model sizes the world-model, update and acting-loop "
        "benchmarks use (default cpu,atari100k)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting of the --wm-presets, e.g. --set model.deter=256 (repeatable)",
    )
    parser.add_argument(
        "--env-steps", type=int, default=2000, help="agent steps per timed repeat of the env benchmark (default 2000)"
    )
    parser.add_argument(
        "--acting-steps",
        type=int,
        default=50,
        help=f"vector steps ({ACTING_ENVS} envs) per timed repeat of the acting loop (default 50)",
    )
    parser.add_argument(
        "--system-allocator",
        action="store_true",
        help="keep the C library's malloc defaults (freed blocks go back to the kernel) instead "
        "of aime.runtime.allocator.retain_freed_memory(), to measure what it buys",
    )
    parser.add_argument(
        "--keep-denormals",
        action="store_true",
        help="leave denormal floats on instead of aime.runtime.denormals.flush_denormals(), "
        "to measure what flushing buys",
    )
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="wall",
        help="what the times read: wall seconds (default), or cpu: the process's CPU seconds over all "
        "its threads, which other processes on the cores do not inflate (CPU devices only)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: batch 2, 1 repeat, no warmup; world model, update and acting loop at "
        "debug sizes, T 4; 32 env steps, 2 acting-loop steps (flags given explicitly win)",
    )
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
    if args.clock == "cpu" and torch.device(args.device).type != "cpu":
        parser.error(f"--clock cpu counts the process's CPU time, not device {args.device}'s work: use --clock wall")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.list:
        for bench in BENCHMARKS.values():
            print(f"{bench.name:12s} {bench.description}" + (" [only with --only]" if bench.opt_in else ""))
        return {"benchmarks": sorted(BENCHMARKS)}
    # as the training scripts do (aime.runtime.device.configure_process): the CPU settings on a CPU,
    # before the first parallel operation starts PyTorch's worker threads; cudnn.benchmark on CUDA
    cpu = torch.device(args.device).type == "cpu"
    if args.keep_denormals or not cpu:
        torch.set_flush_denormal(False)  # on this thread, in case the process had turned it on
    else:
        flush_denormals()
    if not cpu:
        configure_process(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    state = denormal_state()
    denormals = "flushed to zero (flush_denormals)" if state == "flushed" else state
    # before any benchmark allocates
    retained = cpu and not args.system_allocator and retain_freed_memory()
    allocator = "freed memory retained (retain_freed_memory)" if retained else "C library defaults"
    settings = Settings(
        args.batch,
        args.image_size,
        args.repeats,
        args.warmup,
        args.device,
        args.seed,
        args.seq_len,
        args.wm_presets,
        args.env_steps,
        args.acting_steps,
        tuple(args.set),
        args.clock,
    )
    results = run_benchmarks(settings, args.only or default_selection())
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
