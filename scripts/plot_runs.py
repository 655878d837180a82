"""Learning curves of runs: train and eval return against agent steps and wall-clock time.

    python scripts/plot_runs.py runs/Catch__0__* runs/Catch__1__* --out curves.png
    python scripts/evaluate.py --random --env Catch --episodes 1000 --json random.json
    python scripts/plot_runs.py runs/* --random random.json --out curves.png
    python scripts/plot_runs.py runs/* --tag objects/attention_lift_ball --out curves.png   # more panels
    python scripts/plot_runs.py runs/* --table       # and a Markdown table of the eval returns
    python scripts/plot_runs.py runs/* --panel eval:steps --out eval.png   # one panel only

Runs whose config.yaml are equal except for the seed and the log directory are one group: its
curve is the mean over the runs, with a band of one standard deviation (see aime/runtime/plots.py).
Wall-clock hours leave out the pauses between a resumed run's sessions.
Needs matplotlib (the ``plots`` extra): without it, one line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from aime.runtime.extras import require
from aime.runtime.plots import (
    PANELS,
    counted,
    eval_table,
    group_runs,
    load_run,
    plot_groups,
    read_random_return,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Plot the learning curves of AIME runs, grouped by configuration.")
    parser.add_argument("runs", nargs="+", help="run directories (config.yaml and metrics.jsonl)")
    parser.add_argument("--out", default="curves.png", help="the figure (PNG, PDF, SVG; default curves.png)")
    parser.add_argument(
        "--random", metavar="FILE", help="a random policy's results: scripts/evaluate.py --random --json"
    )
    parser.add_argument(
        "--smooth", type=int, default=20, help="train returns: mean of the last N episodes (default 20)"
    )
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="also plot this scalar of metrics.jsonl against agent steps (repeatable): objects/attention_lift_ball",
    )
    parser.add_argument(
        "--panel",
        action="append",
        default=[],
        metavar="WHICH:AXIS",
        help="draw this return panel, train or eval against steps or hours (repeatable; default all four): eval:steps",
    )
    parser.add_argument(
        "--table", action="store_true", help="also print a Markdown table of the eval return at each evaluated step"
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="TEXT",
        help="name the groups, in the order their first runs are given (repeatable; one per group)",
    )
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    require("plot_runs.py", ["matplotlib"], "the figure")  # aime.runtime.plots imports it when drawing
    try:
        runs = [load_run(path, smooth=args.smooth, tags=args.tag) for path in args.runs]
        random = read_random_return(args.random) if args.random else None
    except (OSError, ValueError) as error:
        print(f"plot_runs.py: error: {error}", file=sys.stderr)
        return 2
    groups = group_runs(runs)
    if args.label:
        if len(args.label) != len(groups):
            print(
                f"plot_runs.py: error: {len(args.label)} --label for {len(groups)} groups of runs: "
                + "; ".join(groups),
                file=sys.stderr,
            )
            return 2
        groups = {counted(label, len(runs)): runs for label, runs in zip(args.label, groups.values())}
    panels = [tuple(panel.partition(":")[::2]) for panel in args.panel] or PANELS
    try:
        out = plot_groups(groups, args.out, random=random, title=args.title, tags=args.tag, panels=panels)
    except ValueError as error:
        print(f"plot_runs.py: error: {error}", file=sys.stderr)
        return 2
    for label, members in groups.items():
        print(f"{label}: {', '.join(str(r.path) for r in members)}")
    print(f"wrote {out}")
    if args.table:
        print(eval_table(groups, random))
    return 0


if __name__ == "__main__":
    sys.exit(main())
