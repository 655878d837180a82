"""A run directory's layout: ``config.yaml`` (the configuration the run started with) and
``checkpoint/`` with one replay folder per data-parallel rank (``replay/`` for rank 0,
``replay_rank{r}/`` for the others). Crash-safe writing of ``checkpoint/`` is
:mod:`aime.runtime.checkpoint`'s job.
"""

from __future__ import annotations

from pathlib import Path

from aime.config import Config, load_config_file
from aime.runtime.checkpoint import CheckpointError


def replay_dirname(rank: int) -> str:
    """A rank's replay folder inside ``checkpoint/``."""
    return "replay" if rank == 0 else f"replay_rank{rank}"


def config_from_checkpoint(logdir: str | Path) -> Config:
    """The configuration a run in ``logdir`` was started with (for ``--resume``)."""
    path = Path(logdir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{logdir} has no config.yaml: not an AIME run directory")
    return load_config_file(path)
