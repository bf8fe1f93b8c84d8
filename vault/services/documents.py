"""Textform documents sealed with a record: attach, list, open — all or nothing.

For a contract concluded on the phone German law wants written (Textform, BGB §126b)
artefacts beside the recording: the contract summary and the consumer's approval of it
(TKG §54(3)), the confirmation of a household energy contract (EnWG §41b(1)), the
authorisation to cancel the old contract (BGB §312h). The vault seals each such document
like a clip, beside its record:

* validated first: an e-mail must parse as RFC 5322 (stdlib :mod:`email`) with ``From``
  and ``Date``, a PDF must carry its ``%PDF-`` header and ``%%EOF`` marker, an SMS text
  must be UTF-8 text;
* its own fresh data key, wrapped under the *record's* data key (so it is shredded with
  the record, and re-wrapping the record's key carries it along); the object holds the
  commitment salt and the document, sealed under the document's associated data;
* stored under the record's prefix with the record's Object Lock date (and legal hold,
  while the record is held);
* one transaction holding the log's write lock inserts the ``document`` row and appends a
  ``document.sealed`` entry (commitment, kind, media type, size, object; no PII). Only this
  commit makes the document exist; a failure before it deletes the object where the
  store allows, else ``verify`` reports the orphan.

Opening a document appends ``evidence.accessed`` (``what = "document"``) first, as audio.
A campaign may require kinds (``required_documents``); a record missing one is
"pending Textform".
"""

from __future__ import annotations

import contextlib
import email.policy
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesParser
from pathlib import Path

from sqlmodel import Session, select

from vault.db import Campaign, Document, LogEntry, Record, read_session, write_session
from vault.db.log import EntryDraft, append_entries, log_head
from vault.errors import (
    Conflict,
    DecryptionFailed,
    FieldError,
    InvalidDocument,
    InvalidEvidence,
    NotFound,
    Shredded,
)
from vault.identifiers import DOCUMENT_ID, new_document_id
from vault.ledger.entry import entry_hash, format_time, parse_entry
from vault.results import DocumentFact, DocumentInfo, TextformFacts
from vault.sealing import (
    SALT_SIZE,
    commitment,
    decrypt_stream,
    document_aad,
    encrypt_stream,
    keyed_hash,
    new_data_key,
    new_salt,
    unwrap_document_key,
    wrap_document_key,
)
from vault.services.binding import checked_record
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.keys import record_key
from vault.services.logauth import TamperDetected
from vault.services.outages import unavailable
from vault.services.people import Principal
from vault.services.retention import active_holds, refuse_if_shredded
from vault.storage import ChunkReader

log = logging.getLogger(__name__)

#: the kinds of Textform document, as ``--kind`` and the API name them
KINDS = ("contract-summary", "approval", "confirmation", "cancellation-authorisation", "other")
#: required kinds by the law that asks for them (``campaign documents --preset``)
PRESETS = {
    "tkg-54": ("contract-summary", "approval"),
    "enwg-41b": ("confirmation",),
    "bgb-312h": ("cancellation-authorisation",),
}
#: the media types the vault seals as documents, and the extension each is exported with
MEDIA_TYPES = {"message/rfc822": ".eml", "application/pdf": ".pdf", "text/plain": ".txt"}
_BY_EXTENSION = {
    ".eml": "message/rfc822",
    ".pdf": "application/pdf",
    ".txt": "text/plain",
    ".sms": "text/plain",
}
#: the largest document accepted (a contract summary with attachments stays far below)
MAX_DOCUMENT_BYTES = 25 * 1024 * 1024
#: the largest SMS text: a concatenated SMS is at most 255 parts of 153 characters
MAX_SMS_BYTES = 64 * 1024
FINGERPRINT_DOMAIN = "document-fingerprint"
#: the commitment role of a document (``commitments.document``)
ROLE = "document"
_PDF_WINDOW = 1024


# -- validation ----------------------------------------------------------------------------


def media_type_for(path: str | os.PathLike, declared: str | None = None) -> str:
    """The canonical media type of a document: the declared one, else by file extension."""
    if declared:
        base = declared.split(";", 1)[0].strip().lower()
        if base in MEDIA_TYPES:
            return base
        raise InvalidDocument(
            f"media type {base!r} is not taken as a Textform document",
            hint=f"send one of {', '.join(MEDIA_TYPES)}",
        )
    ext = Path(path).suffix.lower()
    if ext in _BY_EXTENSION:
        return _BY_EXTENSION[ext]
    raise InvalidDocument(
        f"cannot tell the document's type from its extension {ext or '(none)'!r}",
        hint="name the file .eml (e-mail), .pdf or .txt/.sms (SMS text), or give --media-type",
    )


