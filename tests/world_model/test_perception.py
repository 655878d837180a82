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
