"""Tests of aime.nn.neural_field: Amari dynamics, the neuralfields-compatible API, the 2-D Mexican-hat field."""

import math

import pytest
import torch

from aime.nn import neural_field as nfm
from aime.nn.neural_field import (
    NeuralField,
    NeuralField2d,
    SimpleNeuralField,
    difference_of_gaussians_kernel,
    pd_capacity_21,
    pd_cubic,
    pd_linear,
)


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _gaussian_blob(height: int, width: int, y0: int, x0: int, sigma: float = 1.5) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sigma**2))  # [H, W]


# ---------------------------------------------------------------------------------------------------------------
# Hand-computed Euler steps
# ---------------------------------------------------------------------------------------------------------------


def test_neural_field_one_step_matches_hand_computed_euler_update():
    torch.manual_seed(1)
    hs, n_in, n_out, dt = 5, 2, 3, 0.7
    field = NeuralField(n_in, hs, output_size=n_out, conv_padding_mode="circular", kappa_init=0.05, dt=dt)
    x = torch.randn(4, n_in)
    u = torch.randn(4, hs)
    out, u_next = field.forward_one_step(x, u)

    with torch.no_grad():
        beta = field.potentials_to_activations.weight
        b = field.potentials_to_activations.bias
        half = field.conv_layer.weight[0, 0]  # [3]
        kernel = torch.cat([half, half[:2].flip(0)])  # symmetric [w0 w1 w2 w1 w0]
        assert torch.allclose(kernel, kernel.flip(0))
        a = torch.sigmoid(beta * (u + b))
        s_int = torch.zeros(4, hs)
        for i in range(hs):  # cross-correlation with circular wrap, centre tap at offset 2
            for j in range(5):
                s_int[:, i] += kernel[j] * a[:, (i + j - 2) % hs]
        s_ext = x @ field.input_embedding.weight.T
        h = field.resting_level
        tau = math.exp(field._tau_opt.item()) + 1e-5
        kappa = math.exp(field._kappa_opt.item())
        expected_u = u + dt * (s_ext + s_int + h - u + kappa * (h - u) ** 3) / tau
        expected_out = torch.sigmoid(beta * (expected_u + b)) @ field.output_embedding.weight.T
    assert torch.allclose(u_next, expected_u, atol=1e-5)
    assert torch.allclose(out, expected_out, atol=1e-5)
    assert field.stimuli_internal.shape == (4, hs)
    assert torch.allclose(field.stimuli_internal, s_int, atol=1e-5)


def test_simple_neural_field_one_step_matches_hand_computed_update():
    torch.manual_seed(2)
    field = SimpleNeuralField(3, 4, pd_cubic, activation_nonlin=torch.tanh, kappa_init=0.01)
    x, u = torch.randn(2, 3), torch.randn(2, 4)
    out, u_next = field.forward_one_step(x, u)
    with torch.no_grad():
        a = torch.tanh(field.potentials_to_activations.weight * u)
        s = x @ field.input_embedding.weight.T + a @ field.prev_activations_embedding.weight.T
        h, tau, kappa = field.resting_level, field.tau, field.kappa
        expected_u = u + (s + h - u + kappa * (h - u) ** 3) / tau
        expected_out = torch.tanh(field.potentials_to_activations.weight * expected_u) @ field.output_embedding.weight.T
    assert torch.allclose(u_next, expected_u, atol=1e-6)
    assert torch.allclose(out, expected_out, atol=1e-6)


def test_potentials_are_clipped_at_100():
    field = SimpleNeuralField(1, 2, pd_linear, tau_init=1.0)
    with torch.no_grad():
        field.input_embedding.weight.fill_(1e4)
    _, u = field.forward_one_step(torch.ones(1, 1))
    assert torch.equal(u, torch.full((1, 2), 100.0))


