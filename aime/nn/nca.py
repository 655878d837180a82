"""Neural cellular automaton with convolutional attention and shortsighted refinement (seed 001).

Transition ``f``: every cell ``i`` attends over its 3x3 neighbourhood ``N(i)`` (itself included)::

    q_i = W_q s_i,   k_j = W_k s_j,   v_j = W_v s_j                 (hidden width 16 by default)
    a_ij = softmax_{j in N(i)} (q_i . k_j / sqrt(hidden) + r_{j-i})  (9 weights, sum to 1)
    f(s)_i = W_o sum_j a_ij v_j                                      (back to the state channels)
    s_next = s + f(s)                                                (residual update)

``r`` is an optional learned bias per neighbour offset (``position_bias``; the seed's scores are
content-only, ``r = 0``). Border cells see a padded state (``padding_mode``: ``"zeros"``, as
``F.unfold`` pads in the seed, or ``"circular" | "replicate" | "reflect"``). The projections are
1x1 convolutions applied to the padded state before the neighbourhoods are gathered, which equals
applying the linear layers to each neighbour. Memory: the gathered keys and values take
``2 * hidden * 9`` floats per cell (about 1.2 KB at hidden 16), so refine a large batch of big
frames in chunks.

Shortsighted refinement (:func:`nca_refine`) runs a few steps from a given state with the gradient
cut between steps; the single-trajectory training loop of the seed (:class:`ShortsightedTrainer`)
lives in :mod:`aime.experiments.nca_training`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

PADDING_MODES = ("zeros", "circular", "replicate", "reflect")


class ConvAttentionNCA(nn.Module):
    """NCA whose transition is dot-product attention over each cell's 3x3 neighbourhood.

    Args:
        channels: C, the state channels (3 for an RGB state; more adds hidden channels).
        hidden: width of the query, key and value vectors (16 in the seed).
        padding_mode: how border cells see outside the grid (see the module docstring).
        zero_init_output: start the output projection at zero, so the first updates are no-ops
            and a random initial ``f`` does not blow the state up.
        position_bias: add a learned score bias per neighbour offset (9 numbers, start at 0), so
            a cell can learn to attend to itself or to a direction whatever the content;
            ``False`` gives the seed's content-only scores.

    ``forward(s [B, C, H, W]) -> s + f(s) [B, C, H, W]``; ``update(s)`` returns ``f(s)`` alone.
    """

    def __init__(
        self,
        channels: int = 3,
        hidden: int = 16,
        padding_mode: str = "zeros",
        zero_init_output: bool = True,
        position_bias: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1 or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"expected positive int channels and hidden, got {channels!r}, {hidden!r}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"expected padding_mode in {PADDING_MODES}, got {padding_mode!r}")
        self.channels, self.hidden, self.padding_mode = channels, hidden, padding_mode
        self.query = nn.Conv2d(channels, hidden, 1)
        self.key_value = nn.Conv2d(channels, 2 * hidden, 1)
        self.out = nn.Conv2d(hidden, channels, 1)
        self.offset_bias = nn.Parameter(torch.zeros(9)) if position_bias else None  # [9]
        if zero_init_output:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def _check(self, state: torch.Tensor) -> None:
        if not isinstance(state, torch.Tensor) or state.dim() != 4 or state.shape[1] != self.channels:
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"expected state of shape [B, {self.channels}, H, W], got {got}")
        if self.padding_mode == "reflect" and min(state.shape[-2:]) < 2:
            raise ValueError(f"reflect padding needs H, W >= 2, got {tuple(state.shape[-2:])}")

    def update(self, state: torch.Tensor, return_attention: bool = False):
        """``f(s)``: ``[B, C, H, W] -> [B, C, H, W]`` (and attention ``[B, H*W, 9]`` when asked;
        neighbour order is row-major over the 3x3 window, index 4 is the cell itself)."""
        self._check(state)
        b, _, h, w = state.shape
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        padded = F.pad(state, (1, 1, 1, 1), mode=mode)  # [B, C, H+2, W+2]
        q = rearrange(self.query(state), "b d h w -> b (h w) d")  # [B, HW, D]
        kv = F.unfold(self.key_value(padded), kernel_size=3)  # [B, 2D*9, HW]
        kv = rearrange(kv, "b (two d n) l -> two b l n d", two=2, n=9)  # [2, B, HW, 9, D]
        scores = torch.einsum("bld,blnd->bln", q, kv[0]) / math.sqrt(self.hidden)  # [B, HW, 9]
        if self.offset_bias is not None:
            scores = scores + self.offset_bias
        attn = torch.softmax(scores, dim=-1)
        mixed = torch.einsum("bln,blnd->bld", attn, kv[1])  # [B, HW, D]
        delta = self.out(rearrange(mixed, "b (h w) d -> b d h w", h=h, w=w))  # [B, C, H, W]
        return (delta, attn) if return_attention else delta

    def forward(self, state: torch.Tensor, return_attention: bool = False):
        """Residual step ``s + f(s)``: ``[B, C, H, W] -> [B, C, H, W]`` (and attention ``[B, H*W, 9]``)."""
        delta, attn = self.update(state, return_attention=True)
        nxt = state + delta
        return (nxt, attn) if return_attention else nxt


def inject_noise(state: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``state + N(0, sigma^2)`` elementwise (sigma is the standard deviation); a new tensor.

    The noise is drawn on the CPU from ``generator`` when one is given (reproducible on any device).
    """
    if not sigma >= 0:
        raise ValueError(f"expected sigma >= 0, got {sigma!r}")
    if sigma == 0:
        return state.clone()
    if generator is not None:
        noise = torch.randn(state.shape, generator=generator, dtype=state.dtype).to(state.device)
    else:
        noise = torch.randn_like(state)
    return state + sigma * noise


