"""Fit an image as a field (x, y) -> RGB with SpatialNet (RMF and dot) and a matched MLP (seed 000).

All three models get the same parameter budget (the MLP within 2% of the SpatialNet's count, which
is asserted), the same recipe (Adam, lr 1e-3, the full image as one batch every step, the same
number of steps) and the same initial seed. Prints a table (model, parameters, final MSE, PSNR,
wall time) and writes to ``--out``: ``comparison_<image>.png`` (target | RMF | dot | MLP),
``loss_<image>.png``, ``layout_<image>.png`` (first-block neuron positions with sigma circles over
the target) and ``results.json``.

    python scripts/fit_image_field.py --out runs/image_field
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from aime.nn.spatialnet import SEED_CONFIG, SpatialNet, count_parameters, make_coordinate_grid, matched_mlp
from aime.runtime.extras import require

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "images"
BUILTIN_IMAGES = ("breakout", "landscape")


def check_optional_dependencies() -> None:
    """Exit 2 with one line at start when a package the figures need is missing (not after the
    fits have run for minutes), naming the extra that installs it."""
    require("fit_image_field.py", ["matplotlib"], "the figures")


def landscape_image(size: int = 64) -> np.ndarray:
    """A procedural landscape (sky gradient, sun, two mountain ridges, a lake): ``[size, size, 3]`` in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    img = np.zeros((size, size, 3))
    sky_top, sky_low = np.array([0.20, 0.35, 0.75]), np.array([0.95, 0.70, 0.45])
    img[:] = sky_top + (sky_low - sky_top) * y[..., None] ** 0.8
    sun = np.exp(-(((x - 0.72) ** 2 + (y - 0.28) ** 2) / 0.004))
    img = img + sun[..., None] * (np.array([1.0, 0.95, 0.7]) - img)
    far = 0.50 + 0.08 * np.sin(7.0 * x + 1.0) + 0.04 * np.sin(17.0 * x)
    near = 0.66 + 0.06 * np.sin(4.0 * x + 2.5) + 0.03 * np.sin(23.0 * x + 0.3)
    far_col = np.array([0.45, 0.45, 0.60]) - 0.15 * (y - far)[..., None]
    near_col = np.array([0.20, 0.45, 0.20]) + 0.2 * np.sin(40 * x * y)[..., None] * 0.1
    img = np.where((y > far)[..., None], far_col, img)
    img = np.where((y > near)[..., None], near_col, img)
    lake = (y > 0.80) & (np.abs(x - 0.35) < 0.28 - 0.9 * (y - 0.80))
    img = np.where(lake[..., None], np.array([0.25, 0.45, 0.80]) + 0.3 * (y - 0.8)[..., None], img)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def load_image(name: str, size: int | None = None) -> np.ndarray:
    """``breakout`` (the shipped ALE frame), ``landscape`` (generated) or a path: ``[H, W, 3]`` in [0, 1]."""
    import cv2

    if name == "landscape":
        return landscape_image(size or 64)
    path = ASSETS / "breakout.png" if name == "breakout" else Path(name)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"could not read image {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if size is not None and rgb.shape[:2] != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return rgb.astype(np.float32) / 255.0


