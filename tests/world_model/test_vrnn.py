import inspect

import pytest
import torch
import torch.nn.functional as F

from aime.attention.positions import fourier_grid
from aime.config import ConfigError, LossScales, ModelConfig, TrainConfig, load_config
from aime.eval.objects import box_cells, map_lift
from aime.world_model import objectives
from aime.world_model.schema_losses import random_subset
from aime.world_model.vrnn import VRNN

SMALL = dict(deter=32, stoch=4, classes=4, hidden=32, cnn_depth=8, context_dim=16, num_slots=2)


def make_batch(b=2, t=6, actions=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {
        "obs": torch.randint(0, 256, (b, t, 3, 84, 84), dtype=torch.uint8, generator=g),
        "action": torch.randint(0, actions, (b, t), generator=g),
        "reward": torch.randn(b, t, generator=g),
        "is_first": torch.zeros(b, t, dtype=torch.bool),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    batch["is_first"][:, 0] = True
    return batch


def moving_square_video(b=4, t=8, seed=0):
    """A white square moving right by 4 pixels per step on black, from a random start."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.zeros(b, t, 3, 84, 84, dtype=torch.uint8)
    x0 = torch.randint(0, 40, (b,), generator=g)
    y0 = torch.randint(0, 70, (b,), generator=g)
    for i in range(b):
        for j in range(t):
            x = int(x0[i]) + 4 * j
            obs[i, j, :, y0[i] : y0[i] + 12, x : x + 12] = 255
    batch = make_batch(b, t)
    batch["obs"], batch["reward"] = obs, torch.zeros(b, t)
    return batch


def random_policy(feat):
    return F.one_hot(torch.randint(0, 3, (feat.shape[0],)), 3).float()


@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("latent", ["categorical", "gaussian", "stickbreaking"])
def test_observe_and_imagine_shapes(attention, latent):
    torch.manual_seed(0)
    model = VRNN(3, latent=latent, attention=attention, **SMALL)
    batch = make_batch()
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])
    s = model.latent.size
    assert s == (16 if latent == "categorical" else 4)
    assert out["deter"].shape == (2, 6, 32) and out["stoch"].shape == (2, 6, s)
    assert out["feat"].shape == (2, 6, 32 + s) and model.feat_size == 32 + s
    if attention:
        assert out["attention"].shape == (2, 6, 21, 21)
        torch.testing.assert_close(out["attention"].sum((-2, -1)), torch.ones(2, 6))
        assert out["slot_maps"].shape == (2, 6, 2, 21, 21) and out["coords"].shape == (2, 6, 2)
    start = {k: v.flatten(0, 1) for k, v in out.items() if k in ("deter", "stoch")}
    if attention:
        start["attention"] = out["attention"].flatten(0, 1)
    img = model.imagine(random_policy, start, horizon=4, attention=True)
    assert img["feat"].shape == (12, 5, 32 + s) and img["action"].shape == (12, 4, 3)
    torch.testing.assert_close(img["feat"][:, 0], out["feat"].flatten(0, 1))
    if attention:
        assert img["attention"].shape == (12, 5, 21, 21)


def test_state_resets_at_is_first():
    torch.manual_seed(0)
    model = VRNN(3, **SMALL)
    batch = make_batch(t=6)
    batch["is_first"][0, 3] = True
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])
    # after a reset h depends on nothing but the parameters: h = cell(in([0, 0]), 0)
    fresh = model.observe(batch["obs"][1:, 4:], batch["action"][1:, 4:], batch["is_first"][1:, 4:])
    torch.testing.assert_close(out["deter"][0, 3], fresh["deter"][0, 0])
    torch.testing.assert_close(out["deter"][0, 0], fresh["deter"][0, 0])
    assert not torch.allclose(out["deter"][1, 3], fresh["deter"][0, 0])  # no reset there


def test_continuing_from_a_returned_state_equals_one_long_observe():
    torch.manual_seed(0)
    model = VRNN(3, latent="gaussian", attention=False, **SMALL).eval()
    model.latent.sample = model.latent.mode  # deterministic filtering for the comparison
    batch = make_batch(t=6)
    whole = model.observe(batch["obs"], batch["action"], batch["is_first"])
    first = model.observe(batch["obs"][:, :3], batch["action"][:, :3], batch["is_first"][:, :3])
    second = model.observe(batch["obs"][:, 3:], batch["action"][:, 3:], batch["is_first"][:, 3:], first["state"])
    torch.testing.assert_close(second["deter"], whole["deter"][:, 3:])


def test_imagine_touches_no_observation():
    torch.manual_seed(0)
    model = VRNN(3, **SMALL)
    batch = make_batch()
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])

    def forbidden(*args, **kwargs):
        raise AssertionError("imagination read an observation")

    for module in (model.encoder, model.perception.context, model.schema.posterior_net):
        module.forward = forbidden
    start = {"deter": out["deter"][:, -1], "stoch": out["stoch"][:, -1], "attention": out["attention"][:, -1]}
    img = model.imagine(random_policy, start, horizon=5, attention=True)
    assert torch.isfinite(img["feat"]).all()


def test_imagining_with_the_prior_mode_draws_nothing_and_follows_the_mode():
    torch.manual_seed(0)
    model = VRNN(3, **SMALL)
    batch = make_batch()
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])
    start = {"deter": out["deter"][:, -1], "stoch": out["stoch"][:, -1]}

    def right(feat):
        return torch.nn.functional.one_hot(torch.full(feat.shape[:1], 2), 3).float()

    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        runs.append((model.imagine(right, start, 4), model.imagine(right, start, 4, sample=False)))
    (sampled_a, mode_a), (sampled_b, mode_b) = runs
    torch.testing.assert_close(mode_a["feat"], mode_b["feat"])  # no draw: the seed changes nothing
    assert not torch.equal(sampled_a["stoch"], sampled_b["stoch"])
    prior = model.latent.prior(mode_a["deter"][:, 1])
    torch.testing.assert_close(mode_a["stoch"][:, 1], model.latent.mode(prior))


@pytest.mark.parametrize("latent", ["categorical", "gaussian", "stickbreaking"])
def test_each_latent_trains_a_step(latent):
    torch.manual_seed(0)
    model = VRNN(3, latent=latent, **SMALL)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    total, terms, _ = model.loss(make_batch())
    assert torch.isfinite(total)
    expected = {
        "reconstruction",
        "kl",
        "reward",
        "continuation",
        "slot_diversity",
        "attention_prior",
        "attention_dynamics",
    }
    assert expected <= set(terms)
    opt.zero_grad()
    total.backward()
    opt.step()
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed > 0.8 * len(before)


@pytest.mark.parametrize("attention", [True, False])
def test_every_enabled_submodule_receives_gradient(attention):
    torch.manual_seed(0)
    model = VRNN(3, attention=attention, free_bits=0.0, **SMALL)
    total, _, _ = model.loss(make_batch())
    total.backward()
    # every leaf module with parameters has at least one parameter with a non-zero gradient
    # (the zero-initialised last layer of the reward head is the only source of zeros upstream)
    dead = []
    for name, module in model.named_modules():
        params = list(module.parameters(recurse=False))
        if not params or name.startswith("reward.net"):
            continue
        if all(p.grad is None or p.grad.abs().sum() == 0 for p in params):
            dead.append(name)
    assert not dead, f"disconnected: {dead}"
    assert model.reward.net[-1].weight.grad.abs().sum() > 0


def test_ablation_has_no_attention_modules_and_shares_the_rest():
    full, ablation = VRNN(3, **SMALL), VRNN(3, attention=False, **SMALL)
    assert not hasattr(ablation, "schema") and not hasattr(ablation, "context")
    names = lambda m: {n for n, _ in m.named_parameters()}  # noqa: E731
    shared = {n for n in names(ablation) if not n.startswith("latent.post_net.0")}
    assert shared <= names(full)
    _, terms, _ = ablation.loss(make_batch())
    assert "attention_prior" not in terms and torch.isfinite(terms["reconstruction"])


def test_loss_falls_on_a_moving_square():
    torch.manual_seed(0)
    model = VRNN(3, attention=False, **SMALL)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    batch = moving_square_video(b=2, t=6)
    losses = []
    for _ in range(60):
        total, terms, _ = model.loss(batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(terms["reconstruction"].item())
    assert sum(losses[-5:]) / 5 < 0.2 * sum(losses[:5]) / 5


def test_loss_falls_with_the_attention_schema():
    torch.manual_seed(0)
    model = VRNN(3, **SMALL)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    batch = moving_square_video(b=2, t=5)
    losses = []
    for _ in range(30):
        total, _, _ = model.loss(batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3


def test_from_config_and_loss_scales():
    cfg = load_config(["debug"], ["train.loss_scales.reward=0"])
    model = VRNN.from_config(cfg.model, num_actions=3, train=cfg.train)
    assert model.deter_size == cfg.model.deter and model.scales.reward == 0
    total, terms, _ = model.loss(make_batch())
    expected = sum(getattr(cfg.train.loss_scales, k) * v for k, v in terms.items() if k in LossScales.__annotations__)
    torch.testing.assert_close(total.detach(), expected)


def test_observe_step_matches_observe():
    torch.manual_seed(0)
    model = VRNN(3, latent="gaussian", **SMALL).eval()
    model.latent.sample = model.latent.mode
    batch = make_batch(b=2, t=3)
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])
    state = None
    for t in range(3):
        state, extra = model.observe_step(state, batch["obs"][:, t], batch["is_first"][:, t])
        torch.testing.assert_close(state["deter"], out["deter"][:, t])
        torch.testing.assert_close(extra["attention"], out["attention"][:, t])
        state["action"] = F.one_hot(batch["action"][:, t], 3).float()


def test_bad_inputs_raise():
    model = VRNN(3, attention=False, **SMALL)
    batch = make_batch()
    with pytest.raises(ValueError, match=r"obs: expected \[B, T, 3, H, W\]"):
        model.observe(batch["obs"][:, 0], batch["action"], batch["is_first"])
    with pytest.raises(ValueError, match="is_first: expected"):
        model.observe(batch["obs"], batch["action"], batch["is_first"][:, :3])
    with pytest.raises(ValueError, match="rnn"):
        VRNN(3, rnn="transformer")
    with pytest.raises(ValueError, match="unknown latent kind"):
        VRNN(3, latent="beta")


def test_lstm_transition():
    model = VRNN(3, rnn="lstm", attention=False, **SMALL)
    out = model.observe(*(make_batch()[k] for k in ("obs", "action", "is_first")))
    assert "cell" in out["state"] and out["feat"].shape == (2, 6, 48)


def test_attention_losses_on_a_subset_estimate_the_full_ones():
    torch.manual_seed(0)
    full = VRNN(3, attention_loss_fraction=1.0, **SMALL).eval()
    part = VRNN(3, attention_loss_fraction=0.3, **SMALL).eval()
    part.load_state_dict(full.state_dict())
    batch = make_batch(b=4, t=6)
    torch.manual_seed(1)
    out = full.observe(batch["obs"], batch["action"], batch["is_first"])
    exact = full.perception.losses(out, batch["is_first"], batch["obs"])
    estimates = [part.perception.losses(out, batch["is_first"], batch["obs"]) for _ in range(300)]
    for name in ("attention_prior", "attention_map"):
        mean = torch.stack([e[name] for e in estimates]).mean()
        torch.testing.assert_close(mean, exact[name], rtol=0.02, atol=0)
    assert random_subset(20, 0.3, torch.device("cpu")).unique().numel() == 6
    with pytest.raises(ValueError, match="attention_loss_fraction"):
        VRNN(3, attention_loss_fraction=0.0, **SMALL)


@pytest.mark.parametrize("target", ["motion", "none"])
def test_motion_target_teaches_the_posterior_to_look_at_what_moves(target):
    """An 8x8 square moving right on black: 60 Adam steps with the motion target put the posterior's
    mass on the square's cells (lift 44 measured, the most possible 110); without it the map stays
    uniform (lift 1.00, entropy ratio 1.00)."""
    torch.manual_seed(0)
    model = VRNN(3, attention_target=target, fpn_norm="none", **SMALL)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def video(seed, b=8, t=6):
        g = torch.Generator().manual_seed(seed)
        obs, boxes = torch.zeros(b, t, 3, 84, 84, dtype=torch.uint8), torch.zeros(b, t, 4)
        x0, y0 = torch.randint(0, 40, (b,), generator=g), torch.randint(0, 76, (b,), generator=g)
        for i in range(b):
            for j in range(t):
                x, y = int(x0[i]) + 4 * j, int(y0[i])
                obs[i, j, :, y : y + 8, x : x + 8] = 255
                boxes[i, j] = torch.tensor([x, y, x + 8, y + 8])
        batch = make_batch(b, t)
        batch["obs"], batch["reward"], batch["action"] = obs, torch.zeros(b, t), torch.zeros(b, t, dtype=torch.long)
        return batch, boxes

    for step in range(60):
        batch, _ = video(step)
        loss, terms, _ = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ("attention_target" in terms) == (target != "none")
    batch, boxes = video(999)
    with torch.no_grad():
        out = model.eval().observe(batch["obs"], batch["action"], batch["is_first"])
    lift = map_lift(out["attention"][:, 1:], box_cells(boxes[:, 1:], 21, 84)).mean()
    if target != "none":
        assert lift > 15
    else:
        assert lift < 2


def test_the_current_motion_target_is_the_cross_entropy_against_the_new_places():
    torch.manual_seed(0)
    model = VRNN(3, attention_target="current_motion", fpn_norm="none", **SMALL)
    batch = make_batch(2, 5)
    batch["is_first"][:, 3] = True  # steps 3 and 4 lean on a frame of the previous episode: masked
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])
    terms = model.perception.losses(out, batch["is_first"], batch["obs"])
    target, _ = objectives.current_motion_saliency(batch["obs"], 21)  # [2, 3, 21, 21], steps 2..4
    ce = -(target[:, 0] * out["attention"][:, 2].log()).sum((-2, -1)).mean()
    torch.testing.assert_close(terms["attention_target"], ce)
    terms["attention_target"].backward()
    assert model.schema.posterior_net.slot_modulator[0].weight.grad.abs().sum() > 0


def test_readout_position_tells_the_posterior_where_the_attention_rests():
    torch.manual_seed(0)
    model = VRNN(3, readout_position=True, readout_dim=8, **SMALL)
    frame = {k: v[:, 0] for k, v in model._encode(make_batch(t=1)["obs"]).items()}
    embed, extra = model.perception.step(torch.zeros(2, 32), frame["embed"], frame, {})
    assert embed.shape[-1] == model.perception.embed_size
    start = frame["embed"].shape[-1] + 8  # [embed, attention-pooled readout, position, phi]
    where = extra["attention"].flatten(1) @ fourier_grid(21).flatten(1).T  # [2, 16]
    torch.testing.assert_close(embed[:, start : start + 16], where)


def test_every_constructor_setting_is_a_config_key_with_the_configs_default():
    model, train = ModelConfig(), TrainConfig()
    by_hand = {"readout_position"}  # off when built by hand, on in the presets
    for name, param in inspect.signature(VRNN.__init__).parameters.items():
        if name in ("self", "num_actions", "loss_scales"):
            continue
        source = model if hasattr(model, name) else train
        assert hasattr(source, name), f"VRNN({name}=...) cannot be set with --set"
        if name not in by_hand:
            assert param.default == getattr(source, name), name
    built = VRNN.from_config(load_config(["debug"], ["model.prior_token_pool=1", "model.readout_dim=8"]).model, 3)
    assert built.encoder.readout.out_channels == 8


@pytest.mark.parametrize("decoder", ["conv", "nca"])
def test_64x64_frames_end_to_end(decoder):
    """A model of 64x64 frames (attention grid 16x16) filters, learns, predicts open loop and imagines."""
    torch.manual_seed(0)
    cfg = load_config(["debug"], ["model.image_size=64", "model.attention_resolution=16", f"model.decoder={decoder}"])
    on = decoder == "conv"
    model = VRNN.from_config(cfg.model, 3, cfg.train, decoder_attention=on, attention_detail=on, readout_position=True)
    b, t = 2, 4
    obs = torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8)
    batch = {
        "obs": obs,
        "action": torch.randint(0, 3, (b, t)),
        "reward": torch.randn(b, t),
        "is_first": torch.zeros(b, t, dtype=torch.bool),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    batch["is_first"][:, 0] = True
    total, _, out = model.loss(batch)
    total.backward()
    assert torch.isfinite(total) and out["attention"].shape == (b, t, 16, 16)
    assert model.decode(out["feat"][:, -1], out["attention"][:, -1]).shape == (b, 3, 64, 64)
    ahead = model.open_loop(obs, batch["action"], batch["is_first"], context=2)
    assert ahead["frames"].shape == (b, 2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"expected obs \[B, 3, 64, 64\]"):
        model.observe_step(None, obs[:, 0, 0], torch.ones(b, dtype=torch.bool))


def test_image_size_is_checked_against_the_attention_grid():
    with pytest.raises(ConfigError, match="attention_resolution' must be image_size / 4 = 16"):
        load_config(["debug"], ["model.image_size=64"])
    with pytest.raises(ConfigError, match="'model.image_size' must be a multiple of 4"):
        load_config(["debug"], ["model.image_size=70", "model.attention_resolution=18"])


def test_slot_persistence_carries_the_slots_through_observe_chunks_and_acting():
    """With slot_persistence the slots of t-1 seed those of t: the state carries them across chunks
    and acting steps, they restart at an episode's start, and they change what the posterior sees."""
    torch.manual_seed(0)
    model = VRNN(3, latent="gaussian", slot_persistence=True, **SMALL).eval()
    model.latent.sample = model.latent.mode
    with torch.no_grad():  # a carry that matters: without it the test could not tell
        model.schema.posterior_net.slot_carry[1].weight.mul_(20)
    batch = make_batch(t=6)
    batch["is_first"][1, 4] = True
    whole = model.observe(batch["obs"], batch["action"], batch["is_first"])
    assert whole["slots"].shape == (2, 6, 2, 16) and whole["state"]["slots"].shape == (2, 2, 16)
    first = model.observe(batch["obs"][:, :3], batch["action"][:, :3], batch["is_first"][:, :3])
    second = model.observe(batch["obs"][:, 3:], batch["action"][:, 3:], batch["is_first"][:, 3:], first["state"])
    torch.testing.assert_close(second["slot_maps"], whole["slot_maps"][:, 3:])
    cold = dict(first["state"], slots=torch.zeros_like(first["state"]["slots"]))
    forgot = model.observe(batch["obs"][:, 3:], batch["action"][:, 3:], batch["is_first"][:, 3:], cold)
    assert not torch.allclose(forgot["slot_maps"][0, 0], whole["slot_maps"][0, 3], atol=1e-4)
    torch.testing.assert_close(forgot["slot_maps"][1, 1:], whole["slot_maps"][1, 4:])  # the reset at t=4
    state = None
    for t in range(6):
        state, extra = model.observe_step(state, batch["obs"][:, t], batch["is_first"][:, t])
        torch.testing.assert_close(state["slots"], whole["slots"][:, t], rtol=1e-4, atol=1e-4)
        state["action"] = F.one_hot(batch["action"][:, t], 3).float()
    without = VRNN(3, **SMALL)
    assert "slot_carry" not in "".join(without.state_dict()) and "slots" not in without.initial_state(1)


def test_the_object_head_predicts_the_posteriors_slots_and_trains_with_the_model():
    torch.manual_seed(0)
    model = VRNN(3, object_policy=True, **SMALL)
    batch = moving_square_video(b=2, t=5)
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])
    k, d = SMALL["num_slots"], 2 * SMALL["cnn_depth"]
    assert out["slot_features"].shape == (2, 5, k, d)
    tokens = model.object_tokens(out["feat"])
    assert tokens.shape == (2, 5, k, d + 2) and tokens[..., -2:].abs().max() <= 1
    # the term is in the model's loss, and through s it asks the transition to carry the objects
    assert "objects" in model.loss(batch)[1]
    term = model.object_head.loss(out["feat"], out["slot_features"], out["slot_centers"]).mean()
    (cell_grad,) = torch.autograd.grad(term, model.cell.weight_hh)
    assert cell_grad.abs().sum() > 0
    # the head alone learns the slots of fixed states
    feat, features, centers = (out[k].detach() for k in ("feat", "slot_features", "slot_centers"))
    opt = torch.optim.Adam(model.object_head.parameters(), 1e-2)
    losses = []
    for _ in range(60):
        loss = model.object_head.loss(feat, features, centers).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert VRNN(3, **SMALL).object_tokens(out["feat"]) is None
    with pytest.raises(ValueError, match="object_policy needs attention"):
        VRNN(3, attention=False, object_policy=True, **SMALL)