def visible_loss(state: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the first ``target.shape[1]`` channels of ``state [B, C, H, W]`` and ``target [B|1, C_t, H, W]``."""
    return F.mse_loss(state[:, : target.shape[1]], target)


def check_target(state: torch.Tensor, target: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``target`` is ``[B or 1, C_t <= C, H, W]`` for ``state [B, C, H, W]``."""
    if not isinstance(target, torch.Tensor) or target.dim() != 4:
        got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise ValueError(f"expected target of shape [B, C_t, H, W], got {got}")
    b, c, h, w = state.shape
    if target.shape[0] not in (1, b) or target.shape[1] > c or tuple(target.shape[2:]) != (h, w):
        raise ValueError(
            f"expected target of shape [{b} or 1, <= {c}, {h}, {w}] (matching the state), got {tuple(target.shape)}"
        )


class RefineResult(NamedTuple):
    """``state [B, C, H, W]``: the refined state, attached to the last step's graph only;
    ``losses [steps]``: per-step losses (each differentiable through its own step), empty without a target."""

    state: torch.Tensor
    losses: torch.Tensor


def nca_refine(
    nca: ConvAttentionNCA,
    state: torch.Tensor,
    steps: int,
    target: torch.Tensor | None = None,
    sigma_small: float = 0.0,
    generator: torch.Generator | None = None,
    detach_input: bool = True,
) -> RefineResult:
    """Run ``steps`` shortsighted NCA steps from ``state`` (e.g. a coarse decoded frame).

    Each step detaches its incoming state (the first one too, unless ``detach_input`` is False),
    adds ``N(0, sigma_small^2)`` noise and applies ``s + f(s)``. With a ``target`` the per-step MSE
    losses are returned; ``losses.sum().backward()`` trains ``f`` with the shortsighted rule (each
    loss reaches ``f`` through its own step only). ``state [B, C, H, W]``, ``target [B|1, C_t, H, W]``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"expected steps to be a positive int, got {steps!r}")
    nca._check(state)
    if target is not None:
        check_target(state, target)
    losses = []
    s = state
    for k in range(steps):
        if k > 0 or detach_input:
            s = s.detach()
        s = nca(inject_noise(s, sigma_small, generator))
        if target is not None:
            losses.append(visible_loss(s, target))
    stacked = torch.stack(losses) if losses else state.new_zeros(0)
    return RefineResult(s, stacked)
