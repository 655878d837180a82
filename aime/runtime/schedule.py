"""The update schedule: how many updates the training loop owes after each batch of environment steps.

``train.train_ratio`` is the number of replayed steps per environment step; an update replays
``train.batch_size * train.seq_len`` of them. What a round of environment steps buys is rarely a
whole number of updates, so the fraction carries over as credit (saved with the checkpoint, so a
resumed run trains exactly as the uninterrupted one would).
"""

from __future__ import annotations

import math


def updates_due(credit: float, env_steps: int, train_ratio: float, batch_size: int, seq_len: int) -> tuple[int, float]:
    """How many updates ``env_steps`` new environment steps buy at ``train_ratio``.

    ``train_ratio`` replayed steps per environment step, ``batch_size * seq_len`` replayed per
    update; the fractional remainder carries over as ``credit``. Returns ``(updates, credit)``.
    """
    credit += env_steps * train_ratio / (batch_size * seq_len)
    updates = math.floor(credit)
    return updates, credit - updates
