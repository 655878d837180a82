"""SpatialNet: a stack of :class:`~aime.nn.spatialnet.block.SpatialBlock`, and the seed's configuration of it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from aime.nn.spatialnet.block import build_blocks, check_points

#: The seed's image-field configuration: 2-D coordinates -> 20 neurons with 32-D beliefs ->
#: 20 neurons with RGB beliefs. The seed states only the total (1,420 parameters); this is the
#: two-block stack of this module that has exactly that count.
SEED_CONFIG = {"in_dim": 2, "out_dim": 3, "num_neurons": (20, 20), "hidden_dims": (32,)}


class SpatialNet(nn.Module):
    """A stack of :class:`~aime.nn.spatialnet.block.SpatialBlock`: ``in_dim -> hidden_dims[0] -> ... -> out_dim``.

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
        self.blocks = build_blocks(
            in_dim,
            out_dim,
            num_neurons,
            hidden_dims,
            similarity,
            init,
            hidden_init,
            sigma_init,
            hidden_sigma_init,
            generator,
        )

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """``x [Q, in_dim] | [B, Q, in_dim] -> y [Q | B, Q, out_dim]``; with ``return_attention`` also
        the list of per-block attention weights (``[.., Q, N_k]``)."""
        check_points(x, self.in_dim)
        attns = []
        for block in self.blocks:
            x, a = block(x, return_attention=True)
            attns.append(a)
        return (x, attns) if return_attention else x
