"""The agent learns: the ``debug`` preset on Catch beats a random policy by a clear margin.

A real training process (``scripts/train_agent.py``) on one thread, then the final greedy
evaluation over 100 episodes. A random policy scores -0.6 on average (it catches about one ball in
five; -0.594 +- 0.804 over 2,000 episodes, ``scripts/evaluate.py --random --env Catch``), so the
mean of 100 of its episodes lies within +-0.25 of that with probability > 0.998; a greedy policy
that has not learnt keeps the paddle in one column and scores -0.6 too. The budget (4,000 agent
steps, ~1,950 updates) was chosen from runs of seeds 0 to 3 (see the README's "Does it learn?").
The run is deterministic on one thread, so this test replays seed 0's run.

It takes about a quarter of an hour on a 2-core machine: the run's own lines and a progress line
every minute go to the terminal past pytest's capture (``capsys.disabled()``), so ``make test``
(``pytest -q``) is not silent meanwhile.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, str(ROOT / "scripts" / "train_agent.py")]
RANDOM_RETURN = -0.6
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def progress_line(logdir: Path, total: int, seconds: float) -> str:
    """Where the run is, from its ``metrics.jsonl``: step, time, train and eval returns."""
    path = logdir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")] if path.is_file() else []
    step = max((r["step"] for r in rows), default=0)
    returns = [r["charts/episodic_return"] for r in rows if r.get("charts/episodic_return") is not None][-20:]
    line = f"{step:,}/{total:,} agent steps after {seconds / 60:.1f} min"
    if returns:
        line += f"; train return (last {len(returns)} episodes) {np.mean(returns):+.2f}"
    return line


def run_reporting(
    args: list[str],
    logdir: Path,
    total: int,
    report: Callable[[str], None],
    every: float = 60.0,
    timeout: float = 1500.0,
) -> tuple[int, str, str]:
    """Run ``train_agent.py args``, passing each of its stdout lines and, every ``every`` seconds, a
    progress line to ``report``; returns ``(exit code, stdout, stderr)``."""
    out_path, err_path = logdir.parent / f"{logdir.name}.out", logdir.parent / f"{logdir.name}.err"
    start = time.monotonic()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(TRAIN + args, stdout=out, stderr=err, text=True, env=ENV)
        pending, last_report = b"", start
        try:
            with open(out_path, "rb") as reader:  # bytes: a line may arrive in parts
                while True:
                    finished = proc.poll() is not None
                    *lines, pending = (pending + reader.read()).split(b"\n")
                    for line in lines:
                        report(line.decode("utf-8", errors="replace"))
                    if finished or time.monotonic() - start > timeout:
                        break
                    if time.monotonic() - last_report >= every:
                        last_report = time.monotonic()
                        report(progress_line(logdir, total, last_report - start))
                    time.sleep(min(1.0, every / 4))
        finally:  # a timeout, or the test interrupted: the run does not outlive it
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return proc.returncode, out_path.read_text(), err_path.read_text()


@pytest.fixture
def say(capsys):
    """Print a line to the terminal at once, past pytest's output capture."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"[test_learning] {line}", flush=True)

    return say


def test_debug_preset_learns_catch(tmp_path, say):
    logdir = tmp_path / "catch"
    say("a 4,000-step Catch run (about 15 minutes on 2 cores); progress every minute")
    code, _, stderr = run_reporting(
        [
            "--env",
            "Catch",
            "--preset",
            "debug",
            "--steps",
            "4000",
            "--seed",
            "0",
            "--logdir",
            str(logdir),
            "--no-progress",
            "--set",
            "eval.every=0",
            "--set",
            "eval.episodes=100",
            "--set",
            "log.images_every=0",
            "--set",
            "log.checkpoint_every=0",
        ],
        logdir,
        4000,
        say,
    )
    assert code == 0, stderr
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in rows if "eval/episodic_return" in r]
    assert len(final) == 1 and final[0]["step"] == 4000  # eval.every=0: one evaluation, at the end
    assert final[0]["eval/episodic_return"] >= RANDOM_RETURN + 0.6, final[0]


def test_the_long_run_reports_its_lines_and_its_progress_while_it_runs(tmp_path):
    """The reporting of the learning test, on a run of a few seconds (warm-up only)."""
    lines = []
    logdir = tmp_path / "short"
    code, stdout, stderr = run_reporting(
        [
            "--env",
            "Catch",
            "--preset",
            "debug",
            "--steps",
            "400",
            "--logdir",
            str(logdir),
            "--no-progress",
            "--set",
            "train.warmup_steps=400",
            "--set",
            "eval.episodes=0",
            "--set",
            "log.images_every=0",
            "--set",
            "log.scalars_every=4",
        ],
        logdir,
        400,
        lines.append,
        every=0.05,
    )
    assert code == 0, stderr
    progress = [line for line in lines if "/400 agent steps after" in line]
    assert progress, lines  # at least one progress line while the run was going
    own = [line for line in lines if line not in progress]
    assert own == stdout.splitlines()  # every line the run printed, in order
    assert own[0].startswith("AIME | env Catch") and any(line.startswith("done: 400 agent steps") for line in own)