def fit(model: torch.nn.Module, coords: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> dict:
    """Full-batch Adam on the MSE between ``model(coords) [H*W, 3]`` and ``target [H*W, 3]``."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.mean((model(coords) - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    wall = time.perf_counter() - start
    with torch.no_grad():
        pred = model(coords).clamp(0.0, 1.0)
        mse = torch.mean((pred - target) ** 2).item()
    psnr = 10.0 * math.log10(1.0 / max(mse, 1e-12))
    return {"losses": losses, "mse": mse, "psnr": psnr, "wall_s": wall, "pred": pred}


def build_models(seed: int) -> dict[str, torch.nn.Module]:
    models = {
        "rmf": SpatialNet(**SEED_CONFIG, similarity="rmf", seed=seed),
        "dot": SpatialNet(**SEED_CONFIG, similarity="dot", seed=seed),
    }
    torch.manual_seed(seed)
    models["mlp"] = matched_mlp(models["rmf"], SEED_CONFIG["in_dim"], SEED_CONFIG["out_dim"])
    ref = count_parameters(models["rmf"])
    for name, m in models.items():
        n = count_parameters(m)
        assert abs(n - ref) <= 0.02 * ref, f"{name} has {n} parameters, not within 2% of {ref}"
    return models


def plot_results(out: Path, image_name: str, target: np.ndarray, results: dict, rmf: SpatialNet) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    h, w, _ = target.shape
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
    axes[0].imshow(target)
    axes[0].set_title("target")
    for ax, name in zip(axes[1:], ("rmf", "dot", "mlp")):
        r = results[name]
        ax.imshow(r["pred"].reshape(h, w, 3).numpy())
        ax.set_title(f"{name}: {r['psnr']:.1f} dB")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / f"comparison_{image_name}.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in ("rmf", "dot", "mlp"):
        ax.semilogy(results[name]["losses"], label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("MSE")
    ax.set_title(image_name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"loss_{image_name}.png", dpi=100)
    plt.close(fig)

    block = rmf.blocks[0]
    pos = block.positions.detach().numpy()
    sig = block.sigma.detach().numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(target, extent=(-1, 1, 1, -1))
    ax.scatter(pos[:, 0], pos[:, 1], c="white", edgecolors="black", s=25, zorder=3)
    for (px, py), s in zip(pos, sig):
        ax.add_patch(Circle((px, py), s, fill=False, color="yellow", lw=0.8))
    # Neurons may leave the image: a distant neuron with a broad field claims a whole border region.
    lim = max(1.1, float(np.abs(pos).max()) + float(sig.max()))
    ax.set_xlim(-lim, lim)
    ax.set_ylim(lim, -lim)
    ax.set_title("RMF first-block neurons (circles: sigma)")
    fig.tight_layout()
    fig.savefig(out / f"layout_{image_name}.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--image", nargs="+", default=list(BUILTIN_IMAGES), help="breakout | landscape | PATH")
    parser.add_argument("--size", type=int, default=64, help="images are resized to size x size")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; the ops are tiny, and extra threads on a busy machine slow them down",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 steps on 16x16 images")
    args = parser.parse_args(argv)
    check_optional_dependencies()
    if args.quick:
        args.steps, args.size = 20, 16
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(previous_threads)  # main() may be called in-process (tests)


def run(args: argparse.Namespace) -> dict:
    """Run the experiment described by the parsed arguments; returns the summary table."""
    args.out.mkdir(parents=True, exist_ok=True)

    table: dict[str, dict] = {}
    print(f"{'image':<10} {'model':<5} {'params':>7} {'final MSE':>10} {'PSNR dB':>8} {'wall s':>7}")
    for image_name in args.image:
        tag = Path(image_name).stem
        target_np = load_image(image_name, args.size)
        h, w, _ = target_np.shape
        target = torch.from_numpy(target_np).reshape(h * w, 3)
        coords = make_coordinate_grid(h, w)
        models = build_models(args.seed)
        results = {}
        for name, model in models.items():
            torch.manual_seed(args.seed)
            results[name] = fit(model, coords, target, args.steps, args.lr)
            r = results[name]
            n = count_parameters(model)
            print(f"{tag:<10} {name:<5} {n:>7d} {r['mse']:>10.5f} {r['psnr']:>8.2f} {r['wall_s']:>7.1f}")
        plot_results(args.out, tag, target_np, results, models["rmf"])
        table[tag] = {
            name: {
                "parameters": count_parameters(models[name]),
                "final_mse": r["mse"],
                "psnr_db": r["psnr"],
                "wall_s": r["wall_s"],
                "final_train_loss": r["losses"][-1],
            }
            for name, r in results.items()
        }
    meta = {"steps": args.steps, "lr": args.lr, "size": args.size, "seed": args.seed, "config": dict(SEED_CONFIG)}
    with open(args.out / "results.json", "w") as f:
        json.dump({"meta": meta, "results": table}, f, indent=2, default=list)
    return table


if __name__ == "__main__":
    main()
