"""Seed 004 experiment: evolve a batch of RGB latents from noise under magnitude + InfoNCE + spatial diversity.

A batch ``[B, 3, S, S]`` of latents starts as Gaussian noise (std 0.1) and is optimised directly with Adam under
``w_mag * magnitude + w_nce * InfoNCE patch coherence + w_div * spatial diversity``, clamped to [-1.5, 1.5] after
every step (the seed's settings are the defaults). Writes to ``--out``:

* ``snapshots.png`` -- a grid, one row per latent, one column per snapshot;
* ``losses.png`` -- total and per-term loss curves;
* ``diversity.png`` -- the pairwise spatial similarity of the batch at every snapshot (lower = more diverse);
* ``metrics.json`` -- the configuration, the loss history, the similarity per snapshot and the InfoNCE timing.

It also times the vectorised InfoNCE against the seed's loop (same latents, same anchors; forward and
forward + backward; median of ``--speed-repeats``) and prints the speed-up.

    python scripts/evolve_latents.py --out runs/evolve_latents
    python scripts/evolve_latents.py --quick --out /tmp/evolve   # smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from aime.nn.spatial_losses import (
    info_nce_patch_coherence,
    info_nce_patch_coherence_reference,
    latent_evolution_losses,
    pairwise_spatial_similarity,
    sample_info_nce_anchors,
)
from aime.runtime.extras import require

LOSS_NAMES = ("magnitude", "coherence_infonce", "spatial_diversity")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("runs/evolve_latents"), help="output directory")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--snapshot-interval", type=int, default=25)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--w-magnitude", type=float, default=5.0)
    p.add_argument("--w-infonce", type=float, default=2.0)
    p.add_argument("--w-diversity", type=float, default=2.0)
    p.add_argument("--patch-size", type=int, default=3)
    p.add_argument("--num-samples", type=int, default=25, help="InfoNCE anchors per image")
    p.add_argument("--temperature", type=float, default=1.0, help="InfoNCE temperature")
    p.add_argument("--positive-radius", type=float, default=3.0)
    p.add_argument("--negative-radius", type=float, default=11.0)
    p.add_argument("--diversity-temperature", type=float, default=0.1)
    p.add_argument("--speed-repeats", type=int, default=5, help="repeats of the InfoNCE timing (0 skips it)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (overrides sizes)")
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.image_size, args.steps, args.snapshot_interval = 3, 16, 6, 3
        args.num_samples, args.speed_repeats, args.negative_radius = 8, 1, 6.0
    for name in ("batch_size", "image_size", "steps", "snapshot_interval"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def evolve(args: argparse.Namespace) -> dict[str, object]:
    """Run the optimisation; returns snapshots ``[S, B, 3, H, W]`` (numpy), their steps and the histories."""
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    latents = (torch.randn(args.batch_size, 3, args.image_size, args.image_size) * 0.1).to(device).requires_grad_(True)
    weights = {
        "magnitude": args.w_magnitude,
        "coherence_infonce": args.w_infonce,
        "spatial_diversity": args.w_diversity,
    }
    optimizer = torch.optim.Adam([latents], lr=args.lr)
    snapshots = [latents.detach().cpu().numpy().copy()]
    snapshot_steps = [0]
    history: dict[str, list[float]] = {"total": [], **{k: [] for k in LOSS_NAMES}}
    for step in range(args.steps):
        optimizer.zero_grad()
        losses = latent_evolution_losses(
            latents,
            patch_size=args.patch_size,
            num_samples=args.num_samples,
            temperature=args.temperature,
            positive_radius=args.positive_radius,
            negative_radius=args.negative_radius,
            spatial_diversity_temperature=args.diversity_temperature,
            generator=generator,
        )
        total = sum(losses[k] * weights[k] for k in LOSS_NAMES)
        total.backward()
        optimizer.step()
        with torch.no_grad():
            latents.clamp_(-1.5, 1.5)
        history["total"].append(total.item())
        for k in LOSS_NAMES:
            history[k].append(losses[k].item())
        if (step + 1) % args.snapshot_interval == 0 or step + 1 == args.steps:
            snapshots.append(latents.detach().cpu().numpy().copy())
            snapshot_steps.append(step + 1)
            parts = ", ".join(f"{k}={history[k][-1]:.3f}" for k in LOSS_NAMES if weights[k] > 0)
            print(f"step {step + 1:4d}/{args.steps}: loss {history['total'][-1]:.4f} ({parts})")
    similarity = [float(pairwise_spatial_similarity(torch.from_numpy(s))) for s in snapshots]
    return {"snapshots": snapshots, "snapshot_steps": snapshot_steps, "history": history, "similarity": similarity}


def _median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_info_nce(args: argparse.Namespace) -> dict[str, float]:
    """Median time of the vectorised InfoNCE and of the seed's loop on the same latents and anchors."""
    device = torch.device(args.device)
    torch.manual_seed(args.seed + 1)
    x = (torch.randn(args.batch_size, 3, args.image_size, args.image_size) * 0.5).to(device)
    samples = sample_info_nce_anchors(
        args.batch_size,
        args.image_size,
        args.image_size,
        args.num_samples,
        args.positive_radius,
        args.negative_radius,
        device=device,
        generator=torch.Generator(device=device).manual_seed(args.seed),
    )
    kw = dict(patch_size=args.patch_size, temperature=args.temperature)
    ref_kw = dict(kw, positive_radius=args.positive_radius, negative_radius=args.negative_radius)

    def vec_forward():
        with torch.no_grad():
            return info_nce_patch_coherence(x, samples=samples, **kw)

    def ref_forward():
        with torch.no_grad():
            return info_nce_patch_coherence_reference(x, samples, **ref_kw)

    def vec_backward():
        xg = x.clone().requires_grad_(True)
        info_nce_patch_coherence(xg, samples=samples, **kw).backward()

    def ref_backward():
        xg = x.clone().requires_grad_(True)
        info_nce_patch_coherence_reference(xg, samples, **ref_kw).backward()

    v, r = vec_forward(), ref_forward()
    vec_forward(), ref_forward(), vec_backward(), ref_backward()  # warm-up
    result = {
        "vectorised_loss": float(v),
        "loop_loss": float(r),
        "max_abs_difference": abs(float(v) - float(r)),
        "vectorised_forward_s": _median_seconds(vec_forward, args.speed_repeats, device),
        "loop_forward_s": _median_seconds(ref_forward, args.speed_repeats, device),
        "vectorised_forward_backward_s": _median_seconds(vec_backward, args.speed_repeats, device),
        "loop_forward_backward_s": _median_seconds(ref_backward, args.speed_repeats, device),
        "repeats": args.speed_repeats,
    }
    result["speedup_forward"] = result["loop_forward_s"] / result["vectorised_forward_s"]
    result["speedup_forward_backward"] = result["loop_forward_backward_s"] / result["vectorised_forward_backward_s"]
    return result