def test_neural_field_2d_one_step_matches_hand_computed_update():
    torch.manual_seed(3)
    field = NeuralField2d(7, 6, kernel_size=5, global_inhibition=0.01, kappa_init=0.02, dt=0.5)
    u = torch.randn(2, 7, 6)
    s = torch.randn(2, 7, 6)
    act, u_next = field.forward_one_step(s, u)
    with torch.no_grad():
        kernel = difference_of_gaussians_kernel(5, 3.0, 1.5, 1.5, 3.5)
        r2 = torch.tensor([[dy**2 + dx**2 for dx in range(-2, 3)] for dy in range(-2, 3)], dtype=torch.float32)
        assert torch.allclose(kernel, 3.0 * torch.exp(-r2 / 4.5) - 1.5 * torch.exp(-r2 / 24.5))
        a = torch.sigmoid(4.0 * u)
        lateral = torch.zeros_like(u)
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                lateral += kernel[dy + 2, dx + 2] * torch.roll(a, shifts=(-dy, -dx), dims=(1, 2))
        lateral -= 0.01 * a.sum(dim=(1, 2), keepdim=True)
        h = -1.0
        expected = u + 0.5 * (-u + h + s + lateral + 0.02 * (h - u) ** 3) / 5.0
    assert torch.allclose(u_next, expected, atol=1e-5)
    assert torch.allclose(act, torch.sigmoid(4.0 * expected), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# The 2-D Mexican-hat field holds a bump
# ---------------------------------------------------------------------------------------------------------------


def _run_bump(steps: int = 300, **kwargs) -> torch.Tensor:
    h, w, y0, x0 = 21, 21, 6, 13
    field = NeuralField2d(h, w, **kwargs)
    start = field.resting_level.detach() + 6.0 * _gaussian_blob(h, w, y0, x0)
    with torch.no_grad():
        act, _ = field(torch.zeros(1, steps, h, w), hidden=start[None])
    return act[0]  # [T, H, W]


def test_mexican_hat_field_keeps_a_stable_localised_bump_without_input():
    act = _run_bump()
    for t in (50, 150, 299):
        a = act[t]
        peak_y, peak_x = divmod(int(a.argmax()), a.shape[1])
        assert abs(peak_y - 6) <= 1 and abs(peak_x - 13) <= 1, f"bump drifted to {(peak_y, peak_x)} at t={t}"
        assert a.max() > 0.9, "bump died"
        active = (a > 0.5).float().mean()
        assert 0.005 < active < 0.2, f"bump not localised: {active:.3f} of the field active at t={t}"
        # Far from the bump the field stays at rest.
        assert a[17:, :5].max() < 0.05
    assert torch.allclose(act[150], act[299], atol=1e-3), "bump is not stationary"


def test_input_driven_bump_persists_after_the_input_is_removed():
    # Working memory of an attention focus: a brief localised input leaves a bump where it was.
    h, w = 21, 21
    field = NeuralField2d(h, w)
    stimulus = 3.0 * _gaussian_blob(h, w, 15, 4)
    inputs = torch.cat([stimulus.expand(1, 15, h, w), torch.zeros(1, 200, h, w)], dim=1)
    with torch.no_grad():
        act, _ = field(inputs)
    before = field.activation(field.init_hidden(1))
    assert before.max() < 0.05  # silent at rest
    last = act[0, -1]
    assert divmod(int(last.argmax()), w) == (15, 4)
    assert last.max() > 0.9 and (last > 0.5).float().mean() < 0.2


def test_bump_needs_both_lateral_excitation_and_inhibition():
    spread = _run_bump(inhibition_amplitude=0.0)[-1]
    assert (spread > 0.5).float().mean() > 0.9, "pure excitation should ignite the whole field"
    died = _run_bump(excitation_amplitude=0.5)[-1]
    assert died.max() < 0.05, "weak excitation cannot sustain a bump"


# ---------------------------------------------------------------------------------------------------------------
# Shapes, batching, parameter counts
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: NeuralField(3, 6, output_size=2),
        lambda: SimpleNeuralField(3, 2, pd_capacity_21, activation_nonlin=torch.tanh),
    ],
)
def test_shapes_and_batching(make):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(5, 9, 3)
    out, pot = model(x)
    assert out.shape == (5, 9, 2)
    assert pot.shape == (5, 9, model.hidden_size)
    # Every batch element evolves on its own.
    single = torch.cat([model(x[i : i + 1])[0] for i in range(5)])
    assert torch.allclose(out, single, atol=1e-6)
    # Continuing from a state equals running the whole sequence.
    out_a, pot_a = model(x[:, :4])
    out_b, _ = model(x[:, 4:], pot_a[:, -1])
    assert torch.allclose(torch.cat([out_a, out_b], 1), out, atol=1e-6)
    # Unbatched one step.
    o, p = model.forward_one_step(x[0, 0])
    assert o.shape == (1, 2) and p.shape == (1, model.hidden_size)
    assert model.init_hidden().shape == (model.hidden_size,)
    assert model.init_hidden(4).shape == (4, model.hidden_size)


def test_neural_field_2d_shapes_and_batching():
    field = NeuralField2d(9, 11)
    x = torch.randn(3, 4, 9, 11)
    act, pot = field(x)
    assert act.shape == pot.shape == (3, 4, 9, 11)
    assert torch.allclose(act, torch.cat([field(x[i : i + 1])[0] for i in range(3)]), atol=1e-6)
    act1, pot1 = field.forward_one_step(x[:, 0])
    assert torch.allclose(pot1, pot[:, 0], atol=1e-6)
    _, pot_none = field.forward_one_step(None, pot1)
    assert pot_none.shape == (3, 9, 11)


