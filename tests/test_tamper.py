"""Tamper matrix: really change stored objects and rows, and assert the exact finding."""

from __future__ import annotations

import pytest

from tests.support.tamper import (
    delete_object,
    edit_object,
    flip_byte,
    read_object,
    sql,
    write_object,
)
from tests.support.vaults import CLIENT, clip, order_meta
from vault.errors import DecryptionFailed
from vault.services.retrieve import get_record


@pytest.fixture
def sealed(vault, tmp_path):
    """Three sealed records; returns their record rows."""
    receipts = [vault.ingest(clip(tmp_path, seed=i), order_meta(i)) for i in range(3)]
    assert vault.verify().clean
    return [get_record(vault.context, r.record_id) for r in receipts]


def kinds(report):
    return sorted(
        ((f.kind, f.record, f.seq) for f in report.findings),
        key=lambda t: (t[0], t[1] or "", -1 if t[2] is None else t[2]),
    )


def test_flipped_byte_in_clip(vault, sealed):
    rec = sealed[1]
    edit_object(vault, rec.clip_key, flip_byte)
    report = vault.verify()
    assert kinds(report) == [("modified", rec.id, rec.seq)]
    [f] = report.findings
    assert f.key == rec.clip_key and "clip object does not match" in f.detail
    assert vault.show(rec.id)["evidence"]["call_id"]  # the metadata is intact ...
    out = vault.settings.home / "out.wav"
    with pytest.raises(DecryptionFailed):
        vault.write_audio(rec.id, out)  # ... the audio is not, and nothing is written
    assert not out.exists()


