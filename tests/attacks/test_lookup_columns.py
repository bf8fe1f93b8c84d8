"""Attack 6: the log_entry lookup columns ``type`` and ``record_id``.

They are not part of the hashed entry, so the chain and the tags do not cover them;
``verify`` compares them with the entry, and the read check refuses a row that lies.
Before anything is destroyed the whole log after the record is walked, so a lookup
column that hides an entry from the selection is found there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.attacks.helpers import findings, seal
from tests.support.vaults import CLIENT, clip, order_meta
from vault.services.logauth import TamperDetected

COLUMNS = "the log_entry row's type or record_id column disagrees with the entry"


@pytest.fixture
def records(vault, tmp_path):
    a, b = seal(vault, tmp_path, 0), seal(vault, tmp_path, 1)
    vault.show(a)  # an evidence.accessed entry of record a
    assert vault.verify().clean
    return a, b


def test_type_column_changed(vault, attacker, records):
    a, _b = records
    [seq] = attacker.seqs(CLIENT, "evidence.accessed", a)
    attacker.run(
        "UPDATE log_entry SET type = 'hold.placed' WHERE client_id = ? AND seq = ?", CLIENT, seq
    )
    assert findings(vault.verify()) == [("modified", a, seq, COLUMNS)]
    with pytest.raises(TamperDetected, match=f"log entry {seq} disagrees with its row"):
        vault.show(a)


def test_record_id_column_changed(vault, attacker, records):
    a, b = records
    [seq] = attacker.seqs(CLIENT, "evidence.accessed", a)
    attacker.run(
        "UPDATE log_entry SET record_id = ? WHERE client_id = ? AND seq = ?", b, CLIENT, seq
    )
    assert findings(vault.verify()) == [("modified", a, seq, COLUMNS)]


@pytest.fixture
def hidden_hold(vault, attacker, records):
    """Record a under a hold whose hold.placed entry the attacker hides from lookups by
    its type column, and whose hold row the attacker deletes; three years on."""
    a, _b = records
    hold = vault.place_hold(a, case_ref="CASE-7", reason="court order", principal="admin-a")
    [seq] = attacker.seqs(CLIENT, "hold.placed", a)
    attacker.run(
        "UPDATE log_entry SET type = 'evidence.accessed' WHERE client_id = ? AND seq = ?",
        CLIENT,
        seq,
    )
    attacker.run("DELETE FROM hold WHERE id = ?", hold.id)
    real = vault.context.clock
    vault.context.clock = lambda: real() + timedelta(days=3 * 365)
    return a, seq


def test_hidden_hold_entry_is_named_by_verify(vault, hidden_hold):
    a, seq = hidden_hold
    assert findings(vault.verify()) == [("modified", a, seq, COLUMNS)]


def test_hidden_hold_entry_blocks_the_retention_run(vault, attacker, hidden_hold):
    a, _seq = hidden_hold
    try:
        with pytest.raises(TamperDetected):
            vault.run_retention()
    finally:
        shredded = attacker.record(a, "shredded_at") is not None
    assert not shredded


def test_hold_entry_moved_by_record_id_blocks_an_erasure(vault, attacker, records):
    a, b = records
    hold = vault.place_hold(a, case_ref="CASE-7", reason="court order", principal="admin-a")
    [seq] = attacker.seqs(CLIENT, "hold.placed", a)
    attacker.run(
        "UPDATE log_entry SET record_id = ? WHERE client_id = ? AND seq = ?", b, CLIENT, seq
    )
    attacker.run("DELETE FROM hold WHERE id = ?", hold.id)
    try:
        with pytest.raises(TamperDetected, match=f"log entry {seq} disagrees with its row"):
            vault.erase(record_id=a)
    finally:
        shredded = attacker.record(a, "shredded_at") is not None
    assert not shredded


def test_hidden_extension_does_not_shorten_retention(vault, attacker, tmp_path):
    vault.add_campaign(CLIENT, "consent-2026", 30, retention_basis="consent-use")
    meta = order_meta(7, campaign="consent-2026")
    rec = vault.ingest(clip(tmp_path, seed=7), meta).record_id
    sealed_until = attacker.entry(CLIENT, attacker.record(rec, "seq"))["body"]["retain_until"]
    now = vault.context.clock()
    assert vault.record_consent_use(CLIENT, meta["callee"]["phone"], now) == [rec]
    [seq] = attacker.seqs(CLIENT, "retention.extended", rec)
    attacker.run(
        "UPDATE log_entry SET type = 'evidence.accessed' WHERE client_id = ? AND seq = ?",
        CLIENT,
        seq,
    )
    sealed = datetime.strptime(sealed_until, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    attacker.set_record(rec, "retain_until", attacker.time_value(sealed))
    # past the sealed date, before the extended one (30 days after the use)
    vault.context.clock = lambda: max(sealed, now) + timedelta(hours=1)
    assert sealed + timedelta(hours=1) < now + timedelta(days=30)
    try:
        with pytest.raises(TamperDetected):
            vault.run_retention()
    finally:
        shredded = attacker.record(rec, "shredded_at") is not None
    assert not shredded


def test_deleted_hold_entry_blocks_an_erasure(vault, attacker, records):
    a, _b = records
    hold = vault.place_hold(a, case_ref="CASE-8", reason="court order", principal="admin-a")
    vault.show(a)  # an entry after the hold, so the deletion leaves a hole, not a short log
    [seq] = attacker.seqs(CLIENT, "hold.placed", a)
    attacker.run("DELETE FROM log_entry WHERE client_id = ? AND seq = ?", CLIENT, seq)
    attacker.run("DELETE FROM hold WHERE id = ?", hold.id)
    with pytest.raises(TamperDetected, match=f"log entry {seq} is missing"):
        vault.erase(record_id=a)
    assert attacker.record(a, "shredded_at") is None


def test_cut_tail_with_the_hold_blocks_an_erasure(vault, attacker, records):
    a, _b = records
    hold = vault.place_hold(a, case_ref="CASE-9", reason="court order", principal="admin-a")
    [seq] = attacker.seqs(CLIENT, "hold.placed", a)
    prev = attacker.entry(CLIENT, seq)["prev"]
    # cut the hold entry off the end and move the head back: a consistent, shorter log
    attacker.run("DELETE FROM log_entry WHERE client_id = ? AND seq >= ?", CLIENT, seq)
    attacker.run(
        "UPDATE log_head SET size = ?, head_hash = ? WHERE client_id = ?", seq, prev, CLIENT
    )
    attacker.run("DELETE FROM hold WHERE id = ?", hold.id)
    with pytest.raises(TamperDetected, match="the head is behind its anchor"):
        vault.erase(record_id=a)
    assert attacker.record(a, "shredded_at") is None


def test_an_honest_log_lets_a_run_shred_many_records(vault, attacker, tmp_path):
    held = seal(vault, tmp_path, 10)
    free = [seal(vault, tmp_path, n) for n in (11, 12, 13)]
    vault.place_hold(held, case_ref="CASE-10", reason="dispute", principal="admin-a")
    real = vault.context.clock
    vault.context.clock = lambda: real() + timedelta(days=3 * 365)
    report = vault.run_retention()
    assert sorted(report.shredded) == sorted(free)
    assert attacker.record(held, "shredded_at") is None
    assert vault.verify().clean
