"""Replay batches for a burst of updates, each next batch gathered while the current update runs.

The training loop runs its updates in bursts between environment steps (``updates_due``: at the
``atari100k`` preset, 8 environments and train ratio 512, four updates of ``16 x 64`` per vector
step). Inside a burst nothing is added to the replay, so the batches are known in advance: while
update ``i`` runs, a worker thread draws and gathers batch ``i + 1`` (numpy's fancy indexing of
about 21.7 MB of frames at ``atari100k`` sizes, then pinned memory and a non-blocking copy on CUDA).

The batches are exactly those of ``[prepare() for _ in range(count)]``: the worker calls ``prepare``
for batch ``i + 1`` only after batch ``i`` was handed over, so the replay's generator draws in the
same order, and nothing is drawn beyond a burst that runs to its end. Across bursts it does not
reach: the next burst's batches may hold the steps collected in between, and drawing them earlier
would change what the run samples.

``replay.prefetch`` is checked against its choices when the configuration loads
(``aime.config.schema.CHOICES``); :func:`prefetch_enabled` checks again for direct callers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import torch

__all__ = ["PREFETCH_MODES", "BurstPrefetcher", "prefetch_enabled"]

Batch = TypeVar("Batch")
PREFETCH_MODES = ("auto", "thread", "none")


def prefetch_enabled(mode: str, device: torch.device | str) -> bool:
    """Whether a run draws ahead (``replay.prefetch``): ``thread`` always, ``none`` never, ``auto``
    on CUDA only. On the CPU a draw is short next to an update (1.7 ms for ``16 x 64`` from a full
    100k replay, beside about 4 s), so ``auto`` keeps CPU runs to one thread of Python."""
    if mode not in PREFETCH_MODES:
        raise ValueError(f"replay.prefetch must be one of {', '.join(PREFETCH_MODES)}, got {mode!r}")
    return mode == "thread" or (mode == "auto" and torch.device(device).type == "cuda")


class BurstPrefetcher(Generic[Batch]):
    """Batches from ``prepare()`` for bursts of ``count`` updates, one batch ahead on a worker thread.

    Args:
        prepare: draws one batch (for the loop: replay sample -> tensors on the agent's device).
        enabled: False runs ``prepare`` in the caller's thread, one batch at a time (the reference
            behaviour; :func:`prefetch_enabled` reads the run's setting).

    Use ``for batch in prefetcher.burst(count): ...``, and :meth:`close` at the end.
    """

    def __init__(self, prepare: Callable[[], Batch], enabled: bool = True) -> None:
        self.prepare = prepare
        self.enabled = enabled
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[Batch] | None = None

    def burst(self, count: int) -> Iterator[Batch]:
        """``count`` batches (none for ``count <= 0``); while the caller works on one, the next is drawn."""
        if not self.enabled or count <= 1:
            for _ in range(count):
                yield self.prepare()
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="replay-prefetch")
        self._pending = self._pool.submit(self.prepare)
        for i in range(count):
            batch = self._pending.result()
            self._pending = self._pool.submit(self.prepare) if i + 1 < count else None
            yield batch

    def settle(self) -> None:
        """Wait for a draw still running: call before reading the replay's state (a checkpoint).

        Only a caller that leaves a burst early (the loop stopping on non-finite losses) finds one;
        its batch is dropped, and the replay's generator stays one draw further on."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        """Wait for any draw, then stop the worker thread (a later burst starts another)."""
        self.settle()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
