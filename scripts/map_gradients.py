"""Which loss terms sharpen a world model's attention maps, and which flatten them?

Records random-policy rows of the model's game (the Atari protocol; OCAtari's recorder, so the games
of ``envs.objects.OBJECT_CLASSES``), cuts them into ``[B, T]`` windows and, for each model, prints
the cosine between each loss term's descent direction and the gradient of the maps' entropy over
the attention posterior's parameters (``aime.eval.map_gradients``): positive means the term alone
would flatten the maps.

    python scripts/map_gradients.py runs/wm/frame_s0/full.pt runs/wm/state_s0/full.pt
    python scripts/map_gradients.py RUN --terms reconstruction kl attention_target --json grads.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import envs
from aime.eval.map_gradients import map_gradient_alignment
from aime.runtime.checkpoint import CheckpointError, load_world_model
from aime.runtime.extras import require
from envs.objects import OBJECT_CLASSES, record_objects

TERMS = ("reconstruction", "kl", "attention_target", "attention_dynamics", "slot_diversity")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("models", nargs="+", help="agent run directories / agent.pt, or world-model .pt files")
    parser.add_argument("--batch", type=int, default=32, help="windows B (default 32)")
    parser.add_argument("--seq-len", type=int, default=16, help="window length T (default 16)")
    parser.add_argument("--terms", nargs="+", default=list(TERMS), help=f"loss terms (default: {' '.join(TERMS)})")
    parser.add_argument("--seed", type=int, default=777, help="seed of the recording and of the draws")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    for name in ("batch", "seq_len"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def windows(game: str, b: int, t: int, seed: int) -> dict[str, torch.Tensor]:
    """``B`` consecutive windows of ``T`` random-policy rows, each starting an episode for the model
    (and a new one where a game starts inside it)."""
    rows = record_objects(game, b * t, seed=seed)
    batch = {k: torch.as_tensor(np.asarray(rows[k])).unflatten(0, (b, t)) for k in ("obs", "action", "reward")}
    batch["is_first"] = torch.as_tensor(np.asarray(rows["is_first"])).unflatten(0, (b, t)).clone()
    batch["is_first"][:, 0] = True
    batch["is_terminal"] = torch.zeros(b, t, dtype=torch.bool)
    return batch


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    require("map_gradients.py", ["ocatari"], "the recorder of the rows")
    try:
        loaded = {path: load_world_model(path, "cpu") for path in args.models}
        _, game = envs.resolve(next(iter(loaded.values()))[1].env.name)
        if game not in OBJECT_CLASSES:
            raise ValueError(f"no recorder for {game!r}; supported: {', '.join(sorted(OBJECT_CLASSES))}")
        batch = windows(game, args.batch, args.seq_len, args.seed)
        results = {}
        for path, (model, _) in loaded.items():
            model.train()
            results[path] = map_gradient_alignment(model, batch, args.terms, seed=args.seed)
    except (CheckpointError, ValueError) as error:
        print(f"map_gradients.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print("| model | entropy ratio | " + " | ".join(f"{t}: cos (norm)" for t in args.terms) + " |")
    print("|" + " --- |" * (len(args.terms) + 2))
    for path, res in results.items():
        cells = [f"{res['terms'][t]['alignment']:+.2f} ({res['terms'][t]['grad_norm']:.3g})" for t in args.terms]
        print(f"| {path} | {res['entropy_ratio']:.3f} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"batch": args.batch, "seq_len": args.seq_len, "models": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
