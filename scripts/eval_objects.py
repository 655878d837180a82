"""Does the attention schema look at the game's objects, and does the world model draw them?

Records held-out random-policy rows with OCAtari object boxes (from the emulator's RAM, with the
project's own preprocessing), then measures each given model against them (``aime.eval.objects``):
attention lift, the best slot's lift and centroid error, and the object-window error ratios of the
reconstruction and of open-loop predictions at horizons 1 and 5, beside the uniform map, a motion
map and the copy-last-frame predictor.

    python scripts/eval_objects.py runs/Breakout__0__1795450000             # an agent run
    python scripts/eval_objects.py runs/wm/full.pt runs/wm/ablation.pt      # train_world_model.py models
    python scripts/eval_objects.py RUN --steps 3000 --json objects.json

Every model must be of one game (its config's ``env.name``, or ``--env``); supported games are
those of ``envs.objects.OBJECT_CLASSES``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import envs
from aime.attention.overlays import SLOT_COLORS, attention_heatmap_overlay, tile_grid
from aime.eval.objects import ObjectData, box_cells, evaluate_objects, format_table, map_lift, windows_in_episodes
from aime.runtime.checkpoint import CheckpointError, load_world_model
from aime.runtime.extras import require
from envs.objects import OBJECT_CLASSES, record_objects


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("models", nargs="+", help="agent run directories / agent.pt, or world-model .pt files")
    parser.add_argument("--env", help="game (default: the first model's env.name)")
    parser.add_argument("--steps", type=int, default=2000, help="rows recorded with object boxes (default 2000)")
    parser.add_argument("--windows", type=int, default=64, help="evaluation windows (default 64)")
    parser.add_argument("--context", type=int, default=5, help="observed rows before open-loop prediction")
    parser.add_argument("--seed", type=int, default=12345, help="seed of the recording (held out from training)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--images",
        type=Path,
        help="write one PNG per model here: frames with the true boxes, the posterior's map "
        "(absolute scale), the best slot for the first class, and the reconstruction",
    )
    args = parser.parse_args(argv)
    for name in ("steps", "windows", "context"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


@torch.no_grad()
def object_panels(model, data: ObjectData, context: int, rows: int = 6) -> torch.Tensor:
    """A grid ``[1, 3, H, W]``: per row a frame with its true boxes, the posterior's map on the absolute
    scale, the slot with the most mass on the first class's box, and the reconstruction."""
    starts = windows_in_episodes(data, context + 1, 4 * rows)
    picks = [s + context for s in starts if data.visible[s + context, 0]][:rows]
    model.eval()
    tiles, labels = [], []
    for t in picks:
        rows_ = np.arange(t - context, t + 1)
        obs = torch.as_tensor(data.obs[rows_])[None]
        out = model.observe(
            obs, torch.as_tensor(data.action[rows_])[None].long(), torch.as_tensor(np.arange(len(rows_)) == 0)[None]
        )
        frame = obs[0, -1].float() / 255
        boxed = frame.clone()
        for c, box in enumerate(data.boxes[t]):
            if data.visible[t, c]:
                x0, y0, x1, y1 = (int(round(v)) for v in box)
                colour = torch.tensor(SLOT_COLORS[c % len(SLOT_COLORS)])[:, None]
                boxed[:, max(y0 - 1, 0) : y1 + 1, [max(x0 - 1, 0), min(x1, 83)]] = colour[..., None]
                boxed[:, [max(y0 - 1, 0), min(y1, 83)], max(x0 - 1, 0) : x1 + 1] = colour[..., None]
        attention = out["attention"][0, -1:] if "attention" in out else None
        detail = out["attention_detail"][0, -1:] if "attention_detail" in out else None
        recon = model.decode(out["feat"][0, -1:], attention, detail).clamp(0, 1)[0]
        row_tiles = [boxed, recon]
        row_labels = ["frame + boxes", "reconstruction"]
        if "attention" in out:
            res = out["attention"].shape[-1]
            post = attention_heatmap_overlay(obs[:, -1], out["attention"][:, -1])[0]
            slots = out["slot_maps"][0, -1]  # [K, R, R]
            cells = box_cells(torch.as_tensor(data.boxes[t, :1]).float(), res, data.obs.shape[-1])  # [1, R, R]
            best = int(map_lift(slots, cells).nan_to_num(-1).argmax())
            slot = attention_heatmap_overlay(obs[:, -1], (slots[best] / slots[best].sum())[None])[0]
            row_tiles[1:1] = [post, slot]
            row_labels[1:1] = ["posterior", f"best slot ({best})"]
        tiles += row_tiles
        labels += row_labels
    return tile_grid(torch.stack(tiles), len(tiles) // max(len(picks), 1), labels, upscale=3)[None]


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    require("eval_objects.py", ["ocatari"], "the object boxes")  # before loading and recording
    try:
        loaded = {path: load_world_model(path, args.device) for path in args.models}
        name = args.env or next(iter(loaded.values()))[1].env.name
        _, game = envs.resolve(name)
    except (CheckpointError, ValueError) as error:
        print(f"eval_objects.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    if game not in OBJECT_CLASSES:
        print(
            f"eval_objects.py: error: no object boxes for {name!r}; supported: {', '.join(sorted(OBJECT_CLASSES))}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    start = time.perf_counter()
    data = ObjectData.from_record(record_objects(game, args.steps, seed=args.seed))
    print(
        f"{name}: recorded {len(data)} rows with boxes of {', '.join(data.classes)} in "
        f"{time.perf_counter() - start:.1f} s",
        flush=True,
    )
    results = {}
    for i, (path, (model, _)) in enumerate(loaded.items()):
        results[path] = evaluate_objects(model, data, context=args.context, windows=args.windows)
        if args.images:
            args.images.mkdir(parents=True, exist_ok=True)
            image = (object_panels(model, data, args.context)[0].permute(1, 2, 0).numpy() * 255).round()
            target = args.images / f"objects_{i}_{Path(path).stem}.png"
            cv2.imwrite(str(target), cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_RGB2BGR))
            print(f"wrote {target}", flush=True)
    print(format_table(results))
    if args.json:
        args.json.write_text(
            json.dumps({"env": name, "steps": args.steps, "seed": args.seed, "models": results}, indent=2)
        )
    return results


if __name__ == "__main__":
    main()
