"""The host-memory setting serves step-sized blocks from a heap it keeps, instead of mapping them fresh."""

import json
import os
import platform
import subprocess
import sys

import pytest
from unidit.training import host_memory

# Runs in a fresh process (mallopt settings are process-wide and one-way). The module is loaded from its
# file so the child skips `unidit.training`'s Lightning imports. Three 20 MiB tensors and one of 48 MiB
# (above the largest mmap threshold glibc accepts) are held at once and freed: glibc's bookkeeping
# (mallinfo2) shows whether they were mapped fresh or taken from the heap, and whether the heap shrank
# when they were freed.
CHILD = """
import ctypes, importlib.util, json, sys
import torch
spec = importlib.util.spec_from_file_location("host_memory", sys.argv[2])
host_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(host_memory)
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
applied = host_memory.retain_freed_host_memory() if sys.argv[1] == "tuned" else False
before = libc.mallinfo2()
held = [torch.empty(5 * 2**20).fill_(1.0) for _ in range(3)] + [torch.empty(12 * 2**20).fill_(1.0)]
during = libc.mallinfo2()
del held
after = libc.mallinfo2()
print(json.dumps(dict(applied=applied, mapped=during.hblkhd - before.hblkhd, heap_during=during.arena,
                      heap_after=after.arena)))
"""
MIB = 2**20


def run_child(mode: str, env_switch: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != host_memory.ENV_SWITCH}
    if env_switch is not None:
        env[host_memory.ENV_SWITCH] = env_switch
    out = subprocess.run([sys.executable, "-c", CHILD, mode, host_memory.__file__], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout)


glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the mallopt settings exist in glibc only")


@glibc
def test_step_sized_blocks_come_from_a_heap_that_is_kept():
    default = run_child("default")
    assert not default["applied"]
    assert default["mapped"] >= 108 * MIB  # the C library's default maps each block fresh, and unmaps it on free
    tuned = run_child("tuned")
    assert tuned["applied"]
    assert tuned["mapped"] == 0
    assert tuned["heap_during"] >= 108 * MIB  # all four blocks live in the heap
    assert tuned["heap_after"] == tuned["heap_during"]  # freeing did not hand the pages back


@glibc
def test_environment_switch_keeps_the_c_library_defaults():
    child = run_child("tuned", env_switch="0")
    assert not child["applied"]
    assert child["mapped"] >= 108 * MIB