def validate(data: bytes, media_type: str) -> None:
    """InvalidDocument unless ``data`` is a document of ``media_type`` (messages name the
    rule broken, never the content)."""
    if not data:
        raise InvalidDocument("the document is empty", hint="attach the document's file")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(
            f"the document is larger than {MAX_DOCUMENT_BYTES} bytes",
            hint="attach the document itself, without unrelated attachments",
        )
    {"message/rfc822": _check_email, "application/pdf": _check_pdf, "text/plain": _check_sms}[
        media_type
    ](data)


def _check_email(data: bytes) -> None:
    msg = BytesParser(policy=email.policy.default).parsebytes(data)
    problems = [type(d).__name__ for d in msg.defects]
    missing = [h for h in ("From", "Date") if msg.get(h) is None]
    if problems or missing:
        why = (
            f"it lacks the header(s) {', '.join(missing)}"
            if missing
            else f"its header section is malformed ({', '.join(sorted(set(problems)))})"
        )
        raise InvalidDocument(
            f"the e-mail is not an RFC 5322 message: {why}",
            hint="attach the message as saved by the mail program (.eml), headers included",
        )


def _check_pdf(data: bytes) -> None:
    head, tail = data[:_PDF_WINDOW], data[-_PDF_WINDOW:]
    if not (head.startswith(b"%PDF-1.") or head.startswith(b"%PDF-2.")):
        raise InvalidDocument(
            "the PDF does not start with a %PDF-1.x or %PDF-2.x header",
            hint="attach the PDF file itself, not a converted or wrapped copy",
        )
    if b"%%EOF" not in tail:
        raise InvalidDocument(
            "the PDF has no %%EOF marker at its end: it is truncated",
            hint="attach the complete PDF file",
        )


