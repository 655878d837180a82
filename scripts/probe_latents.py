"""Can the ball and the paddle be read from the world model's state, where the actor reads?

Records random-policy streams with OCAtari object boxes (held out from training: their own seeds),
filters them with each model, fits probes from the state to the objects' box centres on all streams
but the last and scores them on the last (``aime.eval.probes``). Inputs: ``h`` alone, ``[h, z]``
with the posterior's ``z`` (what the actor acts on) and with a ``z`` drawn from the prior (what it
learns on in imagination), and with ``--horizons K ...`` the state of each row imagined from the
posterior ``K`` rows earlier with the recorded actions (what imagination keeps of the objects
after ``K`` steps, where the actor learns). Targets: the ball's x and y, the paddle's x, and the
ball's x relative to the paddle's while the ball is in the lower half (what a policy that follows
the ball needs).

    python scripts/probe_latents.py runs/breakout/full_s0 runs/breakout/ablation_s0
    python scripts/probe_latents.py RUN --streams 6 --rows 1500 --probe ridge mlp --json probes.json
    python scripts/probe_latents.py RUN --horizons 1 5 15
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
from aime.eval.objects import ObjectData
from aime.eval.probes import latent_states, object_centres, probe_error
from aime.runtime.checkpoint import CheckpointError, load_world_model
from aime.runtime.extras import require
from envs.objects import OBJECT_CLASSES, record_objects

INPUTS = ("deter", "post", "prior")
TARGETS = ("ball x", "ball y", "paddle x", "ball x - paddle x, ball low")


def targets(data: ObjectData) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{name: (value [...], counted bool [...])}`` over ``data``'s rows, in pixels."""
    ball, ball_seen = object_centres(data, "ball")
    paddle, paddle_seen = object_centres(data, "paddle")
    size = data.obs.shape[-1]
    return {
        "ball x": (ball[..., 0], ball_seen),
        "ball y": (ball[..., 1], ball_seen),
        "paddle x": (paddle[..., 0], paddle_seen),
        "ball x - paddle x, ball low": (
            ball[..., 0] - paddle[..., 0],
            ball_seen & paddle_seen & (ball[..., 1] > size / 2),
        ),
    }


def record_streams(game: str, streams: int, rows: int, seed: int) -> ObjectData:
    """``streams`` recordings of ``rows`` rows, seeds ``seed, seed + 1, ...``, stacked: ``[S, L, ...]``."""
    parts = [ObjectData.from_record(record_objects(game, rows, seed=seed + i)) for i in range(streams)]
    fields = ("obs", "action", "reward", "is_first", "boxes", "visible")
    return ObjectData(*(np.stack([getattr(p, f) for p in parts]) for f in fields), parts[0].classes)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("models", nargs="+", help="agent run directories / agent.pt, or world-model .pt files")
    parser.add_argument("--env", default="Breakout", help="a game with ball and paddle boxes (default Breakout)")
    parser.add_argument("--streams", type=int, default=4, help="recorded streams; the last is held out (default 4)")
    parser.add_argument("--rows", type=int, default=1500, help="rows per stream (default 1500)")
    parser.add_argument(
        "--probe", choices=("ridge", "mlp"), nargs="+", default=["ridge"], help="probes to fit (default ridge)"
    )
    parser.add_argument(
        "--horizons", type=int, nargs="*", default=[], metavar="K", help="also probe states imagined K steps ahead"
    )
    parser.add_argument("--seed", type=int, default=12345, help="seed of the recording (held out from training)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.streams < 2 or args.rows < 1:
        parser.error(f"need --streams >= 2 and --rows >= 1, got {args.streams} and {args.rows}")
    if any(not 1 <= k < args.rows for k in args.horizons):
        parser.error(f"--horizons must lie in [1, --rows - 1 = {args.rows - 1}], got {args.horizons}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    require("probe_latents.py", ["ocatari"], "the object boxes")
    try:
        _, game = envs.resolve(args.env)
        if not {"ball", "paddle"} <= set(OBJECT_CLASSES.get(game, ())):
            raise ValueError(f"{args.env!r} has no ball and paddle boxes")
        loaded = {path: load_world_model(path, args.device)[0] for path in args.models}
    except (CheckpointError, ValueError) as error:
        print(f"probe_latents.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    start = time.perf_counter()
    data = record_streams(game, args.streams, args.rows, args.seed)
    print(f"{args.env}: {args.streams} streams of {args.rows} rows in {time.perf_counter() - start:.1f} s")
    held_out = torch.zeros(data.obs.shape[:2], dtype=torch.bool)
    held_out[-1] = True
    goals = targets(data)
    results: dict = {}
    lines = [
        "| model | input | probe | " + " | ".join(f"{t}: MAE px (R^2)" for t in TARGETS) + " |",
        "|" + " --- |" * (3 + len(TARGETS)),
    ]
    for path, model in loaded.items():
        states = latent_states(model, data.obs, data.action, data.is_first, horizons=tuple(args.horizons))
        everywhere = torch.ones_like(held_out)
        inputs = {name: (states[name], everywhere) for name in INPUTS}
        for k in args.horizons:
            inputs[f"imagined {k}"] = (states[f"imagined_{k}"], states[f"imagined_{k}_valid"])
        for name, (x, valid) in inputs.items():
            x = x.flatten(0, 1)
            for kind in args.probe:
                fits = {}
                for target, (y, counted) in goals.items():
                    train, test = ((counted & valid & m).flatten() for m in (~held_out, held_out))
                    fits[target] = probe_error(x, y.flatten()[:, None], train, test, kind)
                results.setdefault(path, {})[f"{name}/{kind}"] = fits
                cells = [f"{fits[t]['mae_0']:.1f} ({fits[t]['r2_0']:.2f})" for t in TARGETS]
                lines.append(f"| {path} | {name} | {kind} | " + " | ".join(cells) + " |")
    means = [f"{fits[t]['mae_mean_0']:.1f}" for t in TARGETS]
    lines.append("| the training rows' mean | - | - | " + " | ".join(means) + " |")
    print("\n".join(lines))
    if args.json:
        meta = {"env": args.env, "streams": args.streams, "rows": args.rows, "seed": args.seed}
        args.json.write_text(json.dumps({**meta, "models": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
