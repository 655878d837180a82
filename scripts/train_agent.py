"""Train an AIME agent on an Atari game (or Catch).

    python scripts/train_agent.py --env Breakout
    python scripts/train_agent.py --env Catch --preset cpu --steps 20000
    python scripts/train_agent.py --env Pong --preset cpu --set model.deter=256 --set train.batch_size=8
    python scripts/train_agent.py --resume runs/Breakout__0__1700000000
    torchrun --standalone --nproc_per_node=2 scripts/train_agent.py --env Catch --preset cpu  # data-parallel

Bad input (unknown game, preset or key, negative steps, unwritable logdir) prints one line and
exits with code 2. SIGINT/SIGTERM write a checkpoint, then exit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

import envs
from aime.agent.agent import resolve_device
from aime.config import ConfigError, default_preset, describe, load_config
from aime.runtime import distributed
from aime.runtime.allocator import retain_freed_memory
from aime.runtime.denormals import flush_denormals
from aime.runtime.checkpoint import CheckpointError
from aime.runtime.loop import Trainer, TrainingStopped, config_from_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train an AIME agent (world model with an attention schema, behaviour in imagination).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config keys (use with --set):\n" + "\n".join(
            f"  {key} = {value!r}" + (f"  -- {doc}" if doc else "") for key, value, doc in describe()),
    )
    parser.add_argument("--env", help="game: Breakout, ALE/Pong-v5, ..., or Catch (default: the preset's)")
    parser.add_argument("--preset", action="append", default=None,
                        help="preset name(s) from configs/, applied in order; repeat or comma-separate "
                             "(default: atari100k on CUDA, cpu otherwise)")
    parser.add_argument("--steps", type=int, help="agent steps to train for (train.steps)")
    parser.add_argument("--logdir", help="run directory (default: runs/{env}__{seed}__{time})")
    parser.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    parser.add_argument("--seed", type=int, help="seed (default 0)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set model.deter=256 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def fail(message: str) -> int:
    print(f"train_agent.py: error: {message}", file=sys.stderr)
    return 2


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
    flush_denormals()  # first: the worker threads PyTorch starts later copy the setting
    retain_freed_memory()  # large activations are reused instead of faulted in every update
    try:
        return train(args)
    finally:
        distributed.cleanup()


def train(args: argparse.Namespace) -> int:
    """Configure, train, report; under torchrun every rank runs this (rank 0 reports)."""
    try:
        if args.resume:
            if args.preset or args.set or args.env or args.seed is not None or args.logdir:
                raise ConfigError("--resume continues a run with its saved configuration; "
                                  "only --steps may be given with it")
            cfg = config_from_checkpoint(args.resume)
            if args.steps is not None:
                cfg.train.steps = args.steps
            logdir, presets = Path(args.resume), ["(resumed)"]
        else:
            presets = [p for item in (args.preset or [default_preset(torch.cuda.is_available())])
                       for p in item.split(",") if p]
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
        distributed.init(resolve_device(cfg.device))  # joins torchrun's process group, if any
        logdir = distributed.broadcast_object(logdir)  # rank 0's (a default name holds the time)
        check_writable(logdir)
        trainer = Trainer(cfg, logdir, resume=bool(args.resume), progress=not args.no_progress,
                          preset=",".join(presets))
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
