"""train.precision on the agent: bf16 autocast on CPU keeps losses, distributions and optimiser state fp32,
and its update stays close to fp32's."""

import pytest
import torch

from aime.agent.agent import Agent, default_precision
from aime.config import ConfigError, load_config
from aime.runtime.replay import random_replay

# bf16 keeps 8 bits of mantissa (~0.4% per rounding): one update's losses differ from fp32's by up to
# ~2.5% on the tiny agent (measured: KL 1.1%, continuation 1.7%, attention dynamics 2.5%)
RTOL, ATOL = 0.05, 1e-2
COMPARED = (
    "losses/world_model",
    "losses/reconstruction",
    "losses/kl",
    "losses/reward",
    "losses/continuation",
    "losses/attention_prior",
    "losses/actor",
    "losses/critic",
    "behavior/actor_entropy",
)


def agent(precision: str, preset: str = "debug") -> Agent:
    torch.manual_seed(0)
    return Agent(load_config([preset, "tiny"]), num_actions=3, precision=precision)


def update(a: Agent, batch) -> dict[str, float]:
    torch.manual_seed(1)  # the same imagination and latent samples in both precisions
    metrics, finite = a.train_step(batch)
    assert finite
    return {k: float(v) for k, v in metrics.items()}


def test_presets_pin_cpu_runs_to_fp32_and_atari100k_is_auto():
    assert load_config(["debug"]).train.precision == "fp32"
    assert load_config(["cpu"]).train.precision == "fp32"
    assert load_config(["atari100k"]).train.precision == "auto"
    assert load_config(["debug"], ["train.precision=bf16"]).train.precision == "bf16"
    with pytest.raises(ConfigError, match="'train.precision': 'fp16' is not one of auto, fp32, bf16"):
        load_config(["debug"], ["train.precision=fp16"])


def test_the_agent_autocasts_as_its_precision_says():
    assert agent("bf16").autocast and not agent("fp32").autocast
    assert default_precision("auto", torch.device("cpu")) == "fp32"  # the CPU's flags: the runtime's job
    assert Agent(load_config(["debug", "tiny"], ["train.precision=bf16"]), 3).precision == "bf16"
    with pytest.raises(ValueError, match="fp32 or bf16"):
        Agent(load_config(["debug", "tiny"]), 3, precision="auto")


@pytest.mark.parametrize("preset", ["debug", "atari100k"])
def test_bf16_losses_are_fp32_and_finite(preset):
    a = agent("bf16", preset)
    data = a.to_tensors(random_replay(12).sample(2, 4))
    with a.autocast_context():
        probe = torch.nn.Linear(4, 4)(torch.ones(1, 4))
        total, terms, out = a.world_model.loss(data)
        start = {k: out[k].detach().flatten(0, 1).float() for k in ("deter", "stoch")}
        actor, critic, behaviour = a.behavior.loss(a.world_model, start, torch.ones(start["deter"].shape[0]))
    assert probe.dtype == torch.bfloat16  # the networks did run in bf16
    for name, value in {"total": total, "actor": actor, "critic": critic, **terms, **behaviour}.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value).all(), name
    assert out["post"]["logits"].dtype == torch.float32  # the latent's distributions are fp32


@pytest.mark.parametrize("preset", ["debug", "atari100k"])
def test_a_bf16_update_is_close_to_fp32_and_keeps_optimizer_state_fp32(preset):
    batch = random_replay(12).sample(2, 4)
    exact, half = agent("fp32", preset), agent("bf16", preset)
    reference, measured = update(exact, batch), update(half, batch)
    for key in COMPARED:
        assert measured[key] == pytest.approx(reference[key], rel=RTOL, abs=ATOL), key
    for opt in half.optimizers().values():
        for param, state in opt.state.items():
            assert param.dtype == torch.float32
            assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.float32
    assert all(b.dtype in (torch.float32, torch.bool) for b in half.behavior.normalizer.buffers())
