"""``verify --deep`` opens records on threads ahead of the walk and finds exactly what
opening them one after another finds, finding by finding and in order.

Real tampering of several records at once (a flipped byte in a clip, a deleted metadata
object, another record's wrapped key, an edited log entry, a shredded record) on the
embedded vault, then the deep report with threads is compared with the one without, and
with the walk by ranges in worker processes.
"""

from __future__ import annotations

import threading

import pytest

import vault.services.audit as audit_mod
import vault.services.verify as verify_mod
from tests.support.tamper import delete_object, edit_object, flip_byte, sql
from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault.services.retrieve import get_record

RECORDS = 9


@pytest.fixture
def records(tmp_path):
    vault = make_vault(tmp_path / "vault")
    receipts = [vault.ingest(clip(tmp_path, seed=i), order_meta(i)) for i in range(RECORDS)]
    yield vault, [get_record(vault.context, r.record_id) for r in receipts]
    vault.close()


def deep_report(vault, monkeypatch, threads: int) -> tuple[list[dict], set[str]]:
    """The deep report's findings with ``threads`` opening threads, and the names of the
    threads that opened records."""
    openers: set[str] = set()
    real = audit_mod.deep_check

    def deep_check(ctx, rec, item):
        openers.add(threading.current_thread().name)
        return real(ctx, rec, item)

    with monkeypatch.context() as m:
        m.setattr(audit_mod, "deep_check", deep_check)
        m.setattr(verify_mod, "open_threads", lambda: threads)
        report = vault.verify(deep=True)
    return [f.to_dict() for f in report.findings], openers


def test_a_clean_vault_is_opened_on_the_threads(records, monkeypatch):
    vault, _ = records
    findings, openers = deep_report(vault, monkeypatch, 4)
    assert findings == []
    assert openers and all(name.startswith("verify-open") for name in openers)
    findings, openers = deep_report(vault, monkeypatch, 1)
    assert findings == [] and openers == {threading.main_thread().name}


def test_tampered_records_give_the_same_findings_in_the_same_order(records, monkeypatch):
    vault, recs = records
    edit_object(vault, recs[1].clip_key, flip_byte)
    delete_object(vault, recs[3].meta_key)
    other = recs[5].wrapped_dek
    sql(vault, "UPDATE record SET wrapped_dek = :w WHERE id = :i", w=other, i=recs[4].id)
    edit_object(vault, recs[7].clip_key, lambda b: b[:-1])  # truncated
    # the walk's slow path: an entry whose type column was changed is opened where the
    # walk reaches it, not on the threads (nothing was opened ahead for it)
    sql(
        vault,
        "UPDATE log_entry SET type = 'x' WHERE client_id = :c AND seq = :s",
        c=CLIENT,
        s=recs[6].seq,
    )
    in_turn, _ = deep_report(vault, monkeypatch, 1)
    ahead, openers = deep_report(vault, monkeypatch, 4)
    assert ahead == in_turn
    assert all(name.startswith("verify-open") or name == "MainThread" for name in openers)
    assert any(name.startswith("verify-open") for name in openers)
    found = [(f["kind"], f["record"]) for f in ahead]
    assert ("modified", recs[1].id) in found and ("missing", recs[3].id) in found
    assert ("modified", recs[4].id) in found and ("modified", recs[7].id) in found
    assert any(f["seq"] == recs[6].seq for f in ahead)


def test_a_row_naming_another_record_does_not_mislead_the_openings(records, monkeypatch):
    """The record column of a sealed entry's row points at another record: the openings
    ahead follow the entry, as the walk does, and the row is reported as edited."""
    vault, recs = records
    sql(
        vault,
        "UPDATE log_entry SET record_id = :r WHERE client_id = :c AND seq = :s",
        r=recs[2].id,
        c=CLIENT,
        s=recs[8].seq,
    )
    in_turn, _ = deep_report(vault, monkeypatch, 1)
    ahead, _ = deep_report(vault, monkeypatch, 4)
    assert ahead == in_turn
    assert [(f["kind"], f["seq"]) for f in ahead] == [("modified", recs[8].seq)]


def test_deep_by_ranges_in_workers_opens_ahead_too(records, monkeypatch):
    vault, recs = records
    edit_object(vault, recs[2].clip_key, flip_byte)
    in_turn, _ = deep_report(vault, monkeypatch, 1)
    with monkeypatch.context() as m:
        m.setattr(verify_mod, "RANGE", 4)
        m.setattr(verify_mod, "_workers", lambda size: 2)
        ranged, openers = deep_report(vault, monkeypatch, 4)
    assert ranged == in_turn
    assert [(f["kind"], f["record"]) for f in ranged] == [("modified", recs[2].id)]
    assert any(name.startswith("verify-open") for name in openers)
