"""Learning curves of several runs: read, group by configuration, average over seeds, plot.

A run directory holds ``config.yaml`` and ``metrics.jsonl`` (see :mod:`aime.runtime.logger`).
Runs whose configurations are equal except for :data:`IGNORED_KEYS` (the seed, the log directory)
form one group; a group's curve is the mean over its runs, with a band of one standard deviation,
of each run's curve interpolated onto a common grid (only where every run of the group has data, so a short run does
not make the mean jump). Train returns are smoothed per run first (the mean of the last episodes).

matplotlib (the ``plots`` extra) is imported only by :func:`plot_groups`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

# keys that tell runs of one configuration apart without changing what is run; replay.prefetch
# changes only when a batch is drawn, not which (runs before it existed lack the key)
IGNORED_KEYS = ("seed", "log.logdir", "replay.prefetch")
TRAIN_TAG, EVAL_TAG = "charts/episodic_return", "eval/episodic_return"
# what :func:`archive_run` keeps by default: the returns, the evaluations, the attention's entropy,
# the object metrics and the behaviour's statistics (the actor's entropy, the advantages)
ARCHIVED = (TRAIN_TAG, "eval/", "attention/", "objects/", "behavior/")


@dataclass
class Curve:
    """One run's values of a tag against agent steps and the hours the run has trained (its
    wall-clock since its first record, less the pauses between resumed sessions: :func:`run_hours`)."""

    steps: np.ndarray
    hours: np.ndarray
    values: np.ndarray


@dataclass
class Run:
    path: Path
    config: dict[str, Any]  # flattened: {"train.steps": 4000, ...}
    train: Curve
    eval: Curve
    tags: dict[str, Curve] = field(default_factory=dict)  # other tags asked for, e.g. objects/...


def flatten_mapping(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"steps": 4}}`` -> ``{"train.steps": 4}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten_mapping(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    if window <= 1 or values.size == 0:
        return values.astype(float)
    sums = np.cumsum(np.insert(values.astype(float), 0, 0.0))
    ends = np.arange(1, values.size + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def run_hours(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``[len(rows)]`` hours of training before each row of a ``metrics.jsonl``: the time since the
    first row, less each pause between sessions. A resumed session starts with an ``"event":
    "resume"`` row (:meth:`aime.runtime.logger.Logger.event`); the time from the row before it (the
    last one the resume kept, at the checkpoint) to it is a pause. Rows must be in file order. NaN
    throughout when some row has no ``"time"`` (an archive transcribed from a table: steps only)."""
    if any("time" not in r for r in rows):
        return np.full(len(rows), np.nan)
    times = np.array([r["time"] for r in rows], dtype=float)
    if times.size == 0:
        return times
    resumed = np.array([r.get("event") == "resume" for r in rows[1:]], dtype=bool)
    pauses = np.where(resumed, np.maximum(np.diff(times), 0.0), 0.0)
    return (times - times[0] - np.concatenate([[0.0], np.cumsum(pauses)])) / 3600


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a run directory's ``metrics.jsonl``, in file order.

    Raises:
        ValueError: ``path`` is not a run directory (no ``config.yaml`` or ``metrics.jsonl``).
    """
    for name in ("config.yaml", "metrics.jsonl"):
        if not (path / name).is_file():
            raise ValueError(f"{path} has no {name}: not an AIME run directory")
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]


def load_run(path: str | Path, smooth: int = 20, tags: Sequence[str] = ()) -> Run:
    """Read a run directory; ``smooth``: train returns are averaged over the last this many episodes;
    ``tags``: other scalars to keep (``Run.tags``; a tag the run never logged has an empty curve).

    Raises:
        ValueError: ``path`` is not a run directory (no ``config.yaml`` or ``metrics.jsonl``).
    """
    path = Path(path)
    rows = read_rows(path)
    config = flatten_mapping(yaml.safe_load((path / "config.yaml").read_text()) or {})
    hours = run_hours(rows)

    def curve(tag: str) -> Curve:
        picked = [i for i, r in enumerate(rows) if r.get(tag) is not None]
        return Curve(
            np.array([rows[i]["step"] for i in picked], dtype=float),
            hours[picked],
            np.array([rows[i][tag] for i in picked], dtype=float),
        )

    train = curve(TRAIN_TAG)
    train.values = trailing_mean(train.values, smooth)
    return Run(path, config, train, curve(EVAL_TAG), {tag: curve(tag) for tag in tags})


def archive_run(path: str | Path, out: str | Path, keep: Sequence[str] = ARCHIVED) -> Path:
    """Keep a run's curves in tens of kilobytes: write ``out/config.yaml`` (a copy) and
    ``out/metrics.jsonl`` with the rows that hold a key starting with one of ``keep``, each cut to
    those keys, its ``step`` and ``time``, plus every ``"resume"`` row and the row before it (cut to
    ``step`` and ``time``: :func:`run_hours` needs them). :func:`load_run` reads ``out`` as it reads
    the run, so a figure can be drawn again after the run directory (checkpoints, replay) is gone.

    Raises:
        ValueError: ``path`` is not a run directory, or ``out`` is ``path``.
    """
    path, out = Path(path), Path(out)
    rows = read_rows(path)
    if out.resolve() == path.resolve():
        raise ValueError(f"the archive {out} would overwrite the run it archives")
    kept = []
    for index, row in enumerate(rows):
        values = {k: v for k, v in row.items() if k.startswith(tuple(keep))}
        resume_next = index + 1 < len(rows) and rows[index + 1].get("event") == "resume"
        if values or resume_next or row.get("event") == "resume":
            base = {k: row[k] for k in ("step", "time", "event", "changed") if k in row}
            kept.append(json.dumps(base | values))
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text((path / "config.yaml").read_text())
    (out / "metrics.jsonl").write_text("".join(line + "\n" for line in kept))
    return out


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by their configuration less :data:`IGNORED_KEYS`, labelled by the keys that
    differ between groups (``"train.model_lr=0.001"``), or by the game when only one group."""
    groups: dict[str, list[Run]] = {}
    keys: dict[str, dict[str, Any]] = {}
    for run in runs:
        config = {k: v for k, v in run.config.items() if k not in IGNORED_KEYS}
        key = json.dumps(config, sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
        keys[key] = config
    differing = sorted(
        {k for c in keys.values() for k in c if len({json.dumps(d.get(k), default=str) for d in keys.values()}) > 1}
    )
    labelled = {}
    for key, members in groups.items():
        config = keys[key]
        label = ", ".join(f"{k}={config.get(k)}" for k in differing) or str(config.get("env.name", "runs"))
        labelled[counted(label, len(members))] = members
    return labelled


def counted(label: str, runs: int) -> str:
    """A group's label with its number of runs: ``"full model (2 runs)"``."""
    return f"{label} ({runs} run{'s' if runs > 1 else ''})"


def mean_sd(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, mean, sd)`` over curves ``(x_i, y_i)`` linearly interpolated onto ``points`` values of x
    spanning the range every curve covers (population sd: 0 for a single run). Empty arrays when
    some curve has no data or the curves share no range."""
    curves = [(x, y) for x, y in curves]
    if not curves or any(x.size == 0 for x, _ in curves):
        return np.array([]), np.array([]), np.array([])
    low, high = max(x.min() for x, _ in curves), min(x.max() for x, _ in curves)
    if low > high:
        return np.array([]), np.array([]), np.array([])
    grid = np.linspace(low, high, points) if high > low else np.array([low])
    values = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, values.mean(axis=0), values.std(axis=0)


def eval_table(groups: Mapping[str, Sequence[Run]], random: tuple[float, int] | None = None) -> str:
    """A Markdown table of the eval return at each evaluated agent step: per group, the mean +- sd
    over its runs that evaluated at that step (population sd; a lone run's return alone), with their
    count when fewer than the group's; a last row with the random policy's return when given."""
    steps = sorted({int(s) for runs in groups.values() for r in runs for s in r.eval.steps})
    lines = ["| agent steps | " + " | ".join(groups) + " |", "| ---: |" + " ---: |" * len(groups)]
    for step in steps:
        cells = []
        for runs in groups.values():
            values = np.array([r.eval.values[r.eval.steps == step][-1] for r in runs if (r.eval.steps == step).any()])
            if values.size == 0:
                cell = ""
            elif values.size == 1:  # one run: its return, with no spread over runs to give
                cell = f"{values[0]:.2f}"
            else:
                cell = f"{values.mean():.2f} ± {values.std():.2f}"
            if 0 < values.size < len(runs):
                cell += f" ({values.size} of {len(runs)})"
            cells.append(cell)
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    if random is not None:
        lines.append(
            f"| random policy ({random[1]} episodes) | " + " | ".join([f"{random[0]:.2f}"] * len(groups)) + " |"
        )
    return "\n".join(lines)


def read_random_return(path: str | Path) -> tuple[float, int]:
    """The mean return and episode count in a ``scripts/evaluate.py --json`` file."""
    data = json.loads(Path(path).read_text())
    if "return_mean" not in data:
        raise ValueError(f"{path} has no 'return_mean': write it with scripts/evaluate.py --random --json FILE")
    return float(data["return_mean"]), int(data.get("episodes", len(data.get("returns", []))))


def tails(curves: Sequence[tuple[np.ndarray, np.ndarray]], end: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The parts ``(x, y)`` of the curves that go on beyond ``end`` (where a group's mean stops: the
    shortest run's last x), each from its last point at or before ``end`` so that it joins the mean."""
    out = []
    for x, y in curves:
        if x.size and x[-1] > end:
            start = max(int(np.searchsorted(x, end, side="right")) - 1, 0)
            out.append((x[start:], y[start:]))
    return out


def panel_curves(runs: Sequence[Run], which: str, axis: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` of each run's ``which`` (``"train"``, ``"eval"`` or one of ``Run.tags``) against
    ``axis`` (``"steps"`` or ``"hours"``), leaving out the runs with no data there: a tag never
    logged, or hours an archive transcribed from a table does not have."""
    curves = [getattr(r, which) if which in ("train", "eval") else r.tags.get(which) for r in runs]
    return [
        (getattr(c, axis), c.values)
        for c in curves
        if c is not None and c.values.size and np.isfinite(getattr(c, axis)).all()
    ]


PANELS = (("train", "steps"), ("train", "hours"), ("eval", "steps"), ("eval", "hours"))


def plot_groups(
    groups: Mapping[str, Sequence[Run]],
    out: str | Path,
    random: tuple[float, int] | None = None,
    title: str = "",
    tags: Sequence[str] = (),
    panels: Sequence[tuple[str, str]] = PANELS,
) -> Path:
    """A figure of ``panels`` (``(which, axis)``: the train or eval return against agent steps or
    wall-clock hours; by default all four), mean +- sd per group, a dashed line at the random
    policy's return, then a panel for each of the other ``tags`` (``Run.tags``) against agent steps,
    two panels per row; written to ``out`` (PNG, PDF, SVG...). Where a group's runs differ in
    length, the mean covers what all of them reached and each longer run goes on as a thin line of
    the group's colour. A run with no data for a panel (a tag it never logged, hours an archive
    does not have) is left out of that panel's mean."""
    from matplotlib.figure import Figure  # the plots extra; no pyplot: no GUI backend, no global state

    panels = [*panels, *((tag, "steps") for tag in tags)]
    for which, axis in panels:
        if which not in ("train", "eval", *tags) or axis not in ("steps", "hours"):
            raise ValueError(f"panel {which}:{axis}: choose train or eval (or a tag) against steps or hours")
    rows = (len(panels) + 1) // 2
    columns = 1 if len(panels) == 1 else 2
    figure = Figure(figsize=(6 * columns, 4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, (which, axis) in zip(axes.flat, panels):
        for index, (label, runs) in enumerate(groups.items()):
            curves = panel_curves(runs, which, axis)
            x, mean, sd = mean_sd(curves)
            if x.size == 0:
                continue
            colour = f"C{index % 10}"
            ax.plot(x, mean, color=colour, label=label, marker="o" if x.size == 1 else None)
            ax.fill_between(x, mean - sd, mean + sd, color=colour, alpha=0.2, linewidth=0)
            if len(curves) > 1:  # runs still under way stop the mean; the longer ones go on alone
                for tail_x, tail_y in tails(curves, x[-1]):
                    ax.plot(tail_x, tail_y, color=colour, linewidth=0.8, alpha=0.7)
        if random is not None and which in ("train", "eval"):
            ax.axhline(random[0], color="grey", linestyle="--", label=f"random policy ({random[1]} episodes)")
        ax.set_xlabel("agent steps" if axis == "steps" else "wall-clock hours")
        names = {"train": "train return (smoothed)", "eval": "eval return"}
        ax.set_ylabel(names.get(which, which))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out
