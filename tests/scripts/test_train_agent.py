"""End-to-end runs of scripts/train_agent.py and scripts/evaluate.py as real processes."""

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aime.runtime.checkpoint import load_agent, load_agent_state
from aime.runtime.replay import ReplayBuffer
from aime.runtime.summaries import ATTENTION_TAGS, IMAGE_TAGS

ROOT = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, str(ROOT / "scripts" / "train_agent.py")]
FAST = [
    "--preset",
    "debug",
    "--no-progress",
    "--set",
    "env.num_envs=2",
    "--set",
    "train.horizon=5",
    "--set",
    "train.warmup_steps=32",
    "--set",
    "train.batch_size=2",
    "--set",
    "train.seq_len=8",
    "--set",
    "train.train_ratio=16",
    "--set",
    "log.images_every=32",
    "--set",
    "log.scalars_every=16",
    "--set",
    "eval.every=32",
    "--set",
    "log.checkpoint_every=32",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(args, **kwargs):
    return subprocess.run(TRAIN + args, capture_output=True, text=True, env=ENV, timeout=300, **kwargs)


def train_agent_script() -> dict:
    """``scripts/train_agent.py``'s globals, loaded in this process (its ``main`` not run)."""
    return runpy.run_path(str(ROOT / "scripts" / "train_agent.py"), run_name="train_agent_under_test")


def metrics(logdir):
    return [json.loads(line) for line in (Path(logdir) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs") / "catch"
    result = run(["--env", "Catch", "--steps", "64", "--logdir", str(logdir), *FAST])
    assert result.returncode == 0, result.stderr
    return logdir, result


def test_catch_run_writes_checkpoint_metrics_and_every_image(catch_run):
    logdir, result = catch_run
    assert "tensorboard --logdir" in result.stdout and "done: 64 agent steps" in result.stdout
    assert "| precision fp32 (train.precision=fp32)" in result.stdout  # the debug preset pins fp32
    assert (logdir / "config.yaml").is_file() and (logdir / "checkpoint" / "agent.pt").is_file()
    payload = load_agent_state(logdir / "checkpoint" / "agent.pt")
    assert payload["counters"]["env_steps"] == 64 and payload["counters"]["updates"] > 0
    keys = set().union(*metrics(logdir))
    assert {
        "charts/episodic_return",
        "charts/SPS",
        "losses/reconstruction",
        "losses/kl",
        "losses/actor",
        "eval/episodic_return",
        "grad_norm/world_model",
        "lr/model",
    } <= keys
    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    assert set(IMAGE_TAGS) | set(ATTENTION_TAGS) <= set(acc.Tags()["images"])
    assert "charts/episodic_return" in acc.Tags()["scalars"]
    assert "hyperparameters/text_summary" in acc.Tags()["tensors"]


def test_resume_continues_from_the_saved_step_and_may_change_how_often_it_reports(catch_run, tmp_path):
    logdir, _ = catch_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(logdir), str(copy)], check=True)
    before = ReplayBuffer.load(copy / "checkpoint" / "replay")
    refused = run(["--resume", str(copy), "--steps", "96", "--set", "model.deter=8"])
    assert refused.returncode == 2 and "--set may change only train.compile" in refused.stderr
    assert load_agent_state(copy / "checkpoint" / "agent.pt")["counters"]["env_steps"] == 64  # untouched

    result = run(["--resume", str(copy), "--steps", "96", "--set", "log.scalars_every=8"])
    assert result.returncode == 0, result.stderr
    assert "done: 96 agent steps" in result.stdout
    assert "resumed with log.scalars_every=8 (kept by the next checkpoint)" in result.stdout
    payload = load_agent_state(copy / "checkpoint" / "agent.pt")
    assert payload["counters"]["env_steps"] == 96
    original = load_agent_state(logdir / "checkpoint" / "agent.pt")["config"]
    original["train"]["steps"], original["log"]["scalars_every"] = 96, 8  # the changes asked for
    assert payload["config"] == original
    after = ReplayBuffer.load(copy / "checkpoint" / "replay")
    assert after.total_added == before.total_added + 16  # 32 more steps over 2 envs
    assert max(m["step"] for m in metrics(copy)) == 96
    logged = sorted({m["step"] for m in metrics(copy) if "losses/kl" in m and m["step"] > 64})
    assert logged == [72, 80, 88, 96]  # every 8 steps (16 before the resume)

    assert [m.get("changed") for m in metrics(copy) if m.get("event") == "resume"] == [["log.scalars_every=8"]]
    assert "scalars_every: 16" in (copy / "config.yaml").read_text()  # the run's first configuration

    script = train_agent_script()
    cfg = script["config_from_checkpoint"](copy)
    script["resumed_config"](cfg, copy, [])  # the next session, without --set, keeps the change
    assert cfg.log.scalars_every == 8 and cfg.log.images_every == 32


def test_evaluate_script_plays_episodes_and_saves_overlays(catch_run, tmp_path):
    logdir, _ = catch_run
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "evaluate.py"),
            str(logdir),
            "--episodes",
            "2",
            "--save-frames",
            str(tmp_path / "frames"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "2 episodes" in result.stdout
    frames = sorted((tmp_path / "frames").glob("*.png"))
    assert len(frames) >= 9  # an episode of Catch lasts 9 steps


def test_evaluate_random_policy_uses_the_runs_protocol(catch_run):
    logdir, _ = catch_run
    evaluate = [sys.executable, str(ROOT / "scripts" / "evaluate.py")]
    result = subprocess.run(
        evaluate + [str(logdir), "--random", "--episodes", "400"], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Catch (random policy): 400 episodes" in result.stdout
    mean = float(result.stdout.split("return ")[1].split(" +-")[0])
    assert -0.8 < mean < -0.4  # a random paddle catches ~1 ball in 5: E[return] = -0.6
    result = subprocess.run(evaluate + ["--random"], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 2 and "--random with --env GAME" in result.stderr


def test_breakout_debug_run(tmp_path):
    logdir = tmp_path / "breakout"
    result = run(
        [
            "--env",
            "Breakout",
            "--steps",
            "48",
            "--logdir",
            str(logdir),
            *FAST,
            "--set",
            "env.max_episode_frames=200",
            "--set",
            "eval.episodes=2",
        ]
    )
    assert result.returncode == 0, result.stderr
    agent, cfg = load_agent(logdir)
    assert cfg.env.name == "Breakout" and agent.num_actions == 4
    rows = metrics(logdir)
    keys = set().union(*rows)
    assert "eval/episodic_return" in keys and "attention/entropy_ratio" in keys
    # the object metrics against OCAtari's boxes, logged with the images
    objects = next(r for r in rows if "objects/attention_lift_ball" in r)
    assert {
        "objects/attention_lift_paddle",
        "objects/state_map_lift_ball",
        "objects/best_slot_lift_ball",
        "objects/window_ratio_recon_ball",
        "objects/window_ratio_state_ball",
        "objects/window_ratio_h1_paddle",
        "objects/centroid_error_px_ball",
        "objects/prior_lift_h1_ball",
    } <= set(objects)
    assert objects["objects/motion_map_lift_ball"] > 10  # the trivial baseline sits on the moving ball


def test_sigterm_saves_a_loadable_checkpoint(tmp_path):
    logdir = tmp_path / "term"
    proc = subprocess.Popen(
        TRAIN
        + [
            "--env",
            "Catch",
            "--steps",
            "100000",
            "--logdir",
            str(logdir),
            *FAST,
            "--set",
            "log.checkpoint_every=100000",
            "--set",
            "eval.every=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until training is under way
        path = logdir / "metrics.jsonl"
        if path.is_file() and any("losses/kl" in line for line in path.read_text().splitlines()):
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM received: checkpoint saved" in err
    payload = load_agent_state(logdir / "checkpoint" / "agent.pt")
    # training was under way (the metrics held a loss), so the checkpoint holds updates
    assert payload["counters"]["env_steps"] >= 32 and payload["counters"]["updates"] > 0
    agent, _ = load_agent(logdir)
    assert ReplayBuffer.load(logdir / "checkpoint" / "replay").total_added * 2 == payload["counters"]["env_steps"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "Breakot"], "close matches: Breakout"),
        (["--preset", "fastest"], "unknown preset 'fastest'"),
        (["--set", "model.detr=3"], "Did you mean 'model.deter'"),
        (["--steps", "-5"], "must be >= 0"),
        (["--logdir", "/proc/forbidden/run"], "not writable"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = run(args + ["--no-progress"])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "checkpoint" / "agent.pt").write_bytes(b"not a checkpoint")
    result = run(["--resume", str(tmp_path)])
    assert result.returncode == 2 and "not a readable AIME checkpoint" in result.stderr


class _Configured(Exception):
    """Raised by the stand-in for configure_process: the test stops the script there."""


@pytest.mark.parametrize("resolved", ["cpu", "cuda"])
def test_start_up_tunes_the_process_for_the_resolved_device(monkeypatch, tmp_path, resolved):
    import torch

    script = train_agent_script()
    names = script["main"].__globals__  # the functions' own globals (run_path returns a copy)
    seen = []

    def configure(device):
        seen.append(device)
        raise _Configured

    monkeypatch.setitem(names, "resolve_device", lambda name: torch.device(resolved))
    monkeypatch.setitem(names, "configure_process", configure)
    with pytest.raises(_Configured):
        names["main"](["--env", "Catch", "--preset", "debug", "--steps", "0", "--logdir", str(tmp_path / "run")])
    assert seen == [torch.device(resolved)]
