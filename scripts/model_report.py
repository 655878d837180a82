"""What a trained agent's world model and critic make of the agent's own newest experience.

Filters the newest rows of the run's replay (what its current policy played) with its world model
and compares the heads' predictions with what happened (``aime.eval.model_report``): the reward
events the reward head catches and its false alarms, the continue head at terminals, the critic's
value against the discounted return that followed, and the policy's action shares.

    python scripts/model_report.py runs/Breakout__0__1795450000
    python scripts/model_report.py runs/breakout/full_s0 runs/breakout/ablation_s0 --rows 2000 --json report.json
    python scripts/model_report.py runs/breakout/full_s0 --tracking 3000    # and the paddle under the ball

``--tracking STEPS`` (Breakout, needs OCAtari: the ``objects`` extra) also plays each agent's sampled
policy for STEPS agent steps with OCAtari's boxes under the protocol it learned in (a lost life
ends its episode and the game is continued with FIRE, with ``env.terminal_on_life_loss``), and a
random policy for as many, and reports how
far the paddle is from the ball while the ball is in the lower half of the screen
(``aime.eval.tracking``). Reads the checkpoint only; the run is not changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import envs
from aime.eval.model_report import filter_rows, model_report
from aime.eval.tracking import agent_policy, paddle_tracking
from aime.runtime.checkpoint import CheckpointError, load_agent_and_replay
from aime.runtime.extras import require
from envs.objects import record_objects

ROWS = (
    ("reward_events", "reward events (r > 0)", "{:.0f}"),
    ("reward_event_recall", "  predicted (> 0.5)", "{:.2f}"),
    ("reward_at_events", "  mean prediction there", "{:.3f}"),
    ("reward_true_at_events", "  mean reward there", "{:.3f}"),
    ("reward_false_alarms", "other steps predicted > 0.5", "{:.3f}"),
    ("reward_elsewhere", "  mean prediction there", "{:.3f}"),
    ("terminals", "terminals", "{:.0f}"),
    ("continue_at_terminals", "  continue probability there", "{:.3f}"),
    ("continue_elsewhere", "  elsewhere", "{:.3f}"),
    ("survival_before_terminals", "  survival over the window up to a terminal", "{:.3f}"),
    ("survival_elsewhere", "  over windows without one", "{:.3f}"),
    ("value_steps", "steps whose episode ends in the rows", "{:.0f}"),
    ("value_mean", "  critic's value", "{:.3f}"),
    ("return_mean", "  discounted return that followed", "{:.3f}"),
    ("value_return_corr", "  correlation", "{:.2f}"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("runs", nargs="+", help="run directories (with a checkpoint and its replay)")
    parser.add_argument("--rows", type=int, default=1000, help="newest rows per environment stream (default 1000)")
    parser.add_argument("--burn-in", type=int, default=16, help="first rows per stream left out (default 16)")
    parser.add_argument("--window", type=int, default=8, help="steps of the survival windows (default 8)")
    parser.add_argument(
        "--tracking", type=int, default=0, metavar="STEPS", help="Breakout: play STEPS steps with boxes"
    )
    parser.add_argument("--seed", type=int, default=12345, help="seed of the --tracking games")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.rows < 2 or not 0 <= args.burn_in < args.rows or not 1 <= args.window <= args.rows - args.burn_in:
        parser.error(
            f"need --rows >= 2, 0 <= --burn-in < --rows and 1 <= --window <= --rows - --burn-in, "
            f"got {args.rows}, {args.burn_in} and {args.window}"
        )
    if args.tracking < 0:
        parser.error(f"--tracking must be >= 0, got {args.tracking}")
    if args.tracking:
        require("model_report.py", ["ocatari"], "--tracking (the Breakout object boxes)")
    torch.set_grad_enabled(False)
    tracking = {}
    reports = {}
    for run in args.runs:
        try:
            agent, cfg, replay = load_agent_and_replay(run, args.device)
            rows = replay.newest(min(args.rows, replay.filled))
        except (CheckpointError, OSError, ValueError) as error:
            print(f"model_report.py: error: {run}: {error}", file=sys.stderr)
            return 2
        if args.tracking:
            if envs.resolve(cfg.env.name)[1] != "breakout":
                print(
                    f"model_report.py: error: --tracking is for Breakout runs, {run} is {cfg.env.name}", file=sys.stderr
                )
                return 2
            protocol = {"terminal_on_life_loss": cfg.env.terminal_on_life_loss}  # the protocol it learned in
            torch.manual_seed(args.seed)  # the sampled actions: the same games for the same checkpoint
            record = record_objects("breakout", args.tracking, seed=args.seed, policy=agent_policy(agent), **protocol)
            tracking[run] = paddle_tracking(record)
        predicted = filter_rows(agent, {k: rows[k] for k in ("obs", "action", "is_first")})
        reports[run] = model_report(
            predicted, rows, cfg.train.discount, agent.num_actions, burn_in=args.burn_in, window=args.window
        )
    print("| | " + " | ".join(reports) + " |")
    print("| --- |" + " ---: |" * len(reports))
    actions = max(sum(key.startswith("action_") for key in r) for r in reports.values())
    for key, label, fmt in ROWS + tuple((f"action_{a}", f"action {a} share", "{:.2f}") for a in range(actions)):
        print(f"| {label} | " + " | ".join(fmt.format(r.get(key, float("nan"))) for r in reports.values()) + " |")
    if tracking:
        record = record_objects("breakout", args.tracking, seed=args.seed, **protocol)  # the last run's protocol
        tracking["random policy"] = paddle_tracking(record)
        print(f"\nThe paddle and the ball, {args.tracking:,} agent steps each, the ball in the lower half:\n")
        print("| policy | rows | mean distance (px) | paddle under the ball | finished games | their mean score |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, t in tracking.items():
            figures = (f"{t['rows']:.0f}", f"{t['distance_px']:.1f}", f"{t['under']:.2f}", f"{t['games']:.0f}")
            print(f"| {name} | " + " | ".join(figures) + f" | {t['game_return']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"report": reports, "tracking": tracking}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
