"""aime.nn.mlp: the one MLP builder of the world model and the agent.

The latents' networks were built by a private copy of it (one hidden layer); checkpoints written then must still
load, so their parameter names and shapes, recorded from that version (commit abe5ec3), are checked here.
"""

import pytest
import torch
from torch import nn

import aime.nn.mlp
from aime.nn.layer_norm import LayerNorm
from aime.nn.mlp import mlp
from aime.world_model.heads import ContinueHead, RewardHead
from aime.world_model.heads import mlp as mlp_from_heads
from aime.world_model.latent import make_latent

ARGS = dict(deter=8, embed=6, hidden=16, stoch=3, classes=4, mixture_components=5)


def _one_hidden_layer(prefix: str, inp: int, out: int, hidden: int = 16) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{prefix}.0.weight", (hidden, inp)),
        (f"{prefix}.0.bias", (hidden,)),
        (f"{prefix}.1.weight", (hidden,)),
        (f"{prefix}.1.bias", (hidden,)),
        (f"{prefix}.3.weight", (out, hidden)),
        (f"{prefix}.3.bias", (out,)),
    ]


RECORDED_LATENTS = {
    "gaussian": _one_hidden_layer("prior_net", 8, 6) + _one_hidden_layer("post_net", 14, 6),
    "categorical": _one_hidden_layer("prior_net", 8, 12) + _one_hidden_layer("post_net", 14, 12),
    "stickbreaking": [("alpha_raw", (2,))]
    + _one_hidden_layer("prior_net", 8, 38)
    + _one_hidden_layer("post_net", 14, 6),
}


def test_layers_and_parameter_names():
    net = mlp(5, 7, 3, layers=2)
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, LayerNorm, nn.SiLU, nn.Linear, LayerNorm, nn.SiLU, nn.Linear]
    assert list(net.state_dict()) == [f"{i}.{p}" for i in (0, 1, 3, 4, 6) for p in ("weight", "bias")]
    assert net(torch.randn(4, 2, 5)).shape == (4, 2, 3)
    single = mlp(5, 7, 3, layers=0)
    assert len(single) == 1 and single[0].in_features == 5


def test_zero_last_starts_predictions_at_zero():
    net = mlp(5, 7, 3, zero_last=True)
    assert torch.equal(net(torch.randn(4, 5)), torch.zeros(4, 3))


def test_one_builder_behind_every_import_path():
    assert mlp_from_heads is mlp
    assert aime.nn.mlp.mlp is mlp  # aime.nn.mlp is the module, not shadowed by the function


@pytest.mark.parametrize("kind", list(RECORDED_LATENTS))
def test_latent_networks_keep_their_recorded_parameter_names(kind):
    latent = make_latent(kind, **ARGS)
    assert [(k, tuple(v.shape)) for k, v in latent.state_dict().items()] == RECORDED_LATENTS[kind]
    torch.manual_seed(1)
    old = {k: torch.randn(shape) for k, shape in RECORDED_LATENTS[kind]}  # a checkpoint of the old module
    latent.load_state_dict(old, strict=True)
    for key, value in latent.state_dict().items():
        assert torch.equal(value, old[key])


def test_heads_keep_their_parameter_names():
    assert [(k, tuple(v.shape)) for k, v in RewardHead(10, 12).state_dict().items()] == [
        ("net.0.weight", (12, 10)),
        ("net.0.bias", (12,)),
        ("net.1.weight", (12,)),
        ("net.1.bias", (12,)),
        ("net.3.weight", (12, 12)),
        ("net.3.bias", (12,)),
        ("net.4.weight", (12,)),
        ("net.4.bias", (12,)),
        ("net.6.weight", (255, 12)),
        ("net.6.bias", (255,)),
    ]
    assert list(ContinueHead(10, 12).state_dict())[-1] == "net.6.bias"
