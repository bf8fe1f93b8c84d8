"""verify by ranges in worker processes finds exactly what the walk in one process finds.

Real tampering of a real log (SQLite and PostgreSQL) with ranges of 64 entries, so that
changes sit inside ranges, on their edges, and before ranges that are otherwise clean;
every report is compared, finding by finding and in order, with the one-process walk.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import vault.services.verify as verify_mod
from tests.support.tamper import sql
from tests.support.vaults import (
    CLIENT,
    PgDatabase,
    clip,
    make_vault,
    order_meta,
    postgres_available,
)
from vault.db import write_session
from vault.db.log import EntryDraft, append_entries

ENTRIES = 700


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log_vault(request: pytest.FixtureRequest, tmp_path):
    database_url = ""
    if request.param == "postgres":
        reason = postgres_available()
        if reason:
            pytest.skip(reason)
        pg = PgDatabase()
        request.addfinalizer(pg.drop)
        database_url = pg.url
    vault = make_vault(tmp_path / "vault", database_url=database_url)
    for i in range(2):  # sealed records (objects, rows) at the start of the log
        vault.ingest(clip(tmp_path, seed=i), order_meta(i))
    t = datetime(2026, 11, 22, tzinfo=UTC)
    for start in range(0, ENTRIES, 100):
        drafts = [
            EntryDraft("evidence.accessed", f"01m8{i:022d}", {"principal": "p", "what": "audio"})
            for i in range(start, start + 100)
        ]
        with write_session(vault.context.engine) as s:
            append_entries(s, CLIENT, drafts, t, vault.context.log_keys(CLIENT))
        if start in (100, 300):
            vault.checkpoint(CLIENT)  # checkpoints inside ranges, not on their edges
    vault.checkpoint(CLIENT)
    yield vault
    vault.close()


def both(vault, monkeypatch):
    """(report in one process, report by ranges in 2 workers)."""
    one = vault.verify()
    with monkeypatch.context() as m:
        m.setattr(verify_mod, "RANGE", 64)
        m.setattr(verify_mod, "_workers", lambda size: 2)
        joined = []
        real_join = verify_mod._Walk.join

        def counting_join(self, done):
            joined.append(done.size)
            return real_join(self, done)

        m.setattr(verify_mod._Walk, "join", counting_join)
        ranged = vault.verify()
    return one, ranged, joined


def same(one, ranged) -> None:
    assert [f.to_dict() for f in ranged.findings] == [f.to_dict() for f in one.findings]
    assert (ranged.entries, ranged.records, ranged.objects, ranged.checkpoints) == (
        one.entries,
        one.records,
        one.objects,
        one.checkpoints,
    )


def test_clean_log_joins_every_range(log_vault, monkeypatch):
    one, ranged, joined = both(log_vault, monkeypatch)
    same(one, ranged)
    assert one.clean and one.entries == ENTRIES + 2 and one.checkpoints >= 3
    # the last range holds the anchored head, which is always walked here
    assert sum(joined) == 64 * (len(joined)) and len(joined) == (ENTRIES + 2) // 64


@pytest.mark.parametrize("seq", [5, 63, 64, 130, 300])
@pytest.mark.parametrize(
    "raw",
    [
        b'{"not":"an entry","v":2}',  # canonical: a leaf of the tree, chain broken
        b'{"v":2,"not":"an entry"}',  # not canonical: no leaf, so the tree lags the log
    ],
)
def test_edited_entry(log_vault, monkeypatch, seq, raw):
    sql(
        log_vault,
        "UPDATE log_entry SET entry = :e WHERE client_id = :c AND seq = :s",
        e=raw,
        c=CLIENT,
        s=seq,
    )
    one, ranged, joined = both(log_vault, monkeypatch)
    same(one, ranged)
    assert ("modified", seq) in {(f.kind, f.seq) for f in one.findings}
    if raw.startswith(b'{"not"'):
        assert joined  # the ranges not touched were checked in the workers
    else:
        # only the ranges before the edit can be joined: past it the tree lags the log
        assert len(joined) == seq // 64


@pytest.mark.parametrize("seq", [64, 127, 200])
def test_deleted_entry(log_vault, monkeypatch, seq):
    sql(log_vault, "DELETE FROM log_entry WHERE client_id = :c AND seq = :s", c=CLIENT, s=seq)
    one, ranged, _ = both(log_vault, monkeypatch)
    same(one, ranged)
    assert ("missing", seq) in {(f.kind, f.seq) for f in one.findings}


def test_wrong_tag_and_leaf(log_vault, monkeypatch):
    sql(
        log_vault,
        "UPDATE log_entry SET tag = :t WHERE client_id = :c AND seq = 100",
        t=bytes(32),
        c=CLIENT,
    )
    sql(
        log_vault,
        "UPDATE merkle_node SET hash = :h WHERE client_id = :c AND level = 0 AND idx = 250",
        h=bytes(32),
        c=CLIENT,
    )
    one, ranged, _ = both(log_vault, monkeypatch)
    same(one, ranged)
    found = {(f.kind, f.seq) for f in one.findings}
    assert ("unauthenticated", 100) in found and ("modified", 250) in found


def test_sealed_record_row_changed(log_vault, monkeypatch):
    sql(log_vault, "UPDATE record SET order_ref = 'ORD-X' WHERE client_id = :c", c=CLIENT)
    one, ranged, joined = both(log_vault, monkeypatch)
    same(one, ranged)
    assert [f.kind for f in one.findings] == ["modified", "modified"]
    assert joined  # found through the sealed entries a worker handed back