@pytest.mark.parametrize("attention", [False, True])
def test_open_loop_loss_draws_frame_t_plus_j_from_the_state_imagined_j_steps_on(attention):
    """The term against a start-by-start computation: the prior rolled with the actions taken, the
    frame ``j`` steps on as the target, starts whose ``j`` steps cross an episode start left out."""
    torch.manual_seed(0)
    model = VRNN(3, attention=attention, decoder_attention=attention, open_loop_horizon=2, **SMALL)
    batch = make_batch(b=2, t=6)
    batch["is_first"][0, 3] = True
    out = model.observe(batch["obs"], batch["action"], batch["is_first"])
    torch.manual_seed(1)
    loss = model.open_loop_loss(batch, out)
    n = 4  # starts t = 0..3, each with 2 steps ahead in the window
    torch.manual_seed(1)  # the same draws: the rollout's samples, then the steps j
    start = {k: out[k][:, :n].flatten(0, 1) for k in ("deter", "stoch", "attention") if k in out}
    actions = F.one_hot(batch["action"], 3).float()
    queue = iter([actions[:, j : j + n].flatten(0, 1) for j in range(2)])
    img = model.imagine(lambda feat: next(queue), start, 2, attention=attention)
    steps = torch.randint(1, 3, (2 * n,))
    errors = []
    for row, j in enumerate(steps.tolist()):
        b, t = divmod(row, n)
        if batch["is_first"][b, t + 1 : t + j + 1].any():
            continue
        maps = img["attention"][row, j][None] if attention else None
        frame = model.decode(img["feat"][row, j][None], maps)
        target = batch["obs"][b, t + j][None].float() / 255.0
        errors.append((frame - target).square().sum())
    assert 0 < len(errors) < 2 * n  # the episode start at [0, 3] leaves some starts out
    assert torch.allclose(loss, torch.stack(errors).mean(), rtol=1e-5)


