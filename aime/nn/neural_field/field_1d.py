r"""The 1-D neural fields: Amari's :class:`NeuralField` (lateral interactions by a convolution over the neurons)
and Luksch et al.'s :class:`SimpleNeuralField` (a dense lateral matrix and a choice of potential dynamics).

Both reproduce the ``neuralfields`` package's (0.5.2) API, parameter names and numerics; see
:mod:`aime.nn.neural_field` for the dynamics and the two options the package lacks (``dt``, ``detach_hidden``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from aime.nn.neural_field.dynamics import CAPACITY_DYNAMICS, PotentialsDynamicsType
from aime.nn.neural_field.layers import (
    PADDING_MODES,
    ActivationFunction,
    IndependentNonlinearitiesLayer,
    MirroredConv1d,
    check_positive_int,
    init_param_,
    is_iterable,
)
from aime.nn.neural_field.potential_based import PotentialBased, potential_based_arguments

__all__ = ["NeuralField", "SimpleNeuralField"]


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
        output_size: int | None = None,
        input_embedding: nn.Module | None = None,
        output_embedding: nn.Module | None = None,
        activation_nonlin: ActivationFunction | Sequence[ActivationFunction] = torch.sigmoid,
        mirrored_conv_weights: bool = True,
        conv_kernel_size: int | None = None,
        conv_padding_mode: str = "circular",
        conv_out_channels: int = 1,
        conv_pooling_norm: int = 1,
        tau_init: float | int = 10,
        tau_learnable: bool = True,
        kappa_init: float | int = 1e-5,
        kappa_learnable: bool = True,
        potentials_init: torch.Tensor | None = None,
        init_param_kwargs: dict | None = None,
        dt: float = 1.0,
        detach_hidden: bool = True,
    ):
        check_positive_int("hidden_size", hidden_size, minimum=2)
        if conv_kernel_size is None:
            conv_kernel_size = hidden_size
        check_positive_int("conv_kernel_size", conv_kernel_size)
        if conv_padding_mode not in PADDING_MODES:
            raise ValueError(f"conv_padding_mode must be one of {PADDING_MODES}, got {conv_padding_mode!r}")
        if conv_padding_mode != "zeros" and (conv_kernel_size - 1) - (conv_kernel_size - 1) // 2 > (
            hidden_size - (conv_padding_mode == "reflect")
        ):
            raise ValueError(
                f"conv_kernel_size {conv_kernel_size} is too large for {conv_padding_mode!r} padding of "
                f"{hidden_size} neurons"
            )
        check_positive_int("conv_out_channels", conv_out_channels)
        if not conv_pooling_norm > 0:
            raise ValueError(f"conv_pooling_norm must be > 0, got {conv_pooling_norm}")
        init_param_kwargs = init_param_kwargs if init_param_kwargs is not None else {}
        super().__init__(**potential_based_arguments(locals()))
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
        self.conv_pooling_layer = nn.LPPool1d(
            conv_pooling_norm, kernel_size=conv_out_channels, stride=conv_out_channels
        )
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
        input_embedding: nn.Module | None = None,
        output_embedding: nn.Module | None = None,
        activation_nonlin: ActivationFunction | Sequence[ActivationFunction] = torch.sigmoid,
        tau_init: float | int = 10.0,
        tau_learnable: bool = True,
        kappa_init: float | int = 1e-3,
        kappa_learnable: bool = True,
        capacity_learnable: bool = True,
        potentials_init: torch.Tensor | None = None,
        init_param_kwargs: dict | None = None,
        dt: float = 1.0,
        detach_hidden: bool = True,
    ):
        if not callable(potentials_dyn_fcn):
            raise ValueError(f"potentials_dyn_fcn must be callable, got {type(potentials_dyn_fcn)}")
        init_param_kwargs = init_param_kwargs if init_param_kwargs is not None else {}
        # The package names the number of neurons output_size here (its output is one value per neuron).
        super().__init__(hidden_size=output_size, **potential_based_arguments(locals()))
        self.prev_activations_embedding = nn.Linear(self._hidden_size, self._hidden_size, bias=False)
        init_param_(self.prev_activations_embedding, **init_param_kwargs)
        self.potentials_to_activations = IndependentNonlinearitiesLayer(
            self._hidden_size, nonlin=activation_nonlin, bias=False, weight=True
        )
        self.potentials_dyn_fcn = potentials_dyn_fcn
        self.capacity_learnable = capacity_learnable
        if potentials_dyn_fcn in CAPACITY_DYNAMICS:
            nonlin = activation_nonlin[0] if is_iterable(activation_nonlin) else activation_nonlin
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
