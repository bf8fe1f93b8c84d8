"""Finding records and opening their evidence; every opening is recorded in the log.

Search runs on the database's non-PII columns; a phone number is matched by its keyed
hash under each tenant's index key, never stored or compared in clear. Reading
plaintext (``show``, ``audio``) first appends an ``evidence.accessed`` entry naming the
principal: the chain of custody records the access even if the reader crashes after.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import select

from vault.db import Campaign, Client, Record, read_session, write_session
from vault.db.log import EntryDraft, append_entries
from vault.errors import DecryptionFailed
from vault.evidence import normalise_phone
from vault.identifiers import SLUG
from vault.results import RecordSummary
from vault.sealing import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    ciphertext_size,
    decrypt_range,
    decrypt_stream,
    keyed_hash,
    object_aad,
)
from vault.services.binding import checked_record, sealed_object
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.documents import pending_kinds
from vault.services.keys import record_key
from vault.services.people import Principal
from vault.services.retention import refuse_if_shredded
from vault.storage import ChunkReader
from vault.storage.files import atomic_output

#: why evidence is opened (``evidence.accessed`` ``reason``): codes, never free text, so
#: the log carries no personal data; a case reference may go with them
ACCESS_REASONS = (
    "dispute",
    "cancellation",
    "complaint",
    "data-subject-request",
    "authority-request",
    "quality-audit",
)


@dataclass(frozen=True)
class Query:
    client: str | None = None
    campaign: str | None = None
    order_ref: str | None = None
    phone: str | None = None
    agent: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


def find(ctx: VaultContext, q: Query) -> list[RecordSummary]:
    with read_session(ctx.engine) as s:
        known = [c for c in s.exec(select(Client.id)) if SLUG.matches(c)]  # not the vault-wide log
        # only existing clients: an unknown name must not create keys just by being searched
        clients = [c for c in known if c == q.client] if q.client else known
        hits: list[RecordSummary] = []
        for client in clients:
            stmt = (
                select(Record, Campaign)
                .join(Campaign, Campaign.id == Record.campaign_id)
                .where(Record.client_id == client)
            )
            if q.phone:
                phone = normalise_phone(q.phone).encode()
                stmt = stmt.where(
                    Record.phone_hash == keyed_hash(ctx.keys.index_key(client), "phone", phone)
                )
            stmt = _filters(stmt, q).order_by(Record.recorded_at, Record.id).limit(q.limit)
            rows = list(s.exec(stmt))
            pending = pending_kinds(s, rows)  # "pending Textform": required kinds missing
            hits += [_summary(rec, c.name, pending.get(rec.id, ())) for rec, c in rows]
    return sorted(hits, key=lambda h: (h.recorded_at, h.record_id))[: q.limit]


def _filters(stmt, q: Query):
    if q.campaign:
        stmt = stmt.where(Campaign.name == q.campaign)
    if q.order_ref:
        stmt = stmt.where(Record.order_ref == q.order_ref)
    if q.agent:
        stmt = stmt.where(Record.agent_id == q.agent)
    if q.since:
        stmt = stmt.where(Record.recorded_at >= q.since)
    if q.until:
        stmt = stmt.where(Record.recorded_at < q.until)
    return stmt


def _summary(rec: Record, campaign: str, pending: tuple[str, ...] = ()) -> RecordSummary:
    return RecordSummary(
        rec.id,
        rec.client_id,
        campaign,
        rec.call_id,
        rec.segment,
        rec.order_ref,
        rec.agent_id,
        rec.recorded_at,
        rec.duration_ms,
        rec.media_type,
        rec.seq,
        rec.retain_until,
        "sealed" if rec.shredded_at is None else "shredded",
        pending,
    )


def get_record(ctx: VaultContext, record_id: str, *, client: str | None = None) -> Record:
    """The record row, checked against its log entries (TamperDetected if it differs);
    a record of another client looks exactly like a missing one."""
    return checked_record(ctx, record_id, client).record


def show(
    ctx: VaultContext, record_id: str, *, principal: str | Principal, client: str | None = None
) -> dict:
    """The decrypted evidence document (evidence record + measured audio facts)."""
    rec = get_record(ctx, record_id, client=client)
    refuse_if_shredded(rec)
    record_access(ctx, rec, principal, "metadata")
    plain = b"".join(open_object(ctx, rec, "meta"))
    return json.loads(plain)["document"]


def read_document(ctx: VaultContext, rec: Record) -> dict:
    """The evidence document of a checked record whose opening was logged already
    (the desk logs one ``evidence.accessed`` entry, with its reason, per opening)."""
    refuse_if_shredded(rec)
    return json.loads(b"".join(open_object(ctx, rec, "meta")))["document"]


def write_audio(
    ctx: VaultContext,
    record_id: str,
    out: str | os.PathLike,
    *,
    principal: str | Principal,
    client: str | None = None,
) -> Path:
    """Decrypt the clip to ``out``, byte-identical to the upload; all or nothing."""
    rec = get_record(ctx, record_id, client=client)
    refuse_if_shredded(rec)
    record_access(ctx, rec, principal, "audio")
    with atomic_output(out, "wb") as fh:
        for chunk in open_object(ctx, rec, "clip"):
            fh.write(chunk)
    return Path(out)


def record_access(
    ctx: VaultContext,
    rec: Record,
    principal: str | Principal,
    what: str,
    *,
    reason: str | None = None,
    case: str | None = None,
    document: str | None = None,
) -> None:
    """Log the access: the person (``person:<handle>``) and the token they used, if any.

    ``reason`` (a code of :data:`ACCESS_REASONS`) and ``case`` (a case reference, an
    identifier without personal data) say why; the escalation desk requires a reason.
    """
    body = {"principal": principal if isinstance(principal, str) else principal.name}
    if isinstance(principal, Principal) and principal.token_id:
        body["token"] = principal.token_id
    body["what"] = what
    if document is not None:  # which Textform document was opened (``what = "document"``)
        body["document"] = document
    if reason is not None:
        if reason not in ACCESS_REASONS:
            raise ValueError(f"unknown access reason {reason!r}")
        body["reason"] = reason
    if case:
        body["case"] = case
    with write_session(ctx.engine) as s:
        append_entries(
            s,
            rec.client_id,
            [EntryDraft("evidence.accessed", rec.id, body)],
            ctx.clock(),
            ctx.log_keys(rec.client_id),
        )
    checkpoint_after_commit(ctx, rec.client_id)


#: plaintext decrypted per piece of a ranged read: a whole number of segments
RANGE_CHUNK = 16 * SEGMENT_SIZE


def open_object(ctx: VaultContext, rec: Record, role: str) -> Iterator[bytes]:
    """Decrypt a stored object, checking the AEAD tags and the committed ciphertext hash.

    Logs nothing: the caller has recorded the access (:func:`record_access`) first.
    """
    key, version = sealed_object(rec, role)
    want = rec.clip_sha256 if role == "clip" else rec.meta_sha256
    dek = record_key(ctx, rec)
    reader = ChunkReader(ctx.store.get(key, version_id=version))
    yield from decrypt_stream(dek, object_aad(rec.client_id, rec.id, role), reader.read)
    if reader.hexdigest() != want:
        raise DecryptionFailed(
            f"the stored {role} object of record {rec.id} differs from the sealed one",
            hint="run `evidence-vault verify` and restore the object from a backup",
        )


#: the former private name, still imported by the bundle service


def decrypt_clip_range(ctx: VaultContext, rec: Record, offset: int, length: int) -> Iterator[bytes]:
    """Plaintext ``[offset, offset + length)`` of the clip, reading only its segments.

    Each piece is a whole number of segments (at most :data:`RANGE_CHUNK` bytes), so memory
    stays bounded for any range; the sealed header is fetched once. Logs nothing: the
    caller has recorded the access first.
    """
    dek = record_key(ctx, rec)
    aad = object_aad(rec.client_id, rec.id, "clip")
    sealed_size = ciphertext_size(rec.clip_size)
    version = rec.clip_version  # the version the vault wrote, never one stacked on it
    header: list[bytes] = []

    def read_at(start: int, n: int) -> bytes:
        if start == 0 and n == HEADER_SIZE:
            if not header:
                header.append(
                    ctx.store.read_range(rec.clip_key, 0, HEADER_SIZE, version_id=version)
                )
            return header[0]
        return ctx.store.read_range(rec.clip_key, start, n, version_id=version)

    end = offset + length
    while offset < end:
        stop = min(end, (offset // RANGE_CHUNK + 1) * RANGE_CHUNK)
        yield decrypt_range(dek, aad, read_at, sealed_size, offset, stop - offset)
        offset = stop
