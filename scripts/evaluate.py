"""Evaluate a trained agent: mean return over full episodes, optionally saving frames with attention.

    python scripts/evaluate.py runs/Breakout__0__1700000000 --episodes 10
    python scripts/evaluate.py runs/Catch__0__1700000000 --episodes 5 --save-frames frames/ --video gif
    python scripts/evaluate.py runs/Breakout__0__1700000000 --random --episodes 100   # the baseline
    python scripts/evaluate.py --random --env Breakout --episodes 100 --json random_breakout.json

``--random`` plays a uniformly random policy instead of the agent: with a run directory it uses
that run's environment settings (so the baseline is measured exactly as the agent is evaluated);
with ``--env`` the default Atari-100k protocol.

``--save-frames DIR`` writes every evaluated episode's frames (all evaluation environments, each
episode's last frame included) at 3x, beside the attention posterior's map over them (with the
attention schema on); ``--video gif|mp4`` adds one animation per episode. ``--json FILE`` writes the
returns and lengths (``scripts/plot_runs.py --random FILE`` draws a random policy's line from it).
An episode longer than ``eval.max_steps`` agent steps (``--max-steps``) is cut and reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import envs
from aime.agent.random_policy import RandomPolicy
from aime.config import Config, ConfigError
from aime.runtime.checkpoint import CheckpointError, load_agent, load_run_config
from aime.runtime.environments import env_options
from aime.runtime.evaluation import EvalResult, evaluate
from aime.runtime.recording import VIDEO_FORMATS, EpisodeRecorder


def random_policy(checkpoint: str | None, env: str | None, seed: int) -> tuple[RandomPolicy, Config]:
    """A random policy and the configuration to evaluate it with (the run's, or defaults for ``env``)."""
    cfg = load_run_config(checkpoint) if checkpoint else Config()
    if env:
        cfg.env.name = env
    probe = envs.make(cfg.env.name, **env_options(cfg, evaluation=True))
    try:
        num_actions = int(probe.action_space.n)
    finally:
        probe.close()
    return RandomPolicy(num_actions, seed), cfg


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a trained AIME agent.")
    parser.add_argument("checkpoint", nargs="?", help="run directory, its checkpoint/ folder, or agent.pt")
    parser.add_argument(
        "--random",
        action="store_true",
        help="play a uniformly random policy (with the checkpoint's env settings, or --env)",
    )
    parser.add_argument("--env", help="with --random and no checkpoint: the game (default protocol)")
    parser.add_argument("--episodes", type=int, default=10, help="full episodes to play (default 10)")
    parser.add_argument("--envs", type=int, help="parallel evaluation environments (default: the run's)")
    parser.add_argument("--sample", action="store_true", help="sample actions instead of the policy's mode")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--max-steps",
        type=int,
        help="cut an episode after this many agent steps (default: the run's eval.max_steps; 0: never)",
    )
    parser.add_argument("--save-frames", metavar="DIR", help="write every episode's frames (with attention) here")
    parser.add_argument("--video", choices=VIDEO_FORMATS, help="with --save-frames: also one GIF or MP4 per episode")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=500,
        help="at most this many saved frames per episode, its last one included (default 500)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the returns, lengths and their summary here")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, in one line (None: nothing)."""
    if args.episodes < 1:
        return f"--episodes must be >= 1, got {args.episodes}"
    if not args.checkpoint and not (args.random and args.env):
        return "give a checkpoint, or --random with --env GAME"
    if args.env and not args.random:
        return "--env only goes with --random (an agent plays its own game)"
    if args.video and not args.save_frames:
        return "--video goes with --save-frames DIR (the folder it writes into)"
    if args.max_frames < 1:
        return f"--max-frames must be >= 1, got {args.max_frames}"
    if args.max_steps is not None and args.max_steps < 0:
        return f"--max-steps must be >= 0, got {args.max_steps}"
    return None


def report(cfg: Config, who: str, result: EvalResult, cap: int) -> dict:
    """The results as written by ``--json`` (what ``scripts/plot_runs.py --random`` reads)."""
    returns = np.asarray(result.returns, dtype=float)
    return {
        "env": cfg.env.name,
        "policy": who,
        "episodes": len(returns),
        "returns": result.returns,
        "lengths": result.lengths,
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "length_mean": float(np.mean(result.lengths)),
        "capped": result.capped,
        "max_steps": cap,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"evaluate.py: error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.random:
            agent, cfg = random_policy(args.checkpoint, args.env, args.seed)
        else:
            agent, cfg = load_agent(args.checkpoint, args.device)
    except (CheckpointError, ConfigError, ValueError) as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        return 2
    if args.envs:
        cfg.env.eval_envs = args.envs
    if args.max_steps is not None:
        cfg.eval.max_steps = args.max_steps
    recorder = EpisodeRecorder(args.save_frames, args.video, args.max_frames) if args.save_frames else None
    result = evaluate(agent, cfg, args.episodes, seed=args.seed, greedy=not args.sample, on_step=recorder)
    who = "random policy" if args.random else ("sampled" if args.sample else "greedy")
    summary = report(cfg, who, result, cfg.eval.max_steps)
    print(
        f"{cfg.env.name} ({who}): {summary['episodes']} episodes, return {summary['return_mean']:.3f} +- "
        f"{summary['return_std']:.3f} (min {summary['return_min']:.3f}, max {summary['return_max']:.3f}), "
        f"length {summary['length_mean']:.1f}"
    )
    if result.capped:
        print(
            f"{result.capped} of {summary['episodes']} episodes hit the cap of {cfg.eval.max_steps:,} agent steps "
            "(eval.max_steps, --max-steps) and count with their return so far: a stalling policy?"
        )
    if recorder is not None:
        print(recorder.summary())
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
