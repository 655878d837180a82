"""Flush denormal floats to zero: CPU arithmetic on them is up to ~100x slower.

Floats below ``2**-126`` (about 1.2e-38) are *denormal* (subnormal); x86 cores handle them in
microcode, so an operation whose inputs or results are denormal takes tens to hundreds of cycles
instead of one. Training produces them: SiLU of a large negative input, softmax maps far from
their peak, gradients of near-perfect reconstructions. In an ``atari100k`` update on the 2-core
development VM, the backward pass of the decoder's last transposed convolution took 0.98 s with
denormals and 0.09 s without (``scripts/benchmark.py --only update --keep-denormals`` measures the
whole update both ways).

:func:`flush_denormals` sets the FTZ (results flush to zero) and DAZ (inputs are read as zero)
bits of the x86 MXCSR register through ``torch.set_flush_denormal``. Numerically it replaces
values below 1.2e-38 in magnitude by zero: far below anything a float32 model resolves next to
its O(1) activations (float32's epsilon is 1.2e-7).

The register is per thread and a new thread copies its creator's, so call it before the first
parallel operation, when PyTorch starts its OpenMP workers; the training and benchmark scripts call
it first thing. Worker threads started earlier keep denormals, which :func:`flush_denormals`
detects and reports.
"""

from __future__ import annotations

import torch

# elementwise kernels split work into chunks of at least this many elements (at::internal::GRAIN_SIZE)
_GRAIN_SIZE = 32768


def flush_denormals() -> bool:
    """Flush denormals to zero on this thread and on the PyTorch worker threads it will start.

    Returns True when every intra-op worker thread flushes (:func:`denormal_state` is
    ``"flushed"``), False where PyTorch has no such mode for the CPU or where worker threads started
    before this call keep denormals. Safe to call more than once.
    """
    if not torch.set_flush_denormal(True):
        return False
    return denormal_state() == "flushed"


def denormal_state() -> str:
    """``"flushed"`` (every thread), ``"main thread only"`` or ``"kept"``, found by computing one.

    ``1e-30 * 1e-10`` is denormal: once on this thread (one element runs inline), once in a
    parallel product that every intra-op worker takes a share of.
    """
    main = bool((torch.tensor([1e-30]) * 1e-10).item() == 0)
    tiny = torch.full((4 * _GRAIN_SIZE * torch.get_num_threads(),), 1e-30)
    workers = not bool((tiny * 1e-10).ne(0).any())
    return "flushed" if main and workers else "main thread only" if main else "kept"
