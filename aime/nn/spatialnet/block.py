"""One SpatialNet block: neurons with a learnable anchor ``p_j``, bandwidth ``sigma_j`` and belief ``b_j``.

For query points ``x`` the block returns ``y(x) = sum_j a_j(x) b_j`` with ``a_j(x) = softmax_j s_j(x)`` and
``s_j`` the radial-metric-field score ``-||x - p_j||^2 / (2 sigma_j^2)`` or the dot score
``(x . p_j) / sigma_j^2`` (see :mod:`aime.nn.spatialnet`). Here: the anchors' initialisation
(:func:`init_positions`), the attention of queries over neurons (:func:`spatial_attention`), the block
(:class:`SpatialBlock`), and the stacking of blocks that :class:`~aime.nn.spatialnet.SpatialNet` and
:class:`~aime.nn.spatialnet.FieldDecoder` share (:func:`build_blocks`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SIMILARITIES = ("rmf", "dot")
INITS = ("grid", "uniform", "random")

_SIGMA_FLOOR = 1e-6


def check_points(x: torch.Tensor, dim: int, name: str = "x", count: str = "Q") -> None:
    """Raise ``ValueError`` unless ``x`` is ``[count, dim]`` or ``[B, count, dim]``."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != dim:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected {name} of shape [{count}, {dim}] or [B, {count}, {dim}], got {got}")


