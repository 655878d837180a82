"""Checks that need an NVIDIA GPU (marker ``cuda``; skipped without one). scripts/gpu_check.sh runs them.

Device placement of a tiny agent, bf16 autocast dtypes, a 2-update ``atari100k`` train step on CUDA
against CPU fp32, and the NCCL path of scripts/train_agent.py under torchrun with one process.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aime.agent.agent import Agent
from aime.config import load_config
from aime.runtime.replay import random_replay

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

ROOT = Path(__file__).resolve().parents[2]
# the GPU draws other random numbers than the CPU (latent samples, imagined actions), and bf16 keeps 8
# bits of mantissa: one update's losses on CUDA bf16 lie within 10% of CPU fp32's (CPU bf16 vs fp32
# alone: within 2.5%, tests/agent/test_precision.py)
RTOL, ATOL = 0.10, 0.05
COMPARED = (
    "losses/world_model",
    "losses/reconstruction",
    "losses/kl",
    "losses/reward",
    "losses/continuation",
    "losses/critic",
    "behavior/actor_entropy",
)


def test_a_tiny_agent_lives_acts_and_learns_on_the_gpu():
    torch.manual_seed(0)
    agent = Agent(load_config(["debug", "tiny"]), num_actions=3, device="cuda")
    assert all(p.device.type == "cuda" for p in agent.parameters())
    assert all(b.device.type == "cuda" for b in agent.buffers())
    assert agent.fused and agent.optimizers()["model"].param_groups[0]["fused"]
    obs = {"obs": np.zeros((4, 3, 84, 84), np.uint8), "is_first": np.ones(4, bool)}
    action, state, _ = agent.act(obs, None)
    assert action.shape == (4,) and state["deter"].device.type == "cuda"
    metrics, finite = agent.train_step(random_replay(8, 4).sample(2, 4))
    assert finite and all(v.device.type == "cuda" for v in metrics.values())
    for opt in agent.optimizers().values():
        assert all(s["exp_avg"].device.type == "cuda" for s in opt.state.values())


def test_bf16_autocast_runs_the_networks_in_bf16_and_the_losses_in_fp32():
    torch.manual_seed(0)
    agent = Agent(load_config(["debug", "tiny"]), num_actions=3, device="cuda", precision="bf16")
    data = agent.to_tensors(random_replay(8, 4).sample(2, 4))
    with agent.autocast_context():
        probe = agent.behavior.actor(torch.zeros(1, agent.world_model.feat_size, device="cuda"))
        total, terms, out = agent.world_model.loss(data)
    assert probe.dtype == torch.bfloat16
    assert total.dtype == torch.float32 and all(v.dtype == torch.float32 for v in terms.values())
    assert out["post"]["logits"].dtype == torch.float32


def test_two_atari100k_updates_on_cuda_match_cpu_fp32():
    cfg = load_config(["atari100k"], ["train.batch_size=4", "train.seq_len=16"])
    buffer = random_replay(20, 4)
    batches = [buffer.sample(4, 16) for _ in range(2)]
    losses = {}
    for device, precision in (("cpu", "fp32"), ("cuda", None)):  # CUDA: auto (bf16 where supported)
        torch.manual_seed(0)
        agent = Agent(cfg, num_actions=4, device=device, precision=precision)
        if device == "cuda":
            assert agent.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
        updates = [agent.train_step(b) for b in batches]
        assert all(finite for _, finite in updates)
        losses[device] = [{k: float(m[k]) for k in COMPARED} for m, _ in updates]
    for step, (cpu, gpu) in enumerate(zip(losses["cpu"], losses["cuda"])):
        for key in COMPARED:
            assert gpu[key] == pytest.approx(cpu[key], rel=RTOL, abs=ATOL), (step, key)


def test_torchrun_with_one_process_trains_over_nccl(tmp_path):
    args = [
        "--env",
        "Catch",
        "--preset",
        "debug",
        "--steps",
        "48",
        "--no-progress",
        "--logdir",
        str(tmp_path / "run"),
        "--set",
        "device=cuda",
        "--set",
        "env.num_envs=2",
        "--set",
        "train.warmup_steps=16",
        "--set",
        "train.batch_size=2",
        "--set",
        "train.seq_len=8",
        "--set",
        "eval.every=0",
        "--set",
        "eval.episodes=1",
    ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=1",
        str(ROOT / "scripts" / "train_agent.py"),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env={**os.environ})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "device cuda" in result.stdout and "done: 48 agent steps" in result.stdout
    assert (tmp_path / "run" / "checkpoint" / "agent.pt").is_file()
