"""Idempotency keys of uploads: a retry with the same key and request gets the same receipt.

A key is scoped to the token that sent it. The stored request hash is 64 hex digits (the
column's size): the first half from the SHA-256 of the metadata header and media type,
the second from the SHA-256 of the clip, so a mismatch can name its part. 128 bits each:
a dialer would need 2**64 work to make two of its own requests collide, and gains nothing
by it. Keys stored before the clip was covered hold the whole metadata SHA-256 (they
still match on the metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sqlalchemy.exc import IntegrityError

from vault.db import read_session, write_session
from vault.db.models import IdempotencyKey
from vault.errors import Conflict, FieldError
from vault.services.context import VaultContext
from vault.services.people import Principal


class IdempotencyMismatch(Conflict):
    """The key was used before for another request: 409, naming the part that differs."""

    _PARTS: ClassVar[dict[str, tuple[str, str]]] = {
        "metadata": ("header.Evidence-Metadata", "the evidence metadata or media type"),
        "clip": ("body", "the clip"),
        "document": ("body", "the document, its kind or its media type"),
    }

    def __init__(self, part: str) -> None:
        field, what = self._PARTS[part]
        super().__init__(
            f"this Idempotency-Key was already used for a request with different {part}: "
            f"{what} differs from the first request's, so nothing was sealed",
            hint="a retry must send the same metadata and clip; use a new key for a new upload",
        )
        self.errors = [FieldError(field, "differs from the first request with this key")]


@dataclass(frozen=True)
class EarlierRequest:
    """What a key remembers of the first request that used it."""

    request_hash: str
    record_id: str
    #: the Textform document the key attached (None: the key uploaded a record)
    document_id: str | None = None

    def check_metadata(self, meta_sha: str) -> None:
        """Refuse a retry whose metadata differs: known before a byte of the clip."""
        if not (self.request_hash == meta_sha or self.request_hash[:32] == meta_sha[:32]):
            raise IdempotencyMismatch("metadata")

    def covers_clip(self, meta_sha: str, clip_sha: str) -> bool:
        """Whether the first request had this clip too; False for a key stored before keys
        covered the clip (ingest then compares the clip with the sealed call segment's)."""
        if self.request_hash == meta_sha:
            return False
        if self.request_hash != request_hash(meta_sha, clip_sha):
            raise IdempotencyMismatch("clip")
        return True


def _key_taken() -> Conflict:
    return Conflict(
        "this Idempotency-Key was already used for a different request",
        hint="use a new key for a new upload",
    )


def request_hash(meta_sha: str, clip_sha: str) -> str:
    return meta_sha[:32] + clip_sha[:32]


@dataclass(frozen=True)
class NewKey:
    """A key no request had used when this upload began: :func:`vault.services.ingest.ingest`
    stores it in the transaction that seals the record, so a sealed record's key is never
    missing (a crash between two commits once left it so) and costs no commit of its own."""

    token_id: str
    key: str
    meta_sha: str
    clip_sha: str

    def row(self, record_id: str, created_at: datetime) -> dict:
        return {
            "token_id": self.token_id,
            "key": self.key,
            "request_hash": request_hash(self.meta_sha, self.clip_sha),
            "record_id": record_id,
            "created_at": created_at,
            "document_id": None,
        }

    def raise_if_taken(self, ctx: VaultContext) -> None:
        """After a refused commit: the Conflict if a concurrent request took the key."""
        with read_session(ctx.engine) as s:
            row = s.get(IdempotencyKey, (self.token_id, self.key))
        if row is None:
            return
        if row.document_id is None:  # an upload: name the part that differs, if one does
            earlier = EarlierRequest(row.request_hash, row.record_id)
            earlier.check_metadata(self.meta_sha)
            earlier.covers_clip(self.meta_sha, self.clip_sha)
        raise _key_taken()


def earlier_request(ctx: VaultContext, principal: Principal, key: str) -> EarlierRequest | None:
    with read_session(ctx.engine) as s:
        row = s.get(IdempotencyKey, (principal.token_id, key))
    if row is None:
        return None
    return EarlierRequest(row.request_hash, row.record_id, row.document_id)


def check_document_retry(earlier: EarlierRequest, request: str, record_id: str) -> str:
    """The document an earlier attach with this key sealed; Conflict unless this is the same
    request (same record, kind, media type and bytes)."""
    if earlier.document_id is None or earlier.record_id != record_id:
        raise _key_taken()
    if earlier.request_hash != request:
        raise IdempotencyMismatch("document")
    return earlier.document_id


def remember_document(
    ctx: VaultContext,
    principal: Principal,
    key: str,
    request: str,
    record_id: str,
    document_id: str,
) -> None:
    """Store the key for an attached document; a concurrent request with it may win."""
    try:
        with write_session(ctx.engine) as s:
            if s.get(IdempotencyKey, (principal.token_id, key)) is None:
                s.add(
                    IdempotencyKey(
                        token_id=principal.token_id,
                        key=key,
                        request_hash=request,
                        record_id=record_id,
                        document_id=document_id,
                        created_at=ctx.clock(),
                    )
                )
                return
    except IntegrityError:
        pass
    with read_session(ctx.engine) as s:
        row = s.get(IdempotencyKey, (principal.token_id, key))
    if row is None:  # pragma: no cover - a key is never deleted
        return
    check_document_retry(
        EarlierRequest(row.request_hash, row.record_id, row.document_id), request, record_id
    )


def remember(
    ctx: VaultContext, principal: Principal, key: str, meta_sha: str, clip_sha: str, record_id: str
) -> None:
    """Store the key for ``record_id``; a concurrent request with the same key may win."""
    full = request_hash(meta_sha, clip_sha)
    try:
        with write_session(ctx.engine) as s:
            if s.get(IdempotencyKey, (principal.token_id, key)) is None:
                s.add(
                    IdempotencyKey(
                        token_id=principal.token_id,
                        key=key,
                        request_hash=full,
                        record_id=record_id,
                        created_at=ctx.clock(),
                    )
                )
                return
    except IntegrityError:
        pass  # a concurrent request with the same key stored it first
    with read_session(ctx.engine) as s:
        row = s.get(IdempotencyKey, (principal.token_id, key))
    if row is None or row.record_id != record_id:
        raise _key_taken()
    if row.request_hash not in (full, meta_sha):
        # the same record (ingest matched the clip), spelled differently
        raise IdempotencyMismatch("metadata" if row.request_hash[:32] != meta_sha[:32] else "clip")
