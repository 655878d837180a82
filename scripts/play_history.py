"""How a run's play changed over training, from its replay: one Markdown table per run.

Cuts the replay of the run's newest checkpoint into learning episodes (with
``env.terminal_on_life_loss`` each life is one) and groups them by the agent step they started at
(``aime.eval.play_history``): episodes, mean length, the share that ended within ``--short``
steps, mean return, and the share of steps that chose each action. For Breakout also, read from the
frames, the share of steps with the paddle against a side wall and the mean distance between the
paddle and the ball while the ball is low. No model is loaded; a run that is
training can be read.

    python scripts/play_history.py runs/breakout/full_s0 runs/breakout/ablation_s0
    python scripts/play_history.py runs/breakout/full_s0 --every 2500 --json history.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import envs
from aime.eval.play_history import BREAKOUT_FEATURES, episode_history
from aime.runtime.checkpoint import CheckpointError, load_run_config, read_newest, replay_dirname
from aime.runtime.replay import ReplayBuffer


def read_run(run: str):
    """A run's configuration and its replay, from its newest checkpoint."""
    return read_newest(run, lambda ckpt: (load_run_config(ckpt), ReplayBuffer.load(ckpt.parent / replay_dirname(0))))


def action_names(env_name: str) -> list[str]:
    """The game's actions: their meanings (NOOP, FIRE, ...) where the env gives them, else ``action i``."""
    env = envs.make(env_name)
    try:
        count = int(env.action_space.n)
        names = list(getattr(env.unwrapped, "get_action_meanings", lambda: [])())
    finally:
        env.close()
    return names if len(names) == count else [f"action {i}" for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("runs", nargs="+", help="run directories (or checkpoint directories) with a replay")
    parser.add_argument("--every", type=int, default=5000, help="agent steps per row (default 5000)")
    parser.add_argument(
        "--short", type=int, default=25, help="episodes of at most this many steps count as short (default 25)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.every < 1 or args.short < 0:
        parser.error(f"need --every >= 1 and --short >= 0, got {args.every} and {args.short}")
    histories = {}
    for run in args.runs:
        try:
            cfg, replay = read_run(run)
        except (CheckpointError, OSError, ValueError) as error:
            print(f"play_history.py: error: {run}: {error}", file=sys.stderr)
            return 2
        breakout = envs.resolve(cfg.env.name)[1] == "breakout" and replay.obs_shape == (3, 84, 84)
        names = action_names(cfg.env.name)
        first_step = (replay.total_added - replay.filled) * replay.num_streams
        rows = replay.newest(replay.filled)
        features = BREAKOUT_FEATURES if breakout else {}
        history = episode_history(rows, first_step, args.every, args.short, len(names), features=features)
        histories[run] = history
        print(f"\n{run} ({cfg.env.name}, {replay.filled * replay.num_streams:,} steps in the replay)\n")
        head = ["agent steps", "episodes", "mean length", f"<= {args.short} steps", "mean return"]
        head += list(features) + names
        print("| " + " | ".join(head) + " |")
        print("| --- |" + " ---: |" * (len(head) - 1))
        for row in history:
            cells = [f"{row['start']:,.0f}", f"{row['episodes']:.0f}", f"{row['mean_length']:.1f}"]
            cells += [f"{row['short_share']:.2f}", f"{row['mean_return']:.2f}"]
            cells += [f"{row[name]:.2f}" for name in features]
            cells += [f"{row[f'action_{i}']:.2f}" for i in range(len(names))]
            print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(histories, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
