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


def versioned(vault) -> bool:
    """On S3 (versioned, Object Lock) an overwrite stacks a version; locally it replaces."""
    return vault.settings.storage == "s3"


def test_flipped_byte_in_clip(vault, sealed, tmp_path):
    rec = sealed[1]
    original = read_object(vault, rec.clip_key)
    edit_object(vault, rec.clip_key, flip_byte)
    report = vault.verify()
    out = vault.settings.home / "out.wav"
    if versioned(vault):
        # the junk is a new version on the key: the sealed version is pinned and intact
        [f] = report.findings
        assert (f.kind, f.record, f.seq, f.key) == ("shadowed", rec.id, rec.seq, rec.clip_key)
        assert f.detail.startswith("clip object: 1 other version stacked on the key")
        vault.write_audio(rec.id, out)
        assert out.read_bytes() == clip(tmp_path, seed=1).read_bytes()
        assert read_object(vault, rec.clip_key) != original  # what a plain GET now sees
        return
    assert kinds(report) == [("modified", rec.id, rec.seq)]
    [f] = report.findings
    assert f.key == rec.clip_key and "clip object does not match" in f.detail
    assert vault.show(rec.id)["evidence"]["call_id"]  # the metadata is intact ...
    with pytest.raises(DecryptionFailed):
        vault.write_audio(rec.id, out)  # ... the audio is not, and nothing is written
    assert not out.exists()


def test_flipped_byte_in_metadata_refuses_to_open(vault, sealed):
    rec = sealed[0]
    edit_object(vault, rec.meta_key, lambda b: flip_byte(b, len(b) // 2))
    if versioned(vault):
        assert kinds(vault.verify()) == [("shadowed", rec.id, rec.seq)]
        assert vault.show(rec.id)["evidence"]["call_id"]  # read by its pinned version
        return
    assert kinds(vault.verify()) == [("modified", rec.id, rec.seq)]
    with pytest.raises(DecryptionFailed):
        vault.show(rec.id)


def test_swapped_objects_of_two_records(vault, sealed):
    a, b = sealed[0], sealed[2]
    ca, cb = read_object(vault, a.clip_key), read_object(vault, b.clip_key)
    write_object(vault, a.clip_key, cb)
    write_object(vault, b.clip_key, ca)
    if versioned(vault):
        assert kinds(vault.verify()) == [("shadowed", a.id, a.seq), ("shadowed", b.id, b.seq)]
        vault.write_audio(a.id, vault.settings.home / "a.wav")  # the pinned versions
        return
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
    if versioned(vault):
        # a plain DELETE only stacks a delete marker: the locked version is intact
        [f] = report.findings
        assert (f.kind, f.record, f.seq) == ("shadowed", rec.id, rec.seq)
        assert f.detail.startswith("meta object: 1 delete marker hiding it")
        assert vault.show(rec.id)["evidence"]["call_id"]
        return
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


# -- versions and locks on a real Object Lock bucket (SeaweedFS) -----------------------------


@pytest.fixture
def weed(tmp_path, seaweedfs, seaweedfs_bucket):
    from tests.support.vaults import make_vault
    from vault.config import S3Settings

    s3 = S3Settings(
        prefix="t-" + tmp_path.name[-12:].replace("_", "-").strip("-"),
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        region="us-east-1",
        access_key_id=seaweedfs.access_key,
        secret_access_key=seaweedfs.secret_key,
        object_lock=True,
    )
    with make_vault(tmp_path / "vault", storage="s3", s3=s3) as v:
        yield v


def _raw(vault):
    from tests.support.tamper import _full_key, _s3

    return _s3(vault), vault.settings.s3.bucket, lambda key: _full_key(vault, key)


@pytest.mark.seaweedfs
def test_a_hold_goes_to_the_sealed_version_not_to_a_stacked_one(weed, tmp_path):
    r = weed.ingest(clip(tmp_path, seed=7), order_meta(7))
    rec = get_record(weed.context, r.record_id)
    write_object(weed, rec.clip_key, b"junk stacked on the sealed key")
    weed.open_dispute(rec.id, case_ref="CASE-9", reason="customer denies the order")
    s3, bucket, full = _raw(weed)
    versions = s3.list_object_versions(Bucket=bucket, Prefix=full(rec.clip_key))["Versions"]
    holds = {
        v["VersionId"]: s3.get_object_legal_hold(
            Bucket=bucket, Key=full(rec.clip_key), VersionId=v["VersionId"]
        )["LegalHold"]["Status"]
        for v in versions
        if v["VersionId"] == rec.clip_version
    }
    assert holds == {rec.clip_version: "ON"}
    junk = [v["VersionId"] for v in versions if v["VersionId"] != rec.clip_version]
    assert len(junk) == 1
    with pytest.raises(Exception, match=r"NoSuchObjectLegalHold|legal hold"):
        s3.get_object_legal_hold(Bucket=bucket, Key=full(rec.clip_key), VersionId=junk[0])
    assert kinds(weed.verify()) == [("shadowed", rec.id, rec.seq)]


@pytest.mark.seaweedfs
def test_a_legal_hold_lifted_behind_the_vault_is_a_lock_finding(weed, tmp_path):
    r = weed.ingest(clip(tmp_path, seed=8), order_meta(8))
    rec = get_record(weed.context, r.record_id)
    weed.open_dispute(rec.id, case_ref="CASE-10", reason="customer denies the order")
    assert weed.verify().clean
    s3, bucket, full = _raw(weed)
    s3.put_object_legal_hold(
        Bucket=bucket,
        Key=full(rec.meta_key),
        VersionId=rec.meta_version,
        LegalHold={"Status": "OFF"},
    )
    [f] = weed.verify().findings
    assert (f.kind, f.record, f.key) == ("lock", rec.id, rec.meta_key)
    assert f.detail == "meta object version: it has no legal hold although the record is held"
