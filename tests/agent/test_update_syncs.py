"""The update without host syncs: metrics stay on the device, one finiteness flag per update, and a
non-finite update is skipped on the device (fused optimisers) exactly as the host branch skips it."""

import contextlib
import copy

import numpy as np
import pytest
import torch

from aime.agent.agent import NONFINITE, Agent
from aime.agent.behavior import ReturnNormalizer
from aime.config import load_config
from aime.runtime.replay import random_replay

# every way a tensor's value reaches Python
CONVERSIONS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


def batch(nan_reward: bool = False) -> dict[str, np.ndarray]:
    out = random_replay(12, capacity=100).sample(2, 4)
    if nan_reward:
        out["reward"][:] = np.nan
    return out


def agent(fused: bool) -> Agent:
    torch.manual_seed(0)
    return Agent(load_config(["debug", "tiny"]), num_actions=3, fused=fused)


@contextlib.contextmanager
def counting_conversions(monkeypatch):
    """Count every conversion of a tensor's value to a Python value (each one a host sync on a GPU)."""
    calls: list[str] = []
    for name in CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    yield calls
    monkeypatch.undo()


def test_a_fused_update_reads_the_device_once(monkeypatch):
    """Fused optimisers (CUDA's default): one read per update, the finiteness flag at its end."""
    a, data = agent(fused=True), batch()
    a.train_step(data)  # the first step creates the optimisers' state
    with counting_conversions(monkeypatch) as calls:
        metrics, finite = a.train_step(data)
    assert finite and calls == ["__bool__"]
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in metrics.values())


def test_an_unfused_update_reads_the_flag_before_each_step(monkeypatch):
    """Unfused (CPU's default, where a read costs nothing): the flag twice; the foreach Adam itself
    reads its step counters with ``item()``, which live on the host on every device."""
    a, data = agent(fused=False), batch()
    a.train_step(data)
    with counting_conversions(monkeypatch) as calls:
        a.train_step(data)
    assert calls.count("__bool__") == 2 and set(calls) == {"__bool__", "item"}


def state(a: Agent) -> dict[str, torch.Tensor]:
    """Everything an update may change: parameters, buffers, optimiser moments and step counts."""
    out = {k: v.clone() for k, v in a.state_dict().items()}
    for name, opt in a.optimizers().items():
        for i, s in enumerate(opt.state.values()):
            out.update({f"{name}.{i}.{k}": v.clone() for k, v in s.items()})
    return out


def changed(before: dict, after: dict, prefix: str = "") -> list[str]:
    return [k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])]


@pytest.mark.parametrize("fused", [True, False])
def test_a_nonfinite_world_model_loss_changes_nothing(fused):
    a = agent(fused)
    a.train_step(batch())
    before = state(a)
    metrics, finite = a.train_step(batch(nan_reward=True))
    assert not finite and metrics == NONFINITE
    assert changed(before, state(a)) == []


@pytest.mark.parametrize("fused", [True, False])
def test_a_nonfinite_behaviour_loss_skips_only_the_behaviour(monkeypatch, fused):
    a = agent(fused)
    a.train_step(batch())
    loss = a.behavior.loss

    def nan_actor(*args, **kwargs):
        actor, critic, metrics = loss(*args, **kwargs)
        return actor * float("nan"), critic, metrics

    monkeypatch.setattr(a.behavior, "loss", nan_actor)
    before = state(a)
    metrics, finite = a.train_step(batch())
    after = state(a)
    assert not finite and metrics == NONFINITE
    assert changed(before, after, "world_model.") and changed(before, after, "model.")  # its step was taken
    for part in ("behavior.", "actor.", "critic."):  # networks, slow critic, return range, optimisers
        assert changed(before, after, part) == [], part


def test_unfused_optimizers_are_foreach_and_step_as_the_per_tensor_loop():
    """Unfused means foreach by name (torch's CPU default is its per-tensor loop): the same
    parameters and moments, bit for bit, after two updates from the same state."""
    a = agent(False)
    assert all(g["foreach"] is True and not g["fused"] for o in a.optimizers().values() for g in o.param_groups)
    a.train_step(batch())
    looped = copy.deepcopy(a)
    for opt in looped.optimizers().values():
        for group in opt.param_groups:
            group["foreach"] = False
    torch.manual_seed(5)
    a.train_step(batch())
    torch.manual_seed(5)
    looped.train_step(batch())
    assert changed(state(a), state(looped)) == []


def test_fused_optimizers_stay_fused_when_a_foreach_checkpoint_is_loaded():
    unfused, fused = agent(False), agent(True)
    unfused.train_step(batch())
    for name, opt in fused.optimizers().items():
        opt.load_state_dict(unfused.optimizers()[name].state_dict())
        assert opt.param_groups[0]["fused"] is True
    metrics, finite = fused.train_step(batch())  # found_inf needs the fused implementation
    assert finite


def test_the_return_normalizer_starts_at_the_first_range_then_moves_by_ema(monkeypatch):
    norm = ReturnNormalizer(decay=0.5, low=0.0, high=1.0)
    with counting_conversions(monkeypatch) as calls:
        first = norm.update(torch.tensor([0.0, 4.0]))  # range 4
        second = norm.update(torch.tensor([0.0, 2.0]))  # 0.5 * 4 + 0.5 * 2
    assert calls == []  # no host read
    assert float(first) == 4.0 and float(second) == 3.0 and bool(norm.initialised)
