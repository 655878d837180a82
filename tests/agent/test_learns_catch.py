"""The agent learns: the ``ci_catch`` preset on Catch beats a random policy by a clear margin.

A real training process (``scripts/train_agent.py``) on one thread, then the final greedy
evaluation over 100 episodes. A random policy scores -0.6 on average (it catches about one ball in
five; -0.594 +- 0.804 over 2,000 episodes, ``scripts/evaluate.py --random --env Catch``), so the
mean of 100 of its episodes lies within +-0.25 of that with probability > 0.998; a greedy policy
that has not learnt keeps the paddle in one column and scores -0.6 too. The preset and its bar were
chosen from runs of several seeds, and the same run with learning switched off (actor learning rate
0, or world-model learning rate 0) fails the bar: see ``configs/ci_catch.yaml`` and docs/learning.md.
The run is deterministic on one thread, so this test replays seed 0's run.

The run's own lines go to the terminal past pytest's capture (``capsys.disabled()``), so
``make test`` (``pytest -q``) is not silent meanwhile.
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, str(ROOT / "scripts" / "train_agent.py")]
RANDOM_RETURN = -0.6
MARGIN = 0.6  # the bar, a return >= 0.0: over twice the +-0.25 that random policies' 100-episode means stay within
STEPS = 3500  # the preset's train.steps, named here so the test's expectations read alone
TIMEOUT = 1200.0  # seconds; a run that hangs is killed and fails the test


def test_ci_catch_preset_learns_catch(tmp_path, capsys):
    logdir = tmp_path / "catch"
    args = ["--env", "Catch", "--preset", "ci_catch", "--seed", "0", "--logdir", str(logdir), "--no-progress",
            "--set", "eval.every=0", "--set", "eval.episodes=100", "--set", "log.images_every=0",
            "--set", "log.checkpoint_every=0"]
    err_path = tmp_path / "stderr.txt"
    with capsys.disabled(), open(err_path, "w") as err:
        print(f"\n[test_learns_catch] a {STEPS:,}-step Catch run on one thread (a few minutes)", flush=True)
        proc = subprocess.Popen(TRAIN + args, stdout=subprocess.PIPE, stderr=err, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        watchdog = threading.Timer(TIMEOUT, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                print(f"[test_learns_catch] {line.rstrip()}", flush=True)
            code = proc.wait()
        finally:  # a timeout, or the test interrupted: the run does not outlive it
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, err_path.read_text()
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in rows if "eval/episodic_return" in r]
    assert len(final) == 1 and final[0]["step"] == STEPS  # eval.every=0: one evaluation, at the end
    assert final[0]["eval/episodic_return"] >= RANDOM_RETURN + MARGIN, final[0]
