"""Neural cellular automaton with convolutional attention and its shortsighted trainer (seed 001).

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

Training (:class:`ShortsightedTrainer`) follows one long trajectory. Every step adds small noise
``N(0, sigma_small^2)``, makes one update, and takes one optimiser step on the MSE between the new
state and the target. The gradient flows through the current update into ``f``'s parameters but is
cut between steps (the incoming state is detached; the seed's ``f(s).detach()`` would cut ``f``
off entirely, which is not what it means). Whenever the loss falls below ``epsilon`` a large spike
``N(0, sigma_large^2)`` is added to the state carried to the next step: a new simulated trajectory.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
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


def _visible_loss(state: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the first ``target.shape[1]`` channels of ``state`` and ``target``."""
    return F.mse_loss(state[:, : target.shape[1]], target)


def _check_target(state: torch.Tensor, target: torch.Tensor) -> None:
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
        _check_target(state, target)
    losses = []
    s = state
    for k in range(steps):
        if k > 0 or detach_input:
            s = s.detach()
        s = nca(inject_noise(s, sigma_small, generator))
        if target is not None:
            losses.append(_visible_loss(s, target))
    stacked = torch.stack(losses) if losses else state.new_zeros(0)
    return RefineResult(s, stacked)


@dataclass
class ShortsightedConfig:
    """Hyper-parameters of single-trajectory shortsighted training (the seed's values by default)."""

    max_steps: int = 10_000
    max_spikes: int | None = None  # stop after this many spikes (simulated trajectories)
    # The seed starts at 1e-3 and says to adjust for convergence speed: at 1e-3 a uniform red
    # target had not reached epsilon after 1,500 steps; at 1e-2 it does in about 250-1,000.
    lr: float = 1e-2
    sigma_small: float = 0.01  # std of the constant per-step noise
    sigma_large: float = 0.1  # std of the spike
    epsilon: float = 1e-3  # loss below which the state counts as "at the target"
    snapshot_every: int = 100
    init_std: float = 1.0  # the initial state is N(0, init_std^2)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.snapshot_every < 1:
            raise ValueError(f"expected max_steps, snapshot_every >= 1, got {self.max_steps}, {self.snapshot_every}")
        if self.sigma_small < 0 or self.sigma_large < 0 or self.epsilon <= 0 or self.lr <= 0:
            raise ValueError(f"expected non-negative sigmas and positive epsilon, lr, got {asdict(self)}")
        if self.max_spikes is not None and self.max_spikes < 1:
            raise ValueError(f"expected max_spikes None or >= 1, got {self.max_spikes}")


@dataclass
class TrainResult:
    """What a training run produced.

    ``losses``: loss after every step; ``snapshots``: (step, state ``[B, C, H, W]`` on CPU) every
    ``snapshot_every`` steps; ``spike_steps``: steps after which a spike was injected;
    ``first_epsilon_step``: the first step whose loss fell below epsilon (None if never).
    """

    losses: list[float] = field(default_factory=list)
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    spike_steps: list[int] = field(default_factory=list)
    first_epsilon_step: int | None = None
    final_state: torch.Tensor | None = None

    @property
    def num_spikes(self) -> int:
        return len(self.spike_steps)


class ShortsightedTrainer:
    """Trains a :class:`ConvAttentionNCA` on one long trajectory towards ``target``.

    Per step: ``s <- s.detach() + N(0, sigma_small^2)``; ``s_next = s + f(s)``;
    ``loss = MSE(s_next, target)``; one Adam step; if ``loss < epsilon``:
    ``s_next <- s_next + N(0, sigma_large^2)`` (spike); ``s <- s_next``.
    """

    def __init__(self, nca: ConvAttentionNCA, config: ShortsightedConfig | None = None) -> None:
        self.nca = nca
        self.config = config or ShortsightedConfig()
        self.optimizer = torch.optim.Adam(nca.parameters(), lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(self.config.seed)

    def initial_state(self, target: torch.Tensor) -> torch.Tensor:
        """A random state ``[B, C, H, W]`` shaped after ``target [B, C_t, H, W]``."""
        b, _, h, w = target.shape
        shape = (b, self.nca.channels, h, w)
        return (torch.randn(shape, generator=self.generator) * self.config.init_std).to(target.device, target.dtype)

    def step(self, state: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float, bool]:
        """One shortsighted step: returns the next state (detached), the loss and whether it spiked."""
        cfg = self.config
        s = inject_noise(state.detach(), cfg.sigma_small, self.generator)
        s_next = self.nca(s)
        loss = _visible_loss(s_next, target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        value = loss.item()
        s_next = s_next.detach()
        spiked = value < cfg.epsilon
        if spiked:
            s_next = inject_noise(s_next, cfg.sigma_large, self.generator)
        return s_next, value, spiked

    def train(self, target: torch.Tensor, state: torch.Tensor | None = None) -> TrainResult:
        """Run until ``max_steps`` or ``max_spikes``; ``target [B, C_t, H, W]`` (C_t <= channels)."""
        cfg = self.config
        state = self.initial_state(target) if state is None else state
        self.nca._check(state)
        _check_target(state, target)
        result = TrainResult(snapshots=[(0, state.detach().cpu().clone())])
        for step in range(1, cfg.max_steps + 1):
            state, loss, spiked = self.step(state, target)
            result.losses.append(loss)
            if loss < cfg.epsilon and result.first_epsilon_step is None:
                result.first_epsilon_step = step
            if spiked:
                result.spike_steps.append(step)
            if step % cfg.snapshot_every == 0:
                result.snapshots.append((step, state.cpu().clone()))
            if cfg.max_spikes is not None and result.num_spikes >= cfg.max_spikes:
                break
        result.final_state = state
        return result


def train_single_trajectory(
    nca: ConvAttentionNCA, target: torch.Tensor, config: ShortsightedConfig | None = None
) -> TrainResult:
    """Convenience wrapper: ``ShortsightedTrainer(nca, config).train(target)``."""
    return ShortsightedTrainer(nca, config).train(target)
