import pytest
import torch

from aime.world_model.perception import PERCEPTIONS, PlainPerception, SchemaPerception, make_perception
from aime.world_model.vrnn import VRNN

SMALL = dict(deter=32, stoch=4, classes=4, hidden=32, cnn_depth=8, context_dim=16, num_slots=2)


def _batch(t=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randint(0, 256, (2, t, 3, 84, 84), dtype=torch.uint8, generator=g),
        "action": torch.randint(0, 3, (2, t), generator=g),
        "is_first": torch.zeros(2, t, dtype=torch.bool),
    }


def test_the_attention_flag_picks_the_registry_entry():
    plain, schema = VRNN(3, attention=False, **SMALL), VRNN(3, **SMALL)
    assert isinstance(plain.perception, PlainPerception) and isinstance(schema.perception, SchemaPerception)
    assert not plain.attention_on and schema.attention_on
    assert sum(p.numel() for p in plain.perception.parameters()) == 0
    assert plain.latent.post_net[0].in_features == 32 + plain.perception.embed_size
    assert schema.latent.post_net[0].in_features == 32 + schema.perception.embed_size
    with pytest.raises(AttributeError, match="schema"):
        plain.schema  # noqa: B018
    with pytest.raises(ValueError, match="choose one of plain, schema"):
        make_perception("glimpse", embed_dim=8)
    assert set(PERCEPTIONS) == {"plain", "schema"}


def test_the_state_carries_what_perception_keeps():
    batch = _batch()
    for kwargs, carried in (({"attention": False}, set()), ({"slot_persistence": True}, {"attention", "slots"})):
        model = VRNN(3, **kwargs, **SMALL)
        out = model.observe(batch["obs"], batch["action"], batch["is_first"])
        assert set(out["state"]) - {"deter", "stoch", "action"} == carried
        assert set(model.initial_state(2)) - {"deter", "stoch", "action"} == carried


def test_checkpoints_with_the_schema_at_the_top_level_still_load():
    """State dicts written before perception was a module (``schema.*``, ``context.*``, ...)."""
    torch.manual_seed(0)
    model = VRNN(3, **SMALL).eval()
    old = {k.removeprefix("perception."): v for k, v in model.state_dict().items()}
    assert any(k.startswith("schema.posterior_net.") for k in old) and not any("perception" in k for k in old)
    torch.manual_seed(1)
    loaded = VRNN(3, **SMALL).eval()
    loaded.load_state_dict(old)  # strict: every key found
    batch = _batch()
    torch.manual_seed(2)
    a = model.observe(batch["obs"], batch["action"], batch["is_first"])
    torch.manual_seed(2)
    b = loaded.observe(batch["obs"], batch["action"], batch["is_first"])
    torch.testing.assert_close(a["attention"], b["attention"], rtol=0, atol=0)
    torch.testing.assert_close(a["feat"], b["feat"], rtol=0, atol=0)


def test_the_parameters_keep_the_order_optimizer_states_were_saved_in():
    model = VRNN(3, **SMALL)
    tops = []
    for name, _ in model.named_parameters():
        top = name.removeprefix("perception.").split(".")[0]
        if not tops or tops[-1] != top:
            tops.append(top)
    assert tops == [
        "encoder",
        "latent",
        "context",
        "schema",
        "phi",
        "attention_head",
        "img_in",
        "cell",
        "decoder",
        "reward",
        "cont",
    ]


