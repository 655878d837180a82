"""Run logging: TensorBoard event files (scalars, images, text) and a ``metrics.jsonl`` for scripts.

Tag names follow what RL users know from CleanRL: ``charts/episodic_return``,
``charts/episodic_length``, ``charts/SPS``, ``losses/...``; evaluation under ``eval/...``.

A run's logs are rolled back with its checkpoint: a checkpoint records the size of each log file
(:func:`log_sizes`, after :meth:`Logger.flush`), and a resume checks that every recorded file is
still whole up to that size, then cuts it there and deletes event files written after it
(:func:`plan_rollback`, :func:`apply_rollback`). What a crashed session logged past its last
checkpoint is dropped, so the resumed run's logs hold each step once.
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

METRICS_FILE = "metrics.jsonl"
EVENTS_PREFIX = "events.out.tfevents."


class LogError(ValueError):
    """A run's log file that is damaged, or shorter than its checkpoint says it was."""


class Logger:
    """Writes scalars and images to TensorBoard and scalars to ``metrics.jsonl`` in ``logdir``.

    Only rank 0 of a distributed run should hold an enabled logger; ``enabled=False`` makes every
    call a no-op.

    Args:
        purge_step: on a resume, the first step after the checkpoint's: TensorBoard hides events of
            earlier sessions at this step or later (a second guard beside :func:`apply_rollback`).
    """

    def __init__(self, logdir: str | Path, enabled: bool = True, purge_step: int | None = None) -> None:
        self.logdir = Path(logdir)
        self.enabled = enabled
        self.writer: SummaryWriter | None = None
        self._jsonl = None
        if enabled:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.logdir), purge_step=purge_step)
            self._jsonl = open(self.logdir / METRICS_FILE, "a", buffering=1)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Log ``{tag: value}`` at ``step``; non-finite values are logged as-is to TensorBoard
        and as ``null`` in the JSON lines."""
        if not self.enabled or not values:
            return
        record: dict[str, Any] = {"step": int(step), "time": time.time()}
        for tag, value in values.items():
            value = float(value)
            self.writer.add_scalar(tag, value, step)
            record[tag] = value if math.isfinite(value) else None
        self._jsonl.write(json.dumps(record) + "\n")

    def event(self, name: str, step: int, **details: Any) -> None:
        """Record that ``name`` happened at ``step`` (``"resume"``): a row of ``metrics.jsonl`` only,
        ``{"step", "time", "event"}`` and the JSON-serialisable ``details`` (a resume's ``changed``
        settings), so readers can tell a run's sessions apart (a resumed run's wall-clock leaves out
        the pause before it: :func:`aime.runtime.plots.load_run`)."""
        if self.enabled:
            row = {"step": int(step), "time": time.time(), "event": name, **details}
            self._jsonl.write(json.dumps(row) + "\n")

    def images(self, images: Mapping[str, torch.Tensor | np.ndarray], step: int) -> None:
        """Log ``{tag: [N, 3, H, W] float in [0, 1]}`` (or uint8) as image grids in one row."""
        if not self.enabled:
            return
        for tag, image in images.items():
            image = torch.as_tensor(image).detach().float().cpu()
            if image.max() > 1.0:
                image = image / 255.0
            if image.dim() == 3:
                image = image[None]
            self.writer.add_images(tag, image.clamp(0, 1), step, dataformats="NCHW")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self.enabled:
            self.writer.add_text(tag, text, step)

    def hyperparameters(self, flat: Mapping[str, Any], metric_tags: Sequence[str] = ()) -> None:
        """The configuration as a Markdown table under the ``hyperparameters`` text tag, and as
        TensorBoard's HPARAMS summary in this run's own event file, so that runs sit side by side
        in the HPARAMS tab with ``metric_tags`` (scalar tags logged later, e.g. the final
        evaluation) as their metric columns.

        Values other than bool, int, float and str are written as their ``str``.
        """
        rows = "\n".join(f"|{key}|{value}|" for key, value in flat.items())
        self.text("hyperparameters", f"|param|value|\n|-|-|\n{rows}")
        if not self.enabled:
            return
        values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flat.items()}
        # torch's helper reads only the metric names from the dict; the values come from the scalars
        experiment, session_start, _ = hparams(values, {tag: 0.0 for tag in metric_tags})
        writer = self.writer._get_file_writer()
        # SummaryWriter.add_hparams would write into a new sub-run; here they describe this run.
        # The session-end summary is left out: it would claim success before the run has ended.
        writer.add_summary(experiment)
        writer.add_summary(session_start)

    def flush(self) -> None:
        if self.enabled:
            self.writer.flush()

    def close(self) -> None:
        if self.enabled:
            self.writer.close()
            self._jsonl.close()
            self.enabled = False


# -- rolling a run's logs back to its checkpoint ----------------------------------------------------
def log_sizes(logdir: str | Path) -> dict[str, int]:
    """``{file name: bytes}`` of ``metrics.jsonl`` and every TensorBoard event file in ``logdir``
    (flush the logger first): what a checkpoint records, so that a resume can roll the logs back."""
    logdir = Path(logdir)
    return {
        p.name: p.stat().st_size
        for p in sorted(logdir.iterdir())
        if p.is_file() and (p.name == METRICS_FILE or p.name.startswith(EVENTS_PREFIX))
    }


def plan_rollback(logdir: str | Path, sizes: Mapping[str, int] | None, step: int) -> dict[Path, int | None]:
    """Check a run's logs against the sizes its checkpoint recorded; ``{file: size to cut it to, or
    None to delete it}``. Reads only: :func:`apply_rollback` makes the changes.

    Every recorded file must exist, be at least as long as recorded, and hold whole records up to
    that size (JSON objects with a ``step``, one a line; TensorBoard records whose length checksums
    hold); otherwise :class:`LogError` names the file and what is wrong. Event files the checkpoint
    does not know were written after it and are deleted. When every recorded log is gone (moved
    aside on purpose), the resumed run starts new ones.

    ``sizes=None`` (a checkpoint written before sizes were recorded): ``metrics.jsonl`` is cut before
    its first row past ``step``; the event files stay (``Logger(purge_step=...)`` hides their later
    events).
    """
    logdir = Path(logdir)
    metrics = logdir / METRICS_FILE
    if sizes is None:
        cut = _first_row_after(metrics, step) if metrics.is_file() else None
        return {} if cut is None else {metrics: cut}
    present = log_sizes(logdir)
    if sizes and not any(name in present for name in sizes):
        return {}  # every log moved aside: new ones are started
    plan: dict[Path, int | None] = {}
    for name, size in sizes.items():
        path = logdir / name
        if name not in present:
            raise LogError(
                f"{path} is missing (the checkpoint at agent step {step:,} was written with {size:,} bytes "
                f"of it): restore it, or move all of the run's logs ({METRICS_FILE}, {EVENTS_PREFIX}*) "
                "aside to resume with new ones"
            )
        if present[name] < size:
            raise LogError(
                f"{path} holds {present[name]:,} bytes, fewer than the {size:,} it had when the checkpoint "
                f"at agent step {step:,} was written: it was cut short or replaced; restore it, or move all "
                f"of the run's logs ({METRICS_FILE}, {EVENTS_PREFIX}*) aside to resume with new ones"
            )
        problem = _check_metrics(path, size) if name == METRICS_FILE else _check_events(path, size)
        if problem:
            raise LogError(
                f"{path} is damaged ({problem}); restore it, or move all of the run's logs "
                f"({METRICS_FILE}, {EVENTS_PREFIX}*) aside to resume with new ones"
            )
        if present[name] > size:
            plan[path] = size
    for name in present:
        if name not in sizes and name.startswith(EVENTS_PREFIX):
            plan[logdir / name] = None  # a session that crashed before its first checkpoint
    return plan


def apply_rollback(plan: Mapping[Path, int | None]) -> None:
    """Cut each file of a :func:`plan_rollback` plan to its size, or delete it."""
    for path, size in plan.items():
        if size is None:
            Path(path).unlink(missing_ok=True)
        else:
            os.truncate(path, size)


def _first_row_after(path: Path, step: int) -> int | None:
    """The byte offset of the first row of ``metrics.jsonl`` past ``step`` (or of a last line cut
    short), None when there is none. Lines that do not parse are left alone."""
    offset = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return offset  # a write cut short
            try:
                row_step = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):
                row_step = None
            if isinstance(row_step, int) and row_step > step:
                return offset
            offset += len(line)
    return None


def _check_metrics(path: Path, size: int) -> str | None:
    """What is wrong with the first ``size`` bytes of a ``metrics.jsonl``, or None."""
    with open(path, "rb") as f:
        data = f.read(size)
    if size and not data.endswith(b"\n"):
        return f"byte {size:,} is not the end of a line"
    for number, line in enumerate(data.splitlines(), 1):
        try:
            row = json.loads(line)
        except ValueError:
            return f"line {number} is not JSON"
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            return f"line {number} is not a row of metrics (a JSON object with a step)"
    return None


def _check_events(path: Path, size: int) -> str | None:
    """What is wrong with the first ``size`` bytes of a TensorBoard event file, or None: the records
    must chain to exactly ``size`` with every length's checksum intact (the data's own checksums are
    not recomputed: that would read every image in pure Python)."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    if size == 0:
        return "it is empty (a TensorBoard event file starts with a version record)"
    offset = 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(12)
            if len(header) < 12 or offset + 12 > size:
                return f"a record header is cut short at byte {offset:,}"
            length, crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != crc:
                return f"the record at byte {offset:,} fails its checksum"
            offset += 12 + length + 4
    if offset != size:
        return f"the last record runs past byte {size:,}"
    return None