def test_flipped_byte_in_metadata_refuses_to_open(vault, sealed):
    rec = sealed[0]
    edit_object(vault, rec.meta_key, lambda b: flip_byte(b, len(b) // 2))
    assert kinds(vault.verify()) == [("modified", rec.id, rec.seq)]
    with pytest.raises(DecryptionFailed):
        vault.show(rec.id)


def test_swapped_objects_of_two_records(vault, sealed):
    a, b = sealed[0], sealed[2]
    ca, cb = read_object(vault, a.clip_key), read_object(vault, b.clip_key)
    write_object(vault, a.clip_key, cb)
    write_object(vault, b.clip_key, ca)
    assert sorted(kinds(vault.verify())) == sorted(
        [("modified", a.id, a.seq), ("modified", b.id, b.seq)]
    )
    # even with the ciphertext hash check out of the way, the AEAD binding refuses it
    with pytest.raises(DecryptionFailed):
        vault.write_audio(a.id, vault.settings.home / "a.wav")


def test_deleted_object(vault, sealed):
    rec = sealed[2]
    delete_object(vault, rec.meta_key)
    report = vault.verify()
    assert kinds(report) == [("missing", rec.id, rec.seq)]
    assert "is missing from object storage" in report.findings[0].detail


def test_edited_entry_row(vault, sealed):
    rec = sealed[0]
    sql(
        vault,
        "UPDATE log_entry SET entry = :e WHERE client_id = :c AND seq = :s",
        e=_entry(vault, rec.seq).replace(b'"duration_ms":2000', b'"duration_ms":2001'),
        c=CLIENT,
        s=rec.seq,
    )
    report = vault.verify()
    assert ("modified", rec.id, rec.seq) in kinds(report)
    assert any("does not hash to the value entry 1 chained to" in f.detail for f in report.findings)


def test_deleted_entry_row(vault, sealed):
    rec = sealed[1]
    sql(vault, "DELETE FROM log_entry WHERE client_id = :c AND seq = :s", c=CLIENT, s=rec.seq)
    found = kinds(vault.verify())
    assert ("missing", None, rec.seq) in found  # the gap in the chain
    assert ("missing", rec.id, rec.seq) in found  # the record row without its entry


def test_swapped_entry_rows(vault, sealed):
    e0, e1 = _entry(vault, 0), _entry(vault, 1)
    sql(vault, "UPDATE log_entry SET entry = :e WHERE client_id = :c AND seq = 0", e=e1, c=CLIENT)
    sql(vault, "UPDATE log_entry SET entry = :e WHERE client_id = :c AND seq = 1", e=e0, c=CLIENT)
    found = kinds(vault.verify())
    assert ("reordered", sealed[1].id, 0) in found
    assert ("reordered", sealed[0].id, 1) in found


def test_truncated_log(vault, sealed):
    sql(vault, "DELETE FROM log_entry WHERE client_id = :c AND seq >= 2", c=CLIENT)
    found = kinds(vault.verify())
    assert ("truncated", None, 2) in found
    assert ("missing", sealed[2].id, 2) in found


def test_edited_record_row(vault, sealed):
    rec = sealed[1]
    sql(vault, "UPDATE record SET duration_ms = 99 WHERE id = :i", i=rec.id)
    report = vault.verify()
    assert kinds(report) == [("modified", rec.id, rec.seq)]
    assert "duration_ms" in report.findings[0].detail


def test_planted_object_is_an_orphan(vault, sealed):
    key = f"{CLIENT}/fibre-upsell-2026q4/2026/01/planted/clip"
    write_object(vault, key, b"not evidence")
    report = vault.verify()
    assert [(f.kind, f.key) for f in report.findings] == [("orphan", key)]


def _entry(vault, seq: int) -> bytes:
    from vault.db import LogEntry, read_session

    with read_session(vault.context.engine) as s:
        return s.get(LogEntry, (CLIENT, seq)).entry


# -- the lifecycle: shredding, extensions, re-wraps ------------------------------------------


def _shredded_vault(tmp_path):
    from datetime import UTC, datetime

    from tests.support.vaults import make_vault

    now = [datetime(2026, 11, 21, tzinfo=UTC)]
    v = make_vault(tmp_path / "life", clock=lambda: now[0])
    shred = v.ingest(clip(tmp_path, seed=1), order_meta(1))
    live = v.ingest(clip(tmp_path, seed=2), order_meta(2))
    v.open_dispute(live.record_id, case_ref="CASE-1", reason="disputed")
    now[0] = datetime(2029, 1, 15, tzinfo=UTC)
    report = v.run_retention()
    assert report.shredded == [shred.record_id] and v.verify().clean
    return v, shred, live


def test_unshredding_a_row_is_reported(tmp_path):
    v, shred, _ = _shredded_vault(tmp_path)
    sql(v, "UPDATE record SET shredded_at = NULL WHERE id = :r", r=shred.record_id)
    [finding] = v.verify().findings
    assert (finding.kind, finding.record) == ("modified", shred.record_id)
    assert finding.detail == "record row disagrees with its log entry: shredded_at"


def test_shredding_a_row_behind_the_log_is_reported(tmp_path):
    v, _, live = _shredded_vault(tmp_path)
    sql(v, "UPDATE record SET wrapped_dek = :b WHERE id = :r", b=b"", r=live.record_id)
    [finding] = v.verify().findings
    assert (finding.kind, finding.record) == ("modified", live.record_id)
    assert finding.detail == "record row disagrees with its log entry: wrapped_dek"


def test_hiding_a_shredded_entry_in_the_type_column_is_reported(tmp_path):
    # the type column is not hashed: the walk re-derives it from the entries and compares
    v, shred, _ = _shredded_vault(tmp_path)
    sql(
        v,
        "UPDATE log_entry SET type = 'evidence.accessed' "
        "WHERE client_id = :c AND type = 'evidence.shredded'",
        c=CLIENT,
    )
    found = sorted((f.kind, f.record or "", f.detail) for f in v.verify().findings)
    assert found == [
        ("missing", shred.record_id, "clip object is missing from object storage"),
        ("missing", shred.record_id, "meta object is missing from object storage"),
        (
            "modified",
            shred.record_id,
            # the row digest too: shredding emptied the keyed hashes it covers
            "record row disagrees with its log entry: wrapped_dek, shredded_at, row",
        ),
        (
            "modified",
            shred.record_id,
            "the log_entry row's type or record_id column disagrees with the entry",
        ),
    ]


def test_moving_retain_until_is_reported(tmp_path):
    v, _, live = _shredded_vault(tmp_path)
    sql(
        v,
        "UPDATE record SET retain_until = '2040-01-01 00:00:00+00:00' WHERE id = :r",
        r=live.record_id,
    )
    [finding] = v.verify().findings
    assert finding.detail == "record row disagrees with its log entry: retain_until"
