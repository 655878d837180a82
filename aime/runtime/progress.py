"""The progress bar of a training run and its estimate of how long the run takes.

:class:`Progress` draws the bar (exact agent step, updates, returns, ETA); :class:`RunEstimate`
measures the agent-step rate from the end of warm-up; :func:`format_duration` writes durations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm


def format_duration(seconds: float) -> str:
    """``'14 h 05 min'``, ``'3 min 20 s'``, ``'42 s'``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class RunEstimate:
    """How long the rest of a run takes, from the agent-step rate after warm-up.

    Warm-up (random actions, no updates) runs many times faster than training, so a rate that
    includes it promises hours where the run takes many more. The rate here is measured from the
    first step past warm-up (evaluations and checkpoints since then included, as they will recur).

    Args:
        total: the run's last agent step.
        warmup: agent steps of warm-up.
        start: the agent step and the time this session started at.
        announce_after: the expected duration is announced once training has run this many
            seconds, or sooner once it has covered ``announce_fraction`` of the training steps left.
        wait_for_update: measure from the first reading after this session's first update instead
            (a compiled agent's first update compiles for minutes, and would count as training).
    """

    def __init__(
        self,
        total: int,
        warmup: int,
        start: tuple[int, float],
        announce_after: float = 60.0,
        announce_fraction: float = 0.05,
        wait_for_update: bool = False,
    ) -> None:
        self.total, self.warmup, self.wait_for_update = total, warmup, wait_for_update
        self.updates_at_warmup: int | None = None  # the update count at the first reading past warm-up
        self.start_steps, self.start_time = start
        self.origin: tuple[int, float] | None = None  # (step, time) where training began (this session)
        self.now: tuple[int, float] = start
        self.announce_after, self.announce_fraction = announce_after, announce_fraction
        self.announced = False

    def observe(self, steps: int, now: float, updates: int = 0) -> None:
        """Record the step reached at ``now`` and the run's update count (after each iteration)."""
        if self.origin is None and steps >= self.warmup:
            if self.updates_at_warmup is None:
                self.updates_at_warmup = updates
            if not self.wait_for_update or updates > self.updates_at_warmup:
                self.origin = (steps, now)
        self.now = (steps, now)

    def rate(self) -> float | None:
        """Agent steps per second since training began; None before two readings past warm-up."""
        if self.origin is None:
            return None
        steps, dt = self.now[0] - self.origin[0], self.now[1] - self.origin[1]
        return steps / dt if steps > 0 and dt > 0 else None

    def remaining(self) -> float | None:
        """Seconds to ``total`` at the training rate (None while it is not measured yet)."""
        rate = self.rate()
        return None if rate is None else max(self.total - self.now[0], 0) / rate

    def postfix(self) -> str:
        """The bar's time field: the training rate and the ETA, or what they wait for."""
        remaining = self.remaining()
        if remaining is None:
            if self.now[0] < self.warmup:
                return "ETA after warm-up"
            return "ETA after the first update (compiling)" if self.origin is None else "ETA: measuring"
        return f"{self.rate():.2f} steps/s, ETA {format_duration(remaining)}"

    def announcement(self) -> str | None:
        """The one line that states the whole run's expected duration, once the training rate is
        measured; None before that and after it was given once."""
        if self.announced or self.origin is None or self.rate() is None:
            return None
        trained_steps, trained_time = self.now[0] - self.origin[0], self.now[1] - self.origin[1]
        left = max(self.total - self.origin[0], 1)
        if trained_time < self.announce_after and trained_steps < self.announce_fraction * left:
            return None
        self.announced = True
        elapsed = self.now[1] - self.start_time
        remaining = self.remaining()
        finish = time.strftime("%a %H:%M", time.localtime(time.time() + remaining))
        return (
            f"expected duration: {format_duration(elapsed + remaining)} for agent steps "
            f"{self.start_steps:,} -> {self.total:,} ({format_duration(remaining)} left at "
            f"{self.rate():.2f} steps/s after warm-up; finishes around {finish})"
        )


class Progress:
    """The progress bar: the exact agent step, updates, returns and an ETA from the training rate.

    tqdm's own rate and ETA average over the fast warm-up, and it redraws only every so many
    iterations, so during slow training iterations it showed an older step. This bar is redrawn
    before every slow phase (an iteration that trains), so what it shows is the current step.

    Args:
        total, initial, warmup: the run's last agent step, the step this session starts at, warm-up steps.
        enabled: draw the bar (the expected-duration line is printed either way).
        file: where to draw (default stderr, tqdm's).
        clock: seconds (monotonic) for the estimate; a parameter so that tests can drive it.
        min_interval: the least time between redraws that are not forced.
        announce: where the expected-duration line goes (default: written above the bar).
        wait_for_update: the ETA's rate starts after this session's first update (:class:`RunEstimate`).
    """

    FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"  # tqdm puts ", " before the postfix

    def __init__(
        self,
        total: int,
        initial: int,
        warmup: int,
        enabled: bool = True,
        file: Any = None,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.2,
        announce: Callable[[str], None] | None = None,
        wait_for_update: bool = False,
    ) -> None:
        self.clock, self.min_interval = clock, min_interval
        self.estimate = RunEstimate(total, warmup, (initial, clock()), wait_for_update=wait_for_update)
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="step",
            dynamic_ncols=True,
            disable=not enabled,
            bar_format=self.FORMAT,
            file=file,
            mininterval=min_interval,
        )
        self.announce = announce or (lambda line: tqdm.write(line, file=file))
        self.status = "no episode finished yet"
        self.shown_at = -float("inf")

    def advance(self, steps: int, updates: int, last_return: float, recent: list[float]) -> None:
        """Record the run's counters (cheap; draws only if ``min_interval`` has passed)."""
        now = self.clock()
        self.estimate.observe(steps, now, updates)
        self.bar.n = steps
        returns = (
            f"return last {last_return:.1f}, mean({len(recent)}) {np.mean(recent):.1f}"
            if recent
            else "no episode finished yet"
        )
        self.bar.set_postfix_str(f"{updates:,} updates, {returns}, {self.estimate.postfix()}", refresh=False)
        line = self.estimate.announcement()
        if line:
            self.announce(line)
        self.show(force=False)

    def show(self, force: bool = True) -> None:
        """Redraw now (``force``), or if ``min_interval`` has passed since the last redraw."""
        now = self.clock()
        if force or now - self.shown_at >= self.min_interval:
            self.bar.refresh()
            self.shown_at = now

    def close(self) -> None:
        self.bar.close()
