import math
import os

import numpy as np
import pytest
import torch

from aime.agent.agent import Agent
from aime.config import ConfigError, load_config
from aime.runtime.replay import random_replay


def test_train_step_updates_every_part_and_reports_metrics():
    torch.manual_seed(0)
    agent = Agent(load_config(["debug", "tiny"]), num_actions=3)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics, finite = agent.train_step(random_replay(12).sample(2, 4))
    assert finite
    expected = {"losses/reconstruction", "losses/kl", "losses/actor", "losses/critic", "grad_norm/world_model"}
    assert expected <= set(metrics)
    assert all(math.isfinite(float(v)) for v in metrics.values())
    after = agent.state_dict()
    for prefix in ("world_model.decoder", "behavior.actor", "behavior.critic", "behavior.slow_critic"):
        keys = [k for k in before if k.startswith(prefix)]
        assert any(not torch.equal(before[k], after[k]) for k in keys), prefix


def test_behavior_step_trains_the_actor_and_critic_in_a_world_model_it_leaves_as_it_is():
    torch.manual_seed(0)
    agent = Agent(load_config(["debug", "tiny"]), num_actions=3)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics, finite = agent.behavior_step(random_replay(12).sample(2, 4))
    assert finite and {"behavior/actor_entropy", "losses/actor", "grad_norm/critic"} <= set(metrics)
    assert not any(k.startswith("losses/world_model") or k == "losses/kl" for k in metrics)
    after = agent.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("world_model."))
    for prefix in ("behavior.actor", "behavior.critic", "behavior.slow_critic"):
        keys = [k for k in before if k.startswith(prefix)]
        assert any(not torch.equal(before[k], after[k]) for k in keys), prefix


def test_train_step_without_the_actor_leaves_it_and_its_optimiser_as_they_are():
    torch.manual_seed(0)
    agent = Agent(load_config(["debug", "tiny"]), num_actions=3)
    batch = random_replay(12).sample(2, 4)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics, finite = agent.train_step(batch, learn_actor=False)
    assert finite and "grad_norm/critic" in metrics and "grad_norm/actor" not in metrics
    assert "losses/actor" in metrics  # still measured, only not stepped
    assert not agent.actor_opt.state  # no moment was created, so the actor's first step is a first step
    after = agent.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("behavior.actor"))
    for prefix in ("world_model.decoder", "behavior.critic", "behavior.slow_critic"):
        keys = [k for k in before if k.startswith(prefix)]
        assert any(not torch.equal(before[k], after[k]) for k in keys), prefix
    metrics, finite = agent.train_step(batch)
    assert finite and "grad_norm/actor" in metrics and agent.actor_opt.state
    assert any(not torch.equal(before[k], v) for k, v in agent.state_dict().items() if k.startswith("behavior.actor"))


def test_nonfinite_loss_skips_the_update():
    torch.manual_seed(0)
    agent = Agent(load_config(["debug", "tiny"]), num_actions=3)
    batch = random_replay(12).sample(2, 4)
    batch["reward"][:] = np.nan
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics, finite = agent.train_step(batch)
    assert not finite and metrics == {"nonfinite_loss": 1.0}
    assert all(torch.equal(before[k], v) for k, v in agent.state_dict().items())


def test_act_returns_valid_actions_and_carries_state():
    torch.manual_seed(0)
    agent = Agent(load_config(["debug", "tiny"]), num_actions=3)
    obs = {"obs": np.zeros((4, 3, 84, 84), np.uint8), "is_first": np.ones(4, bool)}
    action, state, extras = agent.act(obs, None, explore=True)
    assert action.shape == (4,) and action.dtype == np.int64 and ((0 <= action) & (action < 3)).all()
    assert state["action"].shape == (4, 3) and (state["action"].argmax(-1).numpy() == action).all()
    assert extras["attention"].shape == (4, 21, 21)
    greedy1, _, _ = agent.act({**obs, "is_first": np.zeros(4, bool)}, state, explore=False)
    greedy2, _, _ = agent.act({**obs, "is_first": np.zeros(4, bool)}, state, explore=False)
    assert (greedy1 == greedy2).all()


def test_compile_option_compiles_in_place_and_keeps_checkpoint_keys():
    from aime.agent.agent import COMPILED, COMPILED_STEPS

    cfg = load_config(["debug", "tiny"])
    eager = Agent(cfg, 3)
    cfg.train.compile = True
    compiled = Agent(cfg, 3)
    assert compiled.compiled == [*COMPILED, *COMPILED_STEPS] and eager.compiled == []
    for name in COMPILED:  # Module.compile wraps the call, not the module: names stay the same
        assert compiled.get_submodule(name)._compiled_call_impl is not None
    # the time step's methods are the instance's own, compiled; the class's stay eager
    assert "_posterior_step" in vars(compiled.world_model) and "_posterior_step" not in vars(eager.world_model)
    assert list(compiled.state_dict()) == list(eager.state_dict())
    compiled.load_state_dict(eager.state_dict())
    feat = torch.randn(5, compiled.world_model.feat_size)
    torch.testing.assert_close(compiled.behavior.actor(feat), eager.behavior.actor(feat), rtol=1e-4, atol=1e-5)


