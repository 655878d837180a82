"""Keep a run's curves with the code: its config and the returns, evaluations, attention entropy,
object metrics and behaviour statistics of its metrics.jsonl (tens of kilobytes; checkpoints and
replay are left behind).

    python scripts/archive_run.py runs/breakout/nomap_s1 docs/data/breakout/nomap_s1
    python scripts/plot_runs.py docs/data/breakout/* --panel eval:steps --out breakout.png

The archive is a run directory to scripts/plot_runs.py (see aime.runtime.plots.archive_run).
"""

from __future__ import annotations

import argparse
import sys

from aime.runtime.plots import ARCHIVED, archive_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Archive an AIME run's curves into a small run directory.")
    parser.add_argument("run", help="the run directory (config.yaml and metrics.jsonl)")
    parser.add_argument("out", help="the archive's directory (created; its two files are replaced)")
    parser.add_argument(
        "--keep",
        action="append",
        metavar="PREFIX",
        help=f"keep the scalars whose tags start with this (repeatable; default {' '.join(ARCHIVED)})",
    )
    args = parser.parse_args(argv)
    try:
        out = archive_run(args.run, args.out, keep=args.keep or ARCHIVED)
    except (OSError, ValueError) as error:
        print(f"archive_run.py: error: {error}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
