"""Train the world model alone, with and without the attention schema, and compare open-loop prediction.

Records episodes of an environment with a random policy, holds out the episodes of the last
environment stream(s) for evaluation, then trains the full model (attention schema on) and the
ablation (``attention=False``) one after the other on the same batches, with the same seed and the
same number of updates. Each is evaluated on held-out windows: observe ``--context`` frames, then
predict the next ``--horizon`` frames and rewards from the actions alone (``VRNN.open_loop``).

    python scripts/train_world_model.py                        # Breakout, debug sizes, ~11 min on 2 cores
    python scripts/train_world_model.py --env Pong --preset cpu --updates 500 --out runs/wm_pong
    python scripts/train_world_model.py --quick --out /tmp/wm  # smoke run on Catch, seconds

Outputs in ``--out``: ``results.json`` (everything below), ``openloop_strip.png`` (real frames above
the full model's and the ablation's predictions), ``tb/`` (TensorBoard: losses under ``full/`` and
``ablation/``, the strip under ``openloop``), ``tb/metrics.jsonl`` and each trained model
(``full.pt``, ``ablation.pt``; ``scripts/eval_objects.py`` reads them). ``--models full`` trains one.

For games with OCAtari object boxes (``envs.objects.OBJECT_CLASSES``: Breakout, Pong, ...) each
model is also evaluated against the objects (``aime.eval.objects``: attention lift, best slot,
object-window error ratios) on ``--object-steps`` rows recorded separately with a random policy;
``--object-steps 0`` skips it.

Evaluation windows are ``context + horizon`` consecutive rows of one held-out episode: a window in
which any row after the first starts a new episode is skipped (not masked), so neither the context
nor the predicted part crosses an episode boundary. MSE is per pixel on ``[0, 1]`` (predictions
clamped); PSNR is ``10 log10(1 / MSE)`` per predicted frame, averaged over windows; the reward error
is ``|predicted - real|`` with the reward received on arriving at each predicted frame. A
copy-the-last-context-frame baseline is reported alongside.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

import envs
from aime.agent.agent import to_tensors, world_model_update
from aime.config import ConfigError, load_config, to_dict
from aime.eval.objects import ObjectData, evaluate_objects, format_table
from aime.runtime.checkpoint import save_world_model
from aime.runtime.device import Precision, configure_process, resolve_device, resolve_precision
from aime.runtime.environments import env_options
from aime.runtime.extras import require, require_objects
from aime.runtime.logger import Logger
from aime.runtime.replay import FIELDS, ReplayBuffer
from aime.runtime.seeding import seed_everything
from aime.world_model.vrnn import VRNN
from envs.objects import OBJECT_CLASSES, record_objects

MODELS = {"full": True, "ablation": False}  # label -> attention schema on
TABLE_HORIZONS = (1, 5, 15)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--env", default="Breakout", help="game (Breakout, ALE/Pong-v5, ...) or Catch")
    parser.add_argument(
        "--preset",
        action="append",
        default=None,
        help="preset(s) from configs/ for the model sizes, applied in order (default: debug)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.deter=64 (repeatable)",
    )
    parser.add_argument("--num-envs", type=int, default=5, help="parallel environments recorded (default 5)")
    parser.add_argument(
        "--eval-envs",
        type=int,
        default=1,
        help="the last this-many environment streams are held out for evaluation (default 1)",
    )
    parser.add_argument("--steps", type=int, default=7500, help="agent steps recorded over all envs (default 7500)")
    parser.add_argument(
        "--episodes",
        type=int,
        default=0,
        help="if > 0, record until this many episodes have ended (over all envs) instead",
    )
    parser.add_argument("--updates", type=int, default=1000, help="updates per model (default 1000)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per update B (default 8)")
    parser.add_argument("--seq-len", type=int, default=16, help="window length T for training (default 16)")
    parser.add_argument(
        "--lr",
        type=float,
        default=3e-4,
        help="Adam learning rate (default 3e-4: higher than the presets' 1e-4 for a short budget)",
    )
    parser.add_argument("--context", type=int, default=5, help="observed frames before open-loop prediction")
    parser.add_argument("--horizon", type=int, default=15, help="frames predicted from actions alone")
    parser.add_argument("--eval-windows", type=int, default=64, help="held-out windows evaluated (default 64)")
    parser.add_argument(
        "--models",
        default="full,ablation",
        help="which models to train, comma-separated: full (attention schema), ablation",
    )
    parser.add_argument(
        "--object-steps",
        type=int,
        default=2000,
        help="rows recorded with object boxes for the object evaluation (0: skip it)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("runs/world_model"), help="output folder")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: Catch, 2+1 envs, 90 steps, 3 updates, B 2, T 6, context 2, horizon 4",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.env, args.num_envs, args.eval_envs, args.steps = "Catch", 3, 1, 90
        args.updates, args.batch_size, args.seq_len = 3, 2, 6
        args.context, args.horizon, args.eval_windows = 2, 4, 4
    for name in (
        "num_envs",
        "eval_envs",
        "steps",
        "updates",
        "batch_size",
        "seq_len",
        "context",
        "horizon",
        "eval_windows",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.eval_envs >= args.num_envs:
        parser.error(f"--eval-envs ({args.eval_envs}) must be < --num-envs ({args.num_envs}): some streams must train")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models or any(m not in MODELS for m in args.models):
        parser.error(f"--models must list some of {', '.join(MODELS)}, got {','.join(args.models)!r}")
    if args.object_steps < 0:
        parser.error(f"--object-steps must be >= 0, got {args.object_steps}")
    if args.episodes < 0 or args.lr <= 0:
        parser.error(f"--episodes must be >= 0 and --lr > 0, got {args.episodes}, {args.lr}")
    return args


# -- data -----------------------------------------------------------------------------------------
def record(cfg, num_envs: int, steps: int, episodes: int, seed: int) -> tuple[dict[str, np.ndarray], int]:
    """Random-policy rows of every env stream and the number of actions.

    Returns ``({obs uint8 [N, L, 3, 84, 84], action, reward, is_first, is_terminal [N, L]}, A)``.

    Row ``t`` follows ``aime.runtime.replay``: obs_t, the action taken at obs_t, the reward received
    on arriving at obs_t, is_first_t, is_terminal_t (NEXT_STEP autoreset: the step after an
    episode's last row returns the next episode's first observation).
    """
    env = envs.make_vector(cfg.env.name, num_envs, **env_options(cfg))
    rng = np.random.default_rng(seed)
    num_actions = int(env.single_action_space.n)
    obs, _ = env.reset(seed=seed)
    reward = np.zeros(num_envs, dtype=np.float32)
    is_first = np.ones(num_envs, dtype=bool)
    is_terminal = np.zeros(num_envs, dtype=bool)
    rows: dict[str, list] = {name: [] for name in FIELDS}
    done = np.zeros(num_envs, dtype=bool)
    ended = 0
    while (ended < episodes) if episodes else (len(rows["obs"]) * num_envs < steps):
        action = rng.integers(0, num_actions, size=num_envs)
        for name, value in zip(FIELDS, (obs, action, reward, is_first, is_terminal)):
            rows[name].append(np.array(value))
        obs, reward, terminated, truncated, _ = env.step(action)
        reward = reward.astype(np.float32)
        # this step restarted the streams whose previous step ended an episode (reward 0 there)
        is_first, is_terminal = done, terminated.astype(bool)
        done = np.logical_or(terminated, truncated)
        ended += int(done.sum())
    env.close()
    data = {name: np.stack(rows[name], 1) for name in FIELDS}
    return data, num_actions


def split(data: dict[str, np.ndarray], eval_envs: int) -> tuple[ReplayBuffer, dict[str, np.ndarray]]:
    """Training streams into a :class:`ReplayBuffer`; the last ``eval_envs`` streams kept as arrays."""
    n, length = data["is_first"].shape
    train = n - eval_envs
    buffer = ReplayBuffer(train * length, num_streams=train, obs_shape=data["obs"].shape[2:], seed=None)
    for t in range(length):
        buffer.add(*(data[name][:train, t] for name in FIELDS))
    return buffer, {name: data[name][train:] for name in FIELDS}


def episode_count(is_first: np.ndarray) -> int:
    """Episodes started in ``is_first [N, L]`` (a stream's first row starts one)."""
    return int(is_first.sum())


def eval_windows(held_out: dict[str, np.ndarray], length: int, count: int) -> dict[str, np.ndarray]:
    """Up to ``count`` windows of ``length`` rows inside one episode, evenly spaced over the held-out rows.

    A window is kept only if no row after its first starts a new episode. Returns the fields
    ``[W, length, ...]``.
    """
    first = held_out["is_first"]  # [E, L]
    e, total = first.shape
    empty = {name: np.zeros((0, length, *held_out[name].shape[2:]), held_out[name].dtype) for name in FIELDS}
    if total < length:
        return empty
    # starts whose window has no first row after its own: a cumulative count of first rows
    count_first = np.concatenate([np.zeros((e, 1), int), np.cumsum(first, 1)], 1)  # [E, L+1]
    starts = np.arange(total - length + 1)
    crossing = count_first[:, starts + length] - count_first[:, starts + 1] > 0  # [E, S]
    stream, start = np.nonzero(~crossing)
    if len(stream) == 0:
        return empty
    pick = np.unique(np.linspace(0, len(stream) - 1, min(count, len(stream))).round().astype(int))
    rows = start[pick, None] + np.arange(length)[None]  # [W, length]
    return {name: held_out[name][stream[pick, None], rows] for name in FIELDS}


def object_data(env_name: str, steps: int, seed: int) -> ObjectData | None:
    """Rows with OCAtari object boxes for the object evaluation (None: skipped or not an OCAtari game)."""
    _, game = envs.resolve(env_name)
    if steps == 0 or game not in OBJECT_CLASSES:
        return None
    return ObjectData.from_record(record_objects(game, steps, seed=seed))


# -- training -------------------------------------------------------------------------------------
def train(
    label: str,
    attention: bool,
    cfg,
    num_actions: int,
    buffer: ReplayBuffer,
    schedule: list[tuple[np.ndarray, np.ndarray]],
    args: argparse.Namespace,
    logger: Logger,
    device: torch.device,
    precision: Precision,
) -> tuple[VRNN, dict]:
    """Train one model on the window ``schedule`` (the same for both models); returns it and its stats.

    Each update is the agent's world-model step (:func:`aime.agent.agent.world_model_update`): the loss
    under bf16 autocast when ``precision`` is bf16 (``train.precision``), the optimiser and the
    parameters in fp32, gradients clipped at ``train.grad_clip``, and a non-finite loss skipping the
    update."""
    seed_everything(args.seed)
    model = VRNN.from_config(cfg.model, num_actions, cfg.train, attention=attention).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    params = sum(p.numel() for p in model.parameters())
    print(f"[{label}] attention={attention}: {params:,} parameters", flush=True)
    times, skipped, last = [], 0, {}
    report_every = max(1, len(schedule) // 10)
    model.train()
    for update, (stream, rows) in enumerate(schedule, 1):
        batch = to_tensors(buffer.gather(stream, rows), device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step = world_model_update(model, optimizer, batch, cfg.train.grad_clip, autocast=precision.autocast)
        total, terms = step.loss, step.metrics
        if bool(step.skip):
            skipped += 1  # counted, as the training loop counts them
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        last = {"loss": float(total.detach()), **{k: float(v) for k, v in terms.items()}}
        scalars = {f"{label}/{k}": v for k, v in last.items()} | {f"{label}/seconds_per_update": times[-1]}
        logger.scalars(scalars, update)
        if update % report_every == 0 or update == len(schedule):
            print(
                f"[{label}] update {update}/{len(schedule)}: loss {last['loss']:.4f} "
                f"(reconstruction {last['reconstruction']:.4f}), {statistics.median(times):.3f} s/update",
                flush=True,
            )
    stats = {
        "attention": attention,
        "parameters": params,
        "median_update_s": statistics.median(times),
        "train_s": sum(times),
        "nonfinite_updates": skipped,
        "final_losses": last,
    }
    return model, stats


# -- evaluation -----------------------------------------------------------------------------------
def psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) for images on [0, 1]; ``mse`` is clamped away from 0 to stay finite."""
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def frame_errors(pred: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame MSE and PSNR of ``pred`` and ``real`` ``[W, H, 3, S, S]`` on [0, 1]: ``[W, H]`` each."""
    mse = (pred.clamp(0, 1) - real).square().mean((2, 3, 4))
    return mse, psnr(mse)


def open_loop_metrics(
    model: VRNN, windows: dict[str, torch.Tensor], context: int, chunk: int = 16
) -> tuple[dict, torch.Tensor]:
    """Open-loop errors per horizon over the windows; also the predicted frames ``[W, H, 3, S, S]``."""
    model.eval()
    frames, rewards = [], []
    for i in range(0, windows["obs"].shape[0], chunk):
        part = {k: v[i : i + chunk] for k, v in windows.items()}
        out = model.open_loop(part["obs"], part["action"], part["is_first"], context=context)
        frames.append(out["frames"].float().cpu())
        rewards.append(out["reward"].float().cpu())
    pred, reward = torch.cat(frames), torch.cat(rewards)  # [W, H, 3, S, S], [W, H]
    real = windows["obs"][:, context:].float().cpu() / 255.0
    mse, db = frame_errors(pred, real)
    reward_error = (reward - windows["reward"][:, context:].float().cpu()).abs()  # [W, H]
    metrics = {
        "mse": mse.mean(0).tolist(),
        "psnr": db.mean(0).tolist(),
        "reward_abs_error": reward_error.mean(0).tolist(),
        "reward_mae": float(reward_error.mean()),
    }
    return metrics, pred


def copy_last_metrics(windows: dict[str, torch.Tensor], context: int) -> dict:
    """The baseline that repeats the last context frame for every horizon."""
    obs = windows["obs"].float().cpu() / 255.0
    real = obs[:, context:]
    mse, db = frame_errors(obs[:, context - 1 : context].expand_as(real), real)
    return {"mse": mse.mean(0).tolist(), "psnr": db.mean(0).tolist()}


def strip_canvas(real: torch.Tensor, preds: dict[str, torch.Tensor]) -> np.ndarray:
    """One row per sequence (real first, then each model): ``[H, 3, S, S]`` each -> ``uint8 [rows*S, H*S, 3]``."""
    rows = torch.stack([real] + list(preds.values())).clamp(0, 1)  # [R, H, 3, S, S]
    return (rearrange(rows, "r h c y x -> (r y) (h x) c").numpy() * 255).round().astype(np.uint8)


def save_strip(canvas: np.ndarray, labels: list[str], size: int, path: Path) -> None:
    """Write the strip as a PNG with the row labels on the left (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = canvas.shape[:2]
    fig, ax = plt.subplots(figsize=(width / 60 + 1.2, height / 60 + 0.4), dpi=100)
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([size * (i + 0.5) for i in range(len(labels))], labels)
    ax.set_xticks([size * (i + 0.5) for i in range(width // size)], [str(i + 1) for i in range(width // size)])
    ax.set_xlabel("predicted step (from actions alone)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_table(results: dict, horizon: int) -> None:
    shown = [h for h in TABLE_HORIZONS if h <= horizon]
    head = " | ".join(f"PSNR h{h}" for h in shown) + " | " + " | ".join(f"MSE h{h}" for h in shown)
    print(f"\n| model | parameters | s/update | {head} | reward MAE |")
    print("| --- | ---: | ---: | " + " | ".join(["---:"] * 2 * len(shown)) + " | ---: |")
    for label, stats in results["models"].items():
        ol = stats["open_loop"]
        cells = [f"{ol['psnr'][h - 1]:.2f}" for h in shown] + [f"{ol['mse'][h - 1]:.5f}" for h in shown]
        print(
            f"| {label} | {stats['parameters']:,} | {stats['median_update_s']:.3f} | {' | '.join(cells)} | "
            f"{ol['reward_mae']:.4f} |"
        )
    base = results["baselines"]["copy_last"]
    cells = [f"{base['psnr'][h - 1]:.2f}" for h in shown] + [f"{base['mse'][h - 1]:.5f}" for h in shown]
    print(f"| copy last context frame | 0 | - | {' | '.join(cells)} | - |")
    if "update_time_ratio" in results:
        print(f"update time full / ablation: {results['update_time_ratio']:.2f}x\n", flush=True)


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    require("train_world_model.py", ["matplotlib"], "the open-loop strip")  # at start, not after training
    require_objects("train_world_model.py", args.env, wanted=args.object_steps > 0)
    try:
        presets = [p for item in (args.preset or ["debug"]) for p in item.split(",") if p]
        cfg = load_config(presets, [*args.set, f"env.name={args.env}", f"seed={args.seed}"])
        envs.resolve(cfg.env.name)
    except (ConfigError, ValueError) as error:
        print(f"train_world_model.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    device = resolve_device(args.device)
    configure_process(device)  # before the first parallel operation: the worker threads copy the denormal setting
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    precision = resolve_precision(cfg.train.precision, device)
    args.out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    print(
        f"env {cfg.env.name}, presets {presets}, device {device}, precision {precision}, torch threads {threads}",
        flush=True,
    )

    start = time.perf_counter()
    data, num_actions = record(cfg, args.num_envs, args.steps, args.episodes, args.seed)
    buffer, held_out = split(data, args.eval_envs)
    window = args.context + args.horizon
    windows = eval_windows(held_out, window, args.eval_windows)
    if windows["obs"].shape[0] == 0:
        raise SystemExit(
            f"train_world_model.py: error: no held-out window of {window} frames lies inside one "
            f"episode; record more steps or lower --context/--horizon"
        )
    if not buffer.can_sample(args.seq_len):
        raise SystemExit(
            f"train_world_model.py: error: each training stream holds {buffer.filled} rows, "
            f"fewer than --seq-len {args.seq_len}"
        )
    record_s = time.perf_counter() - start
    data_info = {
        "num_actions": num_actions,
        "train_rows": len(buffer),
        "eval_rows": int(held_out["is_first"].size),
        "train_episodes": episode_count(data["is_first"][: args.num_envs - args.eval_envs]),
        "eval_episodes": episode_count(held_out["is_first"]),
        "eval_windows": int(windows["obs"].shape[0]),
        "eval_window_rule": "windows with a new episode after their first row are skipped",
        "record_s": record_s,
    }
    print(
        f"recorded {data['is_first'].size:,} rows in {record_s:.1f} s: {data_info['train_rows']:,} train rows "
        f"({data_info['train_episodes']} episodes started), {data_info['eval_rows']:,} held-out rows "
        f"({data_info['eval_episodes']} episodes started), {data_info['eval_windows']} eval windows of {window}",
        flush=True,
    )

    sampler = np.random.default_rng(args.seed)
    buffer.rng = sampler  # one schedule of windows, replayed identically for both models
    schedule = [buffer.sample_indices(args.batch_size, args.seq_len) for _ in range(args.updates)]
    eval_batch = to_tensors(windows, device)
    logger = Logger(args.out / "tb")
    results: dict = {
        "command": ["scripts/train_world_model.py", *(argv if argv is not None else sys.argv[1:])],
        "env": cfg.env.name,
        "presets": presets,
        "device": str(device),
        "precision": precision.name,
        "threads": torch.get_num_threads(),
        "config": to_dict(cfg),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": data_info,
        "models": {},
    }
    objects = object_data(cfg.env.name, args.object_steps, args.seed + 1000)
    preds = {}
    for label in args.models:
        model, stats = train(label, MODELS[label], cfg, num_actions, buffer, schedule, args, logger, device, precision)
        stats["open_loop"], preds[label] = open_loop_metrics(model, eval_batch, args.context)
        as_trained = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, attention=MODELS[label]))
        save_world_model(args.out / f"{label}.pt", model, as_trained, num_actions)
        if objects is not None:
            stats["objects"] = evaluate_objects(model, objects)
            print(format_table({label: stats["objects"]}), flush=True)
        results["models"][label] = stats
        del model
    results["baselines"] = {"copy_last": copy_last_metrics(eval_batch, args.context)}
    if len(args.models) == 2:
        results["update_time_ratio"] = (
            results["models"]["full"]["median_update_s"] / results["models"]["ablation"]["median_update_s"]
        )

    real = eval_batch["obs"][:, args.context :].float().cpu() / 255.0
    moving = (real[:, 1:] - real[:, :-1]).abs().mean((1, 2, 3, 4)) if args.horizon > 1 else real.mean((1, 2, 3, 4))
    shown = int(moving.argmax())  # the window with the most motion makes the most telling strip
    canvas = strip_canvas(real[shown], {k: v[shown] for k, v in preds.items()})
    save_strip(canvas, ["real", *args.models], real.shape[-1], args.out / "openloop_strip.png")
    logger.images({"openloop/real_full_ablation": rearrange(torch.as_tensor(canvas), "h w c -> c h w")}, args.updates)
    logger.close()
    results["strip_window"] = shown
    results["total_s"] = time.perf_counter() - start
    for label, stats in results["models"].items():
        ok = all(math.isfinite(v) for v in stats["open_loop"]["psnr"])
        print(
            f"{label}: {stats['parameters']:,} parameters, median {stats['median_update_s']:.3f} s/update, "
            f"{stats['train_s']:.0f} s training{'' if ok else ' (non-finite PSNR)'}",
            flush=True,
        )
    print_table(results, args.horizon)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(
        f"wrote {args.out / 'results.json'}, {args.out / 'openloop_strip.png'}, {args.out / 'tb'} "
        f"({results['total_s']:.0f} s in all)",
        flush=True,
    )
    return results


if __name__ == "__main__":
    main()
