"""Train an AIME agent on an Atari game (or Catch).

    python scripts/train_agent.py --env Breakout
    python scripts/train_agent.py --env Catch --preset cpu --steps 20000
    python scripts/train_agent.py --env Pong --preset cpu --set model.deter=256 --set train.batch_size=8
    python scripts/train_agent.py --resume runs/Breakout__0__1700000000
    python scripts/train_agent.py --resume runs/Breakout__0__1700000000 --set train.compile_world_model=true
    torchrun --standalone --nproc_per_node=2 scripts/train_agent.py --env Catch --preset cpu  # data-parallel

Bad input (unknown game, preset or key, negative steps, unwritable logdir, a --logdir that already
holds files, a damaged run directory) prints one line and exits with code 2. SIGINT/SIGTERM write a
checkpoint, then exit (130/143). docs/running.md has the exit codes and the run-directory contract.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import torch

import envs
from aime.config import (
    RESUME_KEYS,
    ConfigError,
    apply_resume_overrides,
    default_preset,
    describe,
    load_config,
)
from aime.runtime import distributed
from aime.runtime.checkpoint import CheckpointError, config_differences, recover, saved_config
from aime.runtime.device import configure_process, resolve_device
from aime.runtime.loop import Trainer
from aime.runtime.run_dir import config_from_checkpoint
from aime.runtime.stopping import TrainingStopped


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train an AIME agent (world model with an attention schema, behaviour in imagination).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config keys (use with --set):\n"
        + "\n".join(f"  {key} = {value!r}" + (f"  -- {doc}" if doc else "") for key, value, doc in describe()),
    )
    parser.add_argument("--env", help="game: Breakout, ALE/Pong-v5, ..., or Catch (default: the preset's)")
    parser.add_argument(
        "--preset",
        action="append",
        default=None,
        help="preset name(s) from configs/, applied in order; repeat or comma-separate "
        "(default: atari100k on CUDA, cpu otherwise)",
    )
    parser.add_argument("--steps", type=int, help="agent steps to train for (train.steps)")
    parser.add_argument("--logdir", help="run directory (default: runs/{env}__{seed}__{time})")
    parser.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    parser.add_argument("--seed", type=int, help="seed (default 0)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.deter=256 (repeatable); with --resume only "
        f"{', '.join(RESUME_KEYS)}",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def fail(message: str) -> int:
    """Print ``message`` as one line (a nested error's own line breaks folded) and return 2."""
    print(f"train_agent.py: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


# what a run writes into its directory: a directory holding any of them holds a run
RUN_ENTRIES = ("config.yaml", "checkpoint", ".checkpoint.new", ".checkpoint.old", "metrics.jsonl")


def check_new_logdir(logdir: Path) -> None:
    """A fresh run starts in a new or empty directory: it never overwrites or mixes with another run."""
    if not logdir.is_dir():
        return  # missing: created later; a file in the way: check_writable says so
    entries = sorted(p.name for p in logdir.iterdir())
    if not entries:
        return
    if any(name in RUN_ENTRIES or name.startswith("events.out.tfevents") for name in entries):
        raise ConfigError(
            f"log directory {str(logdir)!r} already holds a run: continue it with --resume {logdir}, "
            "or start a new run with another --logdir"
        )
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise ConfigError(f"log directory {str(logdir)!r} is not empty ({shown}): give a new or empty --logdir")


def on_main_rank(action) -> None:
    """Run ``action()`` on rank 0 alone (the others wait); a ConfigError or CheckpointError it raises
    is raised on every rank, so that all of them exit with the same one line."""
    problem = None
    if distributed.is_main():
        try:
            action()
        except (ConfigError, CheckpointError) as error:
            problem = error
    problem = distributed.broadcast_object(problem)
    if problem is not None:
        raise problem


def check_resumable(cfg, logdir: Path) -> None:
    """Bring the run's checkpoint to its newest complete generation (a save cut short by a crash
    leaves a partial one), then check that config.yaml still describes that checkpoint."""
    recover(logdir / "checkpoint")
    differences = config_differences(cfg, saved_config(logdir), ignore=("train.steps", *RESUME_KEYS))
    if differences:
        shown = "; ".join(differences[:3]) + ("; ..." if len(differences) > 3 else "")
        raise ConfigError(
            f"{logdir / 'config.yaml'} does not match the run's checkpoint ({shown}): it was edited "
            "or damaged; restore it (only --steps and --set of the keys --help names may change on --resume)"
        )


def resumed_config(cfg, logdir: Path, overrides: list[str]) -> None:
    """A resumed run keeps the values of :data:`RESUME_KEYS` that its last session ran with (the
    checkpoint's; ``config.yaml`` holds the first session's), then applies this session's ``--set``
    overrides of them."""
    saved = saved_config(logdir)
    for key in RESUME_KEYS:
        section, name = key.split(".")
        if name in saved.get(section, {}):
            setattr(getattr(cfg, section), name, saved[section][name])
    apply_resume_overrides(cfg, overrides)


def check_writable(logdir: Path) -> None:
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        probe = logdir / f".write_test.{distributed.rank()}"  # one per rank: ranks probe at once
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"log directory {str(logdir)!r} is not writable: {error.strerror or error}") from error


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    finished = False
    try:
        code = train(args)
        finished = True
        return code
    finally:
        distributed.cleanup(synchronize=finished)


def train(args: argparse.Namespace) -> int:
    """Configure, train, report; under torchrun every rank runs this (rank 0 reports)."""
    try:
        if args.resume:
            if args.preset or args.env or args.seed is not None or args.logdir:
                raise ConfigError(
                    "--resume continues a run with its saved configuration; only --steps and --set of "
                    f"{', '.join(RESUME_KEYS)} may be given with it"
                )
            cfg = config_from_checkpoint(args.resume)
            apply_resume_overrides(copy.deepcopy(cfg), args.set)  # a refused --set fails before the run is touched
            if args.steps is not None:
                cfg.train.steps = args.steps
            logdir, presets = Path(args.resume), ["(resumed)"]
        else:
            presets = [
                p for item in (args.preset or [default_preset(torch.cuda.is_available())]) for p in item.split(",") if p
            ]
            overrides = list(args.set)
            if args.env:
                overrides.append(f"env.name={args.env}")
            if args.seed is not None:
                overrides.append(f"seed={args.seed}")
            if args.steps is not None:
                overrides.append(f"train.steps={args.steps}")
            cfg = load_config(presets, overrides)
            envs.resolve(cfg.env.name)  # an unknown game fails here, with close matches
            name = cfg.env.name.replace("/", "_")
            logdir = Path(args.logdir or f"runs/{name}__{cfg.seed}__{int(time.time())}")
        if cfg.train.steps < 0:
            raise ConfigError(f"--steps must be >= 0, got {cfg.train.steps}")
        device = resolve_device(cfg.device)
        configure_process(device)  # before the first parallel operation: CPU worker threads copy its setting
        distributed.init(device)  # joins torchrun's process group, if any
        logdir = distributed.broadcast_object(logdir)  # rank 0's (a default name holds the time)
        if args.resume:
            on_main_rank(lambda: check_resumable(cfg, logdir))
            resumed_config(cfg, logdir, args.set)  # the summary names what this session changed
        else:  # before any rank writes into it
            on_main_rank(lambda: check_new_logdir(logdir))
        check_writable(logdir)
        trainer = Trainer(
            cfg, logdir, resume=bool(args.resume), progress=not args.no_progress, preset=",".join(presets)
        )
    except (ConfigError, CheckpointError, ValueError) as error:
        return fail(str(error))
    main_rank = distributed.is_main()
    if main_rank:
        print(trainer.summary(), flush=True)
    try:
        trainer.run()  # prints the end summary on every exit, with the command that continues the run
    except TrainingStopped as stop:
        if main_rank:
            print(f"stopped: {stop}", file=sys.stderr, flush=True)
        distributed.barrier()  # leave together: torchrun stops the others once one rank has exited
        return stop.exit_code
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
