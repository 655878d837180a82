"""Seeds of a run: the process-wide generators, and each data-parallel rank's own seed."""

from __future__ import annotations

import random

import numpy as np
import torch


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's environments, replay sampling and exploration (rank 0: ``seed``)."""
    return seed + 100_003 * rank


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
