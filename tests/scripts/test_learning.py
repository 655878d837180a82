"""The agent learns: the ``debug`` preset on Catch beats a random policy by a clear margin.

A real training process (``scripts/train_agent.py``) on one thread, then the final greedy
evaluation over 100 episodes. A random policy scores -0.6 on average (it catches about one ball in
five; -0.594 +- 0.804 over 2,000 episodes, ``scripts/evaluate.py --random --env Catch``), so the
mean of 100 of its episodes lies within +-0.25 of that with probability > 0.998; a greedy policy
that has not learnt keeps the paddle in one column and scores -0.6 too. The budget (4,000 agent
steps, ~1,950 updates) was chosen from runs of seeds 0 to 3 (see the README's "Does it learn?").
The run is deterministic on one thread, so this test replays seed 0's run.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RANDOM_RETURN = -0.6


def test_debug_preset_learns_catch(tmp_path):
    logdir = tmp_path / "catch"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_agent.py"), "--env", "Catch", "--preset", "debug",
         "--steps", "4000", "--seed", "0", "--logdir", str(logdir), "--no-progress",
         "--set", "eval.every=0", "--set", "eval.episodes=100", "--set", "log.images_every=0",
         "--set", "log.checkpoint_every=0"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=1500)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in rows if "eval/episodic_return" in r]
    assert len(final) == 1 and final[0]["step"] == 4000  # eval.every=0: one evaluation, at the end
    assert final[0]["eval/episodic_return"] >= RANDOM_RETURN + 0.6, final[0]
