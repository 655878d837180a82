"""Suite-wide pytest settings, and the CI learning run in the background.

The CI learning test is ``tests/agent/test_learns_catch.py`` (the ``ci_catch`` preset, a few
minutes on one core). Its training run is one process on one thread: when the test is selected,
the session starts the run as the first test begins, moves the test to the end of the run order,
and the test waits for the process there. The rest of the suite runs meanwhile, on the other core
of a 2-core machine (its torch on one thread), so the suite's wall time is about the longer of the
two, not their sum.

The earlier learning test, ``tests/scripts/test_learning.py::test_debug_preset_learns_catch``
(the ``debug`` preset with the attention schema, 4,000 agent steps, about 13 minutes on one core),
is deselected from the default run and still runs when asked for: ``AIME_LONG_LEARNING_TEST=1``,
or ``AIME_LONG_TESTS=1``, which also runs the tests that compile for minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LONG_LEARNING_TEST = "tests/scripts/test_learning.py::test_debug_preset_learns_catch"
CATCH_TEST = "tests/agent/test_learns_catch.py::test_ci_catch_preset_learns_catch"
CATCH_TIMEOUT = 1200.0  # seconds; a run that hangs is killed and fails the test


def pytest_collection_modifyitems(config, items):
    if "1" not in (os.environ.get("AIME_LONG_LEARNING_TEST"), os.environ.get("AIME_LONG_TESTS")):
        dropped = [item for item in items if item.nodeid == LONG_LEARNING_TEST]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item.nodeid != LONG_LEARNING_TEST]
    # the learning test waits for its background run: last, so everything else runs meanwhile
    items.sort(key=lambda item: item.nodeid == CATCH_TEST)


class BackgroundRun:
    """``scripts/train_agent.py`` on Catch with the ``ci_catch`` preset, seed 0, one thread, started now."""

    def __init__(self, root: Path) -> None:
        self.logdir = root / "catch"
        self.stdout_path, self.stderr_path = root / "stdout.txt", root / "stderr.txt"
        args = [
            "--env",
            "Catch",
            "--preset",
            "ci_catch",
            "--seed",
            "0",
            "--logdir",
            str(self.logdir),
            "--no-progress",
            "--set",
            "eval.every=0",
            "--set",
            "eval.episodes=100",
            "--set",
            "log.images_every=0",
            "--set",
            "log.checkpoint_every=0",
        ]
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "train_agent.py"), *args],
                stdout=out,
                stderr=err,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        self.watchdog = threading.Timer(CATCH_TIMEOUT, self.proc.kill)
        self.watchdog.start()

    def wait(self) -> tuple[Path, int, str]:
        """Block until the run ends: ``(logdir, exit code, stderr)``; its stdout is printed (shown on failure)."""
        code = self.proc.wait()
        self.watchdog.cancel()
        for line in self.stdout_path.read_text().splitlines():
            print(f"[test_learns_catch] {line}", flush=True)
        return self.logdir, code, self.stderr_path.read_text()

    def stop(self) -> None:
        """A timeout, or the session interrupted: the run does not outlive the suite."""
        self.watchdog.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def catch_learning_run(tmp_path_factory):
    run = BackgroundRun(tmp_path_factory.mktemp("learns_catch"))
    yield run
    run.stop()


@pytest.fixture(scope="session", autouse=True)
def _start_the_learning_run_first(request):
    """Start the background run at the first test when the learning test is selected, and keep the
    suite's own torch to one thread meanwhile: the run holds the other core, and three threads on
    two cores make OpenMP's workers wait for each other."""
    if any(item.nodeid == CATCH_TEST for item in request.session.items):
        request.getfixturevalue("catch_learning_run")
        import torch

        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tiny_catch_run(tmp_path_factory):
    """A tiny Catch run (2 environments, 40 agent steps): a checkpoint with its replay, for the
    scripts that read runs."""
    from aime.config import load_config
    from aime.runtime.loop import Trainer

    logdir = tmp_path_factory.mktemp("tiny_catch") / "run"
    overrides = ["env.num_envs=2", "train.steps=40", "train.warmup_steps=1000", "eval.episodes=0", "eval.every=0"]
    Trainer(load_config(["debug", "tiny"], overrides), logdir, progress=False).run()
    return logdir


@pytest.fixture(scope="session")
def tiny_breakout_run(tmp_path_factory):
    """A tiny Breakout run (2 environments, 48 agent steps, a lost life terminal): a checkpoint with
    its replay, for the scripts that read Breakout runs."""
    from aime.config import load_config
    from aime.runtime.loop import Trainer

    logdir = tmp_path_factory.mktemp("tiny_breakout") / "run"
    overrides = ["env.name=Breakout", "env.num_envs=2", "env.terminal_on_life_loss=true", "train.steps=48"]
    overrides += ["train.warmup_steps=1000", "eval.episodes=0", "eval.every=0"]
    Trainer(load_config(["debug", "tiny"], overrides), logdir, progress=False).run()
    return logdir
