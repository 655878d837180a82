import dataclasses

import pytest

from aime.config import (
    RESUME_KEYS,
    Config,
    ConfigError,
    apply_resume_overrides,
    available_presets,
    default_preset,
    describe,
    flatten,
    load_config,
    load_config_file,
    save_config,
)


def test_every_preset_loads_and_differs_from_defaults():
    names = available_presets()
    assert {"debug", "cpu", "atari100k"} <= set(names)
    defaults = flatten(Config())
    for name in names:
        cfg = load_config([name])
        assert isinstance(cfg, Config)
        assert flatten(cfg) != defaults or name == "atari100k"


def test_presets_apply_in_order_then_overrides():
    cfg = load_config(["cpu", "debug"])
    assert cfg.model.deter == 64  # debug wins over cpu
    assert load_config(["debug", "cpu"]).model.deter == 128
    cfg = load_config(
        ["debug"],
        ["model.deter=48", "train.model_lr=3e-4", "env.name=Pong", "model.attention=false", "train.loss_scales.kl=0.5"],
    )
    assert cfg.model.deter == 48 and cfg.train.model_lr == pytest.approx(3e-4)
    assert cfg.env.name == "Pong" and cfg.model.attention is False
    assert cfg.train.loss_scales.kl == 0.5


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert load_config([], ["train.train_ratio=8"]).train.train_ratio == 8.0
    with pytest.raises(ConfigError, match="expected int"):
        load_config([], ["model.deter=1.5"])
    with pytest.raises(ConfigError, match="expected bool"):
        load_config([], ["model.attention=1"])


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("model.detr=3", "model.deter"),
        ("deter=3", "model.deter"),
        ("train.batchsize=3", "train.batch_size"),
        ("train.loss_scales.kll=1", "train.loss_scales.kl"),
    ],
)
def test_unknown_keys_suggest_the_closest(override, suggestion):
    with pytest.raises(ConfigError, match="unknown config key") as info:
        load_config([], [override])
    assert repr(suggestion) in str(info.value)


def test_unknown_key_inside_a_preset_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  detr: 3\n")
    with pytest.raises(ConfigError, match="'model.deter'"):
        load_config([str(path)])


def test_unknown_preset_and_bad_values():
    with pytest.raises(ConfigError, match="Did you mean 'cpu'"):
        load_config(["cppu"])
    with pytest.raises(ConfigError, match="must be > 0"):
        load_config([], ["train.batch_size=0"])
    with pytest.raises(ConfigError, match="not one of"):
        load_config([], ["model.latent=beta"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config([], ["model.deter"])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        load_config([], ["env.repeat_action_probability=2"])
    with pytest.raises(ConfigError, match=r"attention_dropout' must lie in \[0, 1\)"):
        load_config([], ["model.attention_dropout=1.0"])
    with pytest.raises(ConfigError, match="'model.prior_position_bias': 'absolute' is not one of none, relative"):
        load_config([], ["model.prior_position_bias=absolute"])
    with pytest.raises(ConfigError, match="'model.prior_token_pool' must be > 0"):
        load_config([], ["model.prior_token_pool=0"])
    with pytest.raises(ConfigError, match="'replay.prefetch': 'maybe' is not one of auto, thread, none"):
        load_config([], ["replay.prefetch=maybe"])
    with pytest.raises(ConfigError, match="'model.slot_seeds': 'h' is not one of state, frame"):
        load_config([], ["model.slot_seeds=h"])
    with pytest.raises(ConfigError, match="cannot carry slots from step to step"):
        load_config([], ["model.slot_seeds=frame", "model.slot_persistence=true"])
    assert load_config([], ["model.slot_seeds=frame", "model.attention=false", "model.slot_persistence=true"])
    with pytest.raises(ConfigError, match="'model.attention_grad': 'none' is not one of world, own"):
        load_config([], ["model.attention_grad=none"])
    assert load_config([], ["model.attention_grad=own"]).model.attention_grad == "own"
    with pytest.raises(ConfigError, match="'model.slot_iters' must be > 0, got 0"):
        load_config([], ["model.slot_iters=0"])


def test_save_and_load_round_trip(tmp_path):
    cfg = load_config(["debug"], ["model.deter=40"])
    save_config(cfg, tmp_path / "config.yaml")
    assert dataclasses.asdict(load_config_file(tmp_path / "config.yaml")) == dataclasses.asdict(cfg)


def test_default_preset_depends_on_cuda():
    assert default_preset(True) == "atari100k" and default_preset(False) == "cpu"


def test_describe_lists_every_leaf_with_its_doc():
    rows = {key: doc for key, _, doc in describe()}
    assert set(rows) == set(flatten(Config()))
    assert "Deterministic" in rows["model.deter"]


def test_the_attention_detail_and_the_map_decoder_are_checked_together():
    # the attention measurements' settings: the decoder reads the map and its sub-cell detail
    on = ["model.decoder_attention=true", "model.attention_detail=true"]
    assert load_config(["atari100k"], on).model.attention_detail
    with pytest.raises(ConfigError, match="attention_detail' needs 'model.decoder_attention: true'"):
        load_config(["atari100k"], ["model.attention_detail=true"])
    ablation = ["model.attention_detail=true", "model.attention=false"]
    assert load_config(["atari100k"], ablation).model.attention_detail
    with pytest.raises(ConfigError, match="field"):
        load_config(["atari100k"], ["model.decoder=field", "model.decoder_attention=true"])
    assert load_config(["atari100k"], ["model.decoder=field"]).model.decoder == "field"
    assert load_config(["cpu"], ["model.decoder=field"]).model.decoder == "field"  # cpu's decoder reads no map
    with pytest.raises(ConfigError, match="attention_detail_dropout"):
        load_config(["cpu"], ["model.attention_detail_dropout=1.5"])


@pytest.mark.parametrize("preset", ["cpu", "atari100k"])
def test_agents_decode_from_the_state_alone_and_attention_md_can_restore_the_map(preset):
    model = load_config([preset]).model
    assert model.attention and not model.decoder_attention and not model.attention_detail
    restored = load_config([preset], ["model.decoder_attention=true", "model.attention_detail=true"]).model
    assert restored.decoder_attention and restored.attention_detail


def test_the_object_policy_needs_the_attention_schema():
    assert load_config(["cpu"], ["model.object_policy=true"]).model.object_policy
    with pytest.raises(ConfigError, match="object_policy' needs 'model.attention: true'"):
        load_config(["cpu"], ["model.object_policy=true", "model.attention=false"])


def test_a_resumed_run_may_change_only_how_it_computes_and_reports():
    cfg = load_config(["debug"])
    changed = apply_resume_overrides(
        cfg, ["train.compile_world_model=true", "log.scalars_every=8", "train.compile=false"]
    )
    assert cfg.train.compile_world_model is True and cfg.log.scalars_every == 8
    assert changed == ["train.compile_world_model=True", "log.scalars_every=8"]  # compile was already off
    for text, message in [
        ("model.deter=8", "--set may change only train.compile"),
        ("train.model_lr=1e-3", "got 'train.model_lr'"),
        ("log.scalars_every=often", "log.scalars_every"),
    ]:
        before = flatten(cfg)
        with pytest.raises(ConfigError, match=message):
            apply_resume_overrides(cfg, [text])
        assert flatten(cfg) == before
    assert all(key in flatten(cfg) for key in RESUME_KEYS)
