"""Lifecycle throughput: a retention run and a KEK rotation, against ingest of the same records.

For SQLite + local objects (the embedded default) and PostgreSQL + local objects (when
127.0.0.1:5432 answers): N records (2 s WAV clips) are ingested with the vault's clock
at 2026-11-21, the client's KEKs are rotated (every data key re-wrapped: unwrap + wrap +
one row update per record, a ``key.rewrapped`` entry per batch), then the clock moves to
2029-01-15 and one ``retention run`` shreds every record (in batches of one client
growing 1, 1, 2, 4, ... 128: one transaction and one log append per batch, one
``evidence.shredded`` entry per record), deletes both objects of each (one commit of
the purge marks per batch), and sweeps the expired month's KEKs. ``verify`` must be
clean afterwards and every record shredded.

Ratio: records shredded per second over records ingested per second, same records, same
run. No target: it shows that expiring evidence costs less than taking it in.

    python bench/retention.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import _common as c

FULL, QUICK = 1000, 30


def run_config(label: str, database_url: str, n: int, tmp: Path) -> dict:
    from tests.support.vaults import CLIENT, order_meta
    from vault import Vault
    from vault.config import load_settings
    from vault.services.context import create_vault
    from vault.synth import write_clip

    now = [datetime(2026, 11, 21, tzinfo=UTC)]
    settings = replace(load_settings(tmp / label, env={}), database_url=database_url)
    ctx = create_vault(settings)
    ctx.clock = lambda: now[0]
    vault = Vault(ctx)
    vault.add_client(CLIENT)
    vault.add_campaign(CLIENT, "fibre-upsell-2026q4", retention_days=730)
    clip = write_clip(tmp / f"{label}.wav", "wav-pcm16", 2.0, seed=1)
    t0 = time.perf_counter()
    for i in range(n):
        vault.ingest(clip, order_meta(i))
    ingest_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    rotated = vault.rotate_kek(CLIENT)
    rotate_s = time.perf_counter() - t0

    now[0] = datetime(2029, 1, 15, tzinfo=UTC)
    t0 = time.perf_counter()
    report = vault.run_retention()
    run_s = time.perf_counter() - t0
    clean = vault.verify().clean
    vault.close()
    ok = clean and len(report.shredded) == n and len(report.purged) == n
    if not ok:
        print(f"error: {label}: verify clean={clean}, shredded {len(report.shredded)} of {n}")
    return {
        "config": label,
        "records": n,
        "ingest_per_s": n / ingest_s,
        "rewrap_per_s": rotated.records / rotate_s,
        "shred_per_s": n / run_s,
        "keks_destroyed": len(report.keks_destroyed),
        "ok": ok,
    }


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    c.header("retention run and KEK rotation vs ingest", args.quick)
    n = QUICK if args.quick else FULL
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(run_config("sqlite", "", n, Path(tmp)))
        with c.pg_database() as url:
            if url:
                rows.append(run_config("postgres", url, n, Path(tmp)))
    c.table(
        ["config", "records", "ingest/s", "re-wrap/s", "shred/s", "shred÷ingest", "KEKs destroyed"],
        [
            [
                r["config"],
                r["records"],
                r["ingest_per_s"],
                r["rewrap_per_s"],
                r["shred_per_s"],
                r["shred_per_s"] / r["ingest_per_s"],
                r["keks_destroyed"],
            ]
            for r in rows
        ],
    )
    base = rows[0]
    c.emit(
        "retention",
        args.quick,
        base["shred_per_s"] / base["ingest_per_s"],
        None,
        None,
        configs=[
            {k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()} for r in rows
        ],
    )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
