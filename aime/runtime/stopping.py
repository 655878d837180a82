"""How a training run stops early: :class:`TrainingStopped`, raised once a checkpoint is written.

The :class:`~aime.runtime.loop.Trainer` raises it on SIGINT/SIGTERM (exit code 128 + the signal's
number) and after too many non-finite updates in a row (exit code 1); ``scripts/train_agent.py``
turns it into the process's exit code.
"""

from __future__ import annotations


class TrainingStopped(RuntimeError):
    """The run stopped early (signal or non-finite losses); a checkpoint was written."""

    def __init__(self, message: str, exit_code: int, reason: str = "stopped") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason  # a few words for the end summary: "SIGTERM", "non-finite losses"
