"""Tests of aime.experiments.nca_training: shortsighted single-trajectory training of the NCA."""

import pytest
import torch

from aime.experiments.nca_training import ShortsightedConfig, ShortsightedTrainer, train_single_trajectory
from aime.nn.nca import ConvAttentionNCA


def _red(hw: int) -> torch.Tensor:
    target = torch.zeros(1, 3, hw, hw)
    target[:, 0] = 1.0
    return target


def test_uniform_red_reaches_epsilon_within_1000_steps():
    torch.manual_seed(1)
    nca = ConvAttentionNCA()
    cfg = ShortsightedConfig(max_steps=1000, max_spikes=1, seed=1)
    result = train_single_trajectory(nca, _red(16), cfg)
    assert result.first_epsilon_step is not None and result.first_epsilon_step <= 1000
    assert min(result.losses) < cfg.epsilon
    assert result.losses[0] > 100 * cfg.epsilon  # it started far away
    assert result.num_spikes == 1 and result.spike_steps[0] == result.first_epsilon_step
    assert len(result.losses) == result.first_epsilon_step  # stopped at max_spikes


def test_spike_fires_below_epsilon_and_moves_the_state():
    # f that maps any state exactly to red: attend to self, value = state, output = -value + red.
    nca = ConvAttentionNCA(hidden=3, zero_init_output=False)
    with torch.no_grad():
        for p in nca.parameters():
            p.zero_()
        nca.offset_bias[4] = 50.0
        nca.key_value.weight[3:, :, 0, 0] = torch.eye(3)
        nca.out.weight[:, :, 0, 0] = -torch.eye(3)
        nca.out.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    target = _red(16)
    cfg = ShortsightedConfig(max_steps=5, lr=1e-12, seed=0)
    trainer = ShortsightedTrainer(nca, cfg)
    state = torch.zeros(1, 3, 16, 16)
    nxt, loss, spiked = trainer.step(state, target)
    assert loss < cfg.epsilon and spiked
    moved = (nxt - target).pow(2).mean().item()  # the spike put the state ~sigma_large^2 away
    assert moved == pytest.approx(cfg.sigma_large**2, rel=0.25)
    assert moved > 10 * cfg.epsilon
    # and above epsilon nothing is injected beyond the small noise
    trainer2 = ShortsightedTrainer(ConvAttentionNCA(), ShortsightedConfig(seed=0))
    far = torch.zeros(1, 3, 16, 16)
    nxt2, loss2, spiked2 = trainer2.step(far, target)
    assert not spiked2 and loss2 > cfg.epsilon
    assert (nxt2 - far).pow(2).mean().item() == pytest.approx(cfg.sigma_small**2, rel=0.3)


def test_trainer_records_snapshots_and_updates_parameters():
    nca = ConvAttentionNCA()
    before = [p.detach().clone() for p in nca.parameters()]
    cfg = ShortsightedConfig(max_steps=30, snapshot_every=10, seed=0)
    result = ShortsightedTrainer(nca, cfg).train(_red(6))
    assert [s for s, _ in result.snapshots] == [0, 10, 20, 30]
    assert all(t.shape == (1, 3, 6, 6) for _, t in result.snapshots)
    assert len(result.losses) == 30
    assert any(not torch.equal(a, b) for a, b in zip(before, nca.parameters()))


def test_trainer_step_cuts_gradient_to_incoming_state_and_updates_f():
    nca = ConvAttentionNCA(zero_init_output=False)
    trainer = ShortsightedTrainer(nca, ShortsightedConfig(seed=0))
    incoming = torch.randn(1, 3, 6, 6, requires_grad=True)
    before = [p.detach().clone() for p in nca.parameters()]
    nxt, loss, _ = trainer.step(incoming * 1.0, _red(6))
    assert incoming.grad is None
    assert not nxt.requires_grad
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in nca.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, nca.parameters()))


def test_config_validation():
    with pytest.raises(ValueError):
        ShortsightedConfig(epsilon=0.0)
    with pytest.raises(ValueError):
        ShortsightedConfig(max_spikes=0)


def test_trainer_rejects_a_state_that_does_not_match_the_target():
    with pytest.raises(ValueError):
        ShortsightedTrainer(ConvAttentionNCA()).train(torch.zeros(1, 3, 6, 6), state=torch.zeros(1, 3, 5, 5))
