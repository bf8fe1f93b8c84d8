"""Disputes and legal holds: logged, four-eyes release, and evidence kept past retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault.db import Hold, LogEntry, read_session
from vault.errors import Conflict, InvalidEvidence, NotFound, PermissionDenied
from vault.ledger.entry import parse_entry
from vault.services.retrieve import get_record

RETAIN_UNTIL = datetime(2028, 11, 19, 9, 30, tzinfo=UTC)  # RECORDED_AT + 730 days
OLD_KEK = f"local:{CLIENT}:exp-2028-11:1"
REASON = "Kunde Max Mustermann bestreitet den Vertragsschluss am Telefon"


def entries(vault, kind: str | None = None) -> list[dict]:
    with read_session(vault.context.engine) as s:
        rows = s.exec(
            select(LogEntry.entry).where(LogEntry.client_id == CLIENT).order_by(LogEntry.seq)
        )
        parsed = [parse_entry(bytes(raw)) for raw in rows]
    return [e for e in parsed if kind is None or e["type"] == kind]


def raw_log(vault) -> bytes:
    with read_session(vault.context.engine) as s:
        return b"\n".join(bytes(r) for r in s.exec(select(LogEntry.entry)))


def on_s3(vault) -> bool:
    return vault.settings.storage == "s3"


def legal_hold_status(vault, key: str) -> str:
    """The S3 legal hold of an object, read with the store's own boto3 client."""
    store, prefix = vault.context.store, vault.settings.s3.prefix.strip("/")
    resp = store.client.get_object_legal_hold(
        Bucket=store.bucket, Key=f"{prefix}/{key}" if prefix else key
    )
    return resp["LegalHold"]["Status"]


def admins(vault, *handles: str) -> None:
    """Global admin persons, made by the operator (approved at once)."""
    for handle in handles:
        vault.add_person(handle, role="admin")


class Clock:
    def __init__(self, vault, now: datetime) -> None:
        self.now = now
        vault.context.clock = lambda: self.now


@pytest.fixture
def local(tmp_path):
    """A local-sqlite vault, for what does not depend on the backends."""
    with make_vault(tmp_path / "local") as v:
        yield v


def seal(v, tmp_path):
    receipt = v.ingest(clip(tmp_path, seed=7), order_meta(7))
    rec = get_record(v.context, receipt.record_id)
    assert rec.retain_until.replace(tzinfo=UTC) == RETAIN_UNTIL
    assert rec.kek_id == OLD_KEK
    return rec


@pytest.fixture
def record(vault, tmp_path):
    """One sealed record on each backend."""
    return seal(vault, tmp_path)


@pytest.fixture
def local_record(local, tmp_path):
    return seal(local, tmp_path)


def spy_store_holds(vault, monkeypatch) -> list[tuple[str, bool]]:
    calls: list[tuple[str, bool]] = []
    store = vault.context.store
    real = store.set_legal_hold

    def spy(key: str, on: bool, *, version_id: str | None = None) -> None:
        calls.append((key, on))
        real(key, on, version_id=version_id)

    monkeypatch.setattr(store, "set_legal_hold", spy)
    return calls


# -- placing a hold -----------------------------------------------------------------------


def test_open_dispute_places_a_logged_hold(vault, record, monkeypatch):
    calls = spy_store_holds(vault, monkeypatch)
    hold = vault.open_dispute(
        record.id, case_ref="TDE-2026/0042", reason=REASON, principal="client:telco-de:ops"
    )
    assert (hold.kind, hold.case_ref, hold.reason, hold.placed_by) == (
        "dispute",
        "TDE-2026/0042",
        REASON,
        "client:telco-de:ops",
    )
    assert hold.active and hold.id.startswith("h") and hold.record_id == record.id
    assert [h.to_dict() for h in vault.holds()] == [hold.to_dict()]
    assert [h.id for h in vault.holds(record_id=record.id, client=CLIENT)] == [hold.id]
    with read_session(vault.context.engine) as s:
        row = s.get(Hold, hold.id)
    assert (row.client_id, row.record_id, row.reason, row.released_at) == (
        CLIENT,
        record.id,
        REASON,
        None,
    )

    [placed] = entries(vault, "hold.placed")
    assert placed["record"] == record.id
    assert placed["body"] == {
        "hold": hold.id,
        "kind": "dispute",
        "case": "TDE-2026/0042",
        "by": "client:telco-de:ops",
    }
    # the reason is free text (here with a name in it): database only, never the log
    log_text = raw_log(vault)
    assert REASON.encode() not in log_text and b"Mustermann" not in log_text

    if on_s3(vault):
        assert calls == [(record.clip_key, True), (record.meta_key, True)]
        assert legal_hold_status(vault, record.clip_key) == "ON"
        assert legal_hold_status(vault, record.meta_key) == "ON"
    else:
        assert calls == []  # a local store has no legal holds: the database row is it
    assert vault.verify().clean


