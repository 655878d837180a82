"""scripts/train_agent.py under torchrun: 2 ranks (gloo, CPU) as real processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aime.runtime.checkpoint import load_agent_state
from aime.runtime.distributed import state_digest
from aime.runtime.replay import ReplayBuffer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "train_agent.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", SCRIPT]
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
    "log.images_every=64",
    "--set",
    "log.scalars_every=16",
    "--set",
    "eval.every=0",
    "--set",
    "eval.episodes=2",
    "--set",
    "log.checkpoint_every=32",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # a rank that aborts prints where
for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(key, None)


def metrics(logdir):
    return [json.loads(line) for line in (Path(logdir) / "metrics.jsonl").read_text().splitlines()]


def check_consistent(ckpt):
    """Both ranks' state in ``ckpt`` describes the same step and the same networks; returns env_steps."""
    agent = load_agent_state(ckpt / "agent.pt")
    rank1 = load_agent_state(ckpt / "rank1.pt")
    steps = agent["counters"]["env_steps"]
    assert agent["world_size"] == 2 and rank1["counters"]["env_steps"] == steps
    # the digest rank 1 computed from its own live networks equals rank 0's saved networks
    assert rank1["state_digest"] == state_digest(agent["agent"])
    replays = [ReplayBuffer.load(ckpt / name) for name in ("replay", "replay_rank1")]
    assert [r.total_added for r in replays] == [steps // 4] * 2  # 2 ranks x 2 envs per row
    return steps


def kill_group(proc):
    """Take down a hung torchrun: its workers (each in its own session), then torchrun itself."""
    if proc.poll() is None:
        for pid in worker_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs") / "ddp"
    proc = subprocess.Popen(
        TORCHRUN + ["--env", "Catch", "--steps", "64", "--logdir", str(logdir), *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, err[-3000:]
    return logdir, out


def test_two_ranks_train_identical_replicas_on_their_own_data(torchrun_run):
    logdir, out = torchrun_run
    assert out.count("done: 64 agent steps") == 1  # rank 0 alone reports
    assert "2 envs x 2 ranks" in out
    assert check_consistent(logdir / "checkpoint") == 64
    payload = load_agent_state(logdir / "checkpoint" / "agent.pt")
    assert payload["counters"]["updates"] > 0
    assert any(k.startswith("world_model") for k in payload["agent"])
    r0, r1 = (ReplayBuffer.load(logdir / "checkpoint" / name) for name in ("replay", "replay_rank1"))
    assert not np.array_equal(r0.action[:, : r0.filled], r1.action[:, : r1.filled])  # own seeds, own data


def test_rank_0_alone_writes_logs(torchrun_run):
    logdir, _ = torchrun_run
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in logdir.iterdir()) == sorted(
        ["checkpoint", "config.yaml", "metrics.jsonl", *(p.name for p in logdir.glob("events.out.tfevents.*"))]
    )
    records = metrics(logdir)
    steps = [m["step"] for m in records if "losses/kl" in m]
    assert steps and len(steps) == len(set(steps))  # one logger: each step logged once
    assert "eval/episodic_return" in set().union(*records)  # the final evaluation, on rank 0


def test_resume_needs_the_same_number_of_processes(torchrun_run):
    logdir, _ = torchrun_run
    result = subprocess.run(
        [sys.executable, SCRIPT, "--resume", str(logdir), "--steps", "96"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert result.returncode == 2 and "written by 2 process(es), this run has 1" in result.stderr


def test_distributed_resume_continues_and_sigterm_to_one_rank_stops_all(torchrun_run, tmp_path):
    logdir, _ = torchrun_run
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(logdir), str(copy)], check=True)
    proc = subprocess.Popen(
        TORCHRUN + ["--resume", str(copy), "--steps", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # wait until the resumed run trains past its checkpoint
            lines = (copy / "metrics.jsonl").read_text().splitlines()
            if any(json.loads(line)["step"] > 80 and "losses/kl" in line for line in lines):
                break
            time.sleep(0.5)
        else:
            pytest.fail("the resumed run did not train")
        rank1 = [pid for pid in worker_pids(proc.pid) if read_env(pid).get("RANK") == "1"]
        assert len(rank1) == 1
        os.kill(rank1[0], signal.SIGTERM)  # one rank gets the signal; both must stop at the same step
        out, err = proc.communicate(timeout=120)
    finally:
        kill_group(proc)
    assert proc.returncode != 0, out[-2000:]  # a stopped run is not a finished one
    assert "SIGTERM received: checkpoint saved" in err  # rank 0 stopped for rank 1's signal
    steps = check_consistent(copy / "checkpoint")
    assert 80 < steps < 100000
    assert "done:" not in out


def worker_pids(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def read_env(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
