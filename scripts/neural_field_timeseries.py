"""Seed 002 experiment: next-step prediction of a time series with Amari neural fields and a GRU.

The series (Mackey-Glass, tau 17, or a sum of noisy sines) is generated here, scaled to [-1, 1] on its training
part, and split 70/30 in time. Each model reads x_t and predicts x_{t+1}; it is trained with Adam on random
windows of the training part (MSE after a short burn-in). Models:

* ``NeuralField`` (1-D Amari field, conv lateral interactions), with the package's truncated gradients
  (``detach_hidden=True``: the state is detached every step) and with back-propagation through time;
* ``SimpleNeuralField`` (dense lateral weights, cubic dynamics), the same two ways;
* a GRU with a linear read-out, its hidden size chosen to match the NeuralField's parameter count;
* persistence (x_{t+1} = x_t) as the naive baseline.

Reported on the test part: one-step RMSE (teacher forcing) and free-running RMSE (after a true context, the model
is fed its own predictions for ``--horizon`` steps; averaged over the horizon and over start points), and the
parameter counts. ``--out`` receives ``results.json`` and ``predictions.png``.

    python scripts/neural_field_timeseries.py --out runs/nf_timeseries
    python scripts/neural_field_timeseries.py --quick --out /tmp/nf   # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aime.nn.neural_field import NeuralField, SimpleNeuralField, pd_cubic
from aime.runtime.extras import require

# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


def mackey_glass(
    length: int,
    tau: int = 17,
    beta: float = 0.2,
    gamma: float = 0.1,
    n: float = 10.0,
    substeps: int = 10,
    discard: int = 500,
    seed: int = 0,
) -> np.ndarray:
    """Mackey-Glass series sampled at unit time, Euler-integrated with ``substeps`` per unit; ``[length]``."""
    rng = np.random.default_rng(seed)
    dt = 1.0 / substeps
    delay = tau * substeps
    total = (length + discard) * substeps
    x = np.empty(total + delay)
    x[: delay + 1] = 1.2 + 0.1 * rng.standard_normal(delay + 1)  # random constant-ish history
    for i in range(delay + 1, total + delay):
        xd = x[i - 1 - delay]
        x[i] = x[i - 1] + dt * (beta * xd / (1.0 + xd**n) - gamma * x[i - 1])
    return x[delay::substeps][discard : discard + length].astype(np.float32)


def noisy_sines(length: int, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """Sum of three incommensurate sines plus Gaussian noise; ``[length]``."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    x = np.sin(2 * np.pi * t / 23.0) + 0.5 * np.sin(2 * np.pi * t / 7.3 + 1.0) + 0.3 * np.sin(2 * np.pi * t / 51.0)
    return (x + noise * rng.standard_normal(length)).astype(np.float32)