def test_parameter_counts():
    # in 1 -> 8 neurons -> out 1: W_in 8, W_out 8, h 8, tau 1, kappa 1, half kernel 4, gain+offset 16.
    assert _num_params(NeuralField(1, 8, output_size=1)) == 46
    assert _num_params(NeuralField(1, 8, output_size=1, mirrored_conv_weights=False)) == 50
    assert _num_params(NeuralField(1, 8, output_size=1, conv_out_channels=3)) == 54
    simple = SimpleNeuralField(1, 1, pd_cubic)
    assert _num_params(simple) == 8 < 20
    assert _num_params(SimpleNeuralField(2, 2, pd_capacity_21)) == 19 < 20
    # 4 log-widths/amplitudes, global inhibition, resting level, input gain, tau, kappa.
    assert _num_params(NeuralField2d(21, 21)) == 9


def test_param_values_roundtrip():
    field = SimpleNeuralField(2, 3, pd_cubic)
    vec = field.param_values
    assert vec.shape == (_num_params(field),)
    field.param_values = torch.zeros_like(vec)
    assert torch.count_nonzero(field.param_values) == 0


def test_dt_scales_the_euler_step():
    torch.manual_seed(4)
    a = NeuralField(2, 4, dt=1.0)
    b = NeuralField(2, 4, dt=0.25)
    b.load_state_dict(a.state_dict())
    x, u = torch.randn(3, 2), torch.randn(3, 4)
    _, ua = a.forward_one_step(x, u)
    _, ub = b.forward_one_step(x, u)
    assert torch.allclose(ub - u, 0.25 * (ua - u), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Gradients through time
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda d: NeuralField(2, 5, output_size=1, detach_hidden=d),
        lambda d: SimpleNeuralField(2, 3, pd_cubic, detach_hidden=d),
    ],
)
def test_gradients_through_time_only_when_not_detached(make):
    torch.manual_seed(5)
    for detach in (True, False):
        model = make(detach)
        x = torch.randn(2, 6, 2, requires_grad=True)
        out, _ = model(x)
        out[:, -1].sum().backward()
        grad_first = x.grad[:, 0].abs().sum()
        assert torch.isfinite(x.grad).all()
        assert x.grad[:, -1].abs().sum() > 0  # the last step always sees its own input
        if detach:
            assert grad_first == 0, "package behaviour: no gradient through time"
        else:
            assert grad_first > 0, "back-propagation through time must reach the first input"


def test_neural_field_2d_backpropagates_through_time():
    field = NeuralField2d(8, 8, kernel_size=5, activation_gain=1.0, resting_level=0.0)
    x = torch.randn(1, 5, 8, 8, requires_grad=True)
    act, _ = field(x)
    act[:, -1].sum().backward()
    assert x.grad[:, 0].abs().sum() > 0
    assert field.log_inhibition_sigma.grad is not None and torch.isfinite(field.log_inhibition_sigma.grad)
    detached = NeuralField2d(8, 8, kernel_size=5, activation_gain=1.0, resting_level=0.0, detach_hidden=True)
    y = x.detach().clone().requires_grad_(True)
    detached(y)[0][:, -1].sum().backward()
    assert y.grad[:, 0].abs().sum() == 0


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hidden_size=1),
        dict(tau_init=0.0),
        dict(tau_init=-1.0),
        dict(kappa_init=-0.1),
        dict(conv_padding_mode="replicate"),
        dict(conv_kernel_size=0),
        dict(dt=0.0),
        dict(activation_nonlin=[torch.tanh, torch.tanh]),  # 2 functions for 4 neurons
    ],
)
def test_invalid_neural_field_arguments_raise(kwargs):
    args = dict(input_size=2, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError):
        NeuralField(**args)


def test_invalid_simple_and_2d_arguments_raise():
    with pytest.raises(ValueError):
        SimpleNeuralField(1, 2, pd_cubic, tau_init=0)
    with pytest.raises(ValueError):
        SimpleNeuralField(1, 2, pd_cubic, kappa_init=-1)
    with pytest.raises(ValueError):
        SimpleNeuralField(1, 2, pd_capacity_21, activation_nonlin=torch.relu)  # no capacity heuristic
    with pytest.raises(ValueError):
        NeuralField2d(9, 9, kernel_size=4)
    with pytest.raises(ValueError):
        NeuralField2d(9, 9, padding_mode="replicate")
    with pytest.raises(ValueError):
        NeuralField2d(9, 9, tau_init=0.0)
    with pytest.raises(ValueError):
        pd_cubic(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.tensor([0.0]), torch.tensor([0.1]), None)
    with pytest.raises(ValueError):
        pd_cubic(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.tensor([1.0]), torch.tensor([-0.1]), None)


