"""The device a run trains on, what it offers (native bf16 arithmetic), and the precision a run trains in.

``resolve_device`` turns the ``device`` setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a
``torch.device``.

``train.precision`` is ``auto``, ``fp32`` or ``bf16``. ``bf16`` runs the world model's and the
behaviour's networks under ``torch.autocast(dtype=torch.bfloat16)`` (losses, distributions, the
return normaliser and the optimisers' state stay fp32). ``auto`` picks bf16 where the hardware
computes it natively, fp32 elsewhere:

- CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later);
- CPU: the AMX tile unit (``amx_bf16``, Sapphire Rapids and later) or AVX512-BF16 (``avx512_bf16``,
  Cooper Lake, Zen 4), read from ``/proc/cpuinfo`` on Linux or asked of PyTorch's CPU probe. On the
  2-core development VM (AMX) a bf16 matmul runs about 6x faster than fp32; without those
  instructions bf16 is emulated and slower than fp32.

This module reads ``/proc/cpuinfo``, which is why it lives in the runtime (the only package with
I/O): the training loop resolves the precision and hands the result to the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo flag -> how the summary line names it, best first
BF16_FLAGS = {"amx_bf16": "CPU AMX", "avx512_bf16": "CPU AVX512-BF16"}


@dataclass(frozen=True)
class Precision:
    """A resolved ``train.precision``: ``name`` is ``fp32`` or ``bf16``; ``reason`` says why, in a few
    words, for the start-up summary (``"bf16 (CPU AMX)"``)."""

    name: str
    reason: str

    @property
    def autocast(self) -> bool:
        """Whether the networks run under bf16 autocast."""
        return self.name == "bf16"

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_flags(path: Path = CPUINFO) -> set[str]:
    """The CPU feature flags of the first processor in ``/proc/cpuinfo`` (empty where there is none:
    macOS, Windows, a container without ``/proc``)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def torch_cpu_flags() -> set[str]:
    """The same flags as PyTorch's own CPU probe reports them (where this PyTorch has the probe)."""
    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    return {flag for flag, name in probes.items() if getattr(torch.cpu, name, lambda: False)()}


def cpu_bf16(flags: set[str] | None = None) -> str | None:
    """How this CPU computes bf16 natively (``"CPU AMX"``, ``"CPU AVX512-BF16"``), or None.

    ``flags``: the CPU's feature flags (default: ``/proc/cpuinfo``'s and PyTorch's probe's)."""
    if flags is None:
        flags = cpu_flags() | torch_cpu_flags()
    return next((label for flag, label in BF16_FLAGS.items() if flag in flags), None)


def native_bf16(device: torch.device, flags: set[str] | None = None) -> str | None:
    """How ``device`` computes bf16 natively (a few words), or None where it does not."""
    if device.type == "cuda":
        return "CUDA" if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return cpu_bf16(flags)
    return None


def resolve_precision(setting: str, device: torch.device | str, flags: set[str] | None = None) -> Precision:
    """``train.precision`` on ``device``: ``auto`` becomes bf16 where bf16 is native, fp32 otherwise.

    ``flags``: the CPU's feature flags, for tests (default: read from the machine). An explicit
    ``bf16`` is honoured everywhere (its reason says when it is emulated).
    """
    if setting not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {setting!r}")
    device = torch.device(device)
    native = native_bf16(device, flags)
    if setting == "fp32":
        return Precision("fp32", "train.precision=fp32")
    if setting == "bf16":
        return Precision("bf16", native or f"train.precision=bf16, emulated on this {device.type}")
    if native:
        return Precision("bf16", native)
    return Precision("fp32", f"auto: no native bf16 on this {device.type}")


def configure_process(device: torch.device | str) -> list[str]:
    """The process-wide speed settings for the device a run trains on; returns what it set.

    - CPU: flush denormals to zero (:mod:`aime.runtime.denormals`) and keep freed memory in the
      process (:mod:`aime.runtime.allocator`). Call it before the first parallel operation: the
      OpenMP worker threads copy the denormal setting when they start.
    - CUDA: ``torch.backends.cudnn.benchmark``: cuDNN times its convolution algorithms once per
      input shape and keeps the fastest (a run's shapes are fixed). The CPU settings would only
      cost there: the allocator's setting keeps host memory the run does not reuse.
    """
    from aime.runtime.allocator import retain_freed_memory
    from aime.runtime.denormals import flush_denormals

    device = torch.device(device)
    done = []
    if device.type == "cpu":
        if flush_denormals():
            done.append("denormals flushed")
        if retain_freed_memory():
            done.append("freed memory retained")
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        done.append("cudnn.benchmark")
    return done
