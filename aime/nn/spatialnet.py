"""SpatialNet: neurons that sit in continuous space (seed 000).

Each neuron ``j`` of a :class:`SpatialBlock` has a learnable position ``p_j`` in the block's input
space (its anchor), a learnable bandwidth ``sigma_j > 0`` and a belief ``b_j`` (the value it wants
to "say"). For a query point ``x`` the block returns the attention-weighted average of the beliefs::

    rmf:  s_j(x) = -||x - p_j||^2 / (2 sigma_j^2)       (radial metric field, the seed's default)
    dot:  s_j(x) =  (x . p_j) / sigma_j^2                (dot product with the same anchors)
    a_j(x) = softmax_j s_j(x)                            (sums to 1 over the neurons)
    y(x)   = sum_j a_j(x) b_j

``sigma_j = softplus(rho_j) + 1e-6`` keeps the bandwidth positive whatever the optimiser does to
the raw parameter ``rho_j``. The "dot" score is exactly the cross term of the RMF score expanded
(``-||x-p||^2/(2s^2) = (x.p)/s^2 - ||x||^2/(2s^2) - ||p||^2/(2s^2)``), so the two modes have the
same parameters and differ only in the locality terms, which is the comparison the seed makes.

Blocks stack: the first block's neurons sit in the 2-D coordinate space and hold N-dimensional
beliefs; the next block's neurons sit in that N-dimensional space, and so on (:class:`SpatialNet`).
:class:`FieldDecoder` is the conditioned form used as a decoder: a latent vector per sample shifts
the beliefs (and optionally positions and bandwidths) of every block, and the field is evaluated at
arbitrary query coordinates, so training can use a random subset of pixels per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

SIMILARITIES = ("rmf", "dot")
INITS = ("grid", "uniform", "random")
MODULATIONS = ("beliefs", "positions", "sigmas")

#: The seed's image-field configuration: 2-D coordinates -> 20 neurons with 32-D beliefs ->
#: 20 neurons with RGB beliefs. The seed states only the total (1,420 parameters); this is the
#: two-block stack of this module that has exactly that count.
SEED_CONFIG = {"in_dim": 2, "out_dim": 3, "num_neurons": (20, 20), "hidden_dims": (32,)}

_SIGMA_FLOOR = 1e-6


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def make_coordinate_grid(
    height: int,
    width: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pixel-centre coordinates in [-1, 1], row-major, as ``(x, y)`` = (column, row).

    Returns ``[height * width, 2]``; row ``i * width + j`` is pixel ``(i, j)``, so a field evaluated
    on the grid reshapes to ``[height, width, C]`` directly. Corners are exactly -1 and 1.
    """
    if not (isinstance(height, int) and isinstance(width, int)) or height < 1 or width < 1:
        raise ValueError(f"expected positive integer height and width, got {height!r}, {width!r}")
    ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype) if height > 1 else torch.zeros(
        1, device=device, dtype=dtype
    )
    xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype) if width > 1 else torch.zeros(
        1, device=device, dtype=dtype
    )
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # [H, W] each
    return rearrange(torch.stack([xx, yy], dim=-1), "h w c -> (h w) c")  # [H*W, 2]


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
        if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != self.in_dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected x of shape [Q, {self.in_dim}] or [B, Q, {self.in_dim}], got {got}")
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