def _to_rgb(latent_chw: np.ndarray) -> np.ndarray:
    """``[3, H, W]`` in [-1.5, 1.5] -> ``[H, W, 3]`` in [0, 1] (the seed's display mapping)."""
    return np.clip((np.transpose(latent_chw, (1, 2, 0)) + 1.5) / 3.0, 0.0, 1.0)


def plot_results(run: dict[str, object], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    snapshots, steps = run["snapshots"], run["snapshot_steps"]
    b, n = snapshots[0].shape[0], len(snapshots)
    fig, axes = plt.subplots(b, n, figsize=(1.6 * n, 1.6 * b), squeeze=False)
    for i in range(b):
        for j in range(n):
            axes[i, j].imshow(_to_rgb(snapshots[j][i]))
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(f"step {steps[j]}", fontsize=8)
            if j == 0:
                axes[i, j].set_ylabel(f"latent {i + 1}", fontsize=8)
    fig.suptitle("RGB latent evolution")
    fig.tight_layout()
    fig.savefig(out / "snapshots.png", dpi=100)
    plt.close(fig)

    history = run["history"]
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, values in history.items():
        ax.plot(values, label=name, linewidth=2 if name == "total" else 1)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (unweighted terms, weighted total)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "losses.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(steps, run["similarity"], marker="o")
    ax.axhline(0.0, color="green", linestyle="--", alpha=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("mean pairwise spatial similarity")
    ax.set_title("Spatial diversity (lower = more diverse)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "diversity.png", dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    require("evolve_latents.py", ["matplotlib"], "the figures")  # at start, not after the evolution
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run = evolve(args)
    evolve_s = time.perf_counter() - start
    sim = run["similarity"]
    print(f"pairwise spatial similarity: {sim[0]:.4f} at step 0 -> {sim[-1]:.4f} at step {run['snapshot_steps'][-1]}")
    timing = time_info_nce(args) if args.speed_repeats > 0 else None
    if timing is not None:
        print(
            f"InfoNCE on [{args.batch_size}, 3, {args.image_size}, {args.image_size}], "
            f"{args.num_samples} anchors/image, "
            f"median of {timing['repeats']}: forward {timing['loop_forward_s'] * 1e3:.2f} ms (loop) vs "
            f"{timing['vectorised_forward_s'] * 1e3:.2f} ms (vectorised) = {timing['speedup_forward']:.1f}x; "
            f"forward+backward {timing['loop_forward_backward_s'] * 1e3:.2f} ms vs "
            f"{timing['vectorised_forward_backward_s'] * 1e3:.2f} ms = {timing['speedup_forward_backward']:.1f}x; "
            f"|loss difference| {timing['max_abs_difference']:.2e}"
        )
    plot_results(run, args.out)
    metrics = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "snapshot_steps": run["snapshot_steps"],
        "pairwise_similarity": sim,
        "loss_history": run["history"],
        "evolve_seconds": evolve_s,
        "info_nce_timing": timing,
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"wrote {args.out}/snapshots.png, losses.png, diversity.png, metrics.json")
    return metrics


if __name__ == "__main__":
    main()
