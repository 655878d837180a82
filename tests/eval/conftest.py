"""A tiny real run shared by the evaluation scripts' tests."""

import pytest

from aime.config import load_config
from aime.runtime.loop import Trainer


@pytest.fixture(scope="package")
def tiny_catch_run(tmp_path_factory):
    """A tiny Catch run: 2 environments, 40 agent steps, a checkpoint with its replay."""
    logdir = tmp_path_factory.mktemp("report") / "run"
    overrides = ["env.num_envs=2", "train.steps=40", "train.warmup_steps=1000", "eval.episodes=0", "eval.every=0"]
    Trainer(load_config(["debug", "tiny"], overrides), logdir, progress=False).run()
    return logdir
