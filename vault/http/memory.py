"""A serve worker's memory: glibc malloc tamed, so that its resident size follows its load.

A worker is long-lived and serves requests on up to 40 threads with buffers from a few
bytes to several MiB. glibc's defaults suit short programs: an arena per thread, and an
mmap threshold that climbs after the first large free. Each function here undoes one of
them (measured by bench/soak.py), leaves the last word to the operator's environment
variable for the same setting, and does nothing elsewhere than glibc.
"""

from __future__ import annotations

import ctypes
import os

#: glibc's M_ARENA_MAX option of mallopt(3)
_M_ARENA_MAX = -8
#: malloc arenas a serve worker may use (unless MALLOC_ARENA_MAX says otherwise)
WORKER_ARENAS = 2


def cap_malloc_arenas(arenas: int = WORKER_ARENAS) -> bool:
    """At most ``arenas`` glibc malloc arenas in this process; whether the cap was set.

    glibc gives each new thread that allocates an arena of its own, up to eight per core,
    and memory freed in one is not reused by the others. A worker runs its requests on
    up to 40 threads, so its resident size kept creeping with the load: in the soak under
    faults (bench/soak.py, 7 minutes) the worker that lived through it grew 15.7 % with
    glibc's default and 8.0 / 6.2 % with two arenas, ending near 150 instead of 180 MB
    (docs/performance.md, "Soak under faults").
    ``MALLOC_ARENA_MAX`` in the environment (read by glibc itself) wins; elsewhere than
    glibc nothing happens.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return _mallopt(_M_ARENA_MAX, arenas)


#: glibc's M_TRIM_THRESHOLD and M_MMAP_THRESHOLD options of mallopt(3), and the trim
#: threshold's default
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_TRIM_THRESHOLD = 128 * 1024
#: a serve worker's allocations from this size up are mappings of their own (unless
#: MALLOC_MMAP_THRESHOLD_ says otherwise); glibc's own starting value, kept fixed
WORKER_MMAP_THRESHOLD = 128 * 1024


def fix_mmap_threshold(threshold: int = WORKER_MMAP_THRESHOLD) -> bool:
    """Allocations of ``threshold`` bytes and more get their own mapping, always.

    glibc starts at 128 KiB but raises the threshold to the size of any larger mapped block
    freed (up to 32 MiB), so after the first large request body or sealed part every
    later one is carved from an arena, and what is freed there stays resident, scattered
    between live blocks: the worker that lived through the soak under faults grew 4.7 to
    10.6 % over 7 minutes with two arenas (bench/soak.py). A fixed threshold sends each
    large buffer back to the system when it is freed (docs/performance.md, "Soak under
    faults"). The trim threshold is fixed at glibc's default too, so that a free at the
    top of the heap gives the memory back. The environment's
    ``MALLOC_MMAP_THRESHOLD_`` (read by glibc itself) wins; elsewhere than glibc nothing
    happens.
    """
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    # as the environment variable would, from the start: the trim threshold at glibc's
    # default too (the imports before this may have raised it along with the other)
    return _mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD) and _mallopt(
        _M_MMAP_THRESHOLD, threshold
    )


def _mallopt(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return bool(libc.mallopt(option, value))
    except (OSError, AttributeError):  # not glibc
        return False
