import pytest
import torch

from aime.agent.behavior import Behavior, ReturnNormalizer, actor_loss, lambda_return, replay_lambda_return
from aime.world_model.vrnn import VRNN


def test_lambda_return_matches_a_hand_computation():
    reward = torch.tensor([[1.0, 0.0, 2.0]])
    cont = torch.tensor([[1.0, 1.0, 0.0]])
    value = torch.tensor([[0.5, 1.0, 2.0, 4.0]])
    g, lam = 0.9, 0.5
    r3 = 2.0 + g * 0.0 * ((1 - lam) * 4.0 + lam * 4.0)
    r2 = 0.0 + g * 1.0 * ((1 - lam) * 2.0 + lam * r3)
    r1 = 1.0 + g * 1.0 * ((1 - lam) * 1.0 + lam * r2)
    torch.testing.assert_close(lambda_return(reward, cont, value, g, lam), torch.tensor([[r1, r2, r3]]))
    # lambda = 0 is one-step TD, lambda = 1 the discounted Monte-Carlo return bootstrapped at the end
    td = lambda_return(reward, cont, value, g, 0.0)
    torch.testing.assert_close(td, reward + g * cont * value[:, 1:])
    with pytest.raises(ValueError, match="expected reward"):
        lambda_return(reward, cont, value[:, :3], g, lam)


def test_replay_lambda_return_uses_real_rewards_then_imagination_and_stops_at_episode_ends():
    reward = torch.tensor([[9.0, 1.0, 0.0, 2.0]])  # reward[:, 0] came before the window: never used
    boot = torch.tensor([[0.5, 1.0, 2.0, 4.0]])
    none = torch.zeros(1, 4, dtype=torch.bool)
    g, lam = 0.9, 0.5
    r2 = 2.0 + g * ((1 - lam) * 4.0 + lam * 4.0)  # R_{T-1} = b_{T-1}
    r1 = 0.0 + g * ((1 - lam) * 2.0 + lam * r2)
    r0 = 1.0 + g * ((1 - lam) * 1.0 + lam * r1)
    torch.testing.assert_close(replay_lambda_return(reward, none, none, boot, g, lam), torch.tensor([[r0, r1, r2]]))
    # the step into state 2 is terminal: R_1 is its reward alone, and R_0 reaches it through R_1
    terminal = torch.tensor([[False, False, True, False]])
    got = replay_lambda_return(reward, terminal, terminal, boot, g, lam)
    torch.testing.assert_close(got[0, :2], torch.tensor([1.0 + g * (1 - lam) * 1.0, 0.0]))
    # state 1 ends its episode (a new one follows): R_0 takes its bootstrap, nothing past it
    last = torch.tensor([[False, True, False, False]])
    torch.testing.assert_close(
        replay_lambda_return(reward, none, last, boot, g, lam)[0, 0], torch.tensor(1.0 + g * 1.0)
    )
    with pytest.raises(ValueError, match="expected reward"):
        replay_lambda_return(reward, none, none, boot[:, :3], g, lam)


def test_return_normalizer_tracks_the_percentile_range_and_floors_at_one():
    norm = ReturnNormalizer(decay=0.5)
    assert norm.update(torch.linspace(0, 0.1, 101)) == 1.0  # small ranges are not amplified
    scale = norm.update(torch.linspace(0, 100, 101))
    expected = 0.5 * 0.1 * 0.9 + 0.5 * 90.0
    assert abs(scale.item() - expected) < 1e-3


def test_actor_loss_pushes_probability_towards_positive_advantage():
    logits = torch.zeros(1, 3, requires_grad=True)
    log_prob = torch.log_softmax(logits, -1)[:, 0]
    loss = actor_loss(log_prob, torch.zeros(1), torch.tensor([1.0]), torch.ones(1), 0.0)
    loss.backward()
    assert logits.grad[0, 0] < 0  # gradient descent raises the logit of the advantaged action


def test_behavior_loss_trains_actor_and_critic_but_not_the_world_model():
    torch.manual_seed(0)
    wm = VRNN(3, deter=16, stoch=2, classes=3, hidden=16, cnn_depth=4, context_dim=8, num_slots=2, attention=False)
    beh = Behavior(wm.feat_size, 3, hidden=16, horizon=4)
    start = {"deter": torch.randn(5, 16), "stoch": torch.randn(5, 6)}
    a_loss, c_loss, metrics = beh.loss(wm, start, torch.ones(5))
    (a_loss + c_loss).backward()
    assert all(p.grad is None for p in wm.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in beh.actor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in beh.critic.parameters())
    assert set(metrics) >= {"imagined_return", "actor_entropy", "return_scale", "return_range", "advantage_std"}
    # the range is the normaliser's S before max(1, S); the first batch sets it
    assert metrics["return_scale"] == max(1.0, float(metrics["return_range"])) and metrics["advantage_std"] > 0


