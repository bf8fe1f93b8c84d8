"""Ingest, find, show, audio and verify through the facade, on every backend combination.

The ``vault`` fixture (tests/conftest.py) runs each test on local+SQLite, moto+SQLite,
SeaweedFS+SQLite, local+PostgreSQL and SeaweedFS+PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from tests.support.vaults import CAMPAIGN, CLIENT, clip, order_meta
from vault.db import LogEntry, Record, read_session
from vault.errors import Conflict, InvalidAudio, InvalidEvidence, NotFound
from vault.ledger import parse_entry
from vault.synth import FORMATS, MEDIA_TYPES


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_is_byte_identical(vault, tmp_path, fmt):
    src = clip(tmp_path, fmt, seconds=2.5, seed=7)
    receipt = vault.ingest(src, order_meta(1), media_type=MEDIA_TYPES[fmt])
    out = vault.write_audio(receipt.record_id, tmp_path / "out.bin")
    assert out.read_bytes() == src.read_bytes()
    doc = vault.show(receipt.record_id)
    assert doc["evidence"]["callee"]["phone"] == "+4915112345678"
    assert doc["audio"]["media_type"] == MEDIA_TYPES[fmt]
    assert vault.verify().clean


def test_receipt_points_at_the_chained_entry(vault, tmp_path):
    r0 = vault.ingest(clip(tmp_path, seed=1), order_meta(1))
    r1 = vault.ingest(clip(tmp_path, seed=2), order_meta(2))
    assert (r0.seq, r1.seq) == (0, 1)
    with read_session(vault.context.engine) as s:
        e1 = s.get(LogEntry, (CLIENT, 1))
    from vault.ledger import entry_hash

    entry = parse_entry(e1.entry)
    assert entry["prev"] == r0.entry_hash
    assert entry_hash(e1.entry) == r1.entry_hash
    assert entry["type"] == "evidence.sealed" and entry["record"] == r1.record_id


def test_log_entries_and_rows_hold_no_pii(vault, tmp_path):
    meta = order_meta(3)
    r = vault.ingest(clip(tmp_path), meta)
    vault.show(r.record_id)
    with read_session(vault.context.engine) as s:
        blobs = [e.entry for e in s.exec(select(LogEntry))]
        row = s.get(Record, r.record_id)
    text = b"".join(blobs).decode() + repr(row.model_dump())
    for secret in (
        "+4915112345678",
        "4915112345678",
        "Mustermann",
        "1980-01-31",
        "abschließen",
        "10115",
    ):
        assert secret not in text


def test_same_upload_twice_returns_the_existing_receipt(vault, tmp_path):
    src = clip(tmp_path)
    first = vault.ingest(src, order_meta(4))
    again = vault.ingest(src, order_meta(4))
    assert again.duplicate and not first.duplicate
    assert (again.record_id, again.seq, again.entry_hash) == (
        first.record_id,
        first.seq,
        first.entry_hash,
    )
    assert len(vault.find(order_ref="ORD-2026-000004")) == 1


def test_different_clip_under_same_call_segment_is_refused(vault, tmp_path):
    first = vault.ingest(clip(tmp_path, seed=1), order_meta(5))
    with pytest.raises(
        Conflict, match=r"already sealed with a different clip \(record " + first.record_id
    ):
        vault.ingest(clip(tmp_path, seed=2), order_meta(5))
    with pytest.raises(Conflict, match="already sealed with different metadata"):
        vault.ingest(
            tmp_path / next(p.name for p in tmp_path.iterdir() if "-1-" in p.name),
            order_meta(5, agent_id="agent-999"),
        )
    assert vault.verify().clean


def test_unknown_campaign_and_client_are_refused(vault, tmp_path):
    with pytest.raises(InvalidEvidence) as exc:
        vault.ingest(clip(tmp_path), order_meta(6, campaign="no-such-campaign"))
    assert exc.value.errors[0].field == "campaign"
    assert "does not exist for client 'telco-de'" in exc.value.errors[0].message
    with pytest.raises(NotFound, match="client named by the evidence does not exist"):
        vault.ingest(clip(tmp_path), order_meta(6, client="nobody"))


def test_bad_audio_and_bad_spans_store_nothing(vault, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(InvalidAudio):
        vault.ingest(junk, order_meta(7))
    meta = order_meta(7)
    meta["intent"]["span_ms"] = [1000, 99000]
    with pytest.raises(InvalidEvidence) as exc:
        vault.ingest(clip(tmp_path, seconds=2.0), meta)
    assert [e.field for e in exc.value.errors] == ["intent.span_ms[1]"]
    assert vault.find(client=CLIENT) == []
    assert list(vault.context.store.list(CLIENT + "/")) == []
    assert vault.verify().clean


def test_find_filters(vault, tmp_path):
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    vault.add_campaign(CLIENT, "energy-q4", retention_days=365)
    a = vault.ingest(clip(tmp_path, seed=1), order_meta(10, recorded_at=t0))
    b = vault.ingest(
        clip(tmp_path, seed=2),
        order_meta(
            11,
            recorded_at=t0 + timedelta(days=3),
            agent_id="agent-007",
            callee={"phone": "+33612345678"},
        ),
    )
    c = vault.ingest(
        clip(tmp_path, seed=3),
        order_meta(12, recorded_at=t0 + timedelta(days=5), campaign="energy-q4"),
    )
    ids = lambda hits: [h.record_id for h in hits]  # noqa: E731
    assert ids(vault.find(order_ref="ORD-2026-000011")) == [b.record_id]
    assert ids(vault.find(phone="+4915112345678")) == [a.record_id, c.record_id]
    assert ids(vault.find(phone="+33 6 12 34 56 78")) == [b.record_id]
    assert ids(vault.find(agent="agent-007")) == [b.record_id]
    assert ids(vault.find(campaign="energy-q4")) == [c.record_id]
    assert ids(vault.find(since=t0 + timedelta(days=1), until=t0 + timedelta(days=4))) == [
        b.record_id
    ]
    assert ids(vault.find(client="other")) == []
    assert vault.find(order_ref="ORD-2026-000012")[0].campaign == "energy-q4"


def test_every_read_is_logged(vault, tmp_path):
    r = vault.ingest(clip(tmp_path), order_meta(20))
    vault.show(r.record_id, principal="team:escalation")
    vault.write_audio(r.record_id, tmp_path / "o.wav", principal="team:escalation")
    with read_session(vault.context.engine) as s:
        entries = [parse_entry(e.entry) for e in s.exec(select(LogEntry).order_by(LogEntry.seq))]
    accessed = [(e["type"], e["body"]) for e in entries[1:]]
    assert accessed == [
        ("evidence.accessed", {"principal": "team:escalation", "what": "metadata"}),
        ("evidence.accessed", {"principal": "team:escalation", "what": "audio"}),
    ]
    assert vault.verify().clean


def test_unknown_record(vault):
    with pytest.raises(NotFound, match="no record 'nope'"):
        vault.show("nope")


def test_campaign_names_are_checked(vault):
    with pytest.raises(InvalidEvidence, match="campaign: must be 1-64 characters"):
        vault.add_campaign(CLIENT, "Bad Name!", retention_days=30)
    with pytest.raises(Conflict, match="already exists"):
        vault.add_campaign(CLIENT, CAMPAIGN, retention_days=30)


def test_sealed_objects_are_write_once(vault, tmp_path):
    """Never overwritten by the vault; on an Object Lock bucket not even deletable."""
    from vault.errors import ObjectExists, ObjectLocked
    from vault.services.retrieve import get_record

    r = vault.ingest(clip(tmp_path), order_meta(30))
    rec = get_record(vault.context, r.record_id)
    store = vault.context.store
    with pytest.raises(ObjectExists):
        store.put(rec.clip_key, [b"replacement"])
    if not store.supports_object_lock:
        return  # the local directory and unlocked buckets rely on the no-overwrite rule only
    assert store.get_retention(rec.clip_key) == rec.retain_until
    with pytest.raises(ObjectLocked):
        store.delete(rec.clip_key, all_versions=True)
    out = vault.write_audio(r.record_id, tmp_path / "still-there.wav")
    assert out.stat().st_size > 0
    assert vault.verify().clean


def test_searching_an_unknown_client_changes_nothing(vault):
    keyring = vault.context.keys.path.read_bytes()
    assert vault.find(client="ghost", phone="+4915112345678") == []
    assert vault.context.keys.path.read_bytes() == keyring