def test_open_loop_loss_reaches_the_transition_and_is_checked():
    torch.manual_seed(0)
    model = VRNN(3, attention=True, open_loop_horizon=2, **SMALL)
    batch = make_batch(t=5)
    total, terms, _ = model.loss(batch)
    assert terms["open_loop"] > 0
    model.zero_grad()
    terms_only = model.open_loop_loss(batch, model.observe(batch["obs"], batch["action"], batch["is_first"]))
    terms_only.backward()
    for part in (model.cell, model.img_in, model.latent, model.decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
    batch["is_first"][:] = True  # every step starts an episode: no start has a frame ahead in its episode
    assert model.open_loop_loss(batch, model.observe(batch["obs"], batch["action"], batch["is_first"])) == 0
    assert "open_loop" not in VRNN(3, attention=False, **SMALL).loss(batch)[1]  # off by default
    with pytest.raises(ValueError, match="open_loop_horizon"):
        VRNN(3, open_loop_horizon=-1, **SMALL)
    with pytest.raises(ConfigError, match="open_loop_horizon"):
        load_config(["debug"], ["train.open_loop_horizon=16", "train.seq_len=16"])
    cfg = load_config(["debug"], ["train.open_loop_horizon=3"])
    assert VRNN.from_config(cfg.model, 3, cfg.train).open_loop_horizon == 3


def test_open_loop_decoder_grad_false_leaves_the_decoder_to_the_posterior_frames():
    """With the decoder frozen for the term, its parameters get nothing from it, the transition and
    the encoder (through the start states) still do, the term's value is unchanged, and the
    decoder's parameters take gradients again afterwards."""
    batch = make_batch(t=5)
    values = {}
    for grad in (True, False):
        torch.manual_seed(0)
        model = VRNN(3, attention=True, open_loop_horizon=2, open_loop_decoder_grad=grad, **SMALL)
        out = model.observe(batch["obs"], batch["action"], batch["is_first"])
        torch.manual_seed(1)
        values[grad] = model.open_loop_loss(batch, out)
        values[grad].backward()
        decoder_grads = [p.grad for p in model.decoder.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in decoder_grads) == grad
        assert all(g is None for g in decoder_grads) != grad
        for part in (model.cell, model.latent, model.encoder):
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
        assert all(p.requires_grad for p in model.decoder.parameters())
    assert torch.allclose(values[True], values[False])
    model.zero_grad()
    model.loss(batch)[0].backward()  # the whole loss: the reconstruction still trains the decoder
    assert all(p.grad is not None for p in model.decoder.parameters())
    cfg = load_config(["debug"], ["train.open_loop_horizon=3", "train.open_loop_decoder_grad=false"])
    assert VRNN.from_config(cfg.model, 3, cfg.train).open_loop_decoder_grad is False
