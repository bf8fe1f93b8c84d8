"""Textform documents: sealed with a record, listed, opened (logged), verified, held,
shredded with it; refused when they are not what they claim; all or nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from tests.support.tamper import delete_object, edit_object, flip_byte, sql
from tests.support.textform import APPROVAL_SMS, EMAIL, pdf, write
from tests.support.vaults import CAMPAIGN, CLIENT, clip, order_meta
from tests.test_retention import T0, UNTIL, Clock, entries, log_size
from vault.db import Document, LogEntry, read_session
from vault.errors import InvalidDocument, InvalidEvidence, NotFound, Shredded, TamperDetected
from vault.services import documents as documents_service
from vault.services import orphans


def sealed_record(vault, tmp_path, n: int = 1) -> str:
    return vault.ingest(clip(tmp_path, seed=n), order_meta(n)).record_id


def doc_row(vault, document_id: str) -> Document:
    with read_session(vault.context.engine) as s:
        return s.get(Document, document_id)


def all_entry_bytes(vault) -> bytes:
    with read_session(vault.context.engine) as s:
        return b"\n".join(bytes(e) for e in s.exec(select(LogEntry.entry)))


def kinds(report):
    return sorted((f.kind, f.record, f.seq) for f in report.findings)


# -- sealing, listing, opening ---------------------------------------------------------------


def test_documents_are_sealed_listed_and_opened_byte_identical(vault, tmp_path):
    rec = sealed_record(vault, tmp_path)
    files = {
        "contract-summary": write(tmp_path, "summary.eml", EMAIL),
        "confirmation": write(tmp_path, "confirmation.pdf", pdf()),
        "approval": write(tmp_path, "approval.sms", APPROVAL_SMS),
    }
    infos = {k: vault.attach(rec, p, kind=k) for k, p in files.items()}
    assert [i.media_type for i in infos.values()] == [
        "message/rfc822",
        "application/pdf",
        "text/plain",
    ]
    assert [i.seq for i in infos.values()] == [1, 2, 3]
    assert not any(i.duplicate for i in infos.values())

    sealed = entries(vault, "document.sealed")
    assert [e["record"] for e in sealed] == [rec] * 3
    body = sealed[0]["body"]
    assert set(body) == {"document", "kind", "media_type", "size", "object", "commitments"}
    assert body["kind"] == "contract-summary" and body["size"] == len(EMAIL)
    assert set(body["commitments"]) == {"document"}
    # the e-mail's personal data never reaches the log
    log = all_entry_bytes(vault)
    assert b"Mustermann" not in log and b"max.mustermann" not in log

    listed = vault.documents(rec)
    assert [d.document_id for d in listed] == [i.document_id for i in infos.values()]
    assert [d.kind for d in listed] == list(files)

    size = log_size(vault)
    for kind, path in files.items():
        info, data = vault.read_document(rec, infos[kind].document_id, reason="dispute")
        assert data == path.read_bytes() and info.kind == kind
    accessed = entries(vault, "evidence.accessed")
    assert log_size(vault) == size + 3
    assert [a["body"]["document"] for a in accessed] == [i.document_id for i in infos.values()]
    assert {a["body"]["what"] for a in accessed} == {"document"}
    assert {a["body"]["reason"] for a in accessed} == {"dispute"}
    assert vault.verify().findings == []


def test_the_same_document_again_is_a_duplicate(vault, tmp_path):
    rec = sealed_record(vault, tmp_path)
    path = write(tmp_path, "summary.pdf", pdf())
    first = vault.attach(rec, path, kind="contract-summary")
    size = log_size(vault)
    again = vault.attach(rec, path, kind="contract-summary")
    assert again.duplicate and again.document_id == first.document_id
    assert again.entry_hash == first.entry_hash and log_size(vault) == size
    # the same bytes as another kind are another document
    other = vault.attach(rec, path, kind="other")
    assert not other.duplicate and other.document_id != first.document_id


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.eml", b"", "the document is empty"),
        (
            "a.eml",
            b"Subject: no sender\r\n\r\nbody\r\n",
            "the e-mail is not an RFC 5322 message: it lacks the header(s) From, Date",
        ),
        (
            "a.eml",
            b"this is not a mail at all\r\n",
            "the e-mail is not an RFC 5322 message: it lacks the header(s) From, Date",
        ),
        (
            "a.pdf",
            b"<html>not a pdf</html>",
            "the PDF does not start with a %PDF-1.x or %PDF-2.x header",
        ),
        ("a.pdf", pdf()[:-40], "the PDF has no %%EOF marker at its end: it is truncated"),
        ("a.txt", "Grüße".encode("latin-1"), "the SMS text is not UTF-8"),
        ("a.txt", b"  \n", "the SMS text is blank"),
        ("a.txt", b"ja\x00", "the SMS text contains control characters"),
        ("a.docx", b"PK\x03\x04", "cannot tell the document's type from its extension '.docx'"),
    ],
)
def test_a_document_that_is_not_what_it_claims_is_refused(local, tmp_path, name, data, message):
    rec = sealed_record(local, tmp_path)
    size = log_size(local)
    with pytest.raises(InvalidDocument) as err:
        local.attach(rec, write(tmp_path, name, data), kind="approval")
    assert err.value.message == message
    assert log_size(local) == size and local.documents(rec) == []
    assert [o for o in local.context.store.list(CLIENT + "/") if "/documents/" in o] == []


def test_unknown_kind_and_record_are_refused(local, tmp_path):
    rec = sealed_record(local, tmp_path)
    path = write(tmp_path, "a.pdf", pdf())
    with pytest.raises(InvalidEvidence) as err:
        local.attach(rec, path, kind="invoice")
    assert err.value.errors[0].field == "kind"
    with pytest.raises(NotFound):
        local.attach("0" * 26, path, kind="approval")
    with pytest.raises(NotFound):
        local.read_document(rec, "d" + "0" * 26)


# -- tampering ---------------------------------------------------------------------------------


@pytest.fixture
def attached(vault, tmp_path):
    rec = sealed_record(vault, tmp_path)
    info = vault.attach(rec, write(tmp_path, "summary.pdf", pdf()), kind="contract-summary")
    assert vault.verify().findings == []
    return rec, info, doc_row(vault, info.document_id)


def test_flipped_byte_in_a_stored_document(vault, attached):
    rec, info, row = attached
    edit_object(vault, row.object_key, flip_byte)
    report = vault.verify()
    [f] = report.findings
    if vault.settings.storage == "s3":
        # a new version stacked on the key; the sealed one is pinned and still opens
        assert (f.kind, f.record, f.seq, f.key) == ("shadowed", rec, info.seq, row.object_key)
        assert f.detail.startswith("document object: 1 other version stacked on the key")
        assert vault.read_document(rec, info.document_id)[1] == pdf()
        return
    assert (f.kind, f.record, f.seq, f.key) == ("modified", rec, info.seq, row.object_key)
    assert f.detail.startswith("document object does not match its committed SHA-256")
    from vault.errors import DecryptionFailed

    with pytest.raises(DecryptionFailed):
        vault.read_document(rec, info.document_id)


def test_deleted_document_object(vault, attached):
    rec, info, row = attached
    delete_object(vault, row.object_key)
    [f] = vault.verify().findings
    if vault.settings.storage == "s3":
        # a plain DELETE stacks a delete marker; the sealed version is pinned and stays
        assert (f.kind, f.record, f.seq) == ("shadowed", rec, info.seq)
        assert f.detail.startswith("document object: 1 delete marker hiding it")
        return
    assert (f.kind, f.record, f.seq) == ("missing", rec, info.seq)
    assert f.detail == "document object is missing from object storage"


def test_deleted_document_row(vault, attached):
    rec, info, _row = attached
    sql(vault, "DELETE FROM document WHERE id = :id", id=info.document_id)
    [f] = vault.verify().findings
    assert (f.kind, f.record, f.seq) == ("missing", rec, info.seq)
    assert f.detail == "the sealed document's row is missing"
    assert vault.documents(rec) == []


def test_changed_document_row_is_found_and_refused(vault, attached):
    rec, info, _row = attached
    sql(vault, "UPDATE document SET kind = 'approval' WHERE id = :id", id=info.document_id)
    [f] = vault.verify().findings
    assert (f.kind, f.record, f.seq) == ("modified", rec, info.seq)
    assert f.detail == "document row disagrees with its log entry: kind"
    size = log_size(vault)
    with pytest.raises(TamperDetected):
        vault.read_document(rec, info.document_id)
    assert log_size(vault) == size  # refused before the access was logged


def test_document_row_without_entry(vault, attached):
    rec, info, _row = attached
    forged = "d" + "z" * 26
    sql(
        vault,
        "INSERT INTO document SELECT :forged, client_id, record_id, 'approval', media_type, "
        "size, 'x', object_key, object_sha256, object_version, wrapped_key, sealed_at, seq "
        "FROM document WHERE id = :id",
        forged=forged,
        id=info.document_id,
    )
    [f] = vault.verify().findings
    assert (f.kind, f.record, f.seq) == ("missing", rec, info.seq)
    assert f.detail == f"document row {forged} has no document.sealed entry in the log"
    with pytest.raises(TamperDetected):  # its seq points at another document's entry
        vault.read_document(rec, forged)


# -- retention, holds, shredding, gc -----------------------------------------------------------


@pytest.fixture
def local(tmp_path):
    from tests.support.vaults import make_vault

    v = make_vault(tmp_path / "v", clock=Clock(T0))
    yield v
    v.close()


def test_documents_share_the_records_lock_and_hold(vault, tmp_path):
    if not vault.context.store.supports_object_lock:
        pytest.skip("the local store has no Object Lock (the database hold protects it)")
    rec = sealed_record(vault, tmp_path)
    info = vault.attach(rec, write(tmp_path, "a.pdf", pdf()), kind="approval")
    row = doc_row(vault, info.document_id)
    lock = vault.context.store.lock_state(row.object_key, version_id=row.object_version)
    assert lock.mode == "COMPLIANCE" and not lock.legal_hold
    hold = vault.open_dispute(rec, case_ref="CASE-1", reason="customer disputes the order")
    lock = vault.context.store.lock_state(row.object_key, version_id=row.object_version)
    assert lock.legal_hold
    # a document attached while the record is held is held from the start
    later = vault.attach(rec, write(tmp_path, "b.eml", EMAIL), kind="contract-summary")
    row2 = doc_row(vault, later.document_id)
    assert vault.context.store.lock_state(
        row2.object_key, version_id=row2.object_version
    ).legal_hold
    assert vault.verify().findings == []
    assert hold.active


def test_documents_are_shredded_and_purged_with_their_record(local, tmp_path):
    rec = sealed_record(local, tmp_path)
    info = local.attach(rec, write(tmp_path, "a.eml", EMAIL), kind="contract-summary")
    key = doc_row(local, info.document_id).object_key
    local.context.clock.now = UNTIL
    report = local.run_retention()
    assert report.shredded == [rec] and report.purged == [rec]
    row = doc_row(local, info.document_id)
    assert row.wrapped_key == b"" and row.fingerprint == ""
    assert key not in list(local.context.store.list(CLIENT + "/"))
    with pytest.raises(Shredded):
        local.read_document(rec, info.document_id)
    with pytest.raises(Shredded):
        local.attach(rec, write(tmp_path, "b.pdf", pdf()), kind="approval")
    assert local.verify().findings == []


def test_erasure_keeps_a_held_records_documents(local, tmp_path):
    rec = sealed_record(local, tmp_path)
    info = local.attach(rec, write(tmp_path, "a.pdf", pdf()), kind="approval")
    local.open_dispute(rec, case_ref="CASE-2", reason="disputed")
    out = local.erase(record_id=rec)
    assert out.erased == [] and [k["record_id"] for k in out.kept] == [rec]
    assert local.read_document(rec, info.document_id)[1] == pdf()


def test_gc_never_collects_a_sealed_document(local, tmp_path):
    rec = sealed_record(local, tmp_path)
    info = local.attach(rec, write(tmp_path, "a.pdf", pdf()), kind="approval")
    collected = orphans.collect(local.context, grace=timedelta(0))
    assert collected.deleted == []
    assert local.read_document(rec, info.document_id)[1] == pdf()


# -- all or nothing ------------------------------------------------------------------------------


def test_a_fault_before_the_commit_leaves_the_old_state(vault, tmp_path, monkeypatch):
    rec = sealed_record(vault, tmp_path)
    size = log_size(vault)
    path = write(tmp_path, "a.pdf", pdf())

    def broken_append(*a, **kw):
        raise ConnectionError("database went away")

    real = documents_service.append_entries
    monkeypatch.setattr(documents_service, "append_entries", broken_append)
    with pytest.raises(ConnectionError):
        vault.attach(rec, path, kind="approval")
    assert log_size(vault) == size and vault.documents(rec) == []
    leftovers = [k for k in vault.context.store.list(CLIENT + "/") if "/documents/" in k]
    if vault.context.store.supports_object_lock:
        # the locked object cannot be deleted: verify names it as the one orphan
        assert [(f.kind, f.key) for f in vault.verify().findings] == [("orphan", leftovers[0])]
    else:
        assert leftovers == [] and vault.verify().findings == []
    monkeypatch.setattr(documents_service, "append_entries", real)
    info = vault.attach(rec, path, kind="approval")
    assert info.seq == size and not info.duplicate


def test_a_crash_before_the_commit_leaves_an_orphan_verify_names(local, tmp_path, monkeypatch):
    rec = sealed_record(local, tmp_path)
    size = log_size(local)

    class Crash(BaseException):
        """Stands for the process dying: no cleanup runs (the delete is made to fail)."""

    monkeypatch.setattr(documents_service, "append_entries", _raise(Crash()))
    monkeypatch.setattr(local.context.store, "delete", _raise(OSError("gone")))
    with pytest.raises(Crash):
        local.attach(rec, write(tmp_path, "a.pdf", pdf()), kind="approval")
    [key] = [k for k in local.context.store.list(CLIENT + "/") if "/documents/" in k]
    assert log_size(local) == size
    [f] = local.verify().findings
    assert (f.kind, f.key, f.detail) == (
        "orphan",
        key,
        "object is not committed to by any log entry",
    )


def _raise(exc):
    def fail(*a, **kw):
        raise exc

    return fail


# -- pending Textform ----------------------------------------------------------------------------


def test_a_campaign_requirement_makes_records_pending_until_attached(vault, tmp_path):
    info = vault.set_campaign_documents(CLIENT, CAMPAIGN, "tkg-54")
    assert info.required_documents == ("contract-summary", "approval")
    rec = sealed_record(vault, tmp_path)
    [hit] = vault.find(client=CLIENT)
    assert hit.pending_documents == ("contract-summary", "approval")
    assert hit.to_dict()["textform"] == "pending"
    vault.attach(rec, write(tmp_path, "s.eml", EMAIL), kind="contract-summary")
    [hit] = vault.find(client=CLIENT)
    assert hit.pending_documents == ("approval",)
    facts = vault.textform(rec)
    assert facts.missing == ("approval",) and facts.pending
    assert [d.verdict for d in facts.documents] == ["ok"]
    vault.attach(rec, write(tmp_path, "a.txt", APPROVAL_SMS), kind="approval")
    [hit] = vault.find(client=CLIENT)
    assert hit.pending_documents == () and hit.to_dict()["textform"] == "complete"
    assert not vault.textform(rec).pending


def test_a_requirement_changed_in_the_database_alone_is_found(vault, tmp_path):
    """The campaign's Textform requirement is logged (``campaign.policy``): someone with the
    database who drops it, so a record stops showing "pending Textform" in search and
    report, is named by verify; setting it again through the vault clears the finding."""
    vault.set_campaign_documents(CLIENT, CAMPAIGN, "tkg-54")
    sealed_record(vault, tmp_path)
    assert vault.verify().clean
    [entry] = [e for e in entries(vault) if e["type"] == "campaign.policy"]
    assert entry["body"] == {"campaign": CAMPAIGN, "documents": ["contract-summary", "approval"]}

    sql(vault, "UPDATE campaign SET required_documents = '' WHERE name = :n", n=CAMPAIGN)
    [hit] = vault.find(client=CLIENT)
    assert hit.to_dict()["textform"] != "pending"  # what the row now makes the desk say
    assert [(f.kind, f.detail) for f in vault.verify().findings] == [
        (
            "modified",
            f"campaign {CAMPAIGN!r} requires the Textform documents none, its log says "
            "contract-summary, approval: the row was changed outside the vault, or set before "
            "the vault logged it; set the intended ones with `evidence-vault campaign "
            f"documents {CAMPAIGN} --client {CLIENT} --require KINDS|--none`",
        )
    ]
    # the signature requirement set meanwhile does not carry the edited row into the log
    vault.require_source_signature(CLIENT, CAMPAIGN, False)
    assert [f.kind for f in vault.verify().findings] == ["modified"]
    vault.set_campaign_documents(CLIENT, CAMPAIGN, "tkg-54")
    assert vault.verify().clean


def test_pending_after_lists_records_still_missing_documents(local, tmp_path):
    local.add_campaign(CLIENT, "energy", retention_days=730, required_documents="enwg-41b")
    a = local.ingest(clip(tmp_path, seed=1), order_meta(1, campaign="energy")).record_id
    b = local.ingest(clip(tmp_path, seed=2), order_meta(2, campaign="energy")).record_id
    sealed_record(local, tmp_path, 3)  # its campaign requires nothing
    local.attach(b, write(tmp_path, "c.pdf", pdf()), kind="confirmation")
    # recorded 2026-11-20 09:30, the clock at 2026-11-21 00:00: less than a day ago
    assert local.pending_textform(1) == []
    [p] = local.pending_textform(0)
    assert (p.record_id, p.campaign, p.missing) == (a, "energy", ("confirmation",))
    local.context.clock.now = T0 + timedelta(days=14)
    assert [p.record_id for p in local.pending_textform(14)] == [a]


def test_required_kinds_are_checked(local):
    with pytest.raises(InvalidEvidence) as err:
        local.set_campaign_documents(CLIENT, CAMPAIGN, "contract-summary,invoice")
    assert err.value.errors[0].field == "required_documents"
    assert local.set_campaign_documents(CLIENT, CAMPAIGN, "").required_documents == ()
    info = local.set_campaign_documents(CLIENT, CAMPAIGN, ["tkg-54", "bgb-312h", "approval"])
    assert info.required_documents == (
        "contract-summary",
        "approval",
        "cancellation-authorisation",
    )
    assert json.loads(json.dumps(info.to_dict()))["required_documents"] == list(
        info.required_documents
    )


def test_deep_verify_opens_documents_and_finds_a_swapped_key(vault, tmp_path):
    rec = sealed_record(vault, tmp_path)
    a = vault.attach(rec, write(tmp_path, "a.pdf", pdf()), kind="confirmation")
    b = vault.attach(rec, write(tmp_path, "b.eml", EMAIL), kind="contract-summary")
    assert vault.verify(deep=True).findings == []
    # a database writer gives document a the wrapped key of document b: the row still
    # agrees with its entry (a key is there), but it no longer opens
    sql(
        vault,
        "UPDATE document SET wrapped_key = (SELECT wrapped_key FROM document WHERE id = :b) "
        "WHERE id = :a",
        a=a.document_id,
        b=b.document_id,
    )
    assert vault.verify().findings == []  # ciphertext only: nothing to see
    [f] = vault.verify(deep=True).findings
    assert (f.kind, f.record, f.seq) == ("modified", rec, a.seq)
    assert f.detail == (
        f"document object does not open: the data key of document {a.document_id} does not "
        "unwrap under its record's key"
    )
    from vault.errors import DecryptionFailed

    with pytest.raises(DecryptionFailed):
        vault.read_document(rec, a.document_id)


def test_documents_survive_kek_rotation(local, tmp_path):
    rec = sealed_record(local, tmp_path)
    info = local.attach(rec, write(tmp_path, "a.eml", EMAIL), kind="contract-summary")
    assert local.rotate_kek(CLIENT).to_dict()
    assert local.read_document(rec, info.document_id)[1] == EMAIL
    assert local.verify(deep=True).findings == []


def _crash_in_attach(settings, rec, path):
    import os

    from vault import Vault
    from vault.services.context import open_vault

    def die(*a, **kw):
        os._exit(17)  # a crash: no cleanup, no exception handlers

    documents_service.append_entries = die
    Vault(open_vault(settings)).attach(rec, path, kind="approval")


def test_a_real_crash_between_upload_and_commit(vault, tmp_path):
    import multiprocessing as mp

    from tests.support.vaults import reopen

    if vault.settings.s3 and vault.settings.s3.endpoint_url is None:
        pytest.skip("moto's S3 lives in this process: a crashed child's uploads vanish")
    rec = sealed_record(vault, tmp_path)
    size = log_size(vault)
    path = write(tmp_path, "a.pdf", pdf())
    proc = mp.get_context("fork").Process(target=_crash_in_attach, args=(vault.settings, rec, path))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 17
    fresh = reopen(vault)
    try:
        assert log_size(fresh) == size and fresh.documents(rec) == []
        [f] = fresh.verify().findings  # the old state, and the one object it left
        assert f.kind == "orphan" and "/documents/d" in f.key
        info = fresh.attach(rec, path, kind="approval")  # the retry seals it
        assert info.seq == size and not info.duplicate
    finally:
        fresh.close()
