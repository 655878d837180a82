"""Evaluate a trained agent: mean return over full episodes, optionally saving frames with attention.

    python scripts/evaluate.py runs/Breakout__0__1700000000 --episodes 10
    python scripts/evaluate.py runs/Catch__0__1700000000 --episodes 5 --save-frames frames/
    python scripts/evaluate.py runs/Breakout__0__1700000000 --random --episodes 100   # the baseline
    python scripts/evaluate.py --random --env Breakout --episodes 100

``--random`` plays a uniformly random policy instead of the agent: with a run directory it uses
that run's environment settings (so the baseline is measured exactly as the agent is evaluated);
with ``--env`` the default Atari-100k protocol.

``--save-frames DIR`` writes, for the first evaluation environment, one PNG per step: the frame
beside the attention posterior's map over it (with the attention schema on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

import envs
from aime.agent.random_policy import RandomPolicy
from aime.attention.overlays import attention_heatmap_overlay
from aime.config import Config, ConfigError
from aime.runtime.checkpoint import CheckpointError, load_agent, load_run_config
from aime.runtime.loop import env_options, evaluate


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a trained AIME agent.")
    parser.add_argument("checkpoint", nargs="?", help="run directory, its checkpoint/ folder, or agent.pt")
    parser.add_argument("--random", action="store_true",
                        help="play a uniformly random policy (with the checkpoint's env settings, or --env)")
    parser.add_argument("--env", help="with --random and no checkpoint: the game (default protocol)")
    parser.add_argument("--episodes", type=int, default=10, help="full episodes to play (default 10)")
    parser.add_argument("--envs", type=int, help="parallel evaluation environments (default: the run's)")
    parser.add_argument("--sample", action="store_true", help="sample actions instead of the policy's mode")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--save-frames", metavar="DIR", help="write frames with attention overlays here")
    parser.add_argument("--max-frames", type=int, default=500, help="at most this many saved frames")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        print(f"evaluate.py: error: --episodes must be >= 1, got {args.episodes}", file=sys.stderr)
        return 2
    if not args.checkpoint and not (args.random and args.env):
        print("evaluate.py: error: give a checkpoint, or --random with --env GAME", file=sys.stderr)
        return 2
    if args.env and not args.random:
        print("evaluate.py: error: --env only goes with --random (an agent plays its own game)", file=sys.stderr)
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
    out = Path(args.save_frames) if args.save_frames else None
    saved = 0

    def save(obs: np.ndarray, extras: dict) -> None:
        nonlocal saved
        if out is None or saved >= args.max_frames:
            return
        frame = torch.as_tensor(obs[:1])
        # 3x, so that the overlay's scale and its peak / entropy figures are legible
        panels = [torch.nn.functional.interpolate(frame.float() / 255.0, scale_factor=3, mode="nearest")]
        if "attention" in extras:
            panels.append(attention_heatmap_overlay(frame, extras["attention"][:1].float().cpu(), upscale=3))
        image = (torch.cat(panels, dim=-1)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        cv2.imwrite(str(out / f"frame_{saved:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        saved += 1

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    returns, lengths = evaluate(agent, cfg, args.episodes, seed=args.seed, greedy=not args.sample, on_step=save)
    who = "random policy" if args.random else ("sampled" if args.sample else "greedy")
    print(f"{cfg.env.name} ({who}): {len(returns)} episodes, return {np.mean(returns):.3f} +- {np.std(returns):.3f} "
          f"(min {np.min(returns):.3f}, max {np.max(returns):.3f}), length {np.mean(lengths):.1f}")
    if out is not None:
        print(f"saved {saved} frames to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
