"""Run logging: TensorBoard event files (scalars, images, text) and a ``metrics.jsonl`` for scripts.

Tag names follow what RL users know from CleanRL: ``charts/episodic_return``,
``charts/episodic_length``, ``charts/SPS``, ``losses/...``; evaluation under ``eval/...``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams


class Logger:
    """Writes scalars and images to TensorBoard and scalars to ``metrics.jsonl`` in ``logdir``.

    Only rank 0 of a distributed run should hold an enabled logger; ``enabled=False`` makes every
    call a no-op.
    """

    def __init__(self, logdir: str | Path, enabled: bool = True) -> None:
        self.logdir = Path(logdir)
        self.enabled = enabled
        self.writer: SummaryWriter | None = None
        self._jsonl = None
        if enabled:
            self.logdir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.logdir))
            self._jsonl = open(self.logdir / "metrics.jsonl", "a", buffering=1)

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
