r"""The 2-D neural field: an Amari field over a ``[B, H, W]`` sheet with a learnable difference-of-Gaussians
("Mexican hat") kernel, whose self-sustained localised bump makes a natural attention focus."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aime.nn.neural_field.dynamics import POTENTIALS_MAX
from aime.nn.neural_field.layers import PADDING_MODES, check_positive_int

__all__ = ["NeuralField2d", "difference_of_gaussians_kernel"]


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
    check_positive_int("kernel_size", kernel_size)
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
        kernel_size: int | None = None,
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
        check_positive_int("height", height)
        check_positive_int("width", width)
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
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        largest_odd = min(height, width) if min(height, width) % 2 == 1 else min(height, width) - 1
        if kernel_size is None:
            kernel_size = min(2 * math.ceil(3 * max(excitation_sigma, inhibition_sigma)) + 1, largest_odd)
        check_positive_int("kernel_size", kernel_size)
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

    def lateral_input(self, activations: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`w \ast f(u) - c \sum f(u)` for activations ``[B, H, W]``; returns ``[B, H, W]``."""
        kernel = self.kernel() if kernel is None else kernel
        pad = self.kernel_size // 2
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        padded = F.pad(activations.unsqueeze(1), (pad, pad, pad, pad), mode=mode)  # [B, 1, H+2p, W+2p]
        lateral = F.conv2d(padded, kernel[None, None]).squeeze(1)  # [B, H, W]
        return lateral - self.global_inhibition * activations.sum(dim=(1, 2), keepdim=True)

    def _check_map(self, name: str, x: torch.Tensor, batch_size: int | None = None) -> None:
        ok = x.dim() == 3 and x.shape[1:] == (self.height, self.width)
        if not ok or (batch_size is not None and x.shape[0] != batch_size):
            b = "B" if batch_size is None else batch_size
            raise ValueError(f"expected {name} [{b}, {self.height}, {self.width}], got {tuple(x.shape)}")

    def _step(self, inputs: torch.Tensor, potentials: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        h = self.resting_level
        rhs = -potentials + h + self.input_gain * inputs + self.lateral_input(self.activation(potentials), kernel)
        rhs = rhs + self.kappa * torch.pow(h - potentials, 3)
        potentials = potentials + self.dt * rhs / self.tau
        return potentials.clamp(min=-POTENTIALS_MAX, max=POTENTIALS_MAX)

    def forward_one_step(
        self, inputs: torch.Tensor | None, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
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

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
