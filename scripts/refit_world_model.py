"""Train a new world model on a run's replay, held fixed, and measure how long imagination keeps the ball.

Reads a run's configuration (with any ``--set`` overrides) and the replay of its newest checkpoint,
builds a new agent and trains its world model alone (the step the agent's update takes,
``aime.agent.agent.world_model_update``) for ``--updates`` steps on windows of that replay. Every
``--every`` updates it reports the world model's losses and, for Breakout, rolls the scripted
policies of ``aime.eval.imagined_play`` out in it from the posterior states of the same
``--windows`` replay windows: the share of imagined frames with the ball drawn at each step, and
the survival over the horizon. World-model settings are so compared on the same data before runs
of both seeds. The run is not changed. On the 60,000 rows of a Breakout run a new `cpu`-preset world
model drew the ball on 6% of the start states after 3,000 updates (docs/breakout.md), hence the
default of 10,000 (about 2 hours on one thread). ``--continue`` instead trains on from the run's own
world model and optimiser state: whether more updates, or a change to the losses or the windows,
keeps the ball longer, in a fraction of the time.

    python scripts/refit_world_model.py runs/breakout/nomap_s1 --updates 3000 --every 1000
    python scripts/refit_world_model.py runs/breakout/nomap_s1 --continue --updates 3000 --every 500
    python scripts/refit_world_model.py runs/breakout/nomap_s1 --set train.seq_len=64 --set train.batch_size=4
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
from aime.agent.agent import Agent, world_model_update
from aime.config import ConfigError, apply_override, validate
from aime.eval.imagined_play import imagined_play
from aime.runtime.checkpoint import CheckpointError, config_of, load_agent_state, read_newest, replay_dirname
from aime.runtime.environments import env_options
from aime.runtime.replay import ReplayBuffer

SCRIPTS = ("right", "follow")  # a wall the ball comes down at, and the paddle under the ball
STEPS_SHOWN = (0, 1, 5, 10)  # imagined steps whose ball share the table shows
LOSSES = ("reconstruction", "open_loop", "kl_value", "reward", "continuation")  # the world-model terms reported


def read_run(run: str, overrides: list[str]):
    """The run's configuration with ``overrides`` (validated), the replay of its newest checkpoint and
    that checkpoint's saved state (networks and optimisers)."""

    def read(checkpoint: Path):
        payload = load_agent_state(checkpoint)
        return config_of(payload), ReplayBuffer.load(checkpoint.parent / replay_dirname(0)), payload

    cfg, replay, payload = read_newest(run, read)
    for text in overrides:
        apply_override(cfg, text)
    validate(cfg)
    return cfg, replay, payload


