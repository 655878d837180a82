"""What the training loop logs about its updates: the interval's mean metrics and its throughput."""

from __future__ import annotations

from typing import Any

import torch


class Throughput:
    """Agent steps and updates per second over the interval since the previous reading.

    A rate over the whole run decays like 1/t once a fast warm-up is behind it; each reading here
    covers only its own interval, so the chart shows the current speed.
    """

    def __init__(self, steps: int, updates: int, now: float) -> None:
        self.steps, self.updates, self.time = steps, updates, now

    def read(self, steps: int, updates: int, now: float) -> tuple[float, float]:
        """``(agent steps/s, updates/s)`` since the previous reading (or the start); restarts the interval."""
        dt = max(now - self.time, 1e-9)
        rates = (steps - self.steps) / dt, (updates - self.updates) / dt
        self.steps, self.updates, self.time = steps, updates, now
        return rates


def mean_metrics(pending: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each metric over the updates of a logging interval, as floats.

    ``Agent.train_step`` leaves its metrics as tensors on the device, so that an update never waits
    for the device to report them; here they are averaged on the device and copied to the host in
    one transfer. A key averages over the updates that report it; empty dicts (skipped updates) are
    left out.
    """
    pending = [p for p in pending if p]
    if not pending:
        return {}
    keys = list(dict.fromkeys(key for p in pending for key in p))
    device = next((v.device for p in pending for v in p.values() if isinstance(v, torch.Tensor)), None)
    as_tensor = lambda v: torch.as_tensor(v, dtype=torch.float32, device=device).reshape(())  # noqa: E731
    means = [torch.stack([as_tensor(p[key]) for p in pending if key in p]).double().mean() for key in keys]
    return dict(zip(keys, torch.stack(means).tolist()))
