"""Does a run's world model still draw what it sees after filtering more frames than training showed it?

Training windows are short (``train.seq_len``, 16 in the ``cpu`` preset) and start from a zero
state, while an acting agent filters whole lives. The last ``--last`` frames of whole replay windows
(no episode start after their first frame) are filtered from several window positions, so the same
frames are seen by states of different ages, and the decoder's drawings of them are compared with
the frames (``aime.eval.filter_age``): the squared error per frame and, on Breakout, how often the
ball is drawn and drawn where it is. Reads the checkpoint only; the run is not changed.

    python scripts/filter_age.py runs/breakout/nomap_s0
    python scripts/filter_age.py runs/breakout/nomap_s0 --windows 128 --seq-len 56 --last 16 --starts 0 16 32 40
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import envs
from aime.eval.filter_age import filter_age, whole_windows
from aime.runtime.checkpoint import CheckpointError, load_agent_and_replay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("runs", nargs="+", help="run directories (with a checkpoint and its replay)")
    parser.add_argument("--windows", type=int, default=128, help="whole replay windows (default 128)")
    parser.add_argument("--seq-len", type=int, default=56, help="frames per window (default 56)")
    parser.add_argument("--last", type=int, default=16, help="frames compared at each window's end (default 16)")
    parser.add_argument(
        "--starts", type=int, nargs="+", help="window positions to filter from (default: 0, 16, 24, 32, 36, 40)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the windows and the posterior's draws")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    starts = args.starts or [s for s in (0, 16, 24, 32, 36, 40) if s <= args.seq_len - args.last]
    if args.windows < 1 or not 1 <= args.last < args.seq_len:
        parser.error(
            f"need --windows >= 1 and 1 <= --last < --seq-len; got {args.windows}, {args.last}, {args.seq_len}"
        )
    if not starts or not all(0 <= s <= args.seq_len - args.last for s in starts):
        parser.error(f"--starts must lie in [0, {args.seq_len - args.last}] (--seq-len - --last), got {starts}")
    results = {}
    for run in args.runs:
        try:
            agent, cfg, replay = load_agent_and_replay(run)
            replay.rng = np.random.default_rng(args.seed)
            batch = whole_windows(replay, args.windows, args.seq_len)
        except (CheckpointError, OSError, ValueError) as error:
            print(f"filter_age.py: error: {run}: {error}", file=sys.stderr)
            return 2
        ball = envs.resolve(cfg.env.name)[1] == "breakout" and cfg.model.image_size == 84
        data = agent.to_tensors({k: batch[k] for k in ("obs", "action", "is_first")})
        rows = filter_age(agent.world_model, data, starts, args.last, ball=ball, seed=args.seed)
        steps = replay.total_added * cfg.env.num_envs
        results[run] = {"agent_steps": steps, "windows": args.windows, "seq_len": args.seq_len, "rows": rows}
        shape = f"{args.windows} windows of {args.seq_len} frames, the last {args.last} compared"
        print(f"\n{run} ({steps:,} agent steps; {shape})")
        columns = ["frame_error"] + (["ball_drawn", "ball_near"] if ball else [])
        print("| filtered from | state ages | " + " | ".join(columns) + " |")
        print("| ---: | --- |" + " ---: |" * len(columns))
        for row in rows:
            figures = " | ".join(f"{row[c]:.3f}" for c in columns)
            print(f"| {row['start']} | {row['age_min']}-{row['age_max']} | {figures} |")
        if ball:
            print(f"({rows[0]['ball_frames']} compared frames show the ball)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
