"""Data-parallel training over processes launched by ``torchrun`` (one replica per rank).

Every rank holds a full copy of the agent, its own environments and its own replay; after each
``backward()`` the gradients are averaged over the ranks, so the replicas take identical steps
and stay identical (they start identical by a broadcast from rank 0). Gradients are reduced
explicitly, one flattened buffer per call, instead of wrapping the networks in
``DistributedDataParallel``: the agent has three optimisers, and the world model's loss is not
its ``forward``.

Without torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or with a world of
one process, nothing is initialised and every helper is a no-op for a single process, so a plain
run behaves exactly as without this module.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
_comm_device = torch.device("cpu")  # where collectives' tensors live: cpu for gloo, this rank's GPU for nccl


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process in the world."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_distributed() -> bool:
    """Whether the process group is up (:func:`init` ran under a multi-process torchrun launch)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the one that logs, evaluates and writes the agent's checkpoint."""
    return rank() == 0


def local_device(device: torch.device | str) -> torch.device:
    """This rank's device: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun; others unchanged."""
    device = torch.device(device)
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init(device: torch.device | str, timeout: timedelta = timedelta(hours=2)) -> torch.device:
    """Join the process group of a torchrun launch and return this rank's device.

    The backend is NCCL when ``device`` is a CUDA device (each rank then uses
    ``cuda:LOCAL_RANK``), gloo otherwise. ``timeout`` bounds how long a collective waits; it is
    long because the other ranks wait at their next collective while rank 0 evaluates. Outside
    torchrun (or with one process) nothing is initialised and ``device`` is returned unchanged.
    Calling it again is harmless.
    """
    global _comm_device
    device = local_device(device)
    if not launched() or is_distributed():
        return device
    # torch._dynamo, once imported, holds references to the default process group that exists at
    # that moment; a run imports it with its first optimiser. Imported after the group was made, it
    # kept the group alive past destroy_process_group, and the group's gloo worker threads lived on
    # into interpreter shutdown: one that released its last tensors then needed the GIL and aborted
    # the process ("terminate called without an active exception": 1 run of tests/scripts/
    # test_torchrun.py's command in 73 on an idle 2-core machine, whose core dump showed this stack;
    # the same abort failed 2 CI runs in 6). Imported first, it holds nothing; cleanup() joins them.
    import torch._dynamo  # noqa: F401

    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", device_id=device, timeout=timeout)
        _comm_device = device
    else:
        dist.init_process_group(backend="gloo", timeout=timeout)
        _comm_device = torch.device("cpu")
    return device


def cleanup(synchronize: bool = False) -> None:
    """Leave the process group (a no-op when there is none).

    With ``synchronize`` (a run that ended normally on every rank) the ranks first meet at a
    barrier, so that none tears its connections down while another is still in its last
    collective. A rank that leaves on an exception does not wait for the others, which may be
    elsewhere. ``destroy_process_group`` then frees the group and joins its worker threads while
    the interpreter is whole: a group that outlived it aborted processes at exit (see :func:`init`)."""
    global _comm_device
    if is_distributed():
        if synchronize:
            try:
                dist.barrier()
            except RuntimeError:  # a rank that left already: nothing to wait for
                pass
        dist.destroy_process_group()
    _comm_device = torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (a no-op for one process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_scalar(value: float, op: str = "sum") -> float:
    """``value`` reduced over the ranks with ``op`` (``sum``, ``max`` or ``min``)."""
    if op not in _OPS:
        raise ValueError(f"op must be one of {sorted(_OPS)}, got {op!r}")
    if not is_distributed():
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device)
    dist.all_reduce(tensor, op=_OPS[op])
    return float(tensor.item())


def all_true(flag: bool | Tensor) -> bool:
    """Whether ``flag`` holds on every rank (e.g. "my loss is finite"): ranks then agree on it."""
    return all_reduce_scalar(float(bool(flag)), "min") > 0.5


def any_rank(flag: Tensor) -> Tensor:
    """Whether the 0-dim bool ``flag`` holds on some rank, as a 0-dim bool on ``flag``'s device.

    One collective on a tensor, never read on the host: an update can agree on "some loss is not
    finite" without waiting for the device (NCCL keeps it on the GPU)."""
    if not is_distributed():
        return flag
    value = flag.detach().to(device=_comm_device, dtype=torch.float32).reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value.to(flag.device).reshape(()) > 0.5


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (picklable) on every rank; ``obj`` itself for one process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_comm_device)
    return box[0]


def _by_dtype(tensors: Iterable[Tensor]) -> dict[tuple[torch.dtype, torch.device], list[Tensor]]:
    groups: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    return groups


def all_reduce_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Average ``.grad`` of ``parameters`` over the ranks, in place (a no-op for one process).

    The gradients are reduced as one flattened buffer per dtype (one collective call instead of
    one per tensor). A parameter without a gradient on this rank contributes zeros; it keeps
    ``grad = None`` only when it has no gradient on any rank (its reduced slice is all zero),
    so an optimiser skips it exactly as it would in a single process.
    """
    if not is_distributed():
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    size = float(world_size())
    missing = {id(p) for p in params if p.grad is None}
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    owners = {id(g): p for g, p in zip(grads, params)}
    for (_, device), group in _by_dtype(grads).items():
        flat = _flatten_dense_tensors(group).to(_comm_device)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(size)
        for grad, reduced in zip(group, _unflatten_dense_tensors(flat, group)):
            param = owners[id(grad)]
            if id(param) in missing:
                if bool(reduced.any()):
                    param.grad = reduced.to(device).clone()
            else:
                grad.copy_(reduced)


def average_buffers(module: nn.Module) -> None:
    """Average the floating-point buffers of ``module`` over the ranks, in place.

    For state computed from each rank's own data (e.g. a running return range), so that the
    replicas stay identical. Integer and boolean buffers are left alone.
    """
    if not is_distributed():
        return
    buffers = [b for b in module.buffers() if b.is_floating_point()]
    size = float(world_size())
    for group in _by_dtype(buffers).values():
        flat = _flatten_dense_tensors(group).to(_comm_device)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(size)
        for buf, reduced in zip(group, _unflatten_dense_tensors(flat, group)):
            buf.copy_(reduced)


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into every rank's ``module``, in place."""
    if not is_distributed():
        return
    tensors = [p.data for p in module.parameters()] + list(module.buffers())
    for group in _by_dtype(tensors).values():
        flat = _flatten_dense_tensors(group).to(_comm_device)
        dist.broadcast(flat, src=src)
        for t, value in zip(group, _unflatten_dense_tensors(flat, group)):
            t.copy_(value)


def state_digest(state: Mapping[str, Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and bytes: equal replicas, equal digests."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()


class GradientSync:
    """What :class:`~aime.agent.agent.Agent` asks of the process group (its ``sync`` argument)."""

    def all_reduce_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        all_reduce_gradients(parameters)

    def all_true(self, flag: bool | Tensor) -> bool:
        return all_true(flag)

    def any_rank(self, flag: Tensor) -> Tensor:
        return any_rank(flag)

    def average_buffers(self, module: nn.Module) -> None:
        average_buffers(module)


def gradient_sync() -> GradientSync | None:
    """A :class:`GradientSync` when distributed, else ``None`` (the agent then runs alone)."""
    return GradientSync() if is_distributed() else None