def _check_sms(data: bytes) -> None:
    if len(data) > MAX_SMS_BYTES:
        raise InvalidDocument(
            f"the SMS text is longer than {MAX_SMS_BYTES} bytes",
            hint="attach the text of the message only",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidDocument(
            "the SMS text is not UTF-8", hint="save the message text as UTF-8"
        ) from None
    if not text.strip():
        raise InvalidDocument("the SMS text is blank", hint="attach the message text")
    if any((ord(c) < 32 and c not in "\t\r\n") or c == "\x7f" for c in text):
        raise InvalidDocument(
            "the SMS text contains control characters",
            hint="attach the plain message text",
        )


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidEvidence(
            [FieldError("kind", f"must be one of {', '.join(KINDS)}")],
            hint="name what the document is",
            subject="the document",
        )
    return kind


def parse_required(kinds: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Required kinds from a list, a comma-separated text or a preset name (``tkg-54``)."""
    if kinds is None:
        return ()
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        for kind in PRESETS.get(item, (item,)):
            if kind not in KINDS or kind == "other":
                raise InvalidEvidence(
                    [
                        FieldError(
                            "required_documents",
                            f"{kind!r} is no requirable kind: use "
                            f"{', '.join(k for k in KINDS if k != 'other')} or a preset "
                            f"({', '.join(PRESETS)})",
                        )
                    ],
                    hint="e.g. --require tkg-54 or --require contract-summary,approval",
                )
            if kind not in out:
                out.append(kind)
    return tuple(out)


def required_of(campaign: Campaign | None) -> tuple[str, ...]:
    if campaign is None or not campaign.required_documents:
        return ()
    return tuple(k for k in campaign.required_documents.split(",") if k)


# -- attach --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Doc:
    kind: str
    media_type: str
    data: bytes
    fingerprint: str


def attach(
    ctx: VaultContext,
    record_id: str,
    path: str | os.PathLike,
    *,
    kind: str,
    media_type: str | None = None,
    client: str | None = None,
) -> DocumentInfo:
    """Seal the document at ``path`` with ``record_id``; the same document again (same
    kind, same bytes) returns the stored receipt with ``duplicate``."""
    mt = media_type_for(path, media_type)
    with Path(path).open("rb") as fh:
        data = fh.read(MAX_DOCUMENT_BYTES + 1)
    return attach_bytes(ctx, record_id, data, kind=kind, media_type=mt, client=client)


def attach_bytes(
    ctx: VaultContext,
    record_id: str,
    data: bytes,
    *,
    kind: str,
    media_type: str,
    client: str | None = None,
    campaign: str | None = None,
) -> DocumentInfo:
    """:func:`attach` for a document in memory (the API's upload). ``campaign`` narrows the
    records a dialer token may attach to: another campaign's record looks missing."""
    check_kind(kind)
    mt = media_type_for("", media_type)
    validate(data, mt)
    rec = checked_record(ctx, record_id, client).record
    if campaign is not None and _campaign_name(ctx, rec) != campaign:
        raise NotFound(f"no record {record_id!r}", hint="search with `evidence-vault find`")
    _refuse_shredded(rec)
    index_key = ctx.keys.index_key(rec.client_id)
    doc = _Doc(
        kind, mt, data, keyed_hash(index_key, FINGERPRINT_DOMAIN, [kind.encode(), b"\0", data])
    )
    earlier = _existing(ctx, rec, doc.fingerprint)
    if earlier is not None:
        return earlier
    info = _seal(ctx, rec, doc)
    try:
        checkpoint_after_commit(ctx, rec.client_id)
    except Exception as exc:
        if unavailable(exc) is None:
            raise
        log.warning("checkpoint after attach skipped: %s", unavailable(exc))
    return info


def _campaign_name(ctx: VaultContext, rec: Record) -> str | None:
    with read_session(ctx.engine) as s:
        c = s.get(Campaign, rec.campaign_id)
    return c.name if c else None


def document_info(
    ctx: VaultContext, record_id: str, document_id: str, *, client: str | None = None
) -> DocumentInfo:
    """One document's receipt (an idempotent retry's answer), its row checked."""
    state = checked_record(ctx, record_id, client)
    with read_session(ctx.engine) as s:
        row, _entry, raw = _checked_document(ctx, s, state.record, document_id, state.shredded)
    return _info(row, entry_hash(raw), duplicate=True)


def _refuse_shredded(rec: Record) -> None:
    if rec.shredded_at is not None:
        raise Shredded(
            f"record {rec.id} was crypto-shredded on {rec.shredded_at:%Y-%m-%d}; no document "
            "can be sealed with it any more",
            hint="documents belong to live evidence",
        )


def _existing(ctx: VaultContext, rec: Record, fingerprint: str) -> DocumentInfo | None:
    with read_session(ctx.engine) as s:
        row = s.exec(
            select(Document).where(
                Document.record_id == rec.id, Document.fingerprint == fingerprint
            )
        ).first()
        if row is None:
            return None
        entry = s.get(LogEntry, (row.client_id, row.seq))
    return _info(row, entry_hash(bytes(entry.entry)) if entry else "", duplicate=True)


def _seal(ctx: VaultContext, rec: Record, doc: _Doc) -> DocumentInfo:
    doc_id = new_document_id()
    key = f"{rec.clip_key.rsplit('/', 1)[0]}/documents/{doc_id}"
    salt, dkey = new_salt(), new_data_key()
    wrapped = wrap_document_key(record_key(ctx, rec), dkey, rec.client_id, rec.id, doc_id)
    now = ctx.clock()
    lock_until = rec.retain_until if rec.retain_until > now else None
    aad = document_aad(rec.client_id, rec.id, doc_id)
    stored = ctx.store.put(
        key, encrypt_stream(dkey, aad, [salt + doc.data]), retain_until=lock_until
    )
    committing = False
    try:
        with read_session(ctx.engine) as s:
            held = bool(active_holds(s, rec.id))
        if held and ctx.store.supports_object_lock:
            ctx.store.set_legal_hold(key, True, version_id=stored.version_id)
        row = Document(
            id=doc_id,
            client_id=rec.client_id,
            record_id=rec.id,
            kind=doc.kind,
            media_type=doc.media_type,
            size=len(doc.data),
            fingerprint=doc.fingerprint,
            object_key=key,
            object_sha256=stored.sha256,
            object_version=stored.version_id,
            wrapped_key=wrapped,
            sealed_at=now,
            seq=-1,
        )
        body = sealed_body(row, stored.size, commitment(salt, ROLE, doc.data))
        committing = True
        appended = _commit(ctx, rec, row, body, held)
    except BaseException as exc:
        if not (committing and unavailable(exc) is not None):
            # nothing committed: the object goes where the store allows (else an orphan
            # that `verify` reports and `gc` records)
            with contextlib.suppress(Exception):
                ctx.store.delete(key, all_versions=True)
        raise
    return _info(row, appended)


def _commit(ctx: VaultContext, rec: Record, row: Document, body: dict, held: bool) -> str:
    """Insert the row and append its entry under the log's write lock; the entry's hash."""
    with write_session(ctx.engine) as s:
        log_head(s, rec.client_id, lock=True)  # shreds and holds serialise on this lock
        current = s.get(Record, rec.id)
        if current is None or current.shredded_at is not None:
            raise Conflict(
                f"record {rec.id} was shredded while the document was being sealed",
                hint="nothing was sealed",
            )
        if bool(active_holds(s, rec.id)) != held and ctx.store.supports_object_lock:
            # a hold placed or released meanwhile: the store follows the database
            ctx.store.set_legal_hold(row.object_key, not held, version_id=row.object_version)
        (appended,) = append_entries(
            s,
            rec.client_id,
            [EntryDraft("document.sealed", rec.id, body)],
            row.sealed_at,
            ctx.log_keys(rec.client_id),
        )
        row.seq = appended.seq
        s.add(row)
    return appended.entry_hash


def sealed_body(row: Document, ct_size: int, document_commitment: str) -> dict:
    """The ``document.sealed`` body: what the document is and its commitment, no PII."""
    obj: dict = {"key": row.object_key, "sha256": row.object_sha256, "size": ct_size}
    if row.object_version is not None:
        obj["version"] = row.object_version
    return {
        "document": row.id,
        "kind": row.kind,
        "media_type": row.media_type,
        "size": row.size,
        "object": obj,
        "commitments": {ROLE: document_commitment},
    }


def _info(row: Document, entry_hash_hex: str, *, duplicate: bool = False) -> DocumentInfo:
    return DocumentInfo(
        row.id,
        row.record_id,
        row.client_id,
        row.kind,
        row.media_type,
        row.size,
        row.seq,
        entry_hash_hex,
        row.sealed_at,
        duplicate,
    )


# -- binding: the row against its entry ------------------------------------------------------


def document_mismatch(row: Document, entry: dict, shredded: bool) -> str | None:
    """The columns of a document row that disagree with its ``document.sealed`` entry."""
    body = entry.get("body", {})
    obj = body.get("object", {})
    pairs = {
        "seq": (row.seq, entry.get("seq")),
        "client_id": (row.client_id, entry.get("log")),
        "record_id": (row.record_id, entry.get("record")),
        "kind": (row.kind, body.get("kind")),
        "media_type": (row.media_type, body.get("media_type")),
        "size": (row.size, body.get("size")),
        "object_key": (row.object_key, obj.get("key")),
        "object_sha256": (row.object_sha256, obj.get("sha256")),
        "object_version": (row.object_version, obj.get("version")),
        "sealed_at": (format_time(row.sealed_at), entry.get("time")),
        # a shredded record's documents keep no key; a live one's must
        "wrapped_key": (bool(row.wrapped_key), not shredded),
    }
    bad = [name for name, (a, b) in pairs.items() if a != b]
    return ", ".join(bad) if bad else None


def _checked_document(
    ctx: VaultContext, s: Session, rec: Record, document_id: str, shredded: bool
) -> tuple[Document, dict, bytes]:
    """The document row of ``rec``, checked against its authenticated entry; the entry
    and its bytes."""
    row = s.get(Document, document_id) if DOCUMENT_ID.matches(document_id) else None
    if row is None or row.record_id != rec.id:
        raise NotFound(
            f"record {rec.id} has no document {document_id!r}",
            hint=f"list them with `evidence-vault documents {rec.id}`",
        )
    entry_row = s.get(LogEntry, (rec.client_id, row.seq))
    keys = ctx.log_keys(rec.client_id)
    tag = bytes(entry_row.tag) if entry_row is not None and entry_row.tag is not None else None
    if entry_row is None or not keys.check_entry(row.seq, bytes(entry_row.entry), tag):
        _refuse(row, "its log entry is missing or was not appended by the vault")
    raw = bytes(entry_row.entry)  # type: ignore[union-attr]
    entry = parse_entry(raw)
    if entry.get("type") != "document.sealed" or entry.get("body", {}).get("document") != row.id:
        _refuse(row, "the log entry at its seq is not its document.sealed entry")
    mismatch = document_mismatch(row, entry, shredded)
    if mismatch:
        _refuse(row, f"its row disagrees with its log entry ({mismatch})")
    return row, entry, raw


def _refuse(row: Document, why: str) -> None:
    raise TamperDetected(
        f"document {row.id} of record {row.record_id}: {why}; refusing to open it",
        hint="run `evidence-vault verify` and restore the database from a backup",
    )


# -- listing and opening ---------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """A record's documents (receipts, no content) and its Textform requirement."""

    record_id: str
    documents: list[DocumentInfo]
    required: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        have = {d.kind for d in self.documents}
        return tuple(k for k in self.required if k not in have)

    def to_dict(self) -> dict:
        return {
            "record_id": self.record_id,
            "documents": [d.to_dict() for d in self.documents],
            "required": list(self.required),
            "missing": list(self.missing),
            "textform": "pending" if self.missing else "complete",
        }


def listing(ctx: VaultContext, record_id: str, *, client: str | None = None) -> Listing:
    docs = list_documents(ctx, record_id, client=client)
    with read_session(ctx.engine) as s:
        rec = s.get(Record, record_id)
        campaign = s.get(Campaign, rec.campaign_id) if rec else None
    return Listing(record_id, docs, required_of(campaign))


def list_documents(
    ctx: VaultContext, record_id: str, *, client: str | None = None
) -> list[DocumentInfo]:
    """The record's documents (no content; listing is not an access), each row checked."""
    state = checked_record(ctx, record_id, client)
    rec = state.record
    out = []
    with read_session(ctx.engine) as s:
        ids = s.exec(
            select(Document.id).where(Document.record_id == rec.id).order_by(Document.seq)
        ).all()
        for doc_id in ids:
            row, _entry, raw = _checked_document(ctx, s, rec, doc_id, state.shredded)
            out.append(_info(row, entry_hash(raw)))
    return out


def open_document(
    ctx: VaultContext,
    record_id: str,
    document_id: str,
    *,
    principal: str | Principal,
    client: str | None = None,
    reason: str | None = None,
    case: str | None = None,
) -> tuple[DocumentInfo, bytes]:
    """The document's bytes, exactly as attached; logs ``evidence.accessed`` first."""
    from vault.services.retrieve import record_access

    state = checked_record(ctx, record_id, client)
    rec = state.record
    refuse_if_shredded(rec)
    with read_session(ctx.engine) as s:
        row, entry, raw = _checked_document(ctx, s, rec, document_id, state.shredded)
    record_access(ctx, rec, principal, "document", reason=reason, case=case, document=row.id)
    data = decrypt_document(ctx, rec, row, entry)
    return _info(row, entry_hash(raw)), data


def decrypt_document(ctx: VaultContext, rec: Record, row: Document, entry: dict) -> bytes:
    """Decrypt a checked document: AEAD tags, the ciphertext hash and the commitment."""
    return _decrypt(ctx, rec, row, entry)[1]


def _decrypt(ctx: VaultContext, rec: Record, row: Document, entry: dict) -> tuple[bytes, bytes]:
    """(salt, document) of a checked document; DecryptionFailed if anything differs."""
    dkey = unwrap_document_key(
        record_key(ctx, rec), bytes(row.wrapped_key), rec.client_id, rec.id, row.id
    )
    reader = ChunkReader(ctx.store.get(row.object_key, version_id=row.object_version))
    aad = document_aad(rec.client_id, rec.id, row.id)
    plain = b"".join(decrypt_stream(dkey, aad, reader.read))
    salt, data = plain[:SALT_SIZE], plain[SALT_SIZE:]
    want = entry.get("body", {}).get("commitments", {}).get(ROLE)
    if reader.hexdigest() != row.object_sha256 or commitment(salt, ROLE, data) != want:
        raise DecryptionFailed(
            f"the stored document {row.id} of record {rec.id} differs from the sealed one",
            hint="run `evidence-vault verify` and restore the object from a backup",
        )
    return salt, data


@dataclass(frozen=True)
class OpenedDocument:
    """A checked, decrypted document for the bundle (its access already logged)."""

    row: Document
    entry: bytes
    salt: bytes
    data: bytes


def opened_documents(ctx: VaultContext, rec: Record) -> list[OpenedDocument]:
    """Every document of a live record, checked and decrypted, in log order."""
    out = []
    with read_session(ctx.engine) as s:
        ids = s.exec(
            select(Document.id).where(Document.record_id == rec.id).order_by(Document.seq)
        ).all()
        checked = [_checked_document(ctx, s, rec, i, False) for i in ids]
    for row, entry, raw in checked:
        salt, data = _decrypt(ctx, rec, row, entry)
        out.append(OpenedDocument(row, raw, salt, data))
    return out


def document_rows(ctx: VaultContext, record_id: str) -> list[Document]:
    with read_session(ctx.engine) as s:
        return list(
            s.exec(select(Document).where(Document.record_id == record_id).order_by(Document.seq))
        )


# -- pending Textform ------------------------------------------------------------------------


def pending_kinds(s: Session, records: list[tuple[Record, Campaign]]) -> dict[str, tuple[str, ...]]:
    """For each live record whose campaign requires documents: the required kinds missing."""
    wanted = {
        rec.id: required_of(c) for rec, c in records if rec.shredded_at is None and required_of(c)
    }
    if not wanted:
        return {}
    have: dict[str, set[str]] = {}
    for record_id, kind in s.exec(
        select(Document.record_id, Document.kind).where(Document.record_id.in_(list(wanted)))  # type: ignore[attr-defined]
    ):
        have.setdefault(record_id, set()).add(kind)
    return {
        rid: missing
        for rid, kinds in wanted.items()
        if (missing := tuple(k for k in kinds if k not in have.get(rid, set())))
    }


@dataclass(frozen=True)
class PendingTextform:
    """A record still missing required Textform documents N days after its recording."""

    record_id: str
    client: str
    campaign: str
    recorded_at: datetime
    missing: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "record_id": self.record_id,
            "client": self.client,
            "campaign": self.campaign,
            "recorded_at": format_time(self.recorded_at),
            "missing": list(self.missing),
        }


def pending_after(ctx: VaultContext, days: int, client: str | None = None) -> list[PendingTextform]:
    """Live records recorded at least ``days`` days ago whose required documents are missing."""
    if days < 0:
        raise InvalidEvidence([FieldError("pending_after", "must be 0 or more days")])
    cutoff = ctx.clock() - timedelta(days=days)
    with read_session(ctx.engine) as s:
        stmt = (
            select(Record, Campaign)
            .join(Campaign, Campaign.id == Record.campaign_id)
            .where(
                Record.shredded_at.is_(None),  # type: ignore[union-attr]
                Record.recorded_at <= cutoff,
                Campaign.required_documents != "",
            )
            .order_by(Record.recorded_at, Record.id)
        )
        if client:
            stmt = stmt.where(Record.client_id == client)
        rows = list(s.exec(stmt))
        missing = pending_kinds(s, rows)
    return [
        PendingTextform(rec.id, rec.client_id, c.name, rec.recorded_at, missing[rec.id])
        for rec, c in rows
        if rec.id in missing
    ]


def textform_facts(
    ctx: VaultContext, record_id: str, *, client: str | None = None
) -> TextformFacts:
    """The record's Textform state for a report: each document (checked: its row against its
    entry, its object against the committed hash) and the required kinds missing."""
    import hashlib

    state = checked_record(ctx, record_id, client)
    rec = state.record
    with read_session(ctx.engine) as s:
        campaign = s.get(Campaign, rec.campaign_id)
        ids = s.exec(
            select(Document.id).where(Document.record_id == rec.id).order_by(Document.seq)
        ).all()
        facts = []
        for doc_id in ids:
            try:
                row = _checked_document(ctx, s, rec, doc_id, state.shredded)[0]
            except TamperDetected as exc:
                facts.append(_fact(s.get(Document, doc_id), exc.message))  # type: ignore[arg-type]
                continue
            h = hashlib.sha256()
            try:
                for chunk in ctx.store.get(row.object_key, version_id=row.object_version):
                    h.update(chunk)
                verdict = (
                    "ok"
                    if h.hexdigest() == row.object_sha256
                    else "its stored object differs from the sealed one"
                )
            except Exception:
                verdict = "its stored object is missing"
            facts.append(_fact(row, verdict))
    return TextformFacts(rec.id, required_of(campaign), tuple(facts))


def _fact(row: Document, verdict: str) -> DocumentFact:
    return DocumentFact(row.id, row.seq, row.kind, row.media_type, row.size, row.sealed_at, verdict)
