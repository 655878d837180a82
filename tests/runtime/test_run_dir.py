"""aime.runtime.run_dir: the configuration a run started with; the checkpoint's replay folders."""

from __future__ import annotations

import pytest

from aime.config import load_config, save_config
from aime.runtime.checkpoint import CheckpointError, replay_dirname
from aime.runtime.run_dir import config_from_checkpoint


def test_replay_folders_per_rank():
    assert replay_dirname(0) == "replay"
    assert [replay_dirname(r) for r in (1, 2)] == ["replay_rank1", "replay_rank2"]


def test_config_from_checkpoint_reads_the_runs_config(tmp_path):
    cfg = load_config(["debug"], ["model.deter=40", "seed=3"])
    save_config(cfg, tmp_path / "config.yaml")
    back = config_from_checkpoint(tmp_path)
    assert back.model.deter == 40 and back.seed == 3
    with pytest.raises(CheckpointError, match="has no config.yaml: not an AIME run directory"):
        config_from_checkpoint(tmp_path / "elsewhere")
