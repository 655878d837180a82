"""Multilayer perceptrons, and sizing one to a parameter budget.

- :func:`mlp`: ``layers`` x (Linear, LayerNorm, SiLU) then a Linear, as an ``nn.Sequential``. The
  one builder behind the world model's latents and heads and the agent's actor and critic.
- :class:`MLP`: the plain ``Linear -> act -> ... -> Linear`` baseline that SpatialNet is compared
  against (seed 000); :func:`matched_mlp` gives the one whose parameter count matches a reference,
  :func:`mlp_parameter_count` and :func:`count_parameters` do the counting.

Parameter names are part of the checkpoint format: :func:`mlp`'s are the ``nn.Sequential`` indices
(``0.weight``, ``1.weight`` (LayerNorm), ``3.weight``, ... for one hidden layer), :class:`MLP`'s are
``net.<index>.weight``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from aime.nn.layer_norm import LayerNorm


def mlp(inp: int, hidden: int, out: int, layers: int = 2, zero_last: bool = False) -> nn.Sequential:
    """``layers`` x (Linear, LayerNorm, SiLU) then a Linear to ``out`` (zero-initialised if asked).

    ``[..., inp] -> [..., out]``; with ``layers=0`` it is one Linear from ``inp`` to ``out``.
    """
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(inp if i == 0 else hidden, hidden), LayerNorm(hidden), nn.SiLU()]
    last = nn.Linear(hidden if layers else inp, out)
    if zero_last:  # predictions start at 0 instead of a random scale (DreamerV3)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*mods, last)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class MLP(nn.Module):
    """Plain MLP baseline: ``Linear -> act -> ... -> Linear``; ``[..., in_dim] -> [..., out_dim]``."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dims: Sequence[int], activation: str = "relu") -> None:
        super().__init__()
        acts = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}
        if activation not in acts:
            raise ValueError(f"expected activation in {tuple(acts)}, got {activation!r}")
        dims = [in_dim, *hidden_dims, out_dim]
        if any((not isinstance(d, int)) or d < 1 for d in dims):
            raise ValueError(f"expected positive int dims, got {dims}")
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(acts[activation]())
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != self.in_dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected x of shape [..., {self.in_dim}], got {got}")
        return self.net(x)


def mlp_parameter_count(in_dim: int, out_dim: int, width: int, depth: int) -> int:
    """Parameters of an MLP with ``depth`` hidden layers of ``width`` units (biases included)."""
    dims = [in_dim] + [width] * depth + [out_dim]
    return sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))


def matched_mlp(
    reference: nn.Module | int,
    in_dim: int = 2,
    out_dim: int = 3,
    depth: int = 2,
    tolerance: float = 0.02,
    activation: str = "relu",
) -> MLP:
    """The MLP with ``depth`` equal hidden layers whose parameter count is closest to ``reference``.

    ``reference`` is a module (its trainable parameters are counted) or a parameter count. Raises
    ``ValueError`` when no width brings the count within ``tolerance`` (relative) of the target.
    """
    target = count_parameters(reference) if isinstance(reference, nn.Module) else int(reference)
    if target < 1 or depth < 1:
        raise ValueError(f"expected a positive target and depth >= 1, got {target}, {depth}")
    best_width, best_gap = 1, float("inf")
    width = 1
    while True:
        count = mlp_parameter_count(in_dim, out_dim, width, depth)
        gap = abs(count - target)
        if gap < best_gap:
            best_width, best_gap = width, gap
        if count > target:
            break
        width += 1
    if best_gap > tolerance * target:
        raise ValueError(
            f"no depth-{depth} MLP within {tolerance:.0%} of {target} parameters "
            f"(closest: width {best_width}, {mlp_parameter_count(in_dim, out_dim, best_width, depth)})"
        )
    return MLP(in_dim, out_dim, [best_width] * depth, activation)