def init_positions(num_neurons: int, dim: int, method: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Initial neuron positions ``[num_neurons, dim]`` inside [-1, 1]^dim.

    ``grid``: centres of a regular lattice (2-D: ``ceil(sqrt(n))`` columns by as many rows as needed,
    filled row by row; other dims: an evenly spaced subset of a ``k^dim`` lattice).
    ``uniform``: uniform in the box [-1, 1]^dim. ``random``: uniform in the unit ball (the seed
    code's initialisation: a random direction times ``u^(1/dim)``).
    """
    if method not in INITS:
        raise ValueError(f"expected init in {INITS}, got {method!r}")
    if num_neurons < 1 or dim < 1:
        raise ValueError(f"expected num_neurons >= 1 and dim >= 1, got {num_neurons}, {dim}")
    if method == "uniform":
        return torch.rand(num_neurons, dim, generator=generator) * 2.0 - 1.0
    if method == "random":
        vecs = torch.randn(num_neurons, dim, generator=generator)
        directions = vecs / vecs.norm(dim=1, keepdim=True).clamp_min(1e-8)
        radii = torch.rand(num_neurons, 1, generator=generator) ** (1.0 / dim)
        return directions * radii
    if dim == 2:
        cols = math.ceil(math.sqrt(num_neurons))
        rows = math.ceil(num_neurons / cols)
        xs = -1.0 + (2.0 * torch.arange(cols) + 1.0) / cols
        ys = -1.0 + (2.0 * torch.arange(rows) + 1.0) / rows
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([xx, yy], dim=-1).reshape(-1, 2)[:num_neurons].clone()
    k = max(2, math.ceil(num_neurons ** (1.0 / dim))) if num_neurons > 1 else 1
    axis = -1.0 + (2.0 * torch.arange(k) + 1.0) / k
    lattice = torch.cartesian_prod(*([axis] * dim)).reshape(-1, dim)
    pick = torch.linspace(0, lattice.shape[0] - 1, num_neurons).round().long()
    return lattice[pick].clone()


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def spatial_attention(
    x: torch.Tensor,
    positions: torch.Tensor,
    sigma: torch.Tensor,
    similarity: str = "rmf",
) -> torch.Tensor:
    """Attention of queries over neurons.

    ``x``: ``[B, Q, D]`` queries; ``positions``: ``[B or 1, N, D]``; ``sigma``: ``[B or 1, N]``.
    Returns ``a``: ``[B, Q, N]``, softmax over the N neurons (see the module docstring).
    """
    same_space = positions.dim() == 3 and positions.shape[-1] == x.shape[-1]
    if x.dim() != 3 or not same_space or positions.shape[0] not in (1, x.shape[0]):
        raise ValueError(
            f"expected x [B, Q, D] and positions [B or 1, N, D], got {tuple(x.shape)} and {tuple(positions.shape)}"
        )
    if sigma.dim() != 2 or sigma.shape[-1] != positions.shape[1] or sigma.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"expected sigma [B or 1, {positions.shape[1]}], got {tuple(sigma.shape)}")
    cross = torch.einsum("bqd,bnd->bqn", x, positions.expand(x.shape[0], -1, -1))  # [B, Q, N]
    inv_var = sigma.pow(-2).unsqueeze(1)  # [B|1, 1, N]
    if similarity == "rmf":
        # Expanded squared distance: one matmul instead of a [B, Q, N, D] difference tensor.
        sq = x.pow(2).sum(-1, keepdim=True) - 2.0 * cross + positions.pow(2).sum(-1).unsqueeze(1)
        scores = -0.5 * sq.clamp_min(0.0) * inv_var
    elif similarity == "dot":
        scores = cross * inv_var
    else:
        raise ValueError(f"expected similarity in {SIMILARITIES}, got {similarity!r}")
    return torch.softmax(scores, dim=-1)


class SpatialBlock(nn.Module):
    """Neurons with learnable positions, bandwidths and beliefs; output = attention-weighted beliefs.

    Args:
        num_neurons: N, the number of neurons.
        in_dim: D, the dimension of the space the neurons sit in.
        out_dim: the dimension of each neuron's belief.
        similarity: ``"rmf"`` (radial metric field) or ``"dot"`` (dot product with the anchors).
        init: position initialisation, ``"grid" | "uniform" | "random"`` (see :func:`init_positions`).
        sigma_init: initial bandwidth of every neuron (> 0).
        belief_scale: beliefs start uniform in [-belief_scale, belief_scale].
        generator: optional RNG for a reproducible initialisation.

    Parameters: ``positions [N, D]``, ``sigma_raw [N]`` (``sigma = softplus(sigma_raw) + 1e-6``),
    ``beliefs [N, out_dim]``: ``N * (D + 1 + out_dim)`` in all.
    """

    def __init__(
        self,
        num_neurons: int,
        in_dim: int,
        out_dim: int,
        similarity: str = "rmf",
        init: str = "grid",
        sigma_init: float = 0.5,
        belief_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("num_neurons", num_neurons), ("in_dim", in_dim), ("out_dim", out_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"expected similarity in {SIMILARITIES}, got {similarity!r}")
        if not sigma_init > 0:
            raise ValueError(f"expected sigma_init > 0, got {sigma_init!r}")
        self.num_neurons, self.in_dim, self.out_dim = num_neurons, in_dim, out_dim
        self.similarity = similarity
        self.positions = nn.Parameter(init_positions(num_neurons, in_dim, init, generator))  # [N, D]
        self.sigma_raw = nn.Parameter(torch.full((num_neurons,), _inverse_softplus(sigma_init)))  # [N]
        beliefs = (torch.rand(num_neurons, out_dim, generator=generator) * 2.0 - 1.0) * belief_scale
        self.beliefs = nn.Parameter(beliefs)  # [N, out_dim]

    @property
    def sigma(self) -> torch.Tensor:
        """Positive bandwidths ``[N]``."""
        return F.softplus(self.sigma_raw) + _SIGMA_FLOOR

    def forward(
        self,
        x: torch.Tensor,
        *,
        belief_offset: torch.Tensor | None = None,
        position_offset: torch.Tensor | None = None,
        sigma_raw_offset: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Evaluate the block at query points.

        Args:
            x: ``[Q, D]`` or ``[B, Q, D]`` query points.
            belief_offset: optional per-sample offsets ``[B, N, out_dim]`` added to the beliefs.
            position_offset: optional ``[B, N, D]`` added to the positions.
            sigma_raw_offset: optional ``[B, N]`` added to the raw bandwidths (before softplus).
            return_attention: also return the attention weights.

        Returns ``y`` of shape ``[Q, out_dim]`` or ``[B, Q, out_dim]`` (and the attention
        ``[Q, N]`` or ``[B, Q, N]``, summing to 1 over N, when ``return_attention``).
        """
        check_points(x, self.in_dim)
        unbatched = x.dim() == 2
        xb = x.unsqueeze(0) if unbatched else x  # [B, Q, D]
        batch = xb.shape[0]
        offsets = (belief_offset, position_offset, sigma_raw_offset)
        if unbatched and any(o is not None for o in offsets):
            batch = next(o for o in offsets if o is not None).shape[0]
            xb = xb.expand(batch, -1, -1)
        n = self.num_neurons
        positions = self.positions.unsqueeze(0)  # [1, N, D]
        sigma_raw = self.sigma_raw.unsqueeze(0)  # [1, N]
        beliefs = self.beliefs.unsqueeze(0)  # [1, N, out]
        if position_offset is not None:
            _check_shape("position_offset", position_offset, (batch, n, self.in_dim))
            positions = positions + position_offset
        if sigma_raw_offset is not None:
            _check_shape("sigma_raw_offset", sigma_raw_offset, (batch, n))
            sigma_raw = sigma_raw + sigma_raw_offset
        if belief_offset is not None:
            _check_shape("belief_offset", belief_offset, (batch, n, self.out_dim))
            beliefs = beliefs + belief_offset
        sigma = F.softplus(sigma_raw) + _SIGMA_FLOOR
        attn = spatial_attention(xb, positions, sigma, self.similarity)  # [B, Q, N]
        y = torch.einsum("bqn,bno->bqo", attn, beliefs.expand(batch, -1, -1))  # [B, Q, out]
        if unbatched and all(o is None for o in offsets):
            y, attn = y[0], attn[0]
        return (y, attn) if return_attention else y

    def extra_repr(self) -> str:
        return (
            f"num_neurons={self.num_neurons}, in_dim={self.in_dim}, out_dim={self.out_dim}, "
            f"similarity={self.similarity!r}"
        )


def _check_shape(name: str, t: torch.Tensor, expected: tuple[int, ...]) -> None:
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(expected):
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"expected {name} of shape {list(expected)}, got {got}")


def build_blocks(
    in_dim: int,
    out_dim: int,
    num_neurons: Sequence[int],
    hidden_dims: Sequence[int],
    similarity: str,
    init: str,
    hidden_init: str,
    sigma_init: float,
    hidden_sigma_init: float | None,
    generator: torch.Generator | None,
) -> nn.ModuleList:
    """The blocks ``in_dim -> hidden_dims[0] -> ... -> out_dim``, ``num_neurons[k]`` neurons in block ``k``.

    The first block starts at ``init`` and ``sigma_init``; later blocks at ``hidden_init`` and
    ``hidden_sigma_init``, by default ``sigma_init * sqrt(dim / 2)`` (distances grow with the dimension).
    """
    num_neurons, hidden_dims = list(num_neurons), list(hidden_dims)
    if len(num_neurons) < 1:
        raise ValueError(f"expected at least one block in num_neurons, got {num_neurons}")
    if len(hidden_dims) != len(num_neurons) - 1:
        raise ValueError(
            f"expected len(hidden_dims) == len(num_neurons) - 1 = {len(num_neurons) - 1}, got {len(hidden_dims)}"
        )
    dims = [in_dim, *hidden_dims, out_dim]
    blocks = []
    for i, n in enumerate(num_neurons):
        first = i == 0
        if first:
            s0 = sigma_init
        else:
            s0 = hidden_sigma_init if hidden_sigma_init is not None else sigma_init * math.sqrt(dims[i] / 2.0)
        blocks.append(
            SpatialBlock(n, dims[i], dims[i + 1], similarity, init if first else hidden_init, s0, generator=generator)
        )
    return nn.ModuleList(blocks)
