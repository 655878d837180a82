r"""Amari neural fields: potential-based recurrent networks with lateral excitation and inhibition.

A neural field keeps one *potential* :math:`u_i` per neuron. Neurons sit on a line (``NeuralField``,
``SimpleNeuralField``) or on a 2-D grid (``NeuralField2d``), and they excite or inhibit each other through
their activations :math:`f(u)`. The continuous-time dynamics of Amari (1977) are

.. math::
    \tau \dot u = -u + h + s_{ext} + w \ast f(u) \; [+ \kappa (h - u)^3]

with time constant :math:`\tau`, resting level :math:`h`, external stimulus :math:`s_{ext}` (an embedding of the
inputs), lateral interaction kernel :math:`w` (a convolution over the neurons) and an optional cubic decay
:math:`\kappa`. Every module integrates them with one explicit Euler step per input step,

.. math::
    u_{t+1} = \mathrm{clip}_{\pm 100}\big(u_t + \Delta t \, \dot u(u_t, s_t)\big),

and its output is a (linear) read-out of the new activations :math:`f(u_{t+1})`.

``NeuralField`` and ``SimpleNeuralField`` reproduce the public API, the parameter and buffer names (state dicts
are interchangeable) and the numerics of the ``neuralfields`` package (0.5.2) with its defaults; they add two
options the package does not have: the Euler step ``dt`` (package: 1) and ``detach_hidden`` (package: ``True``,
the incoming potentials are detached every step, so no gradient flows through time; ``False`` gives full
back-propagation through time). ``NeuralField2d`` is a 2-D field over ``[B, H, W]`` maps with a learnable
difference-of-Gaussians ("Mexican hat") kernel, whose self-sustained localised bump makes a natural attention
focus.

References:
    S.-I. Amari, "Dynamics of pattern formation in lateral-inhibition type neural fields", Biological
    Cybernetics, 1977.
    T. Luksch, M. Gienger, M. Muehlig, T. Yoshiike, "Adaptive movement sequences and predictive decisions based
    on hierarchical dynamical systems", IROS, 2012.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

ActivationFunction = Callable[[torch.Tensor], torch.Tensor]
PotentialsDynamicsType = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]],
    torch.Tensor,
]

__all__ = [
    "ActivationFunction",
    "IndependentNonlinearitiesLayer",
    "MirroredConv1d",
    "NeuralField",
    "NeuralField2d",
    "PotentialBased",
    "PotentialsDynamicsType",
    "SimpleNeuralField",
    "difference_of_gaussians_kernel",
    "init_param_",
    "pd_capacity_21",
    "pd_capacity_21_abs",
    "pd_capacity_32",
    "pd_capacity_32_abs",
    "pd_cubic",
    "pd_linear",
]

_PADDING_MODES = ("circular", "reflect", "zeros")


def _is_iterable(obj: Any) -> bool:
    try:
        iter(obj)
    except TypeError:
        return False
    return True


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_activation(activation_nonlin: Any, num_neurons: int) -> None:
    if callable(activation_nonlin) and not isinstance(activation_nonlin, nn.ModuleList):
        return
    if not (_is_iterable(activation_nonlin) and all(callable(fcn) for fcn in activation_nonlin)):
        raise ValueError(
            f"activation_nonlin must be a callable or a sequence of callables, got {type(activation_nonlin)}"
        )
    if len(activation_nonlin) != num_neurons:
        raise ValueError(
            f"expected one activation function or {num_neurons} (one per neuron), got {len(activation_nonlin)}"
        )


# --------------------------------------------------------------------------------------------------------------
# Potential dynamics functions (SimpleNeuralField). All return dp/dt, the shape of p.
# --------------------------------------------------------------------------------------------------------------


def _verify_tau(tau: torch.Tensor) -> None:
    if bool((torch.as_tensor(tau) <= 0).any()):
        raise ValueError(f"the time constant tau must be > 0, got {tau}")


def _verify_kappa(kappa: Optional[torch.Tensor]) -> None:
    if kappa is not None and bool((torch.as_tensor(kappa) < 0).any()):
        raise ValueError(f"the cubic decay kappa must be >= 0, got {kappa}")


def _verify_capacity(capacity: Optional[torch.Tensor]) -> None:
    if not isinstance(capacity, torch.Tensor):
        raise ValueError(f"capacity-based dynamics need a capacity tensor, got {type(capacity)}")


def pd_linear(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: Optional[torch.Tensor],
    capacity: Optional[torch.Tensor],
) -> torch.Tensor:
    r"""Proportional dynamics :math:`\tau \dot p = s + h - p` (use with a sigmoid activation).

    Args:
        p: potentials, ``[B, N]`` (any shape broadcastable with ``s`` and ``h``).
        s: stimuli, ``[B, N]``.
        h: resting level, ``[N]``.
        tau: time constant, ``[1]``, > 0.
        kappa: ignored.
        capacity: ignored.

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    return (s + h - p) / tau


def pd_cubic(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: Optional[torch.Tensor],
    capacity: Optional[torch.Tensor],
) -> torch.Tensor:
    r"""Proportional dynamics with cubic decay :math:`\tau \dot p = s + h - p + \kappa (h - p)^3`.

    Args: as :func:`pd_linear`; ``kappa`` (``[1]``, >= 0) is used, ``capacity`` ignored.

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_kappa(kappa)
    return (s + h - p + kappa * torch.pow(h - p, 3)) / tau


def pd_capacity_21(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: Optional[torch.Tensor],
    capacity: Optional[torch.Tensor],
) -> torch.Tensor:
    r"""Capacity dynamics, 2 stable and 1 unstable fixed point for :math:`s = 0` (use with tanh).

    :math:`\tau \dot p = s - (h - p)\,(1 - (h - p)^2 / C^2)`

    Args: as :func:`pd_linear`; ``capacity`` :math:`C` (``[1]``) is used, ``kappa`` ignored.

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_capacity(capacity)
    return (s - (h - p) * (torch.ones_like(p) - (h - p) ** 2 / capacity**2)) / tau