def test_legal_hold_by_an_admin(local, local_record):
    hold = local.place_hold(
        local_record.id,
        case_ref="LG-Berlin:12O345/26",
        reason="court order",
        principal="admin:alice",
    )
    assert hold.kind == "legal"
    [placed] = entries(local, "hold.placed")
    assert placed["body"] == {
        "hold": hold.id,
        "kind": "legal",
        "case": "LG-Berlin:12O345/26",
        "by": "admin:alice",
    }


INVALID = [
    ("Max Mustermann 1980-01-31", "disputed", ["case_ref"]),  # spaces: free text, PII
    ("", "disputed", ["case_ref"]),
    ("-starts-with-dash", "disputed", ["case_ref"]),
    ("C" * 65, "disputed", ["case_ref"]),
    ("+4915112345678", "disputed", ["case_ref"]),
    ("max@example.com", "disputed", ["case_ref"]),
    ("CASE-1", "   ", ["reason"]),
    ("CASE-1", "x" * 501, ["reason"]),
    ("a b", "", ["case_ref", "reason"]),
]


def test_invalid_hold_is_refused_and_not_logged(local, local_record):
    before = entries(local)
    for case_ref, reason, fields in INVALID:
        with pytest.raises(InvalidEvidence) as err:
            local.open_dispute(local_record.id, case_ref=case_ref, reason=reason)
        assert [e.field for e in err.value.errors] == fields, case_ref
    assert entries(local) == before and local.holds(include_released=True) == []
    # the longest and the most varied references that are allowed
    for ok in ("C" * 64, "LG-Berlin:12O345/26#3.a_b"):
        assert local.open_dispute(local_record.id, case_ref=ok, reason="r").case_ref == ok


def test_unknown_kind_is_refused(local, local_record):
    from vault.services.holds import place_hold

    with pytest.raises(InvalidEvidence) as err:
        place_hold(
            local.context,
            local_record.id,
            kind="gut-feeling",
            case_ref="C-1",
            reason="r",
            principal="admin:a",
        )
    assert [e.field for e in err.value.errors] == ["kind"]


def test_hold_on_unknown_record_and_unknown_hold(local, local_record):
    with pytest.raises(NotFound):
        local.open_dispute("01nosuchrecord000000000000", case_ref="C-1", reason="r")
    with pytest.raises(NotFound):
        local.release_hold("hnosuchhold", admin="alice")
    assert entries(local, "hold.placed") == []


# -- holds against retention ----------------------------------------------------------------


def test_hold_blocks_shredding_until_a_four_eyes_release(vault, record, monkeypatch):
    admins(vault, "alice", "bob", "carol")
    clock = Clock(vault, RETAIN_UNTIL + timedelta(days=1))
    hold = vault.open_dispute(
        record.id, case_ref="TDE-2026/0042", reason=REASON, principal="client:telco-de"
    )

    [item] = vault.retention_plan(CLIENT)
    assert (item.record_id, item.action) == (record.id, "keep")
    assert item.why == f"expired but on hold: hold {hold.id} (dispute, case TDE-2026/0042)"
    report = vault.run_retention(CLIENT)
    assert [k.record_id for k in report.kept] == [record.id]
    assert report.shredded == [] and report.purged == []
    assert vault.show(record.id)["evidence"]["call_id"] == "dialer-7f3a-000007"

    # first admin: only a request
    calls = spy_store_holds(vault, monkeypatch)
    requested = vault.release_hold(hold.id, admin="alice")
    assert requested.active and requested.release_requested_by == "person:alice"
    assert requested.released_by is None
    [req] = entries(vault, "hold.release_requested")
    assert (req["record"], req["body"]) == (record.id, {"hold": hold.id, "by": "person:alice"})
    assert [i.action for i in vault.retention_plan(CLIENT)] == ["keep"]
    # the same admin cannot approve her own request
    with pytest.raises(PermissionDenied, match="four-eyes"):
        vault.release_hold(hold.id, admin="alice")
    assert entries(vault, "hold.released") == []
    assert calls == []
    if on_s3(vault):
        assert legal_hold_status(vault, record.clip_key) == "ON"

    clock.now += timedelta(hours=1)
    released = vault.release_hold(hold.id, admin="bob")
    assert not released.active
    assert (released.release_requested_by, released.released_by) == ("person:alice", "person:bob")
    assert released.released_at == clock.now
    [rel] = entries(vault, "hold.released")
    assert rel["record"] == record.id
    assert rel["body"] == {
        "hold": hold.id,
        "requested_by": "person:alice",
        "approved_by": "person:bob",
    }
    assert vault.holds() == []
    assert [h.id for h in vault.holds(include_released=True)] == [hold.id]
    if on_s3(vault):
        assert calls == [(record.clip_key, False), (record.meta_key, False)]
        assert legal_hold_status(vault, record.clip_key) == "OFF"
        assert legal_hold_status(vault, record.meta_key) == "OFF"
    else:
        assert calls == []

    with pytest.raises(Conflict, match="already released"):
        vault.release_hold(hold.id, admin="carol")

    [item] = vault.retention_plan(CLIENT)
    assert item.action == "shred"
    report = vault.run_retention(CLIENT)
    assert report.shredded == [record.id] and report.kept == []
    if not on_s3(vault):
        # an S3 Object Lock (real clock) still protects the ciphertext; locally it goes now
        assert report.purged == [record.id]
    [shred] = entries(vault, "evidence.shredded")
    assert shred["record"] == record.id and shred["body"]["kek"] == OLD_KEK

    with pytest.raises(Conflict, match="shredded"):
        vault.place_hold(record.id, case_ref="LATE-1", reason="too late", principal="admin:a")
    assert vault.holds() == []
    assert vault.verify().clean


