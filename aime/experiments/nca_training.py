"""Shortsighted single-trajectory training of the convolutional-attention NCA (seed 001).

:class:`ShortsightedTrainer` follows one long trajectory. Every step adds small noise
``N(0, sigma_small^2)``, makes one update, and takes one optimiser step on the MSE between the new
state and the target. The gradient flows through the current update into ``f``'s parameters but is
cut between steps (the incoming state is detached; the seed's ``f(s).detach()`` would cut ``f``
off entirely, which is not what it means). Whenever the loss falls below ``epsilon`` a large spike
``N(0, sigma_large^2)`` is added to the state carried to the next step: a new simulated trajectory.

``scripts/train_nca.py`` is its command line (targets, figures, ``results.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from aime.nn.nca import ConvAttentionNCA, check_target, inject_noise, visible_loss

__all__ = ["ShortsightedConfig", "ShortsightedTrainer", "TrainResult", "train_single_trajectory"]


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
        loss = visible_loss(s_next, target)
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
        check_target(state, target)
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
