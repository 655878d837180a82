"""What a Breakout run's imagination pays scripted policies, against what the game pays them.

Rolls the run's actor and three scripted policies (follow the ball; hold LEFT; hold RIGHT) out in
the world model of its newest checkpoint, from the posterior states of replay windows as the
actor's own rollouts start, and reports the actor's objective for each: the lambda-return from the
start, the imagined reward per step, the survival over the horizon (the continuation's product)
and, from the decoder's frames, how near the ball the paddle kept (``aime.eval.imagined_play``).
Beside each, the game's figures: the scripts played in the real game under the run's learning
protocol, and the actor's from the newest rows of its replay (what it played last). A world model
that pays following the ball less than a wall, while the game pays it more, teaches the wall.

    python scripts/imagined_play.py runs/breakout/nomap_s1 --starts 512 --game-steps 4000
    python scripts/imagined_play.py runs/breakout/a runs/breakout/b --json imagined.json
    python scripts/imagined_play.py runs/breakout/nomap_s1 --horizon 45 --prior-mode
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import envs
from aime.eval.imagined_play import frame_figures, game_play, imagined_play, red_positions, scripted_policy
from aime.runtime.checkpoint import CheckpointError, load_agent_and_replay
from aime.runtime.environments import env_options
from aime.runtime.replay import ReplayBuffer

POLICIES = ("actor", "follow", "left", "right")
COLUMNS = ("return", "reward", "survival", "distance", "ball_drawn")
COLUMNS += ("game reward", "game terminals", "game distance", "game ball_drawn")


def start_states(agent, replay: ReplayBuffer, starts: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Posterior states of ``starts // seq_len`` replay windows, flattened as the actor's rollouts start."""
    seq_len = agent.cfg.train.seq_len
    data = agent.to_tensors(replay.sample(max(starts // seq_len, 1), seq_len))
    out = agent.world_model.observe(data["obs"], data["action"], data["is_first"])
    keys = [k for k in ("deter", "stoch", "cell") if k in out]
    return {k: out[k].flatten(0, 1).float() for k in keys}, 1.0 - data["is_terminal"].flatten().float()


def replay_figures(replay: ReplayBuffer, rows: int) -> dict[str, float]:
    """Reward and terminals per step in the newest ``rows`` rows of every stream (the actor's play),
    and the frames' figures (``aime.eval.imagined_play.frame_figures``)."""
    newest = replay.newest(min(rows, replay.filled))
    frames = torch.from_numpy(newest["obs"]).flatten(0, 1).float() / 255
    return {
        "reward": float(newest["reward"].mean()),
        "terminals": float(newest["is_terminal"].mean()),
        **frame_figures(red_positions(frames)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("runs", nargs="+", help="Breakout run directories (with a checkpoint and its replay)")
    parser.add_argument("--starts", type=int, default=512, help="imagined rollouts per policy (default 512)")
    parser.add_argument("--game-steps", type=int, default=4000, help="agent steps each script plays (default 4000)")
    parser.add_argument("--rows", type=int, default=500, help="newest replay rows per stream for the actor (500)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the windows, the rollouts and the games")
    parser.add_argument("--prior-mode", action="store_true", help="imagine with the prior's mode, not samples from it")
    parser.add_argument(
        "--horizon", type=int, help="imagined steps per rollout (default: the run's train.horizon, the actor's own)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.starts < 1 or args.game_steps < 8 or args.rows < 1:
        parser.error(
            f"need --starts >= 1, --game-steps >= 8, --rows >= 1; got {args.starts}, {args.game_steps}, {args.rows}"
        )
    if args.horizon is not None and args.horizon < 1:
        parser.error(f"need --horizon >= 1, got {args.horizon}")
    torch.set_grad_enabled(False)
    results, games = {}, {}
    for run in args.runs:
        try:
            agent, cfg, replay = load_agent_and_replay(run)
        except (CheckpointError, OSError, ValueError) as error:
            print(f"imagined_play.py: error: {run}: {error}", file=sys.stderr)
            return 2
        if envs.resolve(cfg.env.name)[1] != "breakout":
            print(f"imagined_play.py: error: {run} is a {cfg.env.name} run; the scripts play Breakout", file=sys.stderr)
            return 2
        options = env_options(cfg)
        env = envs.make_vector(cfg.env.name, cfg.env.num_envs, **options)
        actions = env.get_action_meanings()
        protocol = json.dumps(options, sort_keys=True)
        if protocol not in games:  # the scripts' games depend on the protocol alone
            games[protocol] = {
                name: game_play(env, scripted_policy(name, actions), args.game_steps, args.seed)
                for name in POLICIES[1:]
            }
        env.close()
        torch.manual_seed(args.seed)
        replay.rng = np.random.default_rng(args.seed)
        start, start_cont = start_states(agent, replay, args.starts)
        rows = {}
        for name in POLICIES:
            torch.manual_seed(args.seed)
            game = replay_figures(replay, args.rows) if name == "actor" else games[protocol][name]
            imagined = imagined_play(
                agent, start, start_cont, name, actions, sample=not args.prior_mode, horizon=args.horizon
            )
            rows[name] = {**imagined, **{f"game {k}": v for k, v in game.items()}}
        steps = replay.total_added * cfg.env.num_envs
        results[run] = {"agent_steps": steps, "rollouts": int(start_cont.numel()), "policies": rows}
        horizon = args.horizon or agent.behavior.horizon
        print(f"\n{run} ({steps:,} agent steps; {start_cont.numel()} rollouts of {horizon} steps)")
        print("| policy | " + " | ".join(COLUMNS) + " |")
        print("| --- |" + " ---: |" * len(COLUMNS))
        for name, row in rows.items():
            print(f"| {name} | " + " | ".join(f"{row.get(c, float('nan')):.4f}" for c in COLUMNS) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
