"""Checkpoints of SpatialNet modules written before aime.nn.spatialnet became a package still load.

The parameter names and shapes, and the seeded outputs, were recorded from the single-module version
(commit abe5ec3); a state dict with exactly those keys and shapes must load strictly, and the seeded modules
must give the same outputs. Every public name of the old module still imports from ``aime.nn.spatialnet``.
"""

import pytest
import torch

import aime.nn.mlp as mlp_module
import aime.nn.spatialnet as spatialnet
from aime.nn.spatialnet import block, coordinates, field_decoder, network


def _stack(dims: tuple[int, ...], neurons: int = 20) -> list[tuple[str, tuple[int, ...]]]:
    keys = []
    for k, (space, belief) in enumerate(zip(dims[:-1], dims[1:])):
        keys += [
            (f"blocks.{k}.positions", (neurons, space)),
            (f"blocks.{k}.sigma_raw", (neurons,)),
            (f"blocks.{k}.beliefs", (neurons, belief)),
        ]
    return keys


def _linear(name: str, out: int, inp: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.weight", (out, inp)), (f"{name}.bias", (out,))]


def _field_decoder(modulate):
    return field_decoder.FieldDecoder(7, 3, modulate=modulate, output_activation="sigmoid")


def _render(module):
    return module.render(torch.randn(2, 7), 5, 4)


# name: (constructor, its seeded run, recorded state-dict keys and shapes, recorded sum of the run's output)
RECORDED = {
    "SpatialNet": (
        lambda: network.SpatialNet(**network.SEED_CONFIG, seed=3),
        lambda m: m(coordinates.make_coordinate_grid(5, 6)),
        _stack((2, 32, 3)),
        -5.839780859649181,
    ),
    "SpatialNet_dot": (
        lambda: network.SpatialNet(2, 3, (7, 5, 4), (6, 3), similarity="dot", init="random"),
        lambda m: m(torch.randn(2, 9, 2)),
        [
            ("blocks.0.positions", (7, 2)),
            ("blocks.0.sigma_raw", (7,)),
            ("blocks.0.beliefs", (7, 6)),
            ("blocks.1.positions", (5, 6)),
            ("blocks.1.sigma_raw", (5,)),
            ("blocks.1.beliefs", (5, 3)),
            ("blocks.2.positions", (4, 3)),
            ("blocks.2.sigma_raw", (4,)),
            ("blocks.2.beliefs", (4, 3)),
        ],
        None,
    ),
    "SpatialBlock": (
        lambda: block.SpatialBlock(5, 3, 4),
        lambda m: m(torch.randn(6, 3)),
        [("positions", (5, 3)), ("sigma_raw", (5,)), ("beliefs", (5, 4))],
        -3.067445579916239,
    ),
    "FieldDecoder": (
        lambda: _field_decoder(("beliefs",)),
        _render,
        _stack((2, 32, 3)) + _linear("belief_proj.0", 640, 7) + _linear("belief_proj.1", 60, 7),
        None,
    ),
    "FieldDecoder_all": (
        lambda: _field_decoder(("beliefs", "positions", "sigmas")),
        _render,
        _stack((2, 32, 3))
        + _linear("belief_proj.0", 640, 7)
        + _linear("belief_proj.1", 60, 7)
        + _linear("position_proj.0", 40, 7)
        + _linear("position_proj.1", 640, 7)
        + _linear("sigma_proj.0", 20, 7)
        + _linear("sigma_proj.1", 20, 7),
        58.172786831855774,
    ),
    "MLP": (
        lambda: mlp_module.MLP(2, 3, [8, 9], "gelu"),
        lambda m: m(torch.randn(4, 2)),
        _linear("net.0", 8, 2) + _linear("net.2", 9, 8) + _linear("net.4", 3, 9),
        -0.17461751773953438,
    ),
    "matched_mlp": (
        lambda: mlp_module.matched_mlp(network.SpatialNet()),
        lambda m: m(torch.randn(4, 2)),
        _linear("net.0", 34, 2) + _linear("net.2", 34, 34) + _linear("net.4", 3, 34),
        -1.7491721287369728,
    ),
}

OLD_PUBLIC_NAMES = (
    "FieldDecoder INITS MLP MODULATIONS SEED_CONFIG SIMILARITIES SpatialBlock SpatialNet count_parameters "
    "init_positions make_coordinate_grid matched_mlp mlp_parameter_count sample_pixels spatial_attention"
).split()


@pytest.mark.parametrize("name", list(RECORDED))
def test_state_dict_keys_and_shapes_are_the_recorded_ones(name):
    build, _, keys, _ = RECORDED[name]
    assert [(k, tuple(v.shape)) for k, v in build().state_dict().items()] == keys


@pytest.mark.parametrize("name", list(RECORDED))
def test_a_state_dict_with_the_recorded_keys_loads_strictly_and_is_used(name):
    build, _, keys, _ = RECORDED[name]
    torch.manual_seed(1)
    old = {k: torch.randn(shape) * 0.1 for k, shape in keys}  # stands in for a checkpoint of the old module
    module = build()
    module.load_state_dict(old, strict=True)
    torch.testing.assert_close(module.state_dict(), old, rtol=0, atol=0)


@pytest.mark.parametrize("name", [name for name, recorded in RECORDED.items() if recorded[3] is not None])
def test_seeded_outputs_are_the_recorded_ones(name):
    build, run, _, out_sum = RECORDED[name]
    torch.manual_seed(0)
    module = build()
    torch.manual_seed(1)
    with torch.no_grad():
        out = run(module)
    assert float(out.double().sum()) == pytest.approx(out_sum, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", OLD_PUBLIC_NAMES)
def test_every_public_name_of_the_old_module_still_imports(name):
    assert name in spatialnet.__all__
    homes = (block, network, field_decoder, coordinates, mlp_module)
    assert any(getattr(home, name, None) is getattr(spatialnet, name) for home in homes)
