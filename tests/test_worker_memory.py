"""A serve worker tames glibc malloc: two arenas, large buffers always mapped of their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: eight threads, all alive at once, each allocating outside Python's small-object pool;
#: then glibc's own account of its arenas on stderr
SCRIPT = """
import ctypes, sys, threading
from vault.http.memory import cap_malloc_arenas
print(cap_malloc_arenas() if sys.argv[1] == "cap" else None)
together = threading.Barrier(8)
def work():
    keep = [bytearray(40_000) for _ in range(20)]
    together.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def run_script(script: str, mode: str, env: dict | None) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter (malloc's settings are per process)."""
    run = subprocess.run(
        [sys.executable, "-c", script, mode],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert run.returncode == 0, run.stderr
    return run


def arenas(mode: str, env: dict | None = None) -> tuple[str, int]:
    run = run_script(SCRIPT, mode, env)
    return run.stdout.strip(), sum(line.startswith("Arena ") for line in run.stderr.splitlines())


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.environ.get("MALLOC_ARENA_MAX"),
    reason="glibc's malloc arenas (Linux), with MALLOC_ARENA_MAX unset",
)
def test_a_worker_uses_at_most_two_malloc_arenas():
    said, capped = arenas("cap")
    assert said == "True" and capped <= 2
    _, free = arenas("plain")
    assert free > 2  # without the cap every thread got its own
    # the operator's MALLOC_ARENA_MAX wins: the vault leaves it to glibc
    said, own = arenas("cap", {"MALLOC_ARENA_MAX": "4"})
    assert said == "False" and 2 < own <= 4


#: a 1 MiB buffer freed (which raises glibc's own threshold to 1 MiB, if the imports have
#: not already), then forty of 256 KiB kept: how many of their bytes are mappings of their
#: own (mallinfo2's hblkhd)? A few may fill holes the imports left in the heap.
MAPPED = """
import ctypes, sys
from vault.http.memory import fix_mmap_threshold
print(fix_mmap_threshold() if sys.argv[1] == "fix" else None)
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
big = bytearray(1 << 20)
del big
before = libc.mallinfo2().hblkhd
kept = [bytearray(256 * 1024) for _ in range(40)]
print(libc.mallinfo2().hblkhd - before)
"""
BUFFERS = 40 * 256 * 1024


def mapped(mode: str, env: dict | None = None) -> tuple[str, int]:
    said, grown = run_script(MAPPED, mode, env).stdout.split()
    return said, int(grown)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.environ.get("MALLOC_MMAP_THRESHOLD_"),
    reason="glibc's mmap threshold (Linux), with MALLOC_MMAP_THRESHOLD_ unset",
)
def test_a_worker_maps_large_buffers_of_their_own_even_after_a_larger_one_was_freed():
    said, fixed = mapped("fix")
    assert said == "True" and fixed >= 0.75 * BUFFERS  # own mappings, unmapped when freed
    _, moving = mapped("plain")
    assert moving < 256 * 1024  # glibc raised its threshold: all carved from the heap
    # the operator's MALLOC_MMAP_THRESHOLD_ wins: here it keeps 256 KiB in the heap
    said, own = mapped("fix", {"MALLOC_MMAP_THRESHOLD_": str(512 * 1024)})
    assert said == "False" and own < 256 * 1024
