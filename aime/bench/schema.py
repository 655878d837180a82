"""Benchmarks of the attention schema's components at the seed's sizes: parameter counts
(``params``), one forward + backward of the posterior (``posterior``) and the prior (``prior``), and
the slot attention as the world model's time loop runs it, fused against the reference loop
(``slots``)."""

from __future__ import annotations

from functools import partial

import torch

from aime.attention import AttentionPosterior, AttentionPrior, AttentionSchema, ConvGRUCell, SlotAttention
from aime.bench.measure import count_parameters, ratio_row, time_calls, time_forward_backward
from aime.bench.registry import Settings, benchmark

__all__ = ["bench_params", "bench_posterior", "bench_prior", "bench_slots"]


def seed_sizes_for(settings: Settings) -> tuple[int, int]:
    """(image size, attention resolution): the FPN downsamples by 4 (ceil)."""
    return settings.image_size, ((settings.image_size + 1) // 2 + 1) // 2


@benchmark("params", "parameter counts of the attention-schema components at the seed's sizes")
def bench_params(settings: Settings) -> list[dict]:
    image, res = seed_sizes_for(settings)
    components = {
        "SlotAttention (K 4, d 64, 3 iters)": SlotAttention(num_slots=4, dim=64, iters=3, hidden_dim=128),
        "ConvGRUCell (1 -> 32, 5x5)": ConvGRUCell(1, 32, 5),
        "AttentionPosterior": AttentionPosterior(image_size=image, attention_resolution=res),
        "AttentionPrior": AttentionPrior(attention_resolution=res),
        "AttentionSchema": AttentionSchema(image_size=image, attention_resolution=res),
    }
    return [
        {"item": name, "value": count_parameters(module), "unit": "parameters"} for name, module in components.items()
    ]


def _time_posterior(model: AttentionPosterior, settings: Settings) -> tuple[float, list[float]]:
    """Forward + backward of the posterior on random frames ``[B, 3, S, S]``, hidden and context states."""
    b, image, device = settings.batch, settings.image_size, settings.device

    def make_inputs() -> tuple:
        return (
            torch.rand(b, 3, image, image, device=device),
            torch.randn(b, model.hidden_dim, device=device),
            torch.randn(b, model.context_dim, device=device),
        )

    def loss_of(out: tuple) -> torch.Tensor:
        probs, coords = out
        return probs.square().sum() + coords.square().sum() + model.diversity_loss

    return time_forward_backward(model, make_inputs, loss_of, settings)


@benchmark("posterior", "AttentionPosterior forward + backward (train mode), FPN with/without GroupNorm")
def bench_posterior(settings: Settings) -> list[dict]:
    image, res = seed_sizes_for(settings)
    variants = {"(GroupNorm, seed)": {"norm": "group"}, "(no norm)": {"norm": "none"}}
    rows = []
    for label, kwargs in variants.items():
        torch.manual_seed(settings.seed)
        model = AttentionPosterior(image_size=image, attention_resolution=res, **kwargs).to(settings.device)
        median, times = _time_posterior(model, settings)
        rows.append(
            {
                "item": f"AttentionPosterior {label}, B {settings.batch}, {image}x{image}",
                "value": round(median, 4),
                "unit": "s fwd+bwd",
                "note": f"median of {len(times)}",
            }
        )
    return rows


def _time_prior(model: AttentionPrior, settings: Settings, res: int) -> tuple[float, list[float]]:
    """Forward + backward of the prior on a random normalised map ``[B, R, R]``, hidden and latent states."""
    b, device = settings.batch, settings.device

    def make_inputs() -> tuple:
        prev = torch.rand(b, res, res, device=device)
        return (
            prev / prev.sum(dim=(1, 2), keepdim=True),
            torch.randn(b, model.hidden_dim, device=device),
            torch.randn(b, model.latent_dim, device=device),
        )

    def loss_of(out: tuple) -> torch.Tensor:
        probs, info = out
        dx, dy = info["predicted_movement"]
        return probs.square().sum() + dx.square().mean() + dy.square().mean()

    return time_forward_backward(model, make_inputs, loss_of, settings)


@benchmark("prior", "AttentionPrior forward + backward (train mode): position encodings, dropout, checkpointing")
def bench_prior(settings: Settings) -> list[dict]:
    _, res = seed_sizes_for(settings)
    variants = {
        "(relative bias, weight dropout, checkpoint; seed)": {
            "position_bias": "relative",
            "dropout_mode": "weights",
            "use_checkpoint": True,
        },
        "(relative bias, checkpoint; default)": {"position_bias": "relative", "use_checkpoint": True},
        "(relative bias)": {"position_bias": "relative", "use_checkpoint": False},
        "(rotary)": {"position_bias": "rotary", "use_checkpoint": False},
        "(absolute only)": {"position_bias": "none", "use_checkpoint": False},
    }
    rows = []
    for label, kwargs in variants.items():
        torch.manual_seed(settings.seed)
        model = AttentionPrior(attention_resolution=res, **kwargs).to(settings.device)
        median, times = _time_prior(model, settings, res)
        rows.append(
            {
                "item": f"AttentionPrior {label}, B {settings.batch}, {res}x{res}",
                "value": round(median, 4),
                "unit": "s fwd+bwd",
                "note": f"median of {len(times)}",
            }
        )
    return rows


@benchmark("slots", "SlotAttention in a time loop (T steps of B frames), fused vs reference loop, fp32 and bf16")
def bench_slots(settings: Settings) -> list[dict]:
    """``T = seq_len`` steps of ``B = batch`` frames, each step's seeds the previous step's slots (as
    the world model's loop runs it: 441 tokens at 84x84, K 4, d 64, 3 iterations), forward + backward
    through all steps, with ``SlotAttention(fused=True)`` and ``fused=False`` under fp32 and under
    bf16 autocast; a ratio fused / reference per precision."""
    _, res = seed_sizes_for(settings)
    b, t, device = settings.batch, settings.seq_len, settings.device
    torch.manual_seed(settings.seed)
    module = SlotAttention(num_slots=4, dim=64, iters=3, hidden_dim=128).to(device)
    tokens = module.project_inputs(torch.randn(b, t, res * res, 64, device=device)).detach().requires_grad_()
    seeds = torch.randn(b, 4, 64, device=device, requires_grad=True)

    def run(bf16: bool) -> None:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            slots, loss = seeds, 0.0
            for step in tokens.unbind(1):  # one unbind: the backward of T slices would be quadratic in T
                slots, attn = module(None, seed_slots=slots, inputs=step)
                loss = loss + attn.float().square().mean()
            loss = loss + slots.float().square().mean()
        loss.backward()

    rows = []
    for precision in ("fp32", "bf16"):
        medians = {}
        for variant in ("fused", "reference"):
            module.fused = variant == "fused"
            median, times = time_calls(partial(run, precision == "bf16"), settings, settings.repeats)
            medians[variant] = median
            item = f"SlotAttention {variant}, {precision}, T {t} x B {b}, {res * res} tokens"
            rows.append(
                {"item": item, "value": round(median, 4), "unit": "s fwd+bwd", "note": f"median of {len(times)}"}
            )
        rows.append(ratio_row(f"SlotAttention {precision}: fused / reference", medians["fused"], medians["reference"]))
    return rows
