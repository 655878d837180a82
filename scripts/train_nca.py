"""Train the convolutional-attention NCA on one long trajectory (seed 001).

For each target (``red``: a uniform red image; ``breakout``: the shipped ALE frame, resized; or a
path) the NCA starts from standard Gaussian noise and trains with the shortsighted rule (small
noise every step, a large spike whenever the loss falls below epsilon, the gradient cut between
steps). Prints the step at which the loss first fell below epsilon and the number of spikes
(simulated trajectories); writes ``snapshots_<target>.png`` (the state every few hundred steps),
``loss_<target>.png`` and ``results.json`` to ``--out``.

    python scripts/train_nca.py --out runs/nca
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from aime.experiments.nca_training import ShortsightedConfig, ShortsightedTrainer
from aime.nn.nca import ConvAttentionNCA
from aime.runtime.extras import require

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "images"


def load_target(name: str, size: int) -> torch.Tensor:
    """``red`` | ``breakout`` | PATH -> ``[1, 3, size, size]`` in [0, 1]."""
    if name == "red":
        target = torch.zeros(1, 3, size, size)
        target[:, 0] = 1.0
        return target
    import cv2

    path = ASSETS / "breakout.png" if name == "breakout" else Path(name)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"could not read image {path}")
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)


def plot_run(out: Path, tag: str, target: torch.Tensor, result, cfg: ShortsightedConfig, columns: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snaps = result.snapshots
    keep = np.unique(np.linspace(0, len(snaps) - 1, min(len(snaps), 2 * columns - 1)).round().astype(int))
    panels = [(f"step {snaps[i][0]}", snaps[i][1][0, :3]) for i in keep] + [("target", target[0])]
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.75 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, img) in zip(axes.flat, panels):
        # The state lives in target space; clamping (not a sigmoid) shows exactly what the loss sees.
        ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"snapshots_{tag}.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(np.arange(1, len(result.losses) + 1), result.losses, lw=0.6, label="loss")
    ax.axhline(cfg.epsilon, color="red", ls="--", lw=0.8, label="epsilon")
    if result.spike_steps:
        spikes = np.array(result.spike_steps)
        ax.scatter(spikes, np.full(len(spikes), cfg.epsilon), marker="|", color="black", s=30, label="spikes")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE to target")
    ax.set_title(f"{tag}: {result.num_spikes} spikes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"loss_{tag}.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--targets", nargs="+", default=["red", "breakout"], help="red | breakout | PATH")
    parser.add_argument("--size", type=int, default=32, help="targets are size x size")
    parser.add_argument("--steps", type=int, default=3000, help="maximum steps per target")
    parser.add_argument("--max-spikes", type=int, default=None, help="stop after this many spikes")
    parser.add_argument("--lr", type=float, default=ShortsightedConfig.lr)
    parser.add_argument("--sigma-small", type=float, default=ShortsightedConfig.sigma_small)
    parser.add_argument("--sigma-large", type=float, default=ShortsightedConfig.sigma_large)
    parser.add_argument("--epsilon", type=float, default=ShortsightedConfig.epsilon)
    parser.add_argument("--channels", type=int, default=3, help="state channels (>3 adds hidden channels)")
    parser.add_argument("--hidden", type=int, default=16, help="query/key/value width")
    parser.add_argument("--padding", default="zeros", help="zeros | circular | replicate | reflect")
    parser.add_argument("--no-position-bias", action="store_true", help="content-only attention scores (the seed's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; the ops are tiny, and extra threads on a busy machine slow them down",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 steps on 8x8 targets")
    args = parser.parse_args(argv)
    require("train_nca.py", ["matplotlib"], "the figures")  # at start, not after training
    if args.quick:
        args.steps, args.size = 30, 8
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(previous_threads)  # main() may be called in-process (tests)


def run(args: argparse.Namespace) -> dict:
    """Run the experiment described by the parsed arguments; returns the summary table."""
    args.out.mkdir(parents=True, exist_ok=True)

    summary = {}
    header = ("target", "steps", "first<eps", "spikes", "final loss", "min loss", "wall s")
    print("{:<10} {:>6} {:>9} {:>7} {:>11} {:>9} {:>7}".format(*header))
    for name in args.targets:
        tag = Path(name).stem
        target = load_target(name, args.size)
        torch.manual_seed(args.seed)
        nca = ConvAttentionNCA(args.channels, args.hidden, args.padding, position_bias=not args.no_position_bias)
        cfg = ShortsightedConfig(
            max_steps=args.steps,
            max_spikes=args.max_spikes,
            lr=args.lr,
            sigma_small=args.sigma_small,
            sigma_large=args.sigma_large,
            epsilon=args.epsilon,
            seed=args.seed,
        )
        start = time.perf_counter()
        result = ShortsightedTrainer(nca, cfg).train(target)
        wall = time.perf_counter() - start
        tail = float(np.mean(result.losses[-100:]))
        print(
            f"{tag:<10} {len(result.losses):>6d} {str(result.first_epsilon_step):>9} {result.num_spikes:>7d} "
            f"{tail:>11.5f} {min(result.losses):>9.5f} {wall:>7.1f}"
        )
        plot_run(args.out, tag, target, result, cfg)
        summary[tag] = {
            "steps": len(result.losses),
            "first_epsilon_step": result.first_epsilon_step,
            "spikes": result.num_spikes,
            "final_loss_mean_last_100": tail,
            "min_loss": min(result.losses),
            "wall_s": wall,
        }
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    with open(args.out / "results.json", "w") as f:
        json.dump({"meta": meta, "results": summary}, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