def test_wrong_input_shapes_raise():
    field = NeuralField(3, 4)
    with pytest.raises(ValueError, match=r"\[B, T, 3\]"):
        field(torch.zeros(2, 5, 2))
    with pytest.raises(ValueError):
        field(torch.zeros(5, 3))
    with pytest.raises(ValueError):
        field(torch.zeros(2, 5, 3), torch.zeros(3, 4))
    with pytest.raises(ValueError):
        field.forward_one_step(torch.zeros(2, 4))
    field2d = NeuralField2d(5, 6, kernel_size=3)
    with pytest.raises(ValueError):
        field2d(torch.zeros(1, 2, 6, 5))
    with pytest.raises(ValueError):
        field2d.forward_one_step(None, None)


# ---------------------------------------------------------------------------------------------------------------
# Compatibility with the neuralfields package (0.5.2)
# ---------------------------------------------------------------------------------------------------------------


NEURAL_FIELD_CONFIGS = [
    dict(),
    dict(mirrored_conv_weights=False),
    dict(conv_padding_mode="zeros", conv_kernel_size=4),
    dict(conv_padding_mode="reflect"),
    dict(conv_out_channels=3, conv_pooling_norm=2),
    dict(activation_nonlin=torch.tanh, output_size=2),
    dict(init_param_kwargs={"bell": True}),
    dict(init_param_kwargs={"bell": True}, mirrored_conv_weights=False, conv_kernel_size=6),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kwargs", NEURAL_FIELD_CONFIGS)
def test_neural_field_matches_neuralfields_package(kwargs):
    nf = pytest.importorskip("neuralfields")
    torch.manual_seed(0)
    ref = nf.NeuralField(3, 7, **kwargs)
    torch.manual_seed(0)
    ours = NeuralField(3, 7, **kwargs)
    # Same seed, same parameters: the construction draws the same random numbers.
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(ref_sd) == list(our_sd)
    for key in ref_sd:
        assert torch.equal(ref_sd[key], our_sd[key]), key
    # Different parameters loaded across the two implementations.
    torch.manual_seed(123)
    other = nf.NeuralField(3, 7, **kwargs)
    ours.load_state_dict(other.state_dict())
    x = torch.randn(4, 15, 3)
    out_ref, pot_ref = other(x)
    out, pot = ours(x)
    assert torch.allclose(out, out_ref, atol=1e-6)
    assert torch.allclose(pot, pot_ref, atol=1e-6)
    o1, p1 = ours.forward_one_step(x[:, 0], pot[:, 0])
    r1, q1 = other.forward_one_step(x[:, 0], pot_ref[:, 0])
    assert torch.allclose(o1, r1, atol=1e-6) and torch.allclose(p1, q1, atol=1e-6)
    ref.load_state_dict(ours.state_dict())  # and back


@pytest.mark.parametrize(
    "fcn_name",
    [
        "pd_linear",
        "pd_cubic",
        "pd_capacity_21",
        "pd_capacity_21_abs",
        "pd_capacity_32",
        "pd_capacity_32_abs",
    ],
)
@pytest.mark.parametrize("act", [torch.sigmoid, torch.tanh])
def test_simple_neural_field_matches_neuralfields_package(fcn_name, act):
    nf = pytest.importorskip("neuralfields")
    torch.manual_seed(0)
    init = {"self_centric_init": True}
    ref = nf.SimpleNeuralField(2, 3, getattr(nf, fcn_name), activation_nonlin=act, init_param_kwargs=init)
    torch.manual_seed(0)
    ours = SimpleNeuralField(2, 3, getattr(nfm, fcn_name), activation_nonlin=act, init_param_kwargs=init)
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(ref_sd) == list(our_sd)
    for key in ref_sd:
        assert torch.equal(ref_sd[key], our_sd[key]), key
    x = torch.randn(3, 12, 2)
    out_ref, pot_ref = ref(x)
    out, pot = ours(x)
    assert torch.allclose(out, out_ref, atol=1e-6)
    assert torch.allclose(pot, pot_ref, atol=1e-6)
    p = torch.randn(5, 3)
    args = (p, torch.randn(5, 3), torch.randn(3), torch.tensor([2.0]), torch.tensor([0.1]), torch.tensor([3.0]))
    assert torch.allclose(getattr(nfm, fcn_name)(*args), getattr(nf, fcn_name)(*args))
