"""A run directory: ``config.yaml`` (the configuration the run started with, read here for
``--resume``) and ``checkpoint/``, whose layout (one replay folder per data-parallel rank:
:func:`aime.runtime.checkpoint.replay_dirname`) and crash-safe writing are
:mod:`aime.runtime.checkpoint`'s job.
"""

from __future__ import annotations

from pathlib import Path

from aime.config import Config, load_config_file
from aime.runtime.checkpoint import CheckpointError


def config_from_checkpoint(logdir: str | Path) -> Config:
    """The configuration a run in ``logdir`` was started with (for ``--resume``)."""
    path = Path(logdir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{logdir} has no config.yaml: not an AIME run directory")
    return load_config_file(path)
