"""aime.runtime.distributed: single-process no-ops, and a real 2-process gloo group (forked)."""

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from aime.agent.agent import Agent
from aime.config import load_config
from aime.runtime import distributed
from aime.runtime.replay import random_replay


def test_single_process_helpers_are_no_ops(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not distributed.launched() and not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.init("cpu") == torch.device("cpu") and not distributed.is_distributed()
    assert distributed.gradient_sync() is None
    layer = nn.Linear(3, 2)
    layer.weight.grad = torch.ones_like(layer.weight)
    distributed.all_reduce_gradients(layer.parameters())
    assert torch.equal(layer.weight.grad, torch.ones_like(layer.weight)) and layer.bias.grad is None
    assert distributed.all_reduce_scalar(3.0, "max") == 3.0 and not distributed.all_true(False)
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    distributed.barrier()
    distributed.cleanup()


def test_local_device_follows_local_rank_only_under_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert distributed.local_device("cuda") == torch.device("cuda")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.local_device("cuda") == torch.device("cuda", 1)
    assert distributed.local_device("cpu") == torch.device("cpu")


def test_all_reduce_scalar_rejects_unknown_op():
    with pytest.raises(ValueError, match="op must be one of"):
        distributed.all_reduce_scalar(1.0, "mean")


def test_state_digest_sees_every_value_name_and_dtype():
    state = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor(True)}
    digest = distributed.state_digest(state)
    assert digest == distributed.state_digest({k: v.clone() for k, v in reversed(state.items())})
    changed = {"a": state["a"].clone(), "b": state["b"]}
    changed["a"][1, 2] += 1e-6
    assert distributed.state_digest(changed) != digest
    assert distributed.state_digest({"a": state["a"].double(), "b": state["b"]}) != digest
    assert distributed.state_digest({"c": state["a"], "b": state["b"]}) != digest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(seed: int, nan_reward: bool = False) -> dict:
    batch = random_replay(8, seed=seed, capacity=100).sample(2, 4)
    if nan_reward:
        batch["reward"][:] = np.nan
    return batch


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    assert distributed.init("cpu") == torch.device("cpu")
    out = {"rank": distributed.rank(), "world": distributed.world_size(), "main": distributed.is_main()}
    try:
        # gradients: a used tensor, one used only on rank 1, one unused everywhere, a float64 one
        base = torch.arange(6.0).reshape(2, 3)
        used, half, unused = nn.Parameter(torch.zeros(2, 3)), nn.Parameter(torch.zeros(4)), nn.Parameter(torch.zeros(2))
        double = nn.Parameter(torch.zeros(3, dtype=torch.float64))
        used.grad = base * (rank + 1)
        double.grad = torch.full((3,), 2.0 * rank, dtype=torch.float64)
        if rank == 1:
            half.grad = torch.full((4,), 4.0)
        distributed.all_reduce_gradients([used, half, unused, double])
        out.update(used=used.grad, half=half.grad, unused=unused.grad, double=double.grad)

        torch.manual_seed(100 + rank)  # different initial weights on each rank
        module = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
        module.register_buffer("stat", torch.full((2,), float(rank)))
        module.register_buffer("flag", torch.tensor(bool(rank)))
        distributed.average_buffers(module)
        out.update(stat=module.stat.clone(), flag=module.flag.clone())
        distributed.broadcast_parameters(module)
        out["broadcast"] = {k: v.clone() for k, v in module.state_dict().items()}

        out["all_true_mixed"] = distributed.all_true(rank == 0)
        out["all_true_both"] = distributed.all_true(torch.tensor(True))
        out["any_rank_mixed"] = distributed.any_rank(torch.tensor(rank == 1))
        out["any_rank_none"] = distributed.any_rank(torch.tensor(False))
        out["max"] = distributed.all_reduce_scalar(15.0 * rank, "max")
        out["sum"] = distributed.all_reduce_scalar(rank + 1, "sum")
        out["object"] = distributed.broadcast_object(f"from rank {rank}")

        # two agents with different initial weights and different data stay identical
        torch.manual_seed(rank)
        agent = Agent(load_config(["debug", "tiny"]), num_actions=3, sync=distributed.gradient_sync())
        distributed.broadcast_parameters(agent)
        out["agent_start"] = distributed.state_digest(agent.state_dict())
        metrics, finite = agent.train_step(_batch(rank))
        out["agent_finite"] = finite
        out["agent_trained"] = distributed.state_digest(agent.state_dict())
        out["agent_loss"] = metrics["losses/world_model"]
        # a non-finite loss on rank 1 alone: both ranks skip the update
        skipped, finite = agent.train_step(_batch(10 + rank, nan_reward=rank == 1))
        out["skip_finite"], out["skip_metrics"] = finite, skipped
        out["agent_after_skip"] = distributed.state_digest(agent.state_dict())
        # the same with fused optimisers, which skip on the device: rank 0 skips with rank 1 there too
        fused = Agent(load_config(["debug", "tiny"]), num_actions=3, sync=distributed.gradient_sync(), fused=True)
        distributed.broadcast_parameters(fused)
        start = distributed.state_digest(fused.state_dict())
        skipped, finite = fused.train_step(_batch(10 + rank, nan_reward=rank == 1))
        out["fused_skip"] = (finite, skipped, distributed.state_digest(fused.state_dict()) == start)
        distributed.barrier()
    finally:
        distributed.cleanup()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ranks")
    context = mp.start_processes(_worker, args=(_free_port(), str(out_dir)), nprocs=2, start_method="fork", join=False)
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):  # raises if a rank failed
        if time.monotonic() > deadline:  # mismatched collectives hang rather than fail
            for process in context.processes:
                process.kill()
            pytest.fail("the 2-rank group hung (ranks disagreed on which collectives to run)")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_ranks_and_scalar_agreement(two_ranks):
    r0, r1 = two_ranks
    assert (r0["rank"], r1["rank"], r0["world"], r0["main"], r1["main"]) == (0, 1, 2, True, False)
    for r in two_ranks:
        assert r["all_true_mixed"] is False and r["all_true_both"] is True
        assert r["any_rank_mixed"].dtype == torch.bool and bool(r["any_rank_mixed"]) and not r["any_rank_none"]
        assert r["max"] == 15.0 and r["sum"] == 3.0 and r["object"] == "from rank 0"