def test_frame_seeded_slots_run_the_posterior_before_the_loop_and_ignore_h():
    """``slot_seeds="frame"``: the posterior is per-frame work, so its maps do not move with the
    actions (which change ``h``), acting sees the same maps as filtering, and the loss reaches the
    slot seeds; with the seed's ``"state"`` seeding the same change of actions moves the maps."""
    batch = _batch(t=5)
    batch["is_first"][:, 0] = True
    other = (batch["action"] + 1) % 3
    maps = {}
    for seeds in ("state", "frame"):
        torch.manual_seed(0)
        model = VRNN(3, slot_seeds=seeds, **SMALL).eval()
        with torch.no_grad():
            a = model.observe(batch["obs"], batch["action"], batch["is_first"])
            b = model.observe(batch["obs"], other, batch["is_first"])
        maps[seeds] = (a["attention"][:, 1:] - b["attention"][:, 1:]).abs().max()
        assert a["slot_maps"].shape == (2, 5, 2, 21, 21) and a["slot_centers"].shape == (2, 5, 2, 2)
        assert a["attention"].shape == (2, 5, 21, 21) and a["state"]["attention"].shape == (2, 21, 21)
        torch.testing.assert_close(a["state"]["attention"], a["attention"][:, -1])
        state = None
        for t in range(5 if seeds == "frame" else 0):  # z is drawn, so h differs between the two paths
            state, extra = model.observe_step(state, batch["obs"][:, t], batch["is_first"][:, t])
            state["action"] = torch.nn.functional.one_hot(batch["action"][:, t], 3).float()
            torch.testing.assert_close(extra["slot_maps"], a["slot_maps"][:, t], rtol=1e-4, atol=1e-5)
    assert maps["frame"] == 0 and maps["state"] > 1e-6
    seeder = VRNN(3, slot_seeds="frame", **SMALL).schema.posterior_net.slot_modulator[0]
    assert seeder.in_features == SMALL["context_dim"]  # c alone
    model = VRNN(3, slot_seeds="frame", **SMALL)
    batch.update(reward=torch.zeros(2, 5), is_terminal=torch.zeros(2, 5, dtype=torch.bool))
    model.loss(batch)[0].backward()
    assert model.schema.posterior_net.slot_modulator[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="cannot carry slots"):
        VRNN(3, slot_seeds="frame", slot_persistence=True, **SMALL)


def test_slot_iters_sets_the_posteriors_refinement_iterations():
    """``slot_iters``: fewer iterations change the maps (each iteration re-assigns the cells) and
    leave the parameters as they are, so a checkpoint loads under either count."""
    batch = _batch()
    maps = {}
    for iters in (3, 1):
        torch.manual_seed(0)
        model = VRNN(3, slot_iters=iters, **SMALL).eval()
        assert model.schema.posterior_net.slot_attention.iters == iters
        torch.manual_seed(1)
        with torch.no_grad():
            maps[iters] = model.observe(batch["obs"], batch["action"], batch["is_first"])["slot_maps"]
        if iters == 3:
            weights = model.state_dict()
    one = VRNN(3, slot_iters=1, **SMALL)
    one.load_state_dict(weights)  # strict: the same parameters
    assert (maps[3] - maps[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="slot_iters to be an int >= 1"):
        VRNN(3, slot_iters=0, **SMALL)


def _grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("slot_seeds", ["state", "frame"])
def test_own_attention_grad_keeps_the_world_models_losses_off_the_map_and_the_slots(slot_seeds):
    """``attention_grad="own"``: the reconstruction, KL, reward and continue terms reach the layers
    after the slots (the bottleneck, the centres' summary) but neither the slot attention nor its
    seeder, which then learn from the schema's terms on the maps alone; with ``"world"`` they reach
    both."""
    from aime.config.schema import LossScales

    batch = _batch(t=4)
    batch["is_first"][:, 0] = True
    batch.update(reward=torch.zeros(2, 4), is_terminal=torch.zeros(2, 4, dtype=torch.bool))
    world_terms = dict(reconstruction=1.0, kl=1.0, reward=1.0, continuation=1.0)
    off = {name: 0.0 for name in vars(LossScales()) if name not in world_terms}
    reached = {}
    for grad in ("world", "own"):
        for scales, label in ((LossScales(**world_terms, **off), "world terms"), (LossScales(), "all terms")):
            torch.manual_seed(0)
            model = VRNN(3, slot_seeds=slot_seeds, attention_grad=grad, loss_scales=scales, **SMALL)
            model.loss(batch)[0].backward()
            net = model.schema.posterior_net
            reached[grad, label] = {
                name: _grad_norm(part)
                for name, part in (
                    ("slots", net.slot_attention),
                    ("seeder", net.slot_modulator),
                    ("after the slots", net.bottleneck_projector),
                    ("centres", net.spatial_regularizer),
                )
            }
    assert all(v > 0 for v in reached["world", "world terms"].values())
    own = reached["own", "world terms"]
    assert own["slots"] == 0 and own["seeder"] == 0 and own["after the slots"] > 0 and own["centres"] > 0
    assert reached["own", "all terms"]["slots"] > 0 and reached["own", "all terms"]["seeder"] > 0  # the map's terms
    with pytest.raises(ValueError, match="attention_grad must be one of"):
        VRNN(3, attention_grad="none", **SMALL)