def make_series(kind: str, length: int, seed: int) -> np.ndarray:
    raw = mackey_glass(length, seed=seed) if kind == "mackey-glass" else noisy_sines(length, seed=seed)
    train = raw[: int(0.7 * length)]
    lo, hi = train.min(), train.max()
    return (2.0 * (raw - lo) / (hi - lo) - 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Models behind one interface
# ---------------------------------------------------------------------------------------------------------------


class GRUPredictor(nn.Module):
    """GRU + linear read-out; ``forward(x [B, T, 1], h) -> (y [B, T, 1], h [1, B, H])``."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.gru = nn.GRU(1, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.gru(x, hidden)
        return self.head(out), h


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gru_matching(target_params: int) -> GRUPredictor:
    """The GRU whose trainable-parameter count is closest to ``target_params``."""
    best = min(range(1, 256), key=lambda h: abs(3 * (h + h * h + 2 * h) + h + 1 - target_params))
    return GRUPredictor(best)


def build_models(args: argparse.Namespace) -> dict[str, nn.Module]:
    torch.manual_seed(args.seed)
    nf_kw = dict(tau_init=args.tau_init, kappa_init=1e-5)
    models: dict[str, nn.Module] = {
        "NeuralField": NeuralField(1, args.hidden, output_size=1, **nf_kw),
        "NeuralField (BPTT)": NeuralField(1, args.hidden, output_size=1, detach_hidden=False, **nf_kw),
        "SimpleNeuralField": SimpleNeuralField(
            1,
            args.simple_hidden,
            pd_cubic,
            output_embedding=nn.Linear(args.simple_hidden, 1, bias=False),
            tau_init=args.tau_init,
        ),
        "SimpleNeuralField (BPTT)": SimpleNeuralField(
            1,
            args.simple_hidden,
            pd_cubic,
            output_embedding=nn.Linear(args.simple_hidden, 1, bias=False),
            tau_init=args.tau_init,
            detach_hidden=False,
        ),
    }
    models["GRU"] = gru_matching(_num_params(models["NeuralField"]))
    return models


def run_sequence(model: nn.Module, x: torch.Tensor, hidden=None):
    """``x [B, T, 1]`` -> predictions ``[B, T, 1]`` and the state after the last step."""
    if isinstance(model, GRUPredictor):
        return model(x, hidden)
    out, potentials = model(x, hidden)
    return out, potentials[:, -1]


def free_run(model: nn.Module, context: torch.Tensor, horizon: int) -> torch.Tensor:
    """Teacher-forced over ``context [B, C, 1]``, then fed its own predictions; returns ``[B, horizon]``."""
    out, state = run_sequence(model, context)
    pred = out[:, -1]  # [B, 1], prediction of the first step after the context
    preds = [pred]
    for _ in range(horizon - 1):
        if isinstance(model, GRUPredictor):
            out, state = model(pred[:, None], state)
            pred = out[:, -1]
        else:
            pred, state = model.forward_one_step(pred, state)
        preds.append(pred)
    return torch.cat(preds, dim=1)


# ---------------------------------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------------------------------


def train(model: nn.Module, series: torch.Tensor, train_end: int, args: argparse.Namespace) -> list[float]:
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    window = args.window
    losses = []
    for _ in range(args.iters):
        starts = torch.randint(0, train_end - window - 1, (args.batch,), generator=gen)
        idx = starts[:, None] + torch.arange(window + 1)  # [B, W+1]
        seq = series[idx]  # [B, W+1]
        pred, _ = run_sequence(model, seq[:, :-1, None])
        loss = torch.mean((pred[:, args.burn_in :, 0] - seq[:, args.burn_in + 1 :]) ** 2)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, series: torch.Tensor, train_end: int, args: argparse.Namespace) -> dict[str, object]:
    n = series.shape[0]
    ctx = args.context
    # One step: teacher-forced over the test part, starting ctx steps earlier to settle the state.
    inputs = series[train_end - ctx : n - 1]
    pred, _ = run_sequence(model, inputs[None, :, None])
    one_step = pred[0, ctx - 1 :, 0]  # predictions of series[train_end:]
    target = series[train_end:]
    one_step_rmse = torch.sqrt(torch.mean((one_step - target) ** 2)).item()
    # Free running from several start points (batched).
    starts = torch.arange(train_end, n - args.horizon + 1, args.free_run_stride)
    context = series[starts[:, None] - ctx + torch.arange(ctx)]  # [S, ctx]
    truth = series[starts[:, None] + torch.arange(args.horizon)]  # [S, horizon]
    free = free_run(model, context[..., None], args.horizon)
    err = (free - truth) ** 2  # [S, horizon]
    return {
        "one_step_rmse": one_step_rmse,
        "free_run_rmse": torch.sqrt(err.mean()).item(),
        "free_run_rmse_short": torch.sqrt(err[:, : args.short_horizon].mean()).item(),
        "free_run_rmse_per_step": torch.sqrt(err.mean(0)).tolist(),
        "one_step_prediction": one_step.tolist(),
        "free_run_example": free[0].tolist(),
        "free_run_start": int(starts[0]),
    }


def persistence(series: torch.Tensor, train_end: int, args: argparse.Namespace) -> dict[str, object]:
    n = series.shape[0]
    one_step = series[train_end - 1 : n - 1]
    starts = torch.arange(train_end, n - args.horizon + 1, args.free_run_stride)
    truth = series[starts[:, None] + torch.arange(args.horizon)]
    err = (series[starts - 1][:, None] - truth) ** 2
    return {
        "one_step_rmse": torch.sqrt(torch.mean((one_step - series[train_end:]) ** 2)).item(),
        "free_run_rmse": torch.sqrt(err.mean()).item(),
        "free_run_rmse_short": torch.sqrt(err[:, : args.short_horizon].mean()).item(),
        "free_run_rmse_per_step": torch.sqrt(err.mean(0)).tolist(),
    }


# ---------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------


def format_table(rows: list[dict[str, object]], short: int, horizon: int) -> str:
    lines = [
        f"| model | parameters | one-step RMSE | free-running RMSE, {short} steps | free-running RMSE, {horizon} steps "
        "| train time (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['parameters']} | {r['one_step_rmse']:.4f} | {r['free_run_rmse_short']:.4f} | "
            f"{r['free_run_rmse']:.4f} | {r.get('train_seconds', 0.0):.1f} |"
        )
    return "\n".join(lines)


def plot(series: np.ndarray, train_end: int, results: dict[str, dict[str, object]], args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(11, 7))
    span = min(200, series.shape[0] - train_end)
    t = np.arange(train_end, train_end + span)
    axes[0].plot(t, series[train_end : train_end + span], "k", linewidth=2, label="truth")
    for name, res in results.items():
        axes[0].plot(t, res["one_step_prediction"][:span], linewidth=1, label=name)
    axes[0].set_title("one-step predictions (teacher forcing), test part")
    axes[0].legend(fontsize=7, ncol=3)
    start = next(iter(results.values()))["free_run_start"]
    tc = np.arange(start - args.context, start + args.horizon)
    axes[1].plot(tc, series[start - args.context : start + args.horizon], "k", linewidth=2, label="truth")
    axes[1].axvline(start, color="grey", linestyle="--")
    for name, res in results.items():
        axes[1].plot(np.arange(start, start + args.horizon), res["free_run_example"], linewidth=1, label=name)
    axes[1].set_title(f"free-running: context up to the dashed line, then {args.horizon} steps on own predictions")
    axes[1].legend(fontsize=7, ncol=3)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("runs/nf_timeseries"), help="output directory")
    p.add_argument("--series", choices=("mackey-glass", "sines"), default="mackey-glass")
    p.add_argument("--length", type=int, default=2000, help="series length (70%% train, 30%% test)")
    p.add_argument("--hidden", type=int, default=32, help="NeuralField neurons")
    p.add_argument("--simple-hidden", type=int, default=4, help="SimpleNeuralField neurons")
    p.add_argument("--tau-init", type=float, default=2.0)
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--burn-in", type=int, default=8, help="steps of each window not in the loss")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--context", type=int, default=100, help="true steps before evaluation")
    p.add_argument("--horizon", type=int, default=50, help="free-running steps")
    p.add_argument(
        "--short-horizon", type=int, default=10, help="also report the free-running RMSE of the first N steps"
    )
    p.add_argument("--free-run-stride", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.length, args.hidden, args.iters, args.window, args.burn_in = 400, 8, 3, 16, 2
        args.context, args.horizon, args.free_run_stride, args.batch, args.short_horizon = 20, 10, 20, 4, 5
    if args.burn_in >= args.window:
        p.error("--burn-in must be smaller than --window")
    train_end = int(0.7 * args.length)
    if not (1 <= args.context <= train_end and 1 <= args.horizon <= args.length - train_end):
        p.error("--context must fit the training part and --horizon the test part")
    if not 1 <= args.short_horizon <= args.horizon:
        p.error("--short-horizon must be in [1, --horizon]")
    if args.window + 2 > train_end:
        p.error("--window is longer than the training part")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    require("neural_field_timeseries.py", ["matplotlib"], "the figure")  # at start, not after training
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    series_np = make_series(args.series, args.length, args.seed)
    series = torch.from_numpy(series_np)
    train_end = int(0.7 * args.length)
    rows: list[dict[str, object]] = []
    results: dict[str, dict[str, object]] = {}
    for name, model in build_models(args).items():
        start = time.perf_counter()
        losses = train(model, series, train_end, args)
        seconds = time.perf_counter() - start
        res = evaluate(model, series, train_end, args)
        results[name] = res
        rows.append(
            {
                "model": name,
                "parameters": _num_params(model),
                "one_step_rmse": res["one_step_rmse"],
                "free_run_rmse": res["free_run_rmse"],
                "free_run_rmse_short": res["free_run_rmse_short"],
                "train_seconds": seconds,
                "final_train_mse": float(np.mean(losses[-20:])),
            }
        )
        print(
            f"{name}: {rows[-1]['parameters']} parameters, one-step RMSE {res['one_step_rmse']:.4f}, "
            f"free-running RMSE {res['free_run_rmse_short']:.4f} ({args.short_horizon} steps), "
            f"{res['free_run_rmse']:.4f} ({args.horizon} steps); trained in {seconds:.1f} s",
            flush=True,
        )
    base = persistence(series, train_end, args)
    keys = ("one_step_rmse", "free_run_rmse", "free_run_rmse_short")
    rows.append({"model": "persistence (x_{t+1} = x_t)", "parameters": 0, **{k: base[k] for k in keys}})
    table = format_table(rows, args.short_horizon, args.horizon)
    print(
        f"\n{args.series}, {args.length} steps (train {train_end}), "
        f"{args.iters} iterations x {args.batch} windows of {args.window}\n"
    )
    print(table)
    summary = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "table": rows,
        "free_run_rmse_per_step": {name: res["free_run_rmse_per_step"] for name, res in results.items()},
    }
    summary["free_run_rmse_per_step"]["persistence"] = base["free_run_rmse_per_step"]
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    plot(series_np, train_end, results, args, args.out / "predictions.png")
    print(f"\nwrote {args.out}/results.json and predictions.png")
    return summary


if __name__ == "__main__":
    main()
