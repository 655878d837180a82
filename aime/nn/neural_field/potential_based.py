r"""The 1-D potential-based network: what :class:`NeuralField` and :class:`SimpleNeuralField` share.

Input and output embeddings, the resting level, the time constant and cubic decay (optimised in log space), the
initial potentials, one explicit Euler step :math:`u_{t+1} = \mathrm{clip}_{\pm 100}(u_t + \Delta t\,\dot u)` and
the loop over time. Subclasses supply :math:`\dot u` and the lateral (internal) stimuli.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from aime.nn.neural_field.dynamics import POTENTIALS_MAX
from aime.nn.neural_field.layers import ActivationFunction, check_activation, check_positive_int

__all__ = ["PotentialBased", "potential_based_arguments"]


class PotentialBased(nn.Module, ABC):
    r"""Common parts of the 1-D potential-based networks: input/output embeddings, the resting level :math:`h`,
    the time constant :math:`\tau = e^{\tau_{opt}} + 10^{-5}`, the cubic decay :math:`\kappa = e^{\kappa_{opt}}`,
    the initial potentials, and the loop over time.

    Subclasses implement :meth:`potentials_dot` (:math:`\dot u`) and :meth:`_internal_stimuli`.
    """

    _tau_min: float = 1e-5
    _potentials_max: float = POTENTIALS_MAX

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
        activation_nonlin: ActivationFunction | Sequence[ActivationFunction],
        tau_init: float | int,
        tau_learnable: bool,
        kappa_init: float | int,
        kappa_learnable: bool,
        potentials_init: torch.Tensor | None = None,
        output_size: int | None = None,
        input_embedding: nn.Module | None = None,
        output_embedding: nn.Module | None = None,
        dt: float = 1.0,
        detach_hidden: bool = True,
    ):
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        if output_size is not None:
            check_positive_int("output_size", output_size)
        if not tau_init > self._tau_min:
            raise ValueError(f"tau_init must be > {self._tau_min}, got {tau_init}")
        if not kappa_init >= 0:
            raise ValueError(f"kappa_init must be >= 0, got {kappa_init}")
        if not (isinstance(dt, (int, float)) and dt > 0):
            raise ValueError(f"dt must be a positive number, got {dt!r}")
        check_activation(activation_nonlin, hidden_size)
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
            output_embedding if output_embedding is not None else nn.Linear(hidden_size, self.output_size, bias=False)
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

    def init_hidden(self, batch_size: int | None = None, potentials_init: torch.Tensor | None = None) -> torch.Tensor:
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
        self, inputs: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
            raise ValueError(
                f"expected inputs [B, {self.input_size}] or [{self.input_size}], got {tuple(inputs.shape)}"
            )
        batch_size = inputs.shape[0]
        if hidden is None:
            potentials = self.init_hidden(batch_size)
        else:
            potentials = self._check_hidden(hidden, batch_size)
            if self.detach_hidden:
                potentials = potentials.detach()
        return self._step(inputs, potentials)

    def _step(self, inputs: torch.Tensor, potentials: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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


# PotentialBased's own constructor arguments, named once: the subclasses keep the package's full signatures (with
# their own defaults) and forward what they received with potential_based_arguments(locals()), instead of each
# repeating the same 13 keyword arguments.
_POTENTIAL_BASED_ARGUMENTS = tuple(inspect.signature(PotentialBased.__init__).parameters)[1:]


def potential_based_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``arguments`` (a subclass constructor's ``locals()``) that :class:`PotentialBased` takes."""
    return {name: arguments[name] for name in _POTENTIAL_BASED_ARGUMENTS if name in arguments}
