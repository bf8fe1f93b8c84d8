"""Writing a local output file all-or-nothing (retrieved audio, bundles, log exports)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_output(target: str | os.PathLike, mode: str = "w+b") -> Iterator[IO]:
    """A temporary file beside ``target``, renamed over it only when the block succeeds.

    A reader never sees a half-written file, and a failure leaves the old file (or none).
    mkstemp creates it 0600: outputs may hold PII, so only their owner can read them.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
