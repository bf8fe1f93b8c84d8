"""Cost of the log walk before a shred (``LogTail`` in ``vault/services/binding.py``).

Before anything is destroyed, a retention run or an erasure walks the client's log from
the oldest record it shreds to the head: tag, lookup columns, chain link per entry. This
prints entries/s of that walk over a whole log, against two baselines measured in the
same run on the same rows: reading the rows and hashing each entry with SHA-256 (the
least any walk must do), and ``verify`` of the whole vault. The log is built as in
``bench/verify_checks.py`` (real v2 entries, tags, anchors). SQLite, and PostgreSQL
when it answers.

    python bench/shred_walk.py [--quick] [--records N]
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

import _common as c
import verify_checks as vc

FULL = {"records": 4000, "rounds": 3}
QUICK = {"records": 300, "rounds": 1}


def walk(vault) -> tuple[float, int]:
    from tests.support.vaults import CLIENT
    from vault.db import read_session
    from vault.services.binding import LogTail

    ctx = vault.context
    with read_session(ctx.engine) as s:
        t0 = time.perf_counter()
        LogTail().require(s, ctx.log_keys(CLIENT), CLIENT, 0)
        return time.perf_counter() - t0, 0


def hash_rows(vault) -> tuple[float, int]:
    from sqlmodel import select

    from tests.support.vaults import CLIENT
    from vault.db import LogEntry, read_session

    with read_session(vault.context.engine) as s:
        t0 = time.perf_counter()
        n = 0
        for row in s.exec(select(LogEntry).where(LogEntry.client_id == CLIENT)):
            hashlib.sha256(b"\x00" + bytes(row.entry)).digest()
            n += 1
        return time.perf_counter() - t0, n


def verify(vault) -> tuple[float, int]:
    from vault.services.verify import verify as run

    t0 = time.perf_counter()
    report = run(vault.context)
    if not report.clean:
        raise AssertionError(f"verify: {report.findings[:3]}")
    return time.perf_counter() - t0, report.entries


def measure(label: str, database_url: str, workdir: Path, sizes: dict) -> dict:
    from tests.support.vaults import make_vault

    vault = make_vault(workdir / f"vault-{label}", database_url=database_url)
    try:
        entries, _ = vc.build_log(vault, sizes["records"])
        series = {"walk": walk, "sha256 of rows": hash_rows, "verify": verify}
        times: dict[str, list[float]] = {k: [] for k in series}
        for _ in range(sizes["rounds"]):
            for name, fn in [*series.items(), *reversed(series.items())]:
                times[name].append(fn(vault)[0])
    finally:
        vault.close()
    per_s = {k: entries / c.median(v) for k, v in times.items()}
    return {
        "label": label,
        "entries": entries,
        "per_s": {k: round(v) for k, v in per_s.items()},
        "us_per_entry_walk": round(1e6 / per_s["walk"], 1),
        "ratio": round(per_s["walk"] / per_s["sha256 of rows"], 4),
        "ratio_vs_verify": round(per_s["walk"] / per_s["verify"], 4),
    }


def main() -> int:
    def extra(p):
        p.add_argument("--records", type=int, help="sealed records in the log")

    args = c.parse_args(__doc__.splitlines()[0], extra)
    sizes = dict(QUICK if args.quick else FULL)
    if args.records:
        sizes["records"] = args.records
    c.header("log walk before a shred", args.quick)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-shred-walk-") as tmp:
        results.append(measure("sqlite", "", Path(tmp), sizes))
        with c.pg_database() as url:
            if url:
                results.append(measure("postgres", url, Path(tmp), sizes))
    c.table(
        ["db", "entries", "walk /s", "sha256 /s", "verify /s", "µs/entry", "÷ sha256", "÷ verify"],
        [
            [
                r["label"],
                r["entries"],
                *r["per_s"].values(),
                r["us_per_entry_walk"],
                r["ratio"],
                r["ratio_vs_verify"],
            ]
            for r in results
        ],
    )
    head = results[0]
    c.emit(
        "shred_walk",
        args.quick,
        head["ratio"],
        None,
        None,
        headline=head["label"],
        results={r["label"]: r for r in results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
