"""Benchmarks of the world model at preset sizes, attention schema on (full) vs off (ablation):
one update (``world_model``: ``VRNN.loss`` + backward + Adam step) and one filtering step for
acting (``acting``: ``VRNN.observe_step``); and the feature pyramid's 2x2 pooling with a written-out
backward against ``adaptive_avg_pool2d``'s (``pooling``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aime.bench.measure import count_parameters, peak_memory_row, ratio_row, reset_peak_memory, time_calls
from aime.bench.registry import Settings, benchmark
from aime.config import load_config
from aime.nn.feature_pyramid import pool_to
from aime.world_model.vrnn import VRNN

__all__ = ["WM_ACTIONS", "bench_acting", "bench_pooling", "bench_world_model", "wm_batch", "world_models"]

WM_ACTIONS = 4  # Breakout's minimal action set


def world_models(settings: Settings, preset: str) -> dict[str, VRNN]:
    """The full model and the ablation at a preset's sizes (with the ``--set`` overrides), seeded alike."""
    cfg = load_config([preset], settings.overrides)
    models = {}
    for label, attention in (("full", True), ("ablation", False)):
        torch.manual_seed(settings.seed)
        models[label] = VRNN.from_config(cfg.model, WM_ACTIONS, cfg.train, attention=attention).to(settings.device)
    return models


def wm_batch(b: int, t: int, device: str) -> dict[str, torch.Tensor]:
    """Random frames ``[B, T, 3, 84, 84]`` (uint8) and actions, rewards, flags ``[B, T]``; one episode start
    per window."""
    is_first = torch.zeros(b, t, dtype=torch.bool, device=device)
    is_first[:, 0] = True
    return {
        "obs": torch.randint(0, 256, (b, t, 3, 84, 84), dtype=torch.uint8, device=device),
        "action": torch.randint(0, WM_ACTIONS, (b, t), device=device),
        "reward": torch.randn(b, t, device=device),
        "is_first": is_first,
        "is_terminal": torch.zeros(b, t, dtype=torch.bool, device=device),
    }


def _time_update(model: VRNN, batch: dict[str, torch.Tensor], settings: Settings) -> tuple[float, list[float]]:
    """Median time of ``VRNN.loss`` + backward + one Adam step on ``batch``."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def update() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.loss(batch)[0].backward()
        optimizer.step()

    return time_calls(update, settings, settings.repeats)


@benchmark("world_model", "VRNN.loss forward + backward + Adam step at preset sizes, attention schema on vs off")
def bench_world_model(settings: Settings) -> list[dict]:
    b, t = settings.batch, settings.seq_len
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        for label, model in world_models(settings, preset).items():
            batch = wm_batch(b, t, settings.device)
            reset_peak_memory(settings.device)
            medians[label], times = _time_update(model, batch, settings)
            rows.append(
                {
                    "item": f"VRNN {preset} {label} ({count_parameters(model):,} params), B {b} x T {t}",
                    "value": round(medians[label], 4),
                    "unit": "s/update",
                    "note": f"median of {len(times)}",
                }
            )
            rows.append(peak_memory_row(f"VRNN {preset} {label}", settings.device))
        rows.append(ratio_row(f"VRNN {preset}: update time full / ablation", medians["full"], medians["ablation"]))
    return rows


@benchmark("pooling", "the feature pyramid's 2x2 pooling over B*T frames: written-out backward vs adaptive_avg_pool2d")
def bench_pooling(settings: Settings) -> list[dict]:
    """Forward + backward of ``pool_to`` (``[N, 32, S/2, S/2] -> S/4``, the pyramid's first level
    fused at a quarter of the frame, ``N = batch * seq_len`` frames of ``image_size``) against
    ``F.adaptive_avg_pool2d``, in fp32 and bf16; a ratio for each."""
    n, quarter, device = settings.batch * settings.seq_len, settings.image_size // 4, settings.device
    torch.manual_seed(settings.seed)
    variants = {
        "written-out": lambda x: pool_to(x, (quarter, quarter)),
        "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, (quarter, quarter)),
    }
    rows = []
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x = torch.randn(n, 32, 2 * quarter, 2 * quarter, device=device, dtype=dtype)
        medians = {}
        for variant, fn in variants.items():

            def call(fn=fn, x=x) -> None:
                fn(x.detach().requires_grad_(True)).float().sum().backward()

            medians[variant], times = time_calls(call, settings, settings.repeats)
            rows.append(
                {
                    "item": f"2x2 pooling, {variant}, {precision}, {n} frames of {2 * quarter}x{2 * quarter}",
                    "value": round(medians[variant], 4),
                    "unit": "s fwd+bwd",
                    "note": f"median of {len(times)}",
                }
            )
        rows.append(ratio_row(f"2x2 pooling {precision}: written-out / adaptive", *medians.values()))
    return rows


def _time_observe_step(model: VRNN, b: int, settings: Settings, repeats: int) -> tuple[float, list[float]]:
    """Median time of one ``VRNN.observe_step`` on ``b`` random frames, the state carried across calls."""
    model.eval()
    frames = torch.randint(0, 256, (b, 3, 84, 84), dtype=torch.uint8, device=settings.device)
    is_first = torch.zeros(b, dtype=torch.bool, device=settings.device)
    state = {"now": model.initial_state(b, settings.device)}

    def step() -> None:
        state["now"], _ = model.observe_step(state["now"], frames, is_first)

    return time_calls(step, settings, repeats)


@benchmark("acting", "VRNN.observe_step (one filtering step for acting) at preset sizes, attention schema on vs off")
def bench_acting(settings: Settings) -> list[dict]:
    b = max(1, settings.batch // 2)  # 8 frames at the default batch of 16
    repeats = max(5, 5 * settings.repeats)  # a step is cheap: more repeats for a stable median
    rows = []
    for preset in settings.wm_presets:
        medians = {}
        for label, model in world_models(settings, preset).items():
            medians[label], times = _time_observe_step(model, b, settings, repeats)
            rows.append(
                {
                    "item": f"VRNN.observe_step {preset} {label}, {b} frames",
                    "value": round(medians[label], 5),
                    "unit": "s/step",
                    "note": f"median of {len(times)}",
                }
            )
        rows.append(ratio_row(f"VRNN.observe_step {preset}: full / ablation", medians["full"], medians["ablation"]))
    return rows
