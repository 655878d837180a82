import os
import random
import shutil
import warnings

import numpy as np
import pytest
import torch

from aime.runtime import checkpoint as ckpt


def test_save_and_load_round_trip(tmp_path):
    payload = {"agent": {"w": torch.arange(4.0)}, "counters": {"env_steps": 10}, "config": {"seed": 3}}
    ckpt.save_agent_state(tmp_path / "agent.pt", payload)
    loaded = ckpt.load_agent_state(tmp_path / "agent.pt")
    assert torch.equal(loaded["agent"]["w"], torch.arange(4.0)) and loaded["counters"]["env_steps"] == 10
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_rng_state_round_trip():
    state = ckpt.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_rng_state_survives_a_safe_load(tmp_path):
    ckpt.save_agent_state(tmp_path / "a.pt", {"rng": ckpt.rng_state()})
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.set_rng_state(ckpt.load_agent_state(tmp_path / "a.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


class Payload:
    """Unpickling this would run code (its constructor); a safe loader must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_checkpoint_cannot_run_code(tmp_path, capsys):
    torch.save({"format_version": 1, "evil": Payload()}, tmp_path / "agent.pt")
    with pytest.raises(ckpt.CheckpointError, match="not a readable AIME checkpoint"):
        ckpt.load_agent_state(tmp_path / "agent.pt")
    assert "this must never run" not in capsys.readouterr().out


def test_damaged_or_foreign_files_give_clear_errors(tmp_path):
    ckpt.save_agent_state(tmp_path / "agent.pt", {"x": torch.zeros(1000)})
    data = (tmp_path / "agent.pt").read_bytes()
    (tmp_path / "agent.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="not a readable"):
        ckpt.load_agent_state(tmp_path / "agent.pt")
    torch.save({"format_version": 99}, tmp_path / "other.pt")
    with pytest.raises(ckpt.CheckpointError, match="format 99"):
        ckpt.load_agent_state(tmp_path / "other.pt")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint"):
        ckpt.load_agent_state(tmp_path / "missing.pt")
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint found"):
        ckpt.find_checkpoint(tmp_path / "nowhere")


def test_load_run_config_reads_the_saved_configuration(tmp_path):
    from aime.config import load_config, to_dict
    from aime.runtime.checkpoint import load_run_config, save_agent_state

    cfg = load_config(["debug"], ["model.deter=40"])
    save_agent_state(tmp_path / "agent.pt", {"config": to_dict(cfg)})
    assert load_run_config(tmp_path).model.deter == 40
    assert to_dict(load_run_config(tmp_path / "agent.pt")) == to_dict(cfg)


def test_a_checkpoint_written_before_the_posterior_map_choice_loads_with_the_seeds_map(tmp_path):
    from aime.config import load_config, to_dict
    from aime.runtime.checkpoint import load_run_config, save_agent_state

    old = to_dict(load_config(["debug"]))
    for key in ("posterior_map", "attention_target", "precision_strength"):
        del old["model"][key]
    save_agent_state(tmp_path / "agent.pt", {"config": old})
    cfg = load_run_config(tmp_path)
    assert (cfg.model.posterior_map, cfg.model.attention_target, cfg.model.precision_strength) == ("softmax", "none", 0)
    save_agent_state(tmp_path / "agent.pt", {"config": to_dict(load_config(["debug"]))})
    assert load_run_config(tmp_path).model.posterior_map == "normalize"


def test_a_checkpoint_written_before_the_position_readout_and_map_decoder_loads_without_them(tmp_path):
    from aime.config import load_config, to_dict
    from aime.runtime.checkpoint import load_run_config, save_agent_state

    keys = ("readout_position", "decoder_attention", "attention_detail")
    old = to_dict(load_config(["atari100k"], ["model.decoder_attention=true", "model.attention_detail=true"]))
    assert all(old["model"][key] for key in keys)
    for key in keys:
        del old["model"][key]
    save_agent_state(tmp_path / "agent.pt", {"config": old})
    cfg = load_run_config(tmp_path)
    assert not any(getattr(cfg.model, key) for key in keys)


def test_a_checkpoint_written_before_slot_iters_loads_the_three_iterations_it_ran(tmp_path):
    from aime.config import load_config, to_dict
    from aime.runtime.checkpoint import load_run_config, save_agent_state

    old = to_dict(load_config(["cpu"], ["model.slot_iters=1"]))
    del old["model"]["slot_iters"]
    save_agent_state(tmp_path / "agent.pt", {"config": old})
    assert load_run_config(tmp_path).model.slot_iters == 3


# -- generations: a save cut short at any instant leaves one complete checkpoint ----------------
def stage(ckpt_dir, step):
    """A complete staged generation at ``step`` (replay first, agent.pt last, as Trainer.save does)."""
    staging = ckpt.begin_save(ckpt_dir)
    (staging / "replay").mkdir()
    (staging / "replay" / "state.json").write_text(str(step))
    ckpt.save_agent_state(staging / "agent.pt", {"counters": {"env_steps": step}})
    return staging


def step_of(directory):
    return ckpt.load_agent_state(directory / "agent.pt")["counters"]["env_steps"]


def test_commit_swaps_generations_and_leaves_nothing_behind(tmp_path):
    current = tmp_path / "checkpoint"
    stage(current, 16)
    ckpt.commit(current)
    stage(current, 32)
    ckpt.commit(current)
    assert step_of(current) == 32 and (current / "replay" / "state.json").read_text() == "32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_commit_refuses_an_incomplete_staging_folder(tmp_path):
    current = tmp_path / "checkpoint"
    stage(current, 16)
    ckpt.commit(current)
    ckpt.begin_save(current)  # replay not written, no agent.pt
    with pytest.raises(ckpt.CheckpointError, match="incomplete"):
        ckpt.commit(current)
    assert step_of(current) == 16


@pytest.mark.parametrize(
    "cut", ["partial staging", "staged, not committed", "between the renames", "old not deleted", "temp files"]
)
def test_recover_keeps_the_newest_complete_generation(tmp_path, cut):
    current = tmp_path / "checkpoint"
    stage(current, 16)
    ckpt.commit(current)
    expected = 32
    if cut == "partial staging":  # killed while writing the replay or agent.pt
        staging = ckpt.begin_save(current)
        (staging / ".agent.pt.tmp123").write_bytes(b"half")
        expected = 16
    elif cut == "staged, not committed":
        stage(current, 32)
    elif cut == "between the renames":
        stage(current, 32)
        os.rename(current, ckpt.retired_dir(current))
    elif cut == "old not deleted":
        stage(current, 32)
        os.rename(current, ckpt.retired_dir(current))
        os.rename(ckpt.staging_dir(current), current)
    else:  # what the earlier single-folder saves left on a kill: temp files inside checkpoint/
        (current / ".replay.abc").mkdir()
        (current / ".agent.pt.xyz").write_bytes(b"half")
        expected = 16
    assert step_of(ckpt.find_checkpoint(tmp_path).parent) == expected  # read-only: changes nothing yet
    assert ckpt.recover(current) == current
    assert step_of(current) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert sorted(p.name for p in current.iterdir()) == ["agent.pt", "replay"]


def test_recover_without_any_complete_generation_is_an_error(tmp_path):
    ckpt.begin_save(tmp_path / "checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="no complete checkpoint"):
        ckpt.recover(tmp_path / "checkpoint")


def test_a_discarded_generation_never_looks_complete(tmp_path, monkeypatch):
    staging = stage(tmp_path / "checkpoint", 16)
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # the deletion is cut short at once
    ckpt.discard(staging)
    assert not ckpt.is_complete(staging)


# -- what a refused file's error says ---------------------------------------------------------
def test_a_pickle_payload_error_is_one_line_without_unsafe_advice(tmp_path):
    import pickle

    torch.save({"format_version": 1, "evil": Payload()}, tmp_path / "zip.pt")
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"evil": Payload()}))
    (tmp_path / "empty.pt").write_bytes(b"")
    expected = {
        "zip.pt": "holds Python objects beyond tensors",
        "plain.pt": "is a plain pickle",
        "empty.pt": "empty or cut short",
    }
    for name, fragment in expected.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's UserWarning about the pickle protocol is not shown
            with pytest.raises(ckpt.CheckpointError) as info:
                ckpt.load_agent_state(tmp_path / name)
        message = str(info.value)
        assert fragment in message and "\n" not in message and "weights_only" not in message, message


def test_config_differences_names_the_keys_a_checkpoint_sets_otherwise():
    from aime.config import load_config, to_dict

    cfg = load_config(["debug"])
    saved = to_dict(cfg)
    assert ckpt.config_differences(cfg, saved) == []
    saved["model"]["deter"], saved["train"]["steps"] = 32, 5  # steps may change on --resume
    del saved["model"]["posterior_map"]  # a key a checkpoint predates says nothing
    assert ckpt.config_differences(cfg, saved) == ["model.deter: 64, saved 32"]


def test_read_newest_reads_again_only_when_the_checkpoint_was_replaced(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    ckpt.save_agent_state(run / "checkpoint" / "agent.pt", {"config": {"seed": 1}})
    calls = []

    def replaced_meanwhile(path):
        calls.append(path)
        if len(calls) == 1:  # a save renames a new generation into place while we read
            shutil.copytree(run / "checkpoint", tmp_path / "new")
            shutil.rmtree(run / "checkpoint")
            (tmp_path / "new").rename(run / "checkpoint")
            raise ValueError("action.npy: expected int64 (2, 20), got int64 (2, 24)")
        return "read"

    assert ckpt.read_newest(run, replaced_meanwhile) == "read" and len(calls) == 2

    def damaged(path):
        calls.append(path)
        raise ValueError("obs.npy is damaged")

    calls.clear()
    with pytest.raises(ValueError, match="damaged"):
        ckpt.read_newest(run, damaged)
    assert len(calls) == 1  # nothing was replaced: no second try


def test_changed_settings_names_what_differs_from_the_checkpoints_configuration():
    from aime.config import RESUME_KEYS, Config, to_dict

    cfg = Config()
    saved = to_dict(cfg)
    assert ckpt.changed_settings(cfg, saved, RESUME_KEYS) == []
    cfg.train.compile_world_model, cfg.log.images_every = True, 0
    del saved["log"]["scalars_every"]  # a checkpoint written before a key says nothing about it
    cfg.log.scalars_every = 5
    assert ckpt.changed_settings(cfg, saved, RESUME_KEYS) == ["train.compile_world_model=True", "log.images_every=0"]
