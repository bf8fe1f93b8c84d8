"""Several processes seal into one client's log at once: no gap, no fork, no duplicate."""

from __future__ import annotations

import multiprocessing as mp
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault.db import LogEntry, LogHead, Record, read_session
from vault.ledger import GENESIS_PREV, entry_hash, parse_entry

WORKERS, PER_WORKER = 4, 6
FIXED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _worker(settings, clips: list[str], start: mp.Barrier, out: mp.Queue) -> None:
    from vault import Vault
    from vault.services.context import open_vault

    v = Vault(open_vault(settings))
    start.wait()
    ids = []
    for i, path in enumerate(clips):
        # every worker also uploads call 999 (the same clip and metadata): a dialer retry race
        n = 999 if i == 0 else int(Path(path).stem.split("-")[-1])
        ids.append(v.ingest(path, order_meta(n, recorded_at=FIXED)).record_id)
    out.put((os.getpid(), ids))


def _run(vault, tmp_path):
    ctx = mp.get_context("fork")
    dup = clip(tmp_path, seed=999)
    plans = []
    for w in range(WORKERS):
        paths = [str(dup)]
        for j in range(PER_WORKER):
            n = 100 * (w + 1) + j
            p = clip(tmp_path, seed=n)
            p = p.rename(p.with_name(f"c-{n}{p.suffix}"))
            paths.append(str(p))
        plans.append(paths)
    start, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(vault.settings, p, start, out)) for p in plans]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return results


def _assert_linear_log(vault, results):
    expected_records = 1 + WORKERS * PER_WORKER
    dup_ids = {ids[0] for _, ids in results}
    assert len(dup_ids) == 1, "the raced duplicate must resolve to one record"
    with read_session(vault.context.engine) as s:
        records = list(s.exec(select(Record)))
        rows = list(
            s.exec(select(LogEntry).where(LogEntry.client_id == CLIENT).order_by(LogEntry.seq))
        )
        head = s.get(LogHead, CLIENT)
    assert len(records) == expected_records
    assert [r.seq for r in rows] == list(range(expected_records))  # no gap, no duplicate seq
    prev = GENESIS_PREV
    for row in rows:  # one linear chain: no fork
        entry = parse_entry(row.entry)
        assert entry["prev"] == prev
        prev = entry_hash(row.entry)
    assert (head.size, head.head_hash) == (expected_records, prev)
    assert sorted(r.seq for r in records) == list(range(expected_records))
    assert vault.verify().clean


def test_concurrent_ingest_sqlite(tmp_path):
    vault = make_vault(tmp_path / "v")
    _assert_linear_log(vault, _run(vault, tmp_path))


@pytest.mark.postgres
def test_concurrent_ingest_postgres(tmp_path, pg_url):
    vault = make_vault(tmp_path / "v", database_url=pg_url)
    _assert_linear_log(vault, _run(vault, tmp_path))
