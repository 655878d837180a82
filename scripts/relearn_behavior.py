"""Learn the actor and critic again in a trained world model held fixed, and play the real game.

Loads a run's newest checkpoint, keeps its world model as it is (``Agent.behavior_step``: imagined
rollouts from the posterior states of replay windows, the world model not trained), and trains the
actor and critic -- the checkpoint's own, or new ones with ``--fresh`` -- for ``--updates`` steps
under the run's configuration with any ``--set`` overrides (e.g. ``train.entropy``). Every
``--every`` updates it plays ``--episodes`` whole games under the evaluation protocol (sampled
policy) and prints their mean score, the actor's entropy and the imagined return; for Breakout
also the share of steps with the paddle against a wall and the ball-paddle distance while the ball
is low, read from the frames (``aime.eval.play_history``). This separates what the world model
allows a policy to learn from how the policy and the data grew together; ``--replay OTHER_RUN``
starts the rollouts from another run's replay (the same world model, other data). The run is not
changed.

    python scripts/relearn_behavior.py runs/breakout/full_s0 --fresh --updates 1000 --every 500
    python scripts/relearn_behavior.py runs/breakout/full_s0 --fresh --set train.entropy=3e-3 --json out.json
    python scripts/relearn_behavior.py runs/breakout/full_s0 --fresh --replay runs/breakout/ablation_s0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import envs
from aime.agent.agent import Agent
from aime.config import ConfigError, apply_override, validate
from aime.eval.play_history import BREAKOUT_FEATURES
from aime.runtime.checkpoint import CheckpointError, config_of, load_agent_state, read_newest, replay_dirname
from aime.runtime.evaluation import evaluate
from aime.runtime.replay import ReplayBuffer


def read_replay(run: str) -> ReplayBuffer:
    """The replay of a run's newest checkpoint."""
    return read_newest(run, lambda checkpoint: ReplayBuffer.load(checkpoint.parent / replay_dirname(0)))


def build(run: str, overrides: list[str], fresh: bool, device: str) -> Agent:
    """The agent of a run's newest checkpoint under the overridden configuration (with a new actor
    and critic when ``fresh``)."""
    payload = read_newest(run, load_agent_state)
    cfg = config_of(payload)
    for text in overrides:
        apply_override(cfg, text)
    validate(cfg)
    agent = Agent(cfg, int(payload["num_actions"]), device)
    state, prefix = payload["agent"], "world_model."
    if fresh:  # the world model alone; the actor, critic and their optimisers start anew
        agent.world_model.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    else:
        agent.load_state_dict(state)
        for name in ("actor", "critic"):
            agent.optimizers()[name].load_state_dict(payload["optimizers"][name])
    return agent


def play(agent: Agent, episodes: int, seed: int, breakout: bool) -> dict[str, float]:
    """Mean score of ``episodes`` whole games (sampled policy), and the Breakout frame figures."""
    sums = {name: [0.0, 0] for name in BREAKOUT_FEATURES} if breakout else {}

    def on_step(obs: np.ndarray, extras, episode: np.ndarray, last: np.ndarray) -> None:
        counted = obs[episode >= 0]
        for name, feature in BREAKOUT_FEATURES.items() if breakout else ():
            values = feature(counted)
            sums[name][0] += float(np.nansum(values))
            sums[name][1] += int((~np.isnan(values)).sum())

    agent.eval()
    result = evaluate(agent, agent.cfg, episodes, seed, greedy=False, on_step=on_step)
    agent.train()
    out = {"score": float(np.mean(result.returns)), "score_sd": float(np.std(result.returns))}
    out.update({name: total / count if count else float("nan") for name, (total, count) in sums.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("run", help="a run directory (or a checkpoint directory) with its replay")
    parser.add_argument("--updates", type=int, default=1000, help="behaviour updates (default 1000)")
    parser.add_argument("--every", type=int, default=500, help="play after every this many updates (default 500)")
    parser.add_argument("--episodes", type=int, default=10, help="games per evaluation (default 10)")
    parser.add_argument("--fresh", action="store_true", help="a new actor and critic instead of the checkpoint's")
    parser.add_argument("--replay", metavar="OTHER_RUN", help="start the rollouts from this run's replay")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0, help="seeds the updates' sampling and the games")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    if args.updates < 1 or args.every < 1 or args.episodes < 1:
        parser.error(f"need --updates, --every and --episodes >= 1, got {args.updates}, {args.every}, {args.episodes}")
    torch.manual_seed(args.seed)
    try:
        agent = build(args.run, args.overrides, args.fresh, args.device)
        replay = read_replay(args.replay or args.run)
    except (CheckpointError, ConfigError, OSError, ValueError) as error:
        print(f"relearn_behavior.py: error: {error}", file=sys.stderr)
        return 2
    t = agent.cfg.train
    if not replay.can_sample(t.seq_len):
        problem = f"the replay of {args.replay or args.run} is too short for windows of {t.seq_len}"
        print(f"relearn_behavior.py: error: {problem}", file=sys.stderr)
        return 2
    replay.rng = np.random.default_rng(args.seed)
    breakout = envs.resolve(agent.cfg.env.name)[1] == "breakout"
    rows = [{"updates": 0, **play(agent, args.episodes, args.seed, breakout)}]
    print(rows[-1], flush=True)
    recent: list[dict[str, float]] = []
    learning = 0.0  # seconds spent in the updates (the games not counted)
    for update in range(1, args.updates + 1):
        started = time.perf_counter()
        metrics, finite = agent.behavior_step(replay.sample(t.batch_size, t.seq_len))
        learning += time.perf_counter() - started
        if finite:
            recent = (recent + [{k: float(v) for k, v in metrics.items()}])[-100:]
        if update % args.every == 0 or update == args.updates:
            row = {"updates": update, **play(agent, args.episodes, args.seed, breakout)}
            for key in ("behavior/actor_entropy", "behavior/imagined_return", "behavior/advantage_std"):
                row[key.split("/")[1]] = float(np.mean([m[key] for m in recent])) if recent else float("nan")
            row["seconds_per_update"] = learning / update
            rows.append(row)
            print(row, flush=True)
    columns = [key for key in rows[-1] if key != "updates"]
    print("\n| updates | " + " | ".join(columns) + " |")
    print("| ---: |" + " ---: |" * len(columns))
    for row in rows:
        print(f"| {row['updates']} | " + " | ".join(f"{row.get(k, float('nan')):.3g}" for k in columns) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
