"""flush_denormals: denormal results become zero on the main thread and on every worker thread."""

import platform
import subprocess
import sys

import pytest

# In a fresh process (the test process has started its worker threads long ago): optionally start
# the OpenMP workers with a parallel operation first, then flush, then multiply 1e-30 by 1e-10 (a
# denormal, 1e-40) over enough elements that both threads take a share.
PROBE = """
import sys, torch
from aime.runtime.denormals import denormal_state, flush_denormals
torch.set_num_threads(2)
mode = sys.argv[1]
if mode == "late":
    torch.full((1 << 20,), 1.0).mul(2.0)  # starts the worker threads without flushing
flushed = flush_denormals() if mode != "keep" else None
product = torch.full((1 << 20,), 1e-30) * 1e-10
print(flushed, int(product.ne(0).sum()), denormal_state().replace(' ', '_'))
"""

x86_only = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="FTZ/DAZ are x86 MXCSR bits"
)


def _run(mode: str) -> tuple[str, int, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    flushed, nonzero, state = out.stdout.split()
    return flushed, int(nonzero), state.replace("_", " ")


@x86_only
def test_flushing_first_zeroes_denormals_on_every_thread():
    flushed, nonzero, state = _run("first")
    assert flushed == "True"
    assert nonzero == 0
    assert state == "flushed"


@x86_only
def test_denormals_survive_without_flushing():
    # the premise: 1e-30 * 1e-10 is representable (denormal), not zero, by default
    _, nonzero, state = _run("keep")
    assert nonzero == 1 << 20
    assert state == "kept"


@x86_only
def test_a_late_call_reports_the_workers_that_keep_denormals():
    # the worker started before the call copied the old register: half the product stays denormal
    flushed, nonzero, state = _run("late")
    assert flushed == "False"
    assert 0 < nonzero < 1 << 20
    assert state == "main thread only"


def test_unsupported_cpu_reports_false(monkeypatch):
    import torch

    from aime.runtime import denormals

    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: False)
    assert denormals.flush_denormals() is False
