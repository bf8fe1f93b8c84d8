"""A serve worker caps glibc's malloc arenas (its request threads would each get one)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: eight threads, all alive at once, each allocating outside Python's small-object pool;
#: then glibc's own account of its arenas on stderr
SCRIPT = """
import ctypes, sys, threading
from vault.http.app import cap_malloc_arenas
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


def arenas(mode: str, env: dict | None = None) -> tuple[str, int]:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert run.returncode == 0, run.stderr
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
