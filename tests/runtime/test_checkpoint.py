import random

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
