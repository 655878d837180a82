"""The agent learns: the ``ci_catch`` preset on Catch beats a random policy by a clear margin.

A real training process (``scripts/train_agent.py``) on one thread, then the final greedy
evaluation over 100 episodes. A random policy scores -0.6 on average (it catches about one ball in
five; -0.594 +- 0.804 over 2,000 episodes, ``scripts/evaluate.py --random --env Catch``), so the
mean of 100 of its episodes lies within +-0.25 of that with probability > 0.998; a greedy policy
that has not learnt keeps the paddle in one column and scores -0.6 too. The preset and its bar were
chosen from runs of several seeds, and the same run with learning switched off (actor learning rate
0, or world-model learning rate 0) fails the bar: see ``configs/ci_catch.yaml`` and docs/learning.md.
The run is deterministic on one thread, so this test replays seed 0's run.

The run is one process on one thread, so it does not need to hold the suite up: ``tests/conftest.py``
starts it in the background as the suite begins, and runs this test last, which waits for it and
then shows its lines. On a 2-core machine the rest of the suite runs meanwhile on the other core.
"""

import json

RANDOM_RETURN = -0.6
STEPS = 3500  # the preset's train.steps, named here so the test's expectations read alone
MARGIN = 0.6  # the bar, a return >= 0.0: over twice the +-0.25 that random policies' 100-episode means stay within


def test_ci_catch_preset_learns_catch(catch_learning_run):
    logdir, code, stderr = catch_learning_run.wait()
    assert code == 0, stderr
    rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in rows if "eval/episodic_return" in r]
    assert len(final) == 1 and final[0]["step"] == STEPS  # eval.every=0: one evaluation, at the end
    assert final[0]["eval/episodic_return"] >= RANDOM_RETURN + MARGIN, final[0]
