"""FieldDecoder: a SpatialNet conditioned on a latent vector per sample, the decoder of images and maps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from aime.nn.spatialnet.block import build_blocks, check_points
from aime.nn.spatialnet.coordinates import make_coordinate_grid

MODULATIONS = ("beliefs", "positions", "sigmas")


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
        self.blocks = build_blocks(
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
        check_points(coords, self.coord_dim, "coords", "N")
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