def test_actor_loss_scores_the_imagined_actions_under_the_policy_at_their_states(monkeypatch):
    # the actor's outputs in imagination serve its loss: they must be those of states 0..H-1
    torch.manual_seed(0)
    wm = VRNN(3, deter=16, stoch=2, classes=3, hidden=16, cnn_depth=4, context_dim=8, num_slots=2, attention=False)
    beh = Behavior(wm.feat_size, 3, hidden=16, horizon=4)
    seen, imagine = {}, wm.imagine
    monkeypatch.setattr(wm, "imagine", lambda *a, **k: seen.setdefault("traj", imagine(*a, **k)))

    def actor_loss(log_prob, entropy, *rest):
        seen.update(log_prob=log_prob, entropy=entropy)
        return log_prob.sum()

    monkeypatch.setattr("aime.agent.behavior.actor_loss", actor_loss)
    beh.loss(wm, {"deter": torch.randn(5, 16), "stoch": torch.randn(5, 6)}, torch.ones(5))
    traj = seen["traj"]
    fresh = beh.policy(traj["feat"][:, :-1])  # [5, 4, 1, 3]
    torch.testing.assert_close(seen["log_prob"], (traj["action"].unsqueeze(-2) * fresh.log_probs).sum((-2, -1)))
    torch.testing.assert_close(seen["entropy"], fresh.entropy())
    assert seen["log_prob"].requires_grad


@pytest.mark.parametrize("sample", [True, False])
def test_imagination_draws_z_from_the_prior_or_takes_its_mode(monkeypatch, sample):
    torch.manual_seed(0)
    wm = VRNN(3, deter=16, stoch=2, classes=3, hidden=16, cnn_depth=4, context_dim=8, num_slots=2, attention=False)
    beh = Behavior(wm.feat_size, 3, hidden=16, horizon=4, sample=sample)
    seen, imagine = {}, wm.imagine
    monkeypatch.setattr(wm, "imagine", lambda *a, **k: seen.setdefault("traj", imagine(*a, **k)))
    beh.loss(wm, {"deter": torch.randn(64, 16), "stoch": torch.randn(64, 6)}, torch.ones(64))
    traj = seen["traj"]
    with torch.no_grad():
        mode = wm.latent.mode(wm.latent.prior(traj["deter"][:, 1:]))
    # 64 x 4 draws from near-even priors over 3 classes: samples leave the mode somewhere
    assert torch.equal(traj["stoch"][:, 1:], mode) is not sample


def test_slow_critic_follows_the_critic_by_ema():
    beh = Behavior(6, 3, hidden=8, slow_decay=0.75)
    with torch.no_grad():
        for p in beh.critic.parameters():
            p.fill_(1.0)
        for p in beh.slow_critic.parameters():
            p.fill_(0.0)
    beh.update_slow_critic()
    for p in beh.slow_critic.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.25))


def test_act_modes():
    torch.manual_seed(0)
    beh = Behavior(6, 4, hidden=8)
    feat = torch.randn(10, 6)
    greedy = beh.act(feat, explore=False)
    assert greedy.shape == (10,) and torch.equal(greedy, beh.act(feat, explore=False))
    assert ((0 <= greedy) & (greedy < 4)).all()


def test_replay_value_loss_pulls_the_critic_at_replayed_states_to_the_real_returns():
    torch.manual_seed(0)
    wm = VRNN(3, deter=16, stoch=2, classes=3, hidden=16, cnn_depth=4, context_dim=8, num_slots=2, attention=False)
    b, t = 2, 5
    start = {"deter": torch.randn(b * t, 16), "stoch": torch.randn(b * t, 6)}
    replay = {
        "reward": torch.full((b, t), 3.0),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
        "is_first": torch.zeros(b, t, dtype=torch.bool),
    }
    plain = Behavior(wm.feat_size, 3, hidden=16, horizon=4)
    beh = Behavior(wm.feat_size, 3, hidden=16, horizon=4, replay_value=1.0)
    beh.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    _, c_plain, _ = plain.loss(wm, start, torch.ones(b * t))
    torch.manual_seed(1)
    _, c_loss, metrics = beh.loss(wm, start, torch.ones(b * t), replay=replay)
    # the same imagination, plus the replay term: the real rewards (3 a step) lift the returns
    assert c_loss > c_plain and metrics["replay_return"] > 2.9 and metrics["replay_value_loss"] > 0
    feat = wm.feat(start)
    for net, kwargs in ((plain, {}), (beh, {"replay": replay})):
        opt = torch.optim.Adam(net.critic.parameters(), 1e-2)
        for _ in range(40):
            _, loss, _ = net.loss(wm, start, torch.ones(b * t), **kwargs)
            opt.zero_grad()
            loss.backward()
            opt.step()
    # imagination alone pays the untrained reward head's ~0; the replay term teaches these states pay
    assert beh.value(feat).mean().mean() > plain.value(feat).mean().mean() + 0.5
    with pytest.raises(ValueError, match="replayed windows"):
        beh.loss(wm, start, torch.ones(b * t))
    with pytest.raises(ValueError, match="replayed windows are"):
        beh.loss(wm, start, torch.ones(b * t), replay={k: v[:, :4] for k, v in replay.items()})
    with pytest.raises(ValueError, match="replay_value"):
        Behavior(wm.feat_size, 3, replay_value=-1.0)
