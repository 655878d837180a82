"""A run directory survives a crash at any instant, is never overwritten by a fresh run, and a
damaged one is refused in one line (exit 2) instead of a traceback. See docs/running.md."""

import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from aime.runtime import checkpoint as ckpt
from aime.runtime.replay import ReplayBuffer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_agent.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# Catch, 2 environments, no updates (warm-up outlasts the run), no evaluation or images:
# a checkpoint every 16 agent steps, in a couple of seconds
TINY = [
    "--env",
    "Catch",
    "--preset",
    "debug",
    "--no-progress",
    "--set",
    "env.num_envs=2",
    "--set",
    "train.warmup_steps=1000",
    "--set",
    "eval.episodes=0",
    "--set",
    "eval.every=0",
    "--set",
    "log.images_every=1000",
    "--set",
    "log.scalars_every=16",
    "--set",
    "log.checkpoint_every=16",
]


def train_in_process(args, capsys):
    """``scripts/train_agent.py``'s ``train`` on ``args`` in this process: ``(exit code, stdout, stderr)``.

    No process start-up (the tests stay fast), and no global settings of ``main`` (denormals,
    allocator) leak into other tests. Warnings are recorded: a clean error raises none.
    """
    script = runpy.run_path(str(SCRIPT), run_name="train_agent_under_test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = script["train"](script["parse_args"](args))
    out, err = capsys.readouterr()
    assert not [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train_agent.py: error: "), err
    assert "Traceback" not in err and "weights_only=False" not in err
    for fragment in fragments:
        assert fragment in err, err


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def scalar_events(run):
    """Every scalar event of every event file in ``run``, as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return [event for tag in acc.Tags()["scalars"] for event in acc.Scalars(tag)]


def counters(run):
    return ckpt.load_agent_state(run / "checkpoint" / "agent.pt")["counters"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One finished run of 32 agent steps (checkpoints at 16 and 32), copied by each test that damages it."""
    run = tmp_path_factory.mktemp("safety") / "run"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--steps", "32", "--logdir", str(run)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return run


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


# -- a crash while saving ------------------------------------------------------------------------
# Runs train_agent.py and kill -9's it at one instant of its second save (the checkpoint at step
# 32; the first, at 16, is complete). Saves are counted by ckpt.begin_save, which Trainer.save
# calls first.
KILLER = r"""
import os, runpy, signal, sys
import numpy as np, torch
from aime.runtime import checkpoint as ckpt

phase, script, *args = sys.argv[1:]
count = {"saves": 0, "arrays": 0}

def kill(*_, **__):
    os.kill(os.getpid(), signal.SIGKILL)

def before(owner, name, action, always=False):
    original = getattr(owner, name)
    def hooked(*a, **k):
        if always or count["saves"] == 2:
            action(*a, **k)
        return original(*a, **k)
    setattr(owner, name, hooked)

def count_save(*_):
    count["saves"] += 1

def third_array(*_, **__):  # the replay's first two files are written, not the third
    count["arrays"] += 1
    if count["arrays"] == 3:
        kill()

def half_written(obj, f, *_, **__):  # agent.pt's temp file holds the start of a zip archive
    f.write(b"PK\x03\x04 cut short")
    f.flush()
    kill()

before(ckpt, "begin_save", count_save, always=True)
if phase == "replay":
    before(np, "save", third_array)
elif phase == "between":  # the replay is staged, agent.pt not begun
    before(ckpt, "save_agent_state", kill)
elif phase == "agent":
    before(torch, "save", half_written)
elif phase == "staged":  # everything staged, nothing committed
    before(ckpt, "commit", kill)
elif phase == "swap":  # the old generation moved aside, the new one not yet in its place
    before(os, "rename", lambda src, dst: kill() if os.path.basename(src) == ".checkpoint.new" else None)
elif phase == "retire":  # committed, the old generation not yet deleted
    before(ckpt, "discard", lambda path: kill() if os.path.basename(path) == ".checkpoint.old"
           and os.path.exists(path) else None)
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize(
    "phase, step",
    [
        ("replay", 16),
        ("between", 16),
        ("agent", 16),
        ("staged", 32),
        ("swap", 32),
        ("retire", 32),
    ],
)
def test_kill_during_a_save_resumes_from_the_newest_complete_checkpoint(phase, step, tmp_path, capsys):
    run = tmp_path / "run"
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, phase, str(SCRIPT), *TINY, "--steps", "48", "--logdir", str(run)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert ckpt.load_agent_state(ckpt.find_checkpoint(run))["counters"]["env_steps"] == step  # read-only
    assert max(row["step"] for row in metrics(run)) == 32  # the killed session logged up to its second save
    # resuming to the step it holds trains nothing; the logs are rolled back to the checkpoint
    code, out, err = train_in_process(["--resume", str(run), "--steps", str(step)], capsys)
    assert code == 0, err
    rows = metrics(run)
    assert max(row["step"] for row in rows) == step
    assert [row["step"] for row in rows if "charts/SPS" in row] == list(range(16, step + 1, 16))  # each once
    assert max(event.step for event in scalar_events(run)) == step
    assert counters(run)["env_steps"] == step
    assert ReplayBuffer.load(run / "checkpoint" / "replay").total_added * 2 == step
    leftovers = [p.name for p in [*run.iterdir(), *(run / "checkpoint").iterdir()] if p.name.startswith(".")]
    assert leftovers == []


# -- a damaged run directory -------------------------------------------------------------------
# every file a run writes ("events" stands for its TensorBoard event file, whose name holds the time)
RUN_FILES = [
    "config.yaml",
    "metrics.jsonl",
    "events",
    "checkpoint/agent.pt",
    "checkpoint/replay/state.json",
    *(f"checkpoint/replay/{name}.npy" for name in ("obs", "action", "reward", "is_first", "is_terminal")),
]


def run_file(run: Path, name: str) -> Path:
    return next(run.glob("events.out.tfevents.*")) if name == "events" else run / name


def test_the_damage_test_covers_every_file_a_run_writes(tiny_run):
    written = sorted(str(p.relative_to(tiny_run)) for p in tiny_run.rglob("*") if p.is_file())
    assert written == sorted(str(run_file(tiny_run, name).relative_to(tiny_run)) for name in RUN_FILES)


def damage(path: Path, how: str) -> None:
    """Empty, cut to half, overwrite with random bytes of the same length, or delete one file."""
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "missing"])
@pytest.mark.parametrize("name", RUN_FILES)
def test_a_damaged_file_is_one_line_and_exit_2_on_resume(run_copy, name, how, capsys):
    path = run_file(run_copy, name)
    damage(path, how)
    code, out, err = train_in_process(["--resume", str(run_copy), "--steps", "48"], capsys)
    assert_one_line_error(code, err, path.name)  # the line names the file
    if name != "checkpoint/agent.pt":
        assert counters(run_copy)["env_steps"] == 32  # nothing was trained, nothing overwritten


def test_a_pickle_payload_is_refused_in_one_line_without_unsafe_advice(run_copy):
    """A real process: torch's UserWarning and its advice to load with weights_only=False never show."""

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    for name, write in [
        ("torch", lambda f: torch.save({"format_version": 1, "x": Payload()}, f)),
        ("plain", lambda f: f.write(__import__("pickle").dumps({"x": Payload()}))),
    ]:
        with open(run_copy / "checkpoint" / "agent.pt", "wb") as f:
            write(f)
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--resume", str(run_copy)],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
        )
        assert_one_line_error(result.returncode, result.stderr, "agent.pt is not a readable AIME checkpoint")
        assert "weights_only" not in result.stderr and "this must never run" not in result.stdout, name


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("seed: 0\nmodel: {deter: 64\n  stoch: [\n", "is not valid YAML"),
        ("seed: !!python/object/apply:os.system ['echo pwned']\n", "only plain YAML values are allowed"),
    ],
)
def test_a_config_yaml_that_is_not_plain_yaml_is_one_line(run_copy, text, fragment, capsys):
    (run_copy / "config.yaml").write_text(text)
    code, out, err = train_in_process(["--resume", str(run_copy)], capsys)
    assert_one_line_error(code, err, "config.yaml", fragment)
    assert "pwned" not in out