def continue_from(agent: Agent, payload: dict) -> None:
    """Start from the run's own world model and its optimiser state: ``--set`` overrides may then
    change training (losses, windows, learning rate) but not the networks' shapes."""
    prefix = "world_model."
    weights = {k[len(prefix) :]: v for k, v in payload["agent"].items() if k.startswith(prefix)}
    try:
        agent.world_model.load_state_dict(weights)
        agent.model_opt.load_state_dict(payload["optimizers"]["model"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"--continue needs the run's own world-model shapes; the overrides changed them: {error}"
        ) from error
    for group in agent.model_opt.param_groups:  # an overridden learning rate takes effect
        group["lr"] = agent.cfg.train.model_lr


@torch.no_grad()
def imagination(agent: Agent, data: dict[str, torch.Tensor], actions: list[str]) -> dict[str, dict]:
    """The scripts' rollouts from the posterior states of ``data``'s windows."""
    agent.eval()
    out = agent.world_model.observe(data["obs"], data["action"], data["is_first"])
    start = {k: out[k].flatten(0, 1).float() for k in ("deter", "stoch", "cell") if k in out}
    start_cont = 1.0 - data["is_terminal"].flatten().float()
    rows = {}
    for name in SCRIPTS:
        torch.manual_seed(0)
        rows[name] = imagined_play(agent, start, start_cont, name, actions)
    agent.train()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("run", help="a Breakout run directory (with a checkpoint and its replay)")
    parser.add_argument("--updates", type=int, default=10000, help="world-model updates (default 10000)")
    parser.add_argument("--every", type=int, default=2000, help="measure after every this many updates (default 2000)")
    parser.add_argument("--windows", type=int, default=32, help="replay windows the rollouts start from (default 32)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0, help="seeds the new model, the windows and the rollouts")
    parser.add_argument(
        "--continue",
        dest="resume",
        action="store_true",
        help="train on from the run's own world model and optimiser state instead of a new one "
        "(overrides may not change the networks' shapes)",
    )
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    if args.updates < 1 or args.every < 1 or args.windows < 1:
        parser.error(f"need --updates, --every and --windows >= 1, got {args.updates}, {args.every}, {args.windows}")
    try:
        cfg, replay, payload = read_run(args.run, args.overrides)
    except (CheckpointError, ConfigError, OSError, ValueError) as error:
        print(f"refit_world_model.py: error: {error}", file=sys.stderr)
        return 2
    if envs.resolve(cfg.env.name)[1] != "breakout":
        print(
            f"refit_world_model.py: error: {args.run} is a {cfg.env.name} run; the scripts play Breakout",
            file=sys.stderr,
        )
        return 2
    t = cfg.train
    if not replay.can_sample(max(t.seq_len, 16)):
        print(
            f"refit_world_model.py: error: the replay of {args.run} is too short for windows of {t.seq_len}",
            file=sys.stderr,
        )
        return 2
    env = envs.make_vector(cfg.env.name, 1, **env_options(cfg))
    actions, num_actions = env.get_action_meanings(), int(env.single_action_space.n)
    env.close()
    torch.manual_seed(args.seed)
    agent = Agent(cfg, num_actions, "cpu")
    if args.resume:
        try:
            continue_from(agent, payload)
        except CheckpointError as error:
            print(f"refit_world_model.py: error: {error}", file=sys.stderr)
            return 2
    del payload
    replay.rng = np.random.default_rng(args.seed)
    held = agent.to_tensors(replay.sample(args.windows, 16))  # the same start states at every measurement
    rows, recent, spent = [], [], 0.0

    def measure(updates: int) -> None:
        row = {"updates": updates, "seconds": round(spent, 1)}
        for key in recent[0] if recent else ():
            row[key] = float(np.mean([m[key] for m in recent]))
        for name, figures in imagination(agent, held, actions).items():
            row[f"{name} ball_drawn_by_step"] = figures["ball_drawn_by_step"]
            row[f"{name} survival"] = figures["survival"]
        rows.append(row)
        shown = " ".join(
            f"{name}: " + "/".join(f"{by_step[s]:.2f}" for s in STEPS_SHOWN if s < len(by_step))
            for name in SCRIPTS
            for by_step in [row[f"{name} ball_drawn_by_step"]]
        )
        losses = " ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in row.items() if k.startswith("losses/"))
        print(f"| {updates} | {spent:.0f} | at steps {STEPS_SHOWN}: {shown} | {losses} |", flush=True)
        recent.clear()

    print("| updates | seconds | ball drawn in imagination, by script | world-model losses (mean since the last row) |")
    print("| ---: | ---: | --- | --- |")
    measure(0)
    for update in range(1, args.updates + 1):
        began = time.perf_counter()
        data = agent.to_tensors(replay.sample(t.batch_size, t.seq_len))
        step = world_model_update(agent.world_model, agent.model_opt, data, t.grad_clip, autocast=agent.autocast)
        metrics = {f"losses/{k}": float(v) for k, v in step.metrics.items() if k in LOSSES}
        recent.append({"losses/world_model": float(step.loss.detach()), **metrics})
        spent += time.perf_counter() - began
        if update % args.every == 0 or update == args.updates:
            measure(update)
    if args.json:
        record = {"run": args.run, "overrides": args.overrides, "continue": args.resume, "rows": rows}
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
