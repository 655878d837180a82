"""aime.runtime.distributed: single-process no-ops, and a real 2-process gloo group (fresh interpreters)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from aime.runtime import distributed


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


def _rank_env(rank: int, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
    }


def _run_two_ranks(args: list[str], timeout: float = 240) -> list[str]:
    """Run ``python *args`` as ranks 0 and 1 of a gloo group; their stdouts, or a failure that says why."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, *args],
            env=_rank_env(rank, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=timeout) for proc in procs]
    except subprocess.TimeoutExpired:  # mismatched collectives hang rather than fail
        for proc in procs:  # a rank left waiting for the other
            proc.kill()
        errors = [proc.communicate()[1] for proc in procs]
        said = "".join(f"\nrank {r} (exit {p.returncode}):\n{e[-2000:]}" for r, (p, e) in enumerate(zip(procs, errors)))
        pytest.fail(f"the 2-rank group hung (ranks disagreed on which collectives to run, or one failed){said}")
    finally:
        for proc in procs:  # nothing outlives the test
            proc.kill()
    for rank, (proc, (_, err)) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"rank {rank} failed:\n{err[-3000:]}"
    return [out for out, _ in outputs]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ranks")
    _run_two_ranks([str(Path(__file__).with_name("distributed_worker.py")), str(out_dir)])
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
    outputs = _run_two_ranks(["-c", RANK_THAT_LEAVES], timeout=120)
    for out in outputs:
        threads = out.strip().splitlines()[-1]
        assert "gloo" not in threads, f"threads after cleanup: {threads}"
        assert "python" in threads  # the listing itself worked
