"""Checkpoints of the neural fields written before aime.nn.neural_field became a package still load.

The parameter names, shapes and the numerics of each class were recorded from the single-module version (commit
9cd3a5d) with the seeded constructions below; a state dict with exactly those keys and shapes must load strictly,
and the seeded modules must give the same outputs.
"""

import pytest
import torch

from aime.nn.neural_field import NeuralField, NeuralField2d, SimpleNeuralField, pd_capacity_21, pd_cubic

_FIELD_1D = [("resting_level", (6,)), ("_tau_opt", (1,)), ("_kappa_opt", (1,)), ("input_embedding.weight", (6, 2))]
_ACTIVATIONS_6 = [("potentials_to_activations.weight", (6,)), ("potentials_to_activations.bias", (6,))]

# name: (constructor, input shape, recorded state-dict keys and shapes, recorded sum of outputs, of potentials)
RECORDED = {
    "NeuralField": (
        lambda: NeuralField(2, 6, output_size=3),
        (2, 4, 2),
        _FIELD_1D + [("output_embedding.weight", (3, 6)), ("conv_layer.weight", (1, 1, 3))] + _ACTIVATIONS_6,
        -5.128105640411377,
        -245.2681884765625,
    ),
    "NeuralField_conv": (
        lambda: NeuralField(2, 6, mirrored_conv_weights=False, conv_out_channels=2, conv_kernel_size=3),
        (2, 4, 2),
        _FIELD_1D + [("output_embedding.weight", (6, 6)), ("conv_layer.weight", (2, 1, 3))] + _ACTIVATIONS_6,
        -1.4449079036712646,
        -268.3768310546875,
    ),
    "SimpleNeuralField": (
        lambda: SimpleNeuralField(2, 3, pd_cubic),
        (2, 4, 2),
        [
            ("resting_level", (3,)),
            ("_tau_opt", (1,)),
            ("_kappa_opt", (1,)),
            ("_capacity_opt", ()),
            ("input_embedding.weight", (3, 2)),
            ("output_embedding.weight", (3, 3)),
            ("prev_activations_embedding.weight", (3, 3)),
            ("potentials_to_activations.weight", (3,)),
            ("potentials_to_activations.bias", (3,)),
        ],
        -2.9574263095855713,
        -123.52759552001953,
    ),
    "SimpleNeuralField_capacity": (
        lambda: SimpleNeuralField(1, 4, pd_capacity_21, activation_nonlin=torch.tanh),
        (2, 4, 1),
        [
            ("resting_level", (4,)),
            ("_tau_opt", (1,)),
            ("_kappa_opt", (1,)),
            ("_capacity_opt", (1,)),
            ("input_embedding.weight", (4, 1)),
            ("output_embedding.weight", (4, 4)),
            ("prev_activations_embedding.weight", (4, 4)),
            ("potentials_to_activations.weight", (4,)),
            ("potentials_to_activations.bias", (4,)),
        ],
        -0.24447572231292725,
        5.166182994842529,
    ),
    "NeuralField2d": (
        lambda: NeuralField2d(7, 9),
        (2, 3, 7, 9),
        [
            ("excitation_amplitude", ()),
            ("log_excitation_sigma", ()),
            ("inhibition_amplitude", ()),
            ("log_inhibition_sigma", ()),
            ("global_inhibition", ()),
            ("resting_level", ()),
            ("input_gain", ()),
            ("_tau_opt", ()),
            ("_kappa_opt", ()),
        ],
        9.867023468017578,
        -347.2158203125,
    ),
}


def _seeded_runs():
    """Every module and its input drawn from one seeded stream, in the recorded order (the draws chain)."""
    torch.manual_seed(0)
    runs = {}
    for name, (build, input_shape, *_rest) in RECORDED.items():
        module = build()
        draw = torch.rand if name == "NeuralField2d" else torch.randn
        runs[name] = (module, draw(*input_shape))
    return runs


@pytest.mark.parametrize("name", list(RECORDED))
def test_state_dict_keys_and_shapes_are_the_recorded_ones(name):
    build, _, keys, _, _ = RECORDED[name]
    assert [(k, tuple(v.shape)) for k, v in build().state_dict().items()] == keys


@pytest.mark.parametrize("name", list(RECORDED))
def test_a_state_dict_with_the_recorded_keys_loads_strictly_and_is_used(name):
    build, input_shape, keys, _, _ = RECORDED[name]
    torch.manual_seed(1)
    old = {k: torch.randn(shape) * 0.1 for k, shape in keys}  # stands in for a checkpoint of the old module
    module = build()
    module.load_state_dict(old, strict=True)
    for key, value in module.state_dict().items():
        assert torch.equal(value, old[key])


def test_seeded_outputs_are_the_recorded_ones():
    for name, (module, inputs) in _seeded_runs().items():
        outputs, potentials = module(inputs)
        _, _, _, out_sum, pot_sum = RECORDED[name]
        assert float(outputs.detach().sum()) == pytest.approx(out_sum, rel=1e-5, abs=1e-5), name
        assert float(potentials.detach().sum()) == pytest.approx(pot_sum, rel=1e-5, abs=1e-5), name
