"""The neural fields' building blocks: per-neuron nonlinearities, mirrored 1-D convolutions, the package's
parameter initialisation, and the argument checks the fields share."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ActivationFunction = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["ActivationFunction", "IndependentNonlinearitiesLayer", "MirroredConv1d", "init_param_"]

PADDING_MODES = ("circular", "reflect", "zeros")


def is_iterable(obj: Any) -> bool:
    """True for anything ``iter`` accepts (a sequence of activation functions, an ``nn.ModuleList``)."""
    try:
        iter(obj)
    except TypeError:
        return False
    return True


def check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_activation(activation_nonlin: Any, num_neurons: int) -> None:
    """Raise ``ValueError`` unless ``activation_nonlin`` is one callable or ``num_neurons`` of them."""
    if callable(activation_nonlin) and not isinstance(activation_nonlin, nn.ModuleList):
        return
    if not (is_iterable(activation_nonlin) and all(callable(fcn) for fcn in activation_nonlin)):
        raise ValueError(
            f"activation_nonlin must be a callable or a sequence of callables, got {type(activation_nonlin)}"
        )
    if len(activation_nonlin) != num_neurons:
        raise ValueError(
            f"expected one activation function or {num_neurons} (one per neuron), got {len(activation_nonlin)}"
        )


class IndependentNonlinearitiesLayer(nn.Module):
    r"""Per-neuron affine map followed by a nonlinearity: :math:`y = f(w \odot (x + b))`.

    ``weight`` and ``bias`` (``[N]``) are parameters when enabled, else constant buffers (ones / zeros), as in
    the ``neuralfields`` package. ``nonlin`` is one callable for all neurons or one per neuron.
    """

    def __init__(
        self,
        in_features: int,
        nonlin: ActivationFunction | Sequence[ActivationFunction],
        bias: bool,
        weight: bool = True,
    ):
        check_positive_int("in_features", in_features)
        check_activation(nonlin, in_features)
        super().__init__()
        self.nonlin = copy.deepcopy(nonlin) if is_iterable(nonlin) else nonlin
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
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("kernel_size", kernel_size)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
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
