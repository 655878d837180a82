"""retain_freed_memory: a freed large tensor's pages are reused, not faulted in again."""

import platform
import subprocess
import sys

import pytest

# Allocate and touch a 256 MiB tensor, free it, then a 252 MiB one (a little smaller: glibc's aligned
# allocation asks for a few bytes more than the freed block held); print the second one's page faults.
PROBE = """
import resource, sys, torch
from aime.runtime.allocator import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "retain" else None
def touch(mib):
    x = torch.empty(mib * 1024 * 1024 // 4, dtype=torch.float32)
    x.fill_(1.0)
    del x
touch(256)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch(252)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def _second_touch_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


@glibc_only
def test_retained_memory_is_reused_without_page_faults():
    applied, faults = _second_touch_faults("retain")
    assert applied == "True"
    assert faults < 1_000  # 252 MiB of fresh 4 KiB pages are 64,512 faults


@glibc_only
def test_default_allocator_faults_the_pages_in_again():
    # the premise of the module: without it, glibc unmaps the block on free
    _, faults = _second_touch_faults("system")
    assert faults > 30_000


def test_a_no_op_off_glibc(monkeypatch):
    from aime.runtime import allocator

    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert allocator.retain_freed_memory() is False