def test_two_holds_on_one_record(vault, record):
    admins(vault, "a", "b")
    Clock(vault, RETAIN_UNTIL + timedelta(days=1))
    first = vault.open_dispute(record.id, case_ref="TDE-1", reason="dispute", principal="c:1")
    second = vault.place_hold(record.id, case_ref="LG-7", reason="court", principal="admin:zoe")
    [item] = vault.retention_plan(CLIENT)
    assert item.action == "keep"
    assert item.why == (
        f"expired but on hold: hold {first.id} (dispute, case TDE-1); "
        f"hold {second.id} (legal, case LG-7)"
    )

    vault.release_hold(first.id, admin="a")
    vault.release_hold(first.id, admin="b")
    [item] = vault.retention_plan(CLIENT)
    assert (item.action, item.why) == (
        "keep",
        f"expired but on hold: hold {second.id} (legal, case LG-7)",
    )
    if on_s3(vault):  # the other hold still needs the store's legal hold
        assert legal_hold_status(vault, record.clip_key) == "ON"
        assert legal_hold_status(vault, record.meta_key) == "ON"
    report = vault.run_retention(CLIENT)
    assert report.shredded == [] and [k.record_id for k in report.kept] == [record.id]
    assert [h.id for h in vault.holds()] == [second.id]

    vault.release_hold(second.id, admin="b")
    vault.release_hold(second.id, admin="a")  # either order of admins is fine
    assert vault.run_retention(CLIENT).shredded == [record.id]
    assert vault.verify().clean


def test_erasure_does_not_shred_a_held_record(local, local_record):
    hold = local.open_dispute(local_record.id, case_ref="TDE-9", reason="dispute")
    local.erase(record_id=local_record.id)
    assert local.show(local_record.id)["evidence"]["call_id"] == "dialer-7f3a-000007"
    assert entries(local, "evidence.shredded") == []
    assert [h.id for h in local.holds()] == [hold.id]


# -- a held record outlives its KEK bucket ---------------------------------------------------


def test_held_record_is_rewrapped_when_its_bucket_closes(vault, record):
    admins(vault, "a", "b")
    hold = vault.place_hold(record.id, case_ref="LG-7", reason="court", principal="admin:zoe")
    # December 2028: the record expired in November and its bucket's month is over
    clock = Clock(vault, datetime(2028, 12, 3, tzinfo=UTC))
    report = vault.run_retention(CLIENT)
    new_kek = f"local:{CLIENT}:exp-2028-12:1"
    assert [k.record_id for k in report.kept] == [record.id]
    assert (report.shredded, report.keks_destroyed, report.rewrapped) == ([], [OLD_KEK], 1)

    keys = vault.context.keys
    assert keys.kek_ids(CLIENT) == [new_kek]
    assert keys.destroyed_at(OLD_KEK) == clock.now
    assert get_record(vault.context, record.id).kek_id == new_kek
    assert vault.key_status(CLIENT) == [
        {"kek": new_kek, "bucket": "exp-2028-12", "live_records": 1}
    ]
    [moved] = entries(vault, "key.rewrapped")
    assert "record" not in moved  # about a KEK, not one record
    assert moved["body"] == {"from": OLD_KEK, "to": new_kek, "records": 1, "reason": "rebucket"}

    assert vault.show(record.id)["evidence"]["call_id"] == "dialer-7f3a-000007"
    assert vault.verify().clean and vault.verify(deep=True).clean

    # a month later it moves on again; once released it is shredded, and the sweep of its
    # last bucket leaves no key behind
    clock.now = datetime(2029, 1, 5, tzinfo=UTC)
    vault.release_hold(hold.id, admin="a")
    report = vault.run_retention(CLIENT)
    newest = f"local:{CLIENT}:exp-2029-01:1"
    assert [k.record_id for k in report.kept] == [record.id]
    assert (report.keks_destroyed, report.rewrapped) == ([new_kek], 1)
    assert keys.kek_ids(CLIENT) == [newest]
    vault.release_hold(hold.id, admin="b")
    assert vault.run_retention(CLIENT).shredded == [record.id]
    clock.now = datetime(2029, 2, 3, tzinfo=UTC)
    assert vault.run_retention(CLIENT).keks_destroyed == [newest]
    assert keys.kek_ids(CLIENT) == []
    assert vault.verify().clean
