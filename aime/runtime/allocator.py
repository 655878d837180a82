"""Keep freed memory in the process: a CPU training step stops re-faulting gigabytes of pages.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and gives it back with ``munmap`` on ``free``, and trims the heap's top when more than
128 KiB lie free there. A world-model update allocates and frees the same large activations
(``[1024, 32, 42, 42]`` floats are 231 MB) every step, so each step touches fresh pages again and
the kernel zeroes each one on first touch. On the 2-core development VM this doubled an
``atari100k`` update (16.0 s vs 7.7 s, ``scripts/benchmark.py --only update``; the decoder's
forward alone went from 0.5 s to 4.7 s inside the update).

:func:`retain_freed_memory` sets ``M_MMAP_MAX = 0`` (blocks come from the heap, which frees into
the allocator's free lists, not to the kernel) and ``M_TRIM_THRESHOLD = -1`` (never trim), via
``mallopt(3)``. The process then keeps what it has touched, and fragmentation adds to its peak
(an ``atari100k`` update: 7.95 GB resident against a 5.9 GB peak without it, flat after the first
updates). It changes nothing numerically. The training and benchmark scripts call it
at start-up; a library user calls it once, or sets ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=-1``
in the environment, which glibc reads at start-up. (jemalloc or tcmalloc via ``LD_PRELOAD`` do the
same job where they are installed.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt(3) parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def retain_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse instead of returning them to the kernel.

    Returns True when the settings were applied, False where the C library is not glibc (macOS,
    musl, Windows), where this is a no-op. Safe to call more than once.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # mallopt returns 1 on success; -1 as the trim threshold means "never trim" (see mallopt(3))
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, -1))