def test_compile_world_model_replaces_the_instances_loss_and_keeps_checkpoint_keys():
    cfg = load_config(["debug", "tiny"])
    eager = Agent(cfg, 3)
    cfg.train.compile_world_model = True
    compiled = Agent(cfg, 3)  # torch.compile is lazy: nothing compiles until the loss is called
    assert compiled.compiled == ["world_model.loss"] and eager.compiled == []
    assert "loss" in vars(compiled.world_model) and "loss" not in vars(eager.world_model)
    assert list(compiled.state_dict()) == list(eager.state_dict())


LONG_TESTS = os.environ.get("AIME_LONG_TESTS") == "1"


# compiling takes 1-2 minutes for the ablation and about 5 for the full model on the 2-core CPU
@pytest.mark.skipif(not LONG_TESTS, reason="compiles for minutes: AIME_LONG_TESTS=1")
@pytest.mark.parametrize("attention", [False, True])
def test_compile_world_model_gives_the_eager_losses_and_gradients(attention):
    # every step's loss subset is the whole batch: no random draw but the latents' and the slots'
    cfg = load_config(["debug", "tiny"], ["model.attention_loss_fraction=1", f"model.attention={attention}"])
    torch.manual_seed(0)
    eager = Agent(cfg, 3)
    cfg.train.compile_world_model = True
    compiled = Agent(cfg, 3)
    compiled.load_state_dict(eager.state_dict())
    data = eager.to_tensors(random_replay(12, seed=1).sample(2, 4))
    results = []
    for agent in (eager, compiled):
        # the same computation on both sides: z at the posterior's mode, no slot noise (eval mode)
        agent.world_model.latent.sample = agent.world_model.latent.mode
        agent.world_model.eval()
        loss, metrics, _ = agent.world_model.loss(data)
        loss.backward()
        grads = {n: p.grad for n, p in agent.world_model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), metrics, grads))
    (loss_e, metrics_e, grads_e), (loss_c, metrics_c, grads_c) = results
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-4, atol=1e-5)
    expected = {"kl", "reconstruction"} | ({"attention_prior", "slot_diversity"} if attention else set())
    assert set(metrics_c) == set(metrics_e) and expected <= set(metrics_e)
    for k in metrics_e:
        torch.testing.assert_close(metrics_c[k], metrics_e[k], rtol=1e-4, atol=1e-5, msg=k)
    assert set(grads_c) == set(grads_e) and len(grads_e) > 10
    for n in grads_e:
        torch.testing.assert_close(grads_c[n], grads_e[n], rtol=1e-3, atol=1e-5, msg=n)


def test_replay_value_grad_adds_the_replay_value_loss_to_the_world_models_update():
    on = ["train.loss_scales.replay_value=0.3"]
    batch = random_replay(12, seed=3).sample(2, 4)
    agents = []
    for extra in ([], ["train.replay_value_grad=true"]):
        torch.manual_seed(0)
        agents.append(Agent(load_config(["debug", "tiny"], on + extra), num_actions=3))
    plain, shaped = agents
    with torch.no_grad():  # a critic that has learned something: its output layer starts at zero
        for p in shaped.behavior.critic.parameters():
            p.add_(0.1 * torch.randn_like(p))
    plain.load_state_dict(shaped.state_dict())
    data = shaped.to_tensors(batch)
    _, _, out = shaped.world_model.loss(data)
    term, metrics = shaped._replay_value_term(data, out)
    assert term > 0 and torch.equal(term, 0.3 * metrics["replay_value_model"])
    term.backward()
    # the critic's loss at the posterior states reaches the state's makers: the transition and the encoder
    for part in ("cell", "encoder"):
        grads = [p.grad for p in getattr(shaped.world_model, part).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), part
    shaped.zero_grad(set_to_none=True)
    results = []
    for agent in agents:
        torch.manual_seed(1)
        results.append(agent.train_step(batch))
    (m_plain, ok_plain), (m_shaped, ok_shaped) = results
    assert ok_plain and ok_shaped and "losses/replay_value_model" not in m_plain
    assert math.isfinite(float(m_shaped["losses/replay_value_model"]))
    assert float(m_shaped["losses/world_model"]) > float(m_plain["losses/world_model"])
    moved = [
        not torch.equal(a, b)
        for (k, a), b in zip(plain.state_dict().items(), shaped.state_dict().values())
        if k.startswith("world_model.cell")
    ]
    assert any(moved)
    with pytest.raises(ConfigError, match="replay_value_grad"):
        load_config(["debug", "tiny"], ["train.replay_value_grad=true"])


def test_train_imagination_chooses_samples_or_the_priors_mode():
    assert Agent(load_config(["debug", "tiny"]), num_actions=3).behavior.sample
    assert not Agent(load_config(["debug", "tiny"], ["train.imagination=mode"]), num_actions=3).behavior.sample
    with pytest.raises(ConfigError, match="train.imagination"):
        load_config(["debug", "tiny"], ["train.imagination=mean"])