def pd_capacity_21_abs(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: Optional[torch.Tensor],
    capacity: Optional[torch.Tensor],
) -> torch.Tensor:
    r"""Absolute-value variant of :func:`pd_capacity_21` (lower polynomial order).

    :math:`\tau \dot p = s - (h - p)\,(1 - |h - p| / C)`

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_capacity(capacity)
    return (s - (h - p) * (torch.ones_like(p) - torch.abs(h - p) / capacity)) / tau


def pd_capacity_32(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: Optional[torch.Tensor],
    capacity: Optional[torch.Tensor],
) -> torch.Tensor:
    r"""Capacity dynamics, 3 stable and 2 unstable fixed points for :math:`s = 0` (use with tanh).

    :math:`\tau \dot p = s + (h - p)\,(1 - (h - p)^2 / C^2)\,(1 - (2 (h - p))^2 / C^2)`

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_capacity(capacity)
    return (
        s
        + (h - p)
        * (torch.ones_like(p) - (h - p) ** 2 / capacity**2)
        * (torch.ones_like(p) - ((2 * (h - p)) ** 2 / capacity**2))
    ) / tau


def pd_capacity_32_abs(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: Optional[torch.Tensor],
    capacity: Optional[torch.Tensor],
) -> torch.Tensor:
    r"""Absolute-value variant of :func:`pd_capacity_32`.

    :math:`\tau \dot p = s + (h - p)\,(1 - |h - p| / C)\,(1 - 2 |h - p| / C)`

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_capacity(capacity)
    return (
        s
        + (h - p)
        * (torch.ones_like(p) - torch.abs(h - p) / capacity)
        * (torch.ones_like(p) - 2 * torch.abs(h - p) / capacity)
    ) / tau


_CAPACITY_DYNAMICS = (pd_capacity_21, pd_capacity_21_abs, pd_capacity_32, pd_capacity_32_abs)


# --------------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------------


class IndependentNonlinearitiesLayer(nn.Module):
    r"""Per-neuron affine map followed by a nonlinearity: :math:`y = f(w \odot (x + b))`.

    ``weight`` and ``bias`` (``[N]``) are parameters when enabled, else constant buffers (ones / zeros), as in
    the ``neuralfields`` package. ``nonlin`` is one callable for all neurons or one per neuron.
    """

    def __init__(
        self,
        in_features: int,
        nonlin: Union[ActivationFunction, Sequence[ActivationFunction]],
        bias: bool,
        weight: bool = True,
    ):
        _check_positive_int("in_features", in_features)
        _check_activation(nonlin, in_features)
        super().__init__()
        self.nonlin = copy.deepcopy(nonlin) if _is_iterable(nonlin) else nonlin
        if not callable(self.nonlin) or isinstance(self.nonlin, nn.ModuleList):
            for idx, fcn in enumerate(self.nonlin):
                if isinstance(fcn, nn.Module):
                    self.add_module(f"nonlin_{idx}", fcn)
        dtype = torch.get_default_dtype()
        if weight:
            self.weight = nn.Parameter(torch.empty(in_features, dtype=dtype))
        else:
            self.register_buffer("weight", torch.ones(in_features, dtype=dtype))
        if bias:
            self.bias = nn.Parameter(torch.empty(in_features, dtype=dtype))
        else:
            self.register_buffer("bias", torch.zeros(in_features, dtype=dtype))
        init_param_(self)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.numel()}"

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """Apply the per-neuron scaling, bias and nonlinearity.

        Args:
            inp: ``[..., N]``.

        Returns:
            ``[..., N]``.
        """
        if inp.shape[-1] != self.weight.numel():
            raise ValueError(f"expected inputs [..., {self.weight.numel()}], got {tuple(inp.shape)}")
        tmp = self.weight * (inp + self.bias)
        if not callable(self.nonlin) or isinstance(self.nonlin, nn.ModuleList):
            return torch.stack([fcn(tmp[..., idx]) for idx, fcn in enumerate(self.nonlin)], dim=-1)
        return self.nonlin(tmp)


class MirroredConv1d(nn.Module):
    """1-D convolution with a kernel that is symmetric about its centre: only ``ceil(k / 2)`` weights per
    (out, in) channel pair are stored, the rest is their mirror image. ``same`` padding with the given mode
    (``"circular"``, ``"reflect"`` or ``"zeros"``), so the output length equals the input length.

    ``weight`` has shape ``[out_channels, in_channels, ceil(kernel_size / 2)]``, the package's layout.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding_mode: str = "zeros",
        bias: bool = False,
    ):
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("out_channels", out_channels)
        _check_positive_int("kernel_size", kernel_size)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding_mode = padding_mode
        self.orig_weight_shape = torch.Size((out_channels, in_channels, kernel_size))
        self.half_kernel_size = math.ceil(kernel_size / 2)
        # 'same' padding as torch computes it: the extra element of an even kernel goes to the right.
        self.pad_left = (kernel_size - 1) // 2
        self.pad_right = kernel_size - 1 - self.pad_left
        # The package first draws (and discards) a full-size kernel; drawing as many numbers keeps seeded
        # constructions identical to the package's.
        torch.empty(out_channels, in_channels, kernel_size).uniform_()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.half_kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default convolution initialisation (Kaiming-uniform over the stored half-kernel)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_channels * self.half_kernel_size
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"padding_mode={self.padding_mode!r}, bias={self.bias is not None}"
        )

    def full_weight(self) -> torch.Tensor:
        """The symmetric kernel, ``[out_channels, in_channels, kernel_size]``."""
        return torch.cat((self.weight, self.weight[..., : self.kernel_size // 2].flip(-1)), dim=-1)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """Convolve with the mirrored kernel.

        Args:
            inp: ``[B, in_channels, L]``.

        Returns:
            ``[B, out_channels, L]``.
        """
        if inp.dim() != 3 or inp.shape[1] != self.in_channels:
            raise ValueError(f"expected inputs [B, {self.in_channels}, L], got {tuple(inp.shape)}")
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        padded = F.pad(inp, (self.pad_left, self.pad_right), mode=mode)
        return F.conv1d(padded, self.full_weight(), self.bias)


@torch.no_grad()
def _bell_shaped_weights_(weight: torch.Tensor, ls: torch.Tensor, ks: float) -> None:
    out_ch, in_ch = weight.shape[0], weight.shape[1]
    amp = torch.rand(out_ch * in_ch)
    bell = 2 * (torch.exp(-torch.pow(ls, 2) / (ks / 2) ** 2) - 0.5)  # [K]
    weight.copy_(amp.reshape(out_ch, in_ch, 1) * bell.to(weight))


@torch.no_grad()
def init_param_(m: nn.Module, **kwargs: Any) -> None:
    """Initialise a layer's parameters the way the ``neuralfields`` package does.

    Keyword arguments: ``bell=True`` gives convolutions a centred bell-shaped ("Mexican-hat"-like, amplitude
    drawn uniformly) kernel; ``self_centric_init=True`` makes a square ``nn.Linear`` excite itself (+1 on the
    diagonal) and inhibit the others (-0.5).
    """
    if isinstance(m, nn.Conv1d):
        if kwargs.get("bell", False):
            size = m.weight.shape[2]
            if size % 2 == 0:
                ks_half = size // 2
                ls_half = torch.linspace(ks_half, 0, ks_half)
                ls = torch.cat([ls_half, torch.flip(ls_half, (0,))])
            else:
                ks_half = math.ceil(size / 2)
                ls_half = torch.linspace(ks_half, 0, ks_half)
                ls = torch.cat([ls_half, torch.flip(ls_half[:-1], (0,))])
            _bell_shaped_weights_(m.weight, ls, ks_half)
        else:
            m.reset_parameters()
    elif isinstance(m, MirroredConv1d):
        if kwargs.get("bell", False):
            ks = m.weight.shape[2]
            _bell_shaped_weights_(m.weight, torch.linspace(ks, 0, ks), ks)
        else:
            m.reset_parameters()
    elif isinstance(m, IndependentNonlinearitiesLayer):
        for tensor in (m.weight, m.bias):
            if isinstance(tensor, nn.Parameter):
                nn.init.normal_(tensor, std=1.0 / math.sqrt(tensor.nelement()))
    elif isinstance(m, nn.Linear):
        if kwargs.get("self_centric_init", False):
            m.weight.fill_(-0.5)
            m.weight.fill_diagonal_(1.0)


# --------------------------------------------------------------------------------------------------------------
# 1-D potential-based networks
# --------------------------------------------------------------------------------------------------------------


class PotentialBased(nn.Module, ABC):
    r"""Common parts of the 1-D potential-based networks: input/output embeddings, the resting level :math:`h`,
    the time constant :math:`\tau = e^{\tau_{opt}} + 10^{-5}`, the cubic decay :math:`\kappa = e^{\kappa_{opt}}`,
    the initial potentials, and the loop over time.

    Subclasses implement :meth:`potentials_dot` (:math:`\dot u`) and :meth:`_internal_stimuli`.
    """

    _tau_min: float = 1e-5
    _potentials_max: float = 100.0

    @staticmethod
    def transform_to_opt_space(x: torch.Tensor) -> torch.Tensor:
        """Map a positive parameter to the unconstrained space it is optimised in (log)."""
        return torch.log(x)

    @staticmethod
    def transform_to_img_space(x: torch.Tensor) -> torch.Tensor:
        """Map an optimised parameter back to its positive value (exp)."""
        return torch.exp(x)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation_nonlin: Union[ActivationFunction, Sequence[ActivationFunction]],
        tau_init: Union[float, int],
        tau_learnable: bool,
        kappa_init: Union[float, int],
        kappa_learnable: bool,
        potentials_init: Optional[torch.Tensor] = None,
        output_size: Optional[int] = None,
        input_embedding: Optional[nn.Module] = None,
        output_embedding: Optional[nn.Module] = None,
        dt: float = 1.0,
        detach_hidden: bool = True,
    ):
        _check_positive_int("input_size", input_size)
        _check_positive_int("hidden_size", hidden_size)
        if output_size is not None:
            _check_positive_int("output_size", output_size)
        if not tau_init > self._tau_min:
            raise ValueError(f"tau_init must be > {self._tau_min}, got {tau_init}")
        if not kappa_init >= 0:
            raise ValueError(f"kappa_init must be >= 0, got {kappa_init}")
        if not (isinstance(dt, (int, float)) and dt > 0):
            raise ValueError(f"dt must be a positive number, got {dt!r}")
        _check_activation(activation_nonlin, hidden_size)
        super().__init__()

        self.num_recurrent_layers = 1
        self.input_size = input_size
        self._hidden_size = hidden_size
        self.output_size = hidden_size if output_size is None else output_size
        self.dt = float(dt)
        self.detach_hidden = bool(detach_hidden)
        self.input_embedding = (
            input_embedding if input_embedding is not None else nn.Linear(input_size, hidden_size, bias=False)
        )
        self.output_embedding = (
            output_embedding
            if output_embedding is not None
            else nn.Linear(hidden_size, self.output_size, bias=False)
        )
        # Last stimuli, kept for recording rollouts (not part of the state dict, as in the package).
        self.register_buffer("_stimuli_external", torch.zeros(hidden_size), persistent=False)
        self.register_buffer("_stimuli_internal", torch.zeros(hidden_size), persistent=False)

        if potentials_init is not None:
            if potentials_init.numel() != hidden_size:
                raise ValueError(
                    f"potentials_init must have {hidden_size} elements, got shape {tuple(potentials_init.shape)}"
                )
            potentials_init = potentials_init.detach().clone()
        elif activation_nonlin is torch.sigmoid:
            # sigmoid(-7) ~ 1e-3: the neurons start (almost) silent.
            potentials_init = -7 * torch.ones(1, hidden_size)
        else:
            potentials_init = torch.zeros(1, hidden_size)
        self.register_buffer("_potentials_init", potentials_init, persistent=False)

        self.resting_level = nn.Parameter(torch.randn(hidden_size))
        self.tau_learnable = tau_learnable
        tau_opt = self.transform_to_opt_space(
            torch.as_tensor(tau_init - self._tau_min, dtype=torch.get_default_dtype())
        )
        self._tau_opt = nn.Parameter(tau_opt.reshape(-1), requires_grad=tau_learnable)
        self.kappa_learnable = kappa_learnable
        kappa_opt = self.transform_to_opt_space(torch.as_tensor(kappa_init, dtype=torch.get_default_dtype()))
        self._kappa_opt = nn.Parameter(kappa_opt.reshape(-1), requires_grad=kappa_learnable)

    def extra_repr(self) -> str:
        return (
            f"tau_learnable={self.tau_learnable}, kappa_learnable={self.kappa_learnable}, dt={self.dt}, "
            f"detach_hidden={self.detach_hidden}"
        )

    @property
    def param_values(self) -> torch.Tensor:
        """All parameters as one flat vector (a copy)."""
        return parameters_to_vector(self.parameters())

    @param_values.setter
    def param_values(self, param: torch.Tensor) -> None:
        vector_to_parameters(param, self.parameters())

    @property
    def hidden_size(self) -> int:
        """Number of neurons in the field."""
        return self.num_recurrent_layers * self._hidden_size

    @property
    def stimuli_external(self) -> torch.Tensor:
        """External stimuli of the last step, ``[B, H]``."""
        return self._stimuli_external

    @property
    def stimuli_internal(self) -> torch.Tensor:
        """Internal (lateral) stimuli of the last step, ``[B, H]``."""
        return self._stimuli_internal

    @property
    def tau(self) -> torch.Tensor:
        r"""Time constant :math:`\tau`, ``[1]``."""
        return self.transform_to_img_space(self._tau_opt) + self._tau_min

    @property
    def kappa(self) -> torch.Tensor:
        r"""Cubic decay :math:`\kappa`, ``[1]``."""
        return self.transform_to_img_space(self._kappa_opt)

    @abstractmethod
    def potentials_dot(self, potentials: torch.Tensor, stimuli: torch.Tensor) -> torch.Tensor:
        r"""Time derivative :math:`\dot u` of the potentials ``[B, H]`` given the summed stimuli ``[B, H]``."""

    @abstractmethod
    def _internal_stimuli(self, activations_prev: torch.Tensor) -> torch.Tensor:
        """Lateral stimuli ``[B, H]`` from the previous activations ``[B, H]``."""

    def init_hidden(
        self, batch_size: Optional[int] = None, potentials_init: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Initial potentials.

        Args:
            batch_size: ``None`` for one unbatched state.
            potentials_init: returned as given when not ``None`` (package behaviour).

        Returns:
            ``[H]`` if ``batch_size`` is ``None``, else ``[batch_size, H]``.
        """
        if potentials_init is not None:
            return potentials_init
        if batch_size is None:
            return self._potentials_init.view(-1)
        return self._potentials_init.view(1, -1).repeat(batch_size, 1)

    def _check_hidden(self, hidden: torch.Tensor, batch_size: int) -> torch.Tensor:
        hs = self.hidden_size
        if hidden.dim() == 1 and hidden.shape[0] == hs:
            return hidden.unsqueeze(0).expand(batch_size, hs)
        if hidden.dim() == 2 and hidden.shape[1] == hs and hidden.shape[0] in (1, batch_size):
            return hidden.expand(batch_size, hs)
        raise ValueError(f"expected hidden [{batch_size}, {hs}] or [{hs}], got {tuple(hidden.shape)}")

    def forward_one_step(
        self, inputs: torch.Tensor, hidden: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""One Euler step of the field.

        :math:`a_t = f(u_t)`, :math:`s = W_{in} x_t + s_{int}(a_t)`,
        :math:`u_{t+1} = \mathrm{clip}(u_t + \Delta t\,\dot u(u_t, s))`, output :math:`W_{out} f(u_{t+1})`.

        Args:
            inputs: ``[B, input_size]`` or ``[input_size]``.
            hidden: potentials ``[B, H]`` (or ``[H]``); ``None`` starts from the initial potentials. Detached
                first when ``detach_hidden`` is set (the package's behaviour).

        Returns:
            outputs ``[B, output_size]`` and the new potentials ``[B, H]``.
        """
        if inputs.dim() == 1:
            inputs = inputs.unsqueeze(0)
        if inputs.dim() != 2 or inputs.shape[1] != self.input_size:
            raise ValueError(f"expected inputs [B, {self.input_size}] or [{self.input_size}], got {tuple(inputs.shape)}")
        batch_size = inputs.shape[0]
        if hidden is None:
            potentials = self.init_hidden(batch_size)
        else:
            potentials = self._check_hidden(hidden, batch_size)
            if self.detach_hidden:
                potentials = potentials.detach()
        return self._step(inputs, potentials)

    def _step(self, inputs: torch.Tensor, potentials: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        activations_prev = self.potentials_to_activations(potentials)  # [B, H]
        self._stimuli_external = self.input_embedding(inputs)  # [B, H]
        self._stimuli_internal = self._internal_stimuli(activations_prev)  # [B, H]
        if self._stimuli_external.shape != self._stimuli_internal.shape:
            raise ValueError(
                f"the input embedding must give [B, {self.hidden_size}] like the internal stimuli "
                f"{tuple(self._stimuli_internal.shape)}, got {tuple(self._stimuli_external.shape)}"
            )
        stimuli = self._stimuli_external + self._stimuli_internal
        # dt = 1 (the package) is exact: x * 1.0 == x in floating point.
        potentials = potentials + self.dt * self.potentials_dot(potentials, stimuli)
        potentials = potentials.clamp(min=-self._potentials_max, max=self._potentials_max)
        outputs = self.output_embedding(self.potentials_to_activations(potentials))
        return outputs, potentials

    def forward(self, inputs: torch.Tensor, hidden: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the field over a sequence.

        Args:
            inputs: ``[B, T, input_size]``.
            hidden: initial potentials ``[B, H]`` (or ``[H]``); ``None`` uses the module's initial potentials.

        Returns:
            outputs ``[B, T, output_size]`` and the potentials after every step ``[B, T, H]``.
        """
        if inputs.dim() != 3 or inputs.shape[2] != self.input_size:
            raise ValueError(f"expected inputs [B, T, {self.input_size}], got {tuple(inputs.shape)}")
        batch_size = inputs.shape[0]
        potentials = self.init_hidden(batch_size) if hidden is None else self._check_hidden(hidden, batch_size)
        outputs_all, potentials_all = [], []
        for inp in inputs.unbind(dim=1):
            # The package detaches every incoming state, the initial one included.
            if self.detach_hidden:
                potentials = potentials.detach()
            outputs, potentials = self._step(inp, potentials)
            outputs_all.append(outputs)
            potentials_all.append(potentials)
        return torch.stack(outputs_all, dim=1), torch.stack(potentials_all, dim=1)


class NeuralField(PotentialBased):
    r"""Amari's neural field with lateral interactions by a 1-D convolution over the neurons.

    .. math::
        \tau \dot u = s_{ext} + s_{int} + h - u + \kappa (h - u)^3, \quad
        s_{ext} = W_{in} x, \quad s_{int} = \mathrm{pool}_c\big(w_c \ast f(u)\big), \quad
        f(u) = \sigma\big(\beta \odot (u + b)\big)

    with learnable resting level :math:`h` ``[H]``, time constant :math:`\tau`, cubic decay :math:`\kappa`,
    per-neuron gain :math:`\beta` and offset :math:`b`, kernels :math:`w_c` (symmetric when
    ``mirrored_conv_weights``; ``conv_out_channels`` of them, merged by an :math:`L_p` pool over channels with
    :math:`p` = ``conv_pooling_norm``). Output :math:`y = W_{out} f(u_{t+1})`.

    Args (package names and defaults):
        input_size, hidden_size (>= 2), output_size (default ``hidden_size``), input_embedding,
        output_embedding (default bias-free linear layers), activation_nonlin, mirrored_conv_weights,
        conv_kernel_size (default ``hidden_size``), conv_padding_mode (``"circular"``, ``"reflect"``,
        ``"zeros"``), conv_out_channels, conv_pooling_norm, tau_init (> 0), tau_learnable, kappa_init (>= 0),
        kappa_learnable, potentials_init (``[H]``), init_param_kwargs (e.g. ``{"bell": True}``).
        Beyond the package: ``dt`` (Euler step, default 1) and ``detach_hidden`` (default ``True`` = the
        package; ``False`` back-propagates through time).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: Optional[int] = None,
        input_embedding: Optional[nn.Module] = None,
        output_embedding: Optional[nn.Module] = None,
        activation_nonlin: Union[ActivationFunction, Sequence[ActivationFunction]] = torch.sigmoid,
        mirrored_conv_weights: bool = True,
        conv_kernel_size: Optional[int] = None,
        conv_padding_mode: str = "circular",
        conv_out_channels: int = 1,
        conv_pooling_norm: int = 1,
        tau_init: Union[float, int] = 10,
        tau_learnable: bool = True,
        kappa_init: Union[float, int] = 1e-5,
        kappa_learnable: bool = True,
        potentials_init: Optional[torch.Tensor] = None,
        init_param_kwargs: Optional[dict] = None,
        dt: float = 1.0,
        detach_hidden: bool = True,
    ):
        _check_positive_int("hidden_size", hidden_size, minimum=2)
        if conv_kernel_size is None:
            conv_kernel_size = hidden_size
        _check_positive_int("conv_kernel_size", conv_kernel_size)
        if conv_padding_mode not in _PADDING_MODES:
            raise ValueError(f"conv_padding_mode must be one of {_PADDING_MODES}, got {conv_padding_mode!r}")
        if conv_padding_mode != "zeros" and (conv_kernel_size - 1) - (conv_kernel_size - 1) // 2 > (
            hidden_size - (conv_padding_mode == "reflect")
        ):
            raise ValueError(
                f"conv_kernel_size {conv_kernel_size} is too large for {conv_padding_mode!r} padding of "
                f"{hidden_size} neurons"
            )
        _check_positive_int("conv_out_channels", conv_out_channels)
        if not conv_pooling_norm > 0:
            raise ValueError(f"conv_pooling_norm must be > 0, got {conv_pooling_norm}")
        init_param_kwargs = init_param_kwargs if init_param_kwargs is not None else {}
        super().__init__(
            input_size=input_size,
            hidden_size=hidden_size,
            output_size=output_size,
            activation_nonlin=activation_nonlin,
            tau_init=tau_init,
            tau_learnable=tau_learnable,
            kappa_init=kappa_init,
            kappa_learnable=kappa_learnable,
            potentials_init=potentials_init,
            input_embedding=input_embedding,
            output_embedding=output_embedding,
            dt=dt,
            detach_hidden=detach_hidden,
        )
        self.mirrored_conv_weights = mirrored_conv_weights
        if mirrored_conv_weights:
            self.conv_layer: nn.Module = MirroredConv1d(
                1, conv_out_channels, conv_kernel_size, padding_mode=conv_padding_mode, bias=False
            )
        else:
            self.conv_layer = nn.Conv1d(
                1, conv_out_channels, conv_kernel_size, padding="same", padding_mode=conv_padding_mode, bias=False
            )
        init_param_(self.conv_layer, **init_param_kwargs)
        # Pools over the channels (not over the neurons): with one channel it is skipped.
        self.conv_pooling_layer = nn.LPPool1d(conv_pooling_norm, kernel_size=conv_out_channels, stride=conv_out_channels)
        self.potentials_to_activations = IndependentNonlinearitiesLayer(
            hidden_size, activation_nonlin, bias=True, weight=True
        )

    def potentials_dot(self, potentials: torch.Tensor, stimuli: torch.Tensor) -> torch.Tensor:
        r""":math:`\dot u = (s + h - u + \kappa (h - u)^3) / \tau`; potentials and stimuli ``[B, H]``."""
        rhs = stimuli + self.resting_level - potentials + self.kappa * torch.pow(self.resting_level - potentials, 3)
        return rhs / self.tau

    def _internal_stimuli(self, activations_prev: torch.Tensor) -> torch.Tensor:
        conv = self.conv_layer(activations_prev.unsqueeze(1))  # [B, C, H]
        if conv.shape[1] > 1:
            return self.conv_pooling_layer(conv.transpose(1, 2)).squeeze(2)  # [B, H]
        return conv.squeeze(1)


class SimpleNeuralField(PotentialBased):
    r"""Simplified neural field (Luksch et al., 2012): lateral interactions by a dense ``H x H`` matrix instead
    of a convolution, and a choice of potential dynamics.

    .. math::
        \tau \dot u = g(u, s, h), \quad s = W_{in} x + W_{rec} f(u), \quad f(u) = \sigma(\beta \odot u)

    where ``potentials_dyn_fcn`` is :math:`g` (one of the ``pd_*`` functions or any function with their
    signature). ``output_size`` is the number of neurons ``H``; with its default embeddings and one input and one
    output the model has 8 parameters. A capacity :math:`C = e^{C_{opt}}` is created for every dynamics function
    (initialised for the activation when a capacity dynamics is used: 7 for sigmoid, 3.8 for tanh).
    ``dt`` and ``detach_hidden`` as in :class:`NeuralField`.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        potentials_dyn_fcn: PotentialsDynamicsType,
        input_embedding: Optional[nn.Module] = None,
        output_embedding: Optional[nn.Module] = None,
        activation_nonlin: Union[ActivationFunction, Sequence[ActivationFunction]] = torch.sigmoid,
        tau_init: Union[float, int] = 10.0,
        tau_learnable: bool = True,
        kappa_init: Union[float, int] = 1e-3,
        kappa_learnable: bool = True,
        capacity_learnable: bool = True,
        potentials_init: Optional[torch.Tensor] = None,
        init_param_kwargs: Optional[dict] = None,
        dt: float = 1.0,
        detach_hidden: bool = True,
    ):
        if not callable(potentials_dyn_fcn):
            raise ValueError(f"potentials_dyn_fcn must be callable, got {type(potentials_dyn_fcn)}")
        init_param_kwargs = init_param_kwargs if init_param_kwargs is not None else {}
        super().__init__(
            input_size=input_size,
            hidden_size=output_size,
            output_size=output_size,
            activation_nonlin=activation_nonlin,
            tau_init=tau_init,
            tau_learnable=tau_learnable,
            kappa_init=kappa_init,
            kappa_learnable=kappa_learnable,
            potentials_init=potentials_init,
            input_embedding=input_embedding,
            output_embedding=output_embedding,
            dt=dt,
            detach_hidden=detach_hidden,
        )
        self.prev_activations_embedding = nn.Linear(self._hidden_size, self._hidden_size, bias=False)
        init_param_(self.prev_activations_embedding, **init_param_kwargs)
        self.potentials_to_activations = IndependentNonlinearitiesLayer(
            self._hidden_size, nonlin=activation_nonlin, bias=False, weight=True
        )
        self.potentials_dyn_fcn = potentials_dyn_fcn
        self.capacity_learnable = capacity_learnable
        if potentials_dyn_fcn in _CAPACITY_DYNAMICS:
            nonlin = activation_nonlin[0] if _is_iterable(activation_nonlin) else activation_nonlin
            capacity_opt_init = self._init_capacity_heuristic(nonlin)
        else:
            # Created anyway so that custom dynamics functions can use it (package behaviour: a 0-dim tensor).
            capacity_opt_init = torch.tensor(1.0, dtype=torch.get_default_dtype())
        self._capacity_opt = nn.Parameter(capacity_opt_init, requires_grad=capacity_learnable)

    def _init_capacity_heuristic(self, activation_nonlin: ActivationFunction) -> torch.Tensor:
        if activation_nonlin is torch.sigmoid:
            return self.transform_to_opt_space(torch.tensor([7.0], dtype=torch.get_default_dtype()))
        if activation_nonlin is torch.tanh:
            return self.transform_to_opt_space(torch.tensor([3.8], dtype=torch.get_default_dtype()))
        raise ValueError(
            "capacity-based potential dynamics need activation_nonlin torch.sigmoid or torch.tanh (to initialise "
            f"the capacity), got {activation_nonlin}"
        )

    def extra_repr(self) -> str:
        return super().extra_repr() + f", capacity_learnable={self.capacity_learnable}"

    @property
    def capacity(self) -> torch.Tensor:
        """Capacity :math:`C` of the capacity-based dynamics."""
        return self.transform_to_img_space(self._capacity_opt)

    def potentials_dot(self, potentials: torch.Tensor, stimuli: torch.Tensor) -> torch.Tensor:
        r""":math:`\dot u = g(u, s, h, \tau, \kappa, C)`; potentials and stimuli ``[B, H]``."""
        return self.potentials_dyn_fcn(potentials, stimuli, self.resting_level, self.tau, self.kappa, self.capacity)

    def _internal_stimuli(self, activations_prev: torch.Tensor) -> torch.Tensor:
        return self.prev_activations_embedding(activations_prev)


# --------------------------------------------------------------------------------------------------------------
# 2-D field
# --------------------------------------------------------------------------------------------------------------


def difference_of_gaussians_kernel(
    kernel_size: int,
    excitation_amplitude: torch.Tensor,
    excitation_sigma: torch.Tensor,
    inhibition_amplitude: torch.Tensor,
    inhibition_sigma: torch.Tensor,
) -> torch.Tensor:
    r"""Mexican-hat kernel :math:`w(r) = A_e e^{-r^2 / 2\sigma_e^2} - A_i e^{-r^2 / 2\sigma_i^2}`.

    Args:
        kernel_size: odd side length ``K``.
        excitation_amplitude, excitation_sigma, inhibition_amplitude, inhibition_sigma: 0-dim tensors (or floats).

    Returns:
        ``[K, K]`` kernel, differentiable w.r.t. the four tensors.
    """
    _check_positive_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    a_e, s_e, a_i, s_i = (
        torch.as_tensor(v) for v in (excitation_amplitude, excitation_sigma, inhibition_amplitude, inhibition_sigma)
    )
    offsets = torch.arange(kernel_size, device=a_e.device, dtype=a_e.dtype) - kernel_size // 2  # [K]
    r2 = offsets[:, None] ** 2 + offsets[None, :] ** 2  # [K, K]
    return a_e * torch.exp(-r2 / (2 * s_e**2)) - a_i * torch.exp(-r2 / (2 * s_i**2))


class NeuralField2d(nn.Module):
    r"""Amari neural field over a 2-D sheet of neurons ``[B, H, W]`` with Mexican-hat lateral interactions.

    .. math::
        \tau \dot u = -u + h + g\,s + w \ast f(u) - c \textstyle\sum f(u) + \kappa (h - u)^3,
        \qquad f(u) = \sigma(\beta u)

    :math:`w` is a learnable difference of Gaussians (:func:`difference_of_gaussians_kernel`; widths stored as
    logs), applied by ``conv2d`` with ``padding_mode`` (``"circular"``, ``"reflect"`` or
    ``"zeros"``); :math:`c \ge 0` is an optional global inhibition, :math:`g` the input gain, :math:`h` a scalar
    resting level (below the threshold 0 of :math:`f`, so the field is silent without input), :math:`\beta` the
    fixed activation gain. Local excitation with broader inhibition lets a localised bump of activity sustain
    itself after its input is gone, stay where it was put and keep its size: a working-memory attention focus.

    Args:
        height, width: field size.
        kernel_size: odd; default covers :math:`3\sigma_i` and is capped to the field.
        excitation_amplitude, excitation_sigma, inhibition_amplitude, inhibition_sigma: kernel initialisation.
        global_inhibition: :math:`c`, >= 0.
        resting_level: :math:`h`.
        input_gain: :math:`g`.
        activation_gain: :math:`\beta` > 0.
        tau_init: > 0; kappa_init: >= 0 (0 disables the cubic term).
        kernel_learnable, tau_learnable, kappa_learnable, resting_level_learnable, input_gain_learnable.
        dt: Euler step > 0.
        detach_hidden: cut the gradient between steps (default ``False``: back-propagation through time).
    """

    def __init__(
        self,
        height: int,
        width: int,
        kernel_size: Optional[int] = None,
        excitation_amplitude: float = 3.0,
        excitation_sigma: float = 1.5,
        inhibition_amplitude: float = 1.5,
        inhibition_sigma: float = 3.5,
        global_inhibition: float = 0.0,
        resting_level: float = -1.0,
        input_gain: float = 1.0,
        activation_gain: float = 4.0,
        tau_init: float = 5.0,
        kappa_init: float = 0.0,
        padding_mode: str = "circular",
        kernel_learnable: bool = True,
        tau_learnable: bool = True,
        kappa_learnable: bool = False,
        resting_level_learnable: bool = True,
        input_gain_learnable: bool = True,
        dt: float = 1.0,
        detach_hidden: bool = False,
    ):
        _check_positive_int("height", height)
        _check_positive_int("width", width)
        for name, value in (
            ("excitation_sigma", excitation_sigma),
            ("inhibition_sigma", inhibition_sigma),
            ("activation_gain", activation_gain),
            ("tau_init", tau_init),
            ("dt", dt),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if not kappa_init >= 0:
            raise ValueError(f"kappa_init must be >= 0, got {kappa_init}")
        if not (excitation_amplitude >= 0 and inhibition_amplitude >= 0):
            raise ValueError(
                f"the kernel amplitudes must be >= 0, got {excitation_amplitude} and {inhibition_amplitude}"
            )
        if not global_inhibition >= 0:
            raise ValueError(f"global_inhibition must be >= 0, got {global_inhibition}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        largest_odd = min(height, width) if min(height, width) % 2 == 1 else min(height, width) - 1
        if kernel_size is None:
            kernel_size = min(2 * math.ceil(3 * max(excitation_sigma, inhibition_sigma)) + 1, largest_odd)
        _check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        pad = kernel_size // 2
        if padding_mode == "circular" and pad > min(height, width):
            raise ValueError(f"kernel_size {kernel_size} wraps more than once around a {height}x{width} field")
        if padding_mode == "reflect" and pad >= min(height, width):
            raise ValueError(f"kernel_size {kernel_size} is too large for reflect padding of {height}x{width}")
        super().__init__()
        self.height, self.width = height, width
        self.kernel_size = kernel_size
        self.padding_mode = padding_mode
        self.activation_gain = float(activation_gain)
        self.dt = float(dt)
        self.detach_hidden = bool(detach_hidden)
        dtype = torch.get_default_dtype()

        def param(value: float, learnable: bool) -> nn.Parameter:
            return nn.Parameter(torch.tensor(float(value), dtype=dtype), requires_grad=learnable)

        self.excitation_amplitude = param(excitation_amplitude, kernel_learnable)
        self.log_excitation_sigma = param(math.log(excitation_sigma), kernel_learnable)
        self.inhibition_amplitude = param(inhibition_amplitude, kernel_learnable)
        self.log_inhibition_sigma = param(math.log(inhibition_sigma), kernel_learnable)
        self.global_inhibition = param(global_inhibition, kernel_learnable)
        self.resting_level = param(resting_level, resting_level_learnable)
        self.input_gain = param(input_gain, input_gain_learnable)
        self._tau_opt = param(math.log(tau_init), tau_learnable)
        self._kappa_opt = param(math.log(kappa_init) if kappa_init > 0 else -math.inf, kappa_learnable)

    def extra_repr(self) -> str:
        return (
            f"{self.height}x{self.width}, kernel_size={self.kernel_size}, padding_mode={self.padding_mode!r}, "
            f"dt={self.dt}, detach_hidden={self.detach_hidden}"
        )

    @property
    def tau(self) -> torch.Tensor:
        r"""Time constant :math:`\tau` (0-dim)."""
        return torch.exp(self._tau_opt)

    @property
    def kappa(self) -> torch.Tensor:
        r"""Cubic decay :math:`\kappa` (0-dim)."""
        return torch.exp(self._kappa_opt)

    def kernel(self) -> torch.Tensor:
        """The current lateral-interaction kernel, ``[K, K]``."""
        return difference_of_gaussians_kernel(
            self.kernel_size,
            self.excitation_amplitude,
            self.log_excitation_sigma.exp(),
            self.inhibition_amplitude,
            self.log_inhibition_sigma.exp(),
        )

    def activation(self, potentials: torch.Tensor) -> torch.Tensor:
        r""":math:`f(u) = \sigma(\beta u)`, any shape."""
        return torch.sigmoid(self.activation_gain * potentials)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Resting potentials, ``[batch_size, H, W]``."""
        return self.resting_level.detach().expand(batch_size, self.height, self.width).clone()

    def lateral_input(self, activations: torch.Tensor, kernel: Optional[torch.Tensor] = None) -> torch.Tensor:
        r""":math:`w \ast f(u) - c \sum f(u)` for activations ``[B, H, W]``; returns ``[B, H, W]``."""
        kernel = self.kernel() if kernel is None else kernel
        pad = self.kernel_size // 2
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        padded = F.pad(activations.unsqueeze(1), (pad, pad, pad, pad), mode=mode)  # [B, 1, H+2p, W+2p]
        lateral = F.conv2d(padded, kernel[None, None]).squeeze(1)  # [B, H, W]
        return lateral - self.global_inhibition * activations.sum(dim=(1, 2), keepdim=True)

    def _check_map(self, name: str, x: torch.Tensor, batch_size: Optional[int] = None) -> None:
        ok = x.dim() == 3 and x.shape[1:] == (self.height, self.width)
        if not ok or (batch_size is not None and x.shape[0] != batch_size):
            b = "B" if batch_size is None else batch_size
            raise ValueError(f"expected {name} [{b}, {self.height}, {self.width}], got {tuple(x.shape)}")

    def _step(self, inputs: torch.Tensor, potentials: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        h = self.resting_level
        rhs = -potentials + h + self.input_gain * inputs + self.lateral_input(self.activation(potentials), kernel)
        rhs = rhs + self.kappa * torch.pow(h - potentials, 3)
        potentials = potentials + self.dt * rhs / self.tau
        return potentials.clamp(min=-PotentialBased._potentials_max, max=PotentialBased._potentials_max)

    def forward_one_step(
        self, inputs: Optional[torch.Tensor], hidden: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""One Euler step :math:`u_{t+1} = u_t + \Delta t\,\dot u`.

        Args:
            inputs: stimulus map ``[B, H, W]``, or ``None`` for no input (then ``hidden`` is required).
            hidden: potentials ``[B, H, W]``; ``None`` starts at rest.

        Returns:
            activations :math:`f(u_{t+1})` ``[B, H, W]`` and potentials :math:`u_{t+1}` ``[B, H, W]``.
        """
        if inputs is None and hidden is None:
            raise ValueError("forward_one_step needs inputs [B, H, W] or hidden [B, H, W], got neither")
        if inputs is not None:
            self._check_map("inputs", inputs)
        batch_size = inputs.shape[0] if inputs is not None else hidden.shape[0]
        if hidden is None:
            hidden = self.init_hidden(batch_size).to(inputs)
        self._check_map("hidden", hidden, batch_size)
        if self.detach_hidden:
            hidden = hidden.detach()
        if inputs is None:
            inputs = torch.zeros_like(hidden)
        potentials = self._step(inputs, hidden, self.kernel())
        return self.activation(potentials), potentials

    def forward(self, inputs: torch.Tensor, hidden: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run the field over a sequence of stimulus maps.

        Args:
            inputs: ``[B, T, H, W]``.
            hidden: initial potentials ``[B, H, W]``; ``None`` starts at rest.

        Returns:
            activations ``[B, T, H, W]`` and potentials ``[B, T, H, W]`` after every step.
        """
        if inputs.dim() != 4 or inputs.shape[2:] != (self.height, self.width):
            raise ValueError(f"expected inputs [B, T, {self.height}, {self.width}], got {tuple(inputs.shape)}")
        batch_size = inputs.shape[0]
        potentials = self.init_hidden(batch_size).to(inputs) if hidden is None else hidden
        self._check_map("hidden", potentials, batch_size)
        kernel = self.kernel()  # once per sequence, not per step
        potentials_all = []
        for inp in inputs.unbind(dim=1):
            if self.detach_hidden:
                potentials = potentials.detach()
            potentials = self._step(inp, potentials, kernel)
            potentials_all.append(potentials)
        potentials_seq = torch.stack(potentials_all, dim=1)
        return self.activation(potentials_seq), potentials_seq
