"""One rank of the 2-process gloo group of ``test_distributed.py``, run as a fresh interpreter.

``python distributed_worker.py OUT_DIR`` with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` set; writes what the rank saw to ``OUT_DIR/rank{RANK}.pt``.
(A fresh interpreter, not a fork of pytest: a fork inherits the test process's thread pools and
locks, and under load such a child can hang before its first collective.)
"""

import os
import sys

import numpy as np
import torch
from torch import nn

from aime.agent.agent import Agent
from aime.config import load_config
from aime.runtime import distributed
from aime.runtime.replay import random_replay


def _batch(seed: int, nan_reward: bool = False) -> dict:
    batch = random_replay(8, seed=seed, capacity=100).sample(2, 4)
    if nan_reward:
        batch["reward"][:] = np.nan
    return batch


def main(out_dir: str) -> None:
    rank = int(os.environ["RANK"])
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


if __name__ == "__main__":
    main(sys.argv[1])
