"""Resuming through the library (``Trainer(..., resume=True)``), not the CLI: a save cut short is
recovered, and the run's logs are rolled back to the checkpoint. See docs/running.md."""

import json
import os
import re
import shutil

import numpy as np
import pytest

from aime.config import load_config
from aime.runtime import checkpoint as ckpt
from aime.runtime.logger import EVENTS_PREFIX, LogError, plan_rollback
from aime.runtime.loop import Trainer
from aime.runtime.plots import run_hours

# Catch, 2 environments, no updates (warm-up outlasts the run), no evaluation or images
TINY = [
    "env.num_envs=2",
    "train.warmup_steps=1000",
    "eval.episodes=0",
    "eval.every=0",
    "log.images_every=1000",
    "log.scalars_every=8",
    "log.checkpoint_every=8",
]


def train(logdir, steps, resume=False):
    trainer = Trainer(load_config(["debug"], [*TINY, f"train.steps={steps}"]), logdir, resume=resume, progress=False)
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run of 16 agent steps (checkpoints at 8 and 16)."""
    run = tmp_path_factory.mktemp("resume") / "run"
    train(run, 16)
    return run


@pytest.fixture
def run(finished, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def steps_of(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_library_resume_recovers_a_save_cut_short_between_the_renames(run):
    os.rename(run / "checkpoint", run / ".checkpoint.old")  # commit's first rename done, not its second
    trainer = train(run, 24, resume=True)
    assert trainer.env_steps == 24 and ckpt.is_complete(run / "checkpoint")
    assert not (run / ".checkpoint.old").exists()


def test_the_library_resume_finishes_a_staged_commit(run):
    ckpt.begin_save(run / "checkpoint")  # a staged generation, complete but not committed
    shutil.copy(run / "checkpoint" / "agent.pt", run / ".checkpoint.new" / "agent.pt")
    shutil.copytree(run / "checkpoint" / "replay", run / ".checkpoint.new" / "replay")
    shutil.rmtree(run / "checkpoint")
    trainer = Trainer(load_config(["debug"], TINY), run, resume=True, progress=False)
    try:
        assert trainer.env_steps == 16 and not (run / ".checkpoint.new").exists()
    finally:
        trainer.logger.close()
        trainer.env.close()


def test_a_resume_rolls_the_logs_back_to_the_checkpoint(run):
    saved = ckpt.load_agent_state(run / "checkpoint" / "agent.pt")["logs"]
    assert set(saved) == {p.name for p in run.iterdir() if p.is_file() and p.name != "config.yaml"}
    metrics_at_save = (run / "metrics.jsonl").read_bytes()[: saved["metrics.jsonl"]]
    # what a session killed after the checkpoint leaves: rows past it (the last one cut short), more
    # events in its own file, and the event file of a later session that died before its first save
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 18, "charts/SPS": 1.0}\n{"step": 20, "charts/S')
    events = next(p for p in run.iterdir() if p.name.startswith(EVENTS_PREFIX))
    with open(events, "ab") as f:
        f.write(b"\0" * 20)
    (run / f"{EVENTS_PREFIX}later").write_bytes(b"x")
    trainer = Trainer(load_config(["debug"], TINY), run, resume=True, progress=False)
    try:
        kept, marker = (run / "metrics.jsonl").read_bytes().split(b"\n")[:-1], None
        kept, marker = b"".join(line + b"\n" for line in kept[:-1]), json.loads(kept[-1])
        assert kept == metrics_at_save  # then the new session's mark: where the pause before it ends
        assert marker["event"] == "resume" and marker["step"] == 16 and set(marker) == {"step", "time", "event"}
        assert events.stat().st_size == saved[events.name]
        assert not (run / f"{EVENTS_PREFIX}later").exists()
    finally:
        trainer.logger.close()
        trainer.env.close()
    assert max(steps_of(run)) == 16  # the session end's rows, at the step it resumed from


def test_a_refused_resume_changes_no_log(run):
    (run / "checkpoint" / "replay" / "obs.npy").write_bytes(b"")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 18}\n')
    before = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(ValueError, match="obs.npy"):
        Trainer(load_config(["debug"], TINY), run, resume=True, progress=False)
    assert (run / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "fewer than"),
        (lambda p: p.write_bytes(b"[" + p.read_bytes()[1:]), "is damaged (line 1 is not JSON)"),
        (lambda p: p.unlink(), "is missing"),
    ],
)
def test_damaged_logs_are_refused(run, damage, message):
    damage(run / "metrics.jsonl")
    payload = ckpt.load_agent_state(run / "checkpoint" / "agent.pt")
    with pytest.raises(LogError, match=re.escape(message)):
        plan_rollback(run, payload["logs"], 16)


def test_damaged_event_files_are_refused_and_logs_moved_aside_start_anew(run):
    sizes = ckpt.load_agent_state(run / "checkpoint" / "agent.pt")["logs"]
    events = next(p for p in run.iterdir() if p.name.startswith(EVENTS_PREFIX))
    data = events.read_bytes()
    events.write_bytes(data[:8] + bytes([data[8] ^ 1]) + data[9:])
    with pytest.raises(LogError, match="fails its checksum"):
        plan_rollback(run, sizes, 16)
    events.unlink()
    (run / "metrics.jsonl").unlink()
    assert plan_rollback(run, sizes, 16) == {}  # every log moved aside: new ones


def test_a_checkpoint_without_log_sizes_cuts_metrics_at_its_step(run):
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 18}\n{"step": 16}\n')
    size = (run / "metrics.jsonl").stat().st_size
    plan = plan_rollback(run, None, 16)
    assert plan == {run / "metrics.jsonl": size - len('{"step": 18}\n{"step": 16}\n')}


def test_a_resumed_runs_hours_leave_out_the_pause_between_its_sessions(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    first_session = rows[-1]["time"] - rows[0]["time"]
    train(run, 24, resume=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    marks = [i for i, r in enumerate(rows) if r.get("event") == "resume"]
    assert len(marks) == 1 and rows[marks[0]]["step"] == 16
    # a pause of a day before the second session: its rows move, the hours trained do not
    pause = 86400.0
    paused = [{**r, "time": r["time"] + pause * (i >= marks[0])} for i, r in enumerate(rows)]
    hours = run_hours(paused)
    assert np.allclose(hours, run_hours(rows)) and np.all(np.diff(hours) >= 0)
    assert hours[-1] * 3600 < first_session + (rows[-1]["time"] - rows[marks[0]]["time"]) + 1e-6
    # without the mark the day counts
    assert run_hours([r for r in paused if "event" not in r])[-1] * 3600 > pause


def test_a_resumed_run_knows_its_last_evaluation_and_does_not_repeat_it(tmp_path):
    overrides = [*TINY, "eval.episodes=1", "eval.every=8", "eval.max_steps=50", "train.steps=16"]
    first = Trainer(load_config(["debug"], overrides), tmp_path / "run", progress=False)
    first.run()
    assert first.last_eval_step == 16
    evals = [
        r
        for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
        if "eval/episodic_return" in r
    ]
    again = Trainer(load_config(["debug"], overrides), tmp_path / "run", resume=True, progress=False)
    assert again.last_eval_step == 16 and again.last_eval == first.last_eval
    again.run()  # already at train.steps: nothing to train, and the step's evaluation is not repeated
    after = [
        r
        for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
        if "eval/episodic_return" in r
    ]
    assert [r["step"] for r in after] == [r["step"] for r in evals] == [8, 16]