def _build_blocks(
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


class SpatialNet(nn.Module):
    """A stack of :class:`SpatialBlock`: ``in_dim -> hidden_dims[0] -> ... -> out_dim``.

    Args:
        in_dim: dimension of the input points (2 for an image field).
        out_dim: dimension of the output (3 for RGB).
        num_neurons: neurons per block (one entry per block).
        hidden_dims: belief dimension of every block but the last (``len(num_neurons) - 1`` entries).
        similarity: ``"rmf"`` or ``"dot"`` for every block.
        init: position initialisation of the first block; ``hidden_init`` for the later blocks
            (a grid is for low-dimensional spaces; the later blocks sit in belief space).
        sigma_init: initial bandwidth of the first block; later blocks default to
            ``sigma_init * sqrt(dim / 2)`` because distances grow with the dimension of the space.
        seed: optional seed of a private generator for a reproducible initialisation.

    ``forward(x [Q, in_dim] or [B, Q, in_dim]) -> [Q, out_dim] or [B, Q, out_dim]``.
    """

    def __init__(
        self,
        in_dim: int = 2,
        out_dim: int = 3,
        num_neurons: Sequence[int] = (20, 20),
        hidden_dims: Sequence[int] = (32,),
        similarity: str = "rmf",
        init: str = "grid",
        hidden_init: str = "uniform",
        sigma_init: float = 0.5,
        hidden_sigma_init: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.in_dim, self.out_dim = in_dim, out_dim
        self.blocks = _build_blocks(
            in_dim, out_dim, num_neurons, hidden_dims, similarity, init, hidden_init, sigma_init,
            hidden_sigma_init, generator,
        )

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """``x [Q, in_dim] | [B, Q, in_dim] -> y [Q | B, Q, out_dim]``; with ``return_attention`` also
        the list of per-block attention weights (``[.., Q, N_k]``)."""
        if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != self.in_dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected x of shape [Q, {self.in_dim}] or [B, Q, {self.in_dim}], got {got}")
        attns = []
        for block in self.blocks:
            x, a = block(x, return_attention=True)
            attns.append(a)
        return (x, attns) if return_attention else x


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


class FieldDecoder(nn.Module):
    """A SpatialNet conditioned on a latent vector per sample: a decoder of fields (images, maps).

    For every block a linear layer maps the condition ``c [B, cond_dim]`` to offsets of the block's
    parameters: the beliefs (always), and optionally the positions and the raw bandwidths
    (``modulate`` contains ``"positions"`` / ``"sigmas"``)::

        b_j(c) = b_j + W_b c,   p_j(c) = p_j + W_p c,   sigma_j(c) = softplus(rho_j + W_s c) + 1e-6

    The field is evaluated at any query coordinates, shared ``[N, 2]`` or per-sample ``[B, N, 2]``,
    so a decoder can train on a random subset of pixels and render full frames at evaluation.

    Args:
        cond_dim: dimension of the condition (e.g. the world model's state ``s = [h, z]``).
        out_dim: channels of the field (3 for RGB, 1 for an attention map).
        coord_dim, num_neurons, hidden_dims, similarity, init, hidden_init, sigma_init: as
            :class:`SpatialNet`.
        modulate: which parameters the condition shifts (``"beliefs"`` is required).
        output_activation: ``None`` or ``"sigmoid"`` (for targets in [0, 1]).
    """

    def __init__(
        self,
        cond_dim: int,
        out_dim: int,
        coord_dim: int = 2,
        num_neurons: Sequence[int] = (20, 20),
        hidden_dims: Sequence[int] = (32,),
        similarity: str = "rmf",
        init: str = "grid",
        hidden_init: str = "uniform",
        sigma_init: float = 0.5,
        modulate: Sequence[str] = ("beliefs",),
        output_activation: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(cond_dim, int) or cond_dim < 1:
            raise ValueError(f"expected cond_dim to be a positive int, got {cond_dim!r}")
        modulate = tuple(modulate)
        if "beliefs" not in modulate or any(m not in MODULATIONS for m in modulate):
            raise ValueError(f"expected modulate to contain 'beliefs' and only {MODULATIONS}, got {modulate}")
        if output_activation not in (None, "sigmoid"):
            raise ValueError(f"expected output_activation None or 'sigmoid', got {output_activation!r}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.cond_dim, self.out_dim, self.coord_dim = cond_dim, out_dim, coord_dim
        self.modulate, self.output_activation = modulate, output_activation
        self.blocks = _build_blocks(
            coord_dim, out_dim, num_neurons, hidden_dims, similarity, init, hidden_init, sigma_init, None, generator
        )
        self.belief_proj = nn.ModuleList(nn.Linear(cond_dim, b.num_neurons * b.out_dim) for b in self.blocks)
        self.position_proj = (
            nn.ModuleList(nn.Linear(cond_dim, b.num_neurons * b.in_dim) for b in self.blocks)
            if "positions" in modulate
            else None
        )
        self.sigma_proj = (
            nn.ModuleList(nn.Linear(cond_dim, b.num_neurons) for b in self.blocks) if "sigmas" in modulate else None
        )
        # Position and bandwidth shifts start at zero so the initial layout is the chosen one.
        for projs in (self.position_proj, self.sigma_proj):
            for proj in projs or ():
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    def forward(self, coords: torch.Tensor, cond: torch.Tensor, return_attention: bool = False):
        """``coords [N, coord_dim] | [B, N, coord_dim]``, ``cond [B, cond_dim]`` -> ``[B, N, out_dim]``
        (and the per-block attention ``[B, N, N_k]`` when ``return_attention``)."""
        if not isinstance(cond, torch.Tensor) or cond.dim() != 2 or cond.shape[1] != self.cond_dim:
            got = tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__
            raise ValueError(f"expected cond of shape [B, {self.cond_dim}], got {got}")
        batch = cond.shape[0]
        if not isinstance(coords, torch.Tensor) or coords.dim() not in (2, 3) or coords.shape[-1] != self.coord_dim:
            got = tuple(coords.shape) if isinstance(coords, torch.Tensor) else type(coords).__name__
            raise ValueError(f"expected coords of shape [N, {self.coord_dim}] or [B, N, {self.coord_dim}], got {got}")
        if coords.dim() == 3 and coords.shape[0] != batch:
            raise ValueError(f"expected coords batch {batch} (from cond), got {coords.shape[0]}")
        x = coords.to(cond.dtype).unsqueeze(0).expand(batch, -1, -1) if coords.dim() == 2 else coords.to(cond.dtype)
        attns = []
        for k, block in enumerate(self.blocks):
            n = block.num_neurons
            kwargs = {"belief_offset": rearrange(self.belief_proj[k](cond), "b (n o) -> b n o", n=n)}
            if self.position_proj is not None:
                kwargs["position_offset"] = rearrange(self.position_proj[k](cond), "b (n d) -> b n d", n=n)
            if self.sigma_proj is not None:
                kwargs["sigma_raw_offset"] = self.sigma_proj[k](cond)
            x, a = block(x, return_attention=True, **kwargs)
            attns.append(a)
        if self.output_activation == "sigmoid":
            x = torch.sigmoid(x)
        return (x, attns) if return_attention else x

    def render(self, cond: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The full field on a ``height x width`` pixel grid: ``cond [B, cond_dim] -> [B, out_dim, H, W]``."""
        if self.coord_dim != 2:
            raise ValueError(f"render needs coord_dim 2, this decoder has {self.coord_dim}")
        grid = make_coordinate_grid(height, width, device=cond.device, dtype=cond.dtype)  # [H*W, 2]
        y = self(grid, cond)  # [B, H*W, C]
        return rearrange(y, "b (h w) c -> b c h w", h=height, w=width)


def sample_pixels(
    images: torch.Tensor, num_pixels: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random subset of pixels per image, for training a field decoder on part of each frame.

    ``images [B, C, H, W]`` -> ``coords [B, num_pixels, 2]`` (in the convention of
    :func:`make_coordinate_grid`) and ``values [B, num_pixels, C]``.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape [B, C, H, W], got {got}")
    b, c, h, w = images.shape
    if not 1 <= num_pixels <= h * w:
        raise ValueError(f"expected 1 <= num_pixels <= {h * w}, got {num_pixels}")
    scores = torch.rand(b, h * w, generator=generator).to(images.device)
    idx = scores.argsort(dim=1)[:, :num_pixels]  # [B, P], without replacement
    dtype = images.dtype if images.is_floating_point() else torch.float32
    grid = make_coordinate_grid(h, w, device=images.device, dtype=dtype)  # [H*W, 2]
    coords = grid[idx]  # [B, P, 2]
    flat = rearrange(images, "b c h w -> b (h w) c")
    values = torch.gather(flat, 1, idx.unsqueeze(-1).expand(-1, -1, c))  # [B, P, C]
    return coords, values