def test_an_edited_config_yaml_is_refused_on_resume(run_copy, capsys):
    path = run_copy / "config.yaml"
    path.write_text(path.read_text().replace("deter: 64", "deter: 32"))
    code, _, err = train_in_process(["--resume", str(run_copy)], capsys)
    assert_one_line_error(code, err, "does not match the run's checkpoint", "model.deter: 32, saved 64")


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_fresh_run_never_touches_an_existing_run(run_copy, capsys):
    before = snapshot(run_copy)
    code, _, err = train_in_process([*TINY, "--steps", "16", "--logdir", str(run_copy)], capsys)
    assert_one_line_error(code, err, "already holds a run", f"--resume {run_copy}", "another --logdir")
    assert snapshot(run_copy) == before


def test_a_fresh_run_refuses_a_non_empty_directory_and_accepts_an_empty_one(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = train_in_process([*TINY, "--steps", "0", "--logdir", str(tmp_path)], capsys)
    assert_one_line_error(code, err, "is not empty (notes.txt)")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = train_in_process([*TINY, "--steps", "0", "--logdir", str(empty)], capsys)
    assert code == 0, err
    assert (empty / "checkpoint" / "agent.pt").is_file()


def test_a_replay_smaller_than_a_training_window_is_refused_at_start(tmp_path, capsys):
    # debug: 4 environment streams, windows of 10 steps: 20 rows give each stream 5
    code, _, err = train_in_process(
        ["--env", "Catch", "--preset", "debug", "--set", "replay.capacity=20", "--logdir", str(tmp_path / "run")],
        capsys,
    )
    assert_one_line_error(code, err, "replay.capacity", "the minimum is 40")
    assert not (tmp_path / "run").exists()