def test_all_reduce_gradients_averages_and_keeps_unused_none(two_ranks):
    base = torch.arange(6.0).reshape(2, 3)
    for r in two_ranks:
        assert torch.equal(r["used"], base * 1.5)
        assert torch.equal(r["half"], torch.full((4,), 2.0))  # (0 + 4) / 2: rank 0 had no gradient
        assert r["unused"] is None
        assert r["double"].dtype == torch.float64 and torch.equal(r["double"], torch.ones(3, dtype=torch.float64))


def test_buffers_averaged_and_parameters_broadcast_from_rank_0(two_ranks):
    r0, r1 = two_ranks
    for r in two_ranks:
        assert torch.equal(r["stat"], torch.full((2,), 0.5))
    assert r0["flag"].item() is False and r1["flag"].item() is True  # booleans are left alone
    torch.manual_seed(100)
    reference = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    for key, value in reference.state_dict().items():
        assert torch.equal(r0["broadcast"][key], value) and torch.equal(r1["broadcast"][key], value)
    assert torch.equal(r1["broadcast"]["stat"], r0["broadcast"]["stat"])


def test_agent_replicas_stay_identical_and_skip_together(two_ranks):
    r0, r1 = two_ranks
    assert r0["agent_start"] == r1["agent_start"]
    assert r0["agent_finite"] and r1["agent_finite"]
    assert r0["agent_loss"] != r1["agent_loss"]  # each rank trained on its own batch ...
    assert r0["agent_trained"] == r1["agent_trained"] != r0["agent_start"]  # ... into the same weights
    for r in two_ranks:  # rank 0's loss was finite, but it skipped with rank 1
        assert r["skip_finite"] is False and r["skip_metrics"] == {"nonfinite_loss": 1.0}
        assert r["agent_after_skip"] == r["agent_trained"]
        assert r["fused_skip"] == (False, {"nonfinite_loss": 1.0}, True)


RANK_THAT_LEAVES = """
import os, sys, torch
from aime.runtime import distributed
distributed.init("cpu")
torch.optim.Adam(torch.nn.Linear(2, 2).parameters())  # a run's first optimiser imports torch._dynamo
distributed.all_reduce_scalar(1.0)
distributed.cleanup(synchronize=True)
print(sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads this process's threads from /proc")
def test_cleanup_joins_the_groups_threads_while_the_interpreter_lives():
    """A group that outlives ``cleanup`` keeps gloo worker threads into interpreter shutdown, where
    one that frees a tensor aborts the process: its threads must be gone once ``cleanup`` returns
    (fresh interpreters: whether torch._dynamo was imported before the group decides it)."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RANK_THAT_LEAVES],
            env={
                **os.environ,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "OMP_NUM_THREADS": "1",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:  # a rank left waiting for the other
            proc.kill()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
        threads = out.strip().splitlines()[-1]
        assert "gloo" not in threads, f"threads after cleanup: {threads}"
        assert "python" in threads  # the listing itself worked
