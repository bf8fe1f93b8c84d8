"""HTTP routes: records — upload, receipts, search, reading evidence, disputes and holds.

Uploads stream the request body to a spool file inside the vault (never the whole clip in
memory, never in the system temp directory: :mod:`vault.spool`), bounded by
:data:`MAX_UPLOAD_BYTES` (``app.state.max_upload_bytes`` overrides it), hashing it on the
way for the ``Idempotency-Key`` check, then seal it in the thread pool. Every plaintext
read appends one ``evidence.accessed`` entry naming the token (``client:<token id>``)
before the first byte leaves the vault.

A record, hold or campaign of another client answers exactly like a missing one (404).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from vault import audio
from vault.db import Campaign, Hold, LogEntry, Record, read_session, write_session
from vault.db.models import IdempotencyKey
from vault.errors import Conflict, FieldError, InvalidAudio, InvalidEvidence, NotFound
from vault.evidence import Evidence, normalise_phone, parse_evidence
from vault.http import problems
from vault.http.app import Caller, Ctx
from vault.http.problems import InvalidRequest
from vault.ledger.entry import entry_hash
from vault.sealing import WrappedKey, ciphertext_size, decrypt_range, object_aad
from vault.sealing.stream import HEADER_SIZE, SEGMENT_SIZE
from vault.services import holds as _holds
from vault.services import retrieve
from vault.services.bundle import export_bundle
from vault.services.checkpoints import inclusion_at, latest_checkpoint
from vault.services.context import VaultContext
from vault.services.ingest import Receipt, ingest
from vault.services.retention import refuse_if_shredded
from vault.services.tokens import Principal
from vault.spool import Spool, SpoolFile

router = APIRouter()

#: the largest clip an upload may carry; ``app.state.max_upload_bytes`` overrides it
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
#: what is buffered before a write to the temporary file (and per ranged decryption)
_WRITE_CHUNK = 1024 * 1024
_RANGE_CHUNK = 16 * SEGMENT_SIZE
ACCEPTED_MEDIA_TYPES = ("audio/wav", "audio/mpeg", "audio/ogg", "audio/flac")
_CASE_REF = r"^[A-Za-z0-9][A-Za-z0-9._/:#-]{0,63}$"
_NO_STORE = {"Cache-Control": "no-store"}

# --- OpenAPI: problem responses -----------------------------------------------------------


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return problems.openapi_responses(401, *statuses)


_BINARY = {"schema": {"type": "string", "format": "binary"}}

# --- request and response models ----------------------------------------------------------


class InclusionProofOut(BaseModel):
    client: str
    record_id: str | None
    seq: int
    leaf_hash: str
    tree_size: int
    root_hash: str
    hashes: list[str]
    checkpoint: str = Field(description="the signed checkpoint note (C2SP signed note)")


class OpeningOut(BaseModel):
    entry: str = Field(description="the record's evidence.sealed log entry (RFC 8785 text)")
    salt: str = Field(description="hex: the salt of the entry's commitments")


class ReceiptOut(BaseModel):
    record_id: str
    client: str
    campaign: str
    seq: int
    entry_hash: str
    sealed_at: str
    duplicate: bool
    inclusion_proof: InclusionProofOut | None = Field(
        description="present once a checkpoint covers the record's log entry"
    )
    opening: OpeningOut | None = Field(
        None,
        description="only in the upload's answer, when asked for with `?opening=true`: "
        "the entry and its commitment salt, so the uploader can check that the entry "
        "commits to its own clip and metadata",
    )


class RecordSummaryOut(BaseModel):
    record_id: str
    client: str
    campaign: str
    call_id: str
    segment: int
    order_ref: str
    agent_id: str
    recorded_at: str
    duration_ms: int
    media_type: str
    seq: int
    retain_until: str | None
    state: str = Field(description='"sealed", or "shredded" once crypto-shredded')


class HoldOut(BaseModel):
    id: str
    client: str
    record_id: str
    kind: str
    case_ref: str
    reason: str
    placed_by: str
    placed_at: str
    release_requested_by: str | None
    released_by: str | None
    released_at: str | None
    active: bool


def _iso_text(value: Any) -> Any:
    # pydantic would take a number as a Unix time; the schema promises an ISO 8601 string
    if value is not None and not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    return value


def _number(value: Any) -> Any:
    # pydantic would take "5" or true; the schema promises a JSON integer (5.0 is one)
    if isinstance(value, str | bool):
        raise ValueError("must be an integer")
    return value


_IsoTime = Annotated[datetime | None, BeforeValidator(_iso_text)]
_Count = Annotated[int, BeforeValidator(_number)]


class SearchRequest(BaseModel):
    """All optional; a phone number goes in the body, never in a URL."""

    model_config = ConfigDict(extra="forbid")

    campaign: str | None = Field(None, max_length=64)
    order_ref: str | None = Field(None, max_length=128)
    phone: str | None = Field(
        None,
        pattern=r"^\+[0-9][0-9 ()./-]{3,38}$",
        description="international form, e.g. +4915112345678 or +49 151 12345678",
    )
    agent: str | None = Field(None, max_length=128)
    since: _IsoTime = Field(None, description="recorded at or after (no zone: UTC)")
    until: _IsoTime = Field(None, description="recorded before (no zone: UTC)")
    limit: _Count = Field(100, ge=1, le=1000)


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_ref: str = Field(
        pattern=_CASE_REF,
        max_length=64,
        description="a case number of the client's case system (no personal data)",
    )
    reason: str = Field(
        min_length=1, max_length=_holds.MAX_REASON, pattern=r"\S", description="not blank"
    )


# --- upload -------------------------------------------------------------------------------

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "the raw clip, streamed",
        "content": {t: _BINARY for t in ACCEPTED_MEDIA_TYPES},
    }
}


@router.post(
    "/v1/records",
    tags=["records"],
    status_code=201,
    response_model=ReceiptOut,
    responses={
        200: {"model": ReceiptOut, "description": "a repeat of the same segment or key"},
        **_problems(403, 404, 409, 413, 415),
    },
    openapi_extra=_UPLOAD_BODY,
    summary="Upload one recorded order segment",
)
async def upload(
    request: Request,
    ctx: Ctx,
    principal: Caller,
    evidence_metadata: Annotated[
        str,
        Header(
            alias="Evidence-Metadata",
            pattern=r"^[A-Za-z0-9_-]+=*$",
            description="base64url (no padding) of the evidence JSON",
        ),
    ],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="visible ASCII; a retry with the same key and request gets the "
            "same receipt",
        ),
    ] = None,
    opening: Annotated[
        bool, Query(description="add the entry and its commitment salt to the receipt")
    ] = False,
) -> Response:
    """Seal the clip in the body with the evidence in `Evidence-Metadata`.

    201 and the receipt for a new record; 200 and the same receipt for a repeat of the
    same call segment, or of the same `Idempotency-Key` with the same request.
    """
    principal.require("dialer")
    declared = request.headers.get("content-type", "")
    media_type = _accepted_media_type(declared)
    if media_type is None:
        return problems.problem(
            415,
            "unsupported-media-type",
            "the body must be the clip, sent with its audio media type",
            hint=f"send Content-Type: one of {', '.join(ACCEPTED_MEDIA_TYPES)}",
            headers={"Accept-Post": ", ".join(ACCEPTED_MEDIA_TYPES)},
        )
    limit = int(getattr(request.app.state, "max_upload_bytes", MAX_UPLOAD_BYTES))
    length = request.headers.get("content-length")
    if length is not None and _declared_length(length) > limit:
        return _too_large(limit)
    raw = _decode_metadata(evidence_metadata)
    await run_in_threadpool(_check_evidence, ctx, principal, raw)
    meta_sha = hashlib.sha256(f"{evidence_metadata}\n{declared}".encode()).hexdigest()
    earlier = None
    if idempotency_key is not None:
        earlier = await run_in_threadpool(_idempotency_row, ctx, principal, idempotency_key)
        if earlier is not None and not _same_metadata(earlier.request_hash, meta_sha):
            raise IdempotencyMismatch("metadata")  # known before a byte of the clip
    with Spool(ctx.settings.home).file() as spooled:
        if not await _receive(request, spooled, limit):
            return _too_large(limit)
        clip_sha = await run_in_threadpool(spooled.finish)
        if earlier is not None and earlier.request_hash != meta_sha:
            if earlier.request_hash != _request_hash(meta_sha, clip_sha):
                raise IdempotencyMismatch("clip")
            receipt = await run_in_threadpool(_earlier_receipt, ctx, earlier)
            body = await run_in_threadpool(_receipt_body, ctx, receipt, opening=opening)
            return JSONResponse(body, 200)
        # new key, or one stored before keys covered the clip: ingest compares the clip
        # with the sealed call segment's (a different one is a 409 there)
        receipt = await run_in_threadpool(ingest, ctx, spooled.path, raw, media_type=media_type)
    if idempotency_key is not None:
        await run_in_threadpool(
            _remember, ctx, principal, idempotency_key, meta_sha, clip_sha, receipt.record_id
        )
    body = await run_in_threadpool(_receipt_body, ctx, receipt, opening=opening)
    return JSONResponse(body, status_code=200 if receipt.duplicate else 201)


def _declared_length(header: str) -> int:
    """Content-Length as a number (0 when it is none); the streamed count decides anyway."""
    text = header.strip()
    if not (text.isascii() and text.isdigit()):  # "²" is a digit to str.isdigit
        return 0
    return _position(text)


def _accepted_media_type(declared: str) -> str | None:
    if "/" not in declared.split(";", 1)[0]:
        return None
    try:
        return audio.normalise_media_type(declared)
    except InvalidAudio:
        return None


def _too_large(limit: int) -> JSONResponse:
    return problems.problem(
        413,
        "too-large",
        f"the upload is larger than the limit of {limit} bytes",
        hint="split the recording into segments below the limit",
    )


def _request_error(field: str, message: str) -> InvalidRequest:
    return InvalidRequest([FieldError(field, message)], hint="correct the header and send again")


_METADATA = "header.Evidence-Metadata"  # named as FastAPI names a header's field


def _decode_metadata(header: str) -> bytes:
    text = header.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _request_error(_METADATA, "is not base64url of the evidence JSON") from None
    return raw


def _check_evidence(ctx: VaultContext, principal: Principal, raw: bytes) -> Evidence:
    """Validate the document before the clip is received; then the token's scope."""
    try:
        evidence = parse_evidence(raw, now=ctx.clock())
    except InvalidEvidence as exc:
        # the whole document failed (not JSON, not an object): name the header
        errors = [FieldError(_METADATA, e.message) if e.field == "$" else e for e in exc.errors]
        raise InvalidEvidence(errors, hint=exc.hint) from None
    if evidence.client != principal.client:
        # exactly what ingest says of a client that does not exist
        raise NotFound(
            "the client named by the evidence does not exist",
            hint="check 'client', or create it with `evidence-vault client add`",
        )
    if principal.campaign is not None and evidence.campaign != principal.campaign:
        raise NotFound(
            "the campaign named by the evidence does not exist",
            hint="check 'campaign': this token uploads into one campaign only",
        )
    return evidence


async def _receive(request: Request, spooled: SpoolFile, limit: int) -> bool:
    """Stream the body into the spool file; False as soon as it exceeds ``limit`` bytes."""
    size = 0
    pending = bytearray()
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return False
        pending += chunk
        if len(pending) >= _WRITE_CHUNK:
            await run_in_threadpool(spooled.write, bytes(pending))
            pending.clear()
    if pending:
        await run_in_threadpool(spooled.write, bytes(pending))
    return True


# --- idempotency keys ---------------------------------------------------------------------
#
# The stored request hash is 64 hex digits (the column's size): the first half from the
# SHA-256 of the metadata header and media type, the second from the SHA-256 of the clip,
# so a mismatch can name its part. 128 bits each: a dialer would need 2**64 work to make
# two of its own requests collide, and gains nothing by it. Keys stored before the clip
# was covered hold the whole metadata SHA-256 (they still match on the metadata).


class IdempotencyMismatch(Conflict):
    """The key was used before for another request: 409, naming the part that differs."""

    _PARTS: ClassVar[dict[str, tuple[str, str]]] = {
        "metadata": ("header.Evidence-Metadata", "the evidence metadata or media type"),
        "clip": ("body", "the clip"),
    }

    def __init__(self, part: str) -> None:
        field, what = self._PARTS[part]
        super().__init__(
            f"this Idempotency-Key was already used for a request with different {part}: "
            f"{what} differs from the first request's, so nothing was sealed",
            hint="a retry must send the same metadata and clip; use a new key for a new upload",
        )
        self.errors = [FieldError(field, "differs from the first request with this key")]


def _request_hash(meta_sha: str, clip_sha: str) -> str:
    return meta_sha[:32] + clip_sha[:32]


def _same_metadata(stored: str, meta_sha: str) -> bool:
    return stored == meta_sha or stored[:32] == meta_sha[:32]


def _idempotency_row(ctx: VaultContext, principal: Principal, key: str) -> IdempotencyKey | None:
    with read_session(ctx.engine) as s:
        return s.get(IdempotencyKey, (principal.token_id, key))


def _earlier_receipt(ctx: VaultContext, row: IdempotencyKey) -> Receipt:
    return _stored_receipt(ctx, retrieve.get_record(ctx, row.record_id), duplicate=True)


def _remember(
    ctx: VaultContext, principal: Principal, key: str, meta_sha: str, clip_sha: str, record_id: str
) -> None:
    request_hash = _request_hash(meta_sha, clip_sha)
    try:
        with write_session(ctx.engine) as s:
            if s.get(IdempotencyKey, (principal.token_id, key)) is None:
                s.add(
                    IdempotencyKey(
                        token_id=principal.token_id,
                        key=key,
                        request_hash=request_hash,
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
        raise Conflict(
            "this Idempotency-Key was already used for a different request",
            hint="use a new key for a new upload",
        )
    if row.request_hash not in (request_hash, meta_sha):
        # the same record (ingest matched the clip), spelled differently
        raise IdempotencyMismatch("metadata" if row.request_hash[:32] != meta_sha[:32] else "clip")


# --- receipts -----------------------------------------------------------------------------


def _stored_receipt(ctx: VaultContext, rec: Record, *, duplicate: bool) -> Receipt:
    with read_session(ctx.engine) as s:
        campaign = s.get(Campaign, rec.campaign_id)
        entry = s.exec(
            select(LogEntry).where(LogEntry.client_id == rec.client_id, LogEntry.seq == rec.seq)
        ).first()
    return Receipt(
        record_id=rec.id,
        client=rec.client_id,
        campaign=campaign.name if campaign else "",
        seq=rec.seq,
        entry_hash=entry_hash(bytes(entry.entry)) if entry else "",
        sealed_at=rec.sealed_at,
        duplicate=duplicate,
    )


def _opening(ctx: VaultContext, receipt: Receipt) -> dict:
    """The entry and the commitment salt, for the uploader who sent this very clip and
    metadata (a repeat only answers when both match the sealed ones): it learns nothing it
    did not hold, and can check the commitments without trusting the vault's word."""
    rec = retrieve.get_record(ctx, receipt.record_id)
    with read_session(ctx.engine) as s:
        entry = s.get(LogEntry, (rec.client_id, rec.seq))
    salt = receipt.salt
    if salt is None:  # a repeat: the salt is inside the sealed metadata object
        sealed = json.loads(b"".join(retrieve._open_object(ctx, rec, "meta")))
        salt = bytes.fromhex(sealed["salt"])
    return {"entry": bytes(entry.entry).decode("utf-8"), "salt": salt.hex()}


def _receipt_body(ctx: VaultContext, receipt: Receipt, *, opening: bool = False) -> dict:
    """The receipt, with the inclusion proof if the latest checkpoint already covers it."""
    body = receipt.to_dict()
    body["inclusion_proof"] = None
    if opening:
        body["opening"] = _opening(ctx, receipt)
    try:
        cp = latest_checkpoint(ctx, receipt.client)
    except NotFound:
        return body
    if cp.size > receipt.seq:
        proof = inclusion_at(ctx, receipt.client, receipt.seq, cp, record_id=receipt.record_id)
        body["inclusion_proof"] = proof.to_dict()
    return body


@router.get(
    "/v1/records/{record_id}/receipt",
    tags=["records"],
    response_model=ReceiptOut,
    responses=_problems(403, 404),
    summary="The receipt of a record",
)
def get_receipt(record_id: str, ctx: Ctx, principal: Caller) -> dict:
    """The receipt, with the inclusion proof once a checkpoint covers the record."""
    principal.require("dialer", "client")
    rec = retrieve.get_record(ctx, record_id, client=principal.client)
    receipt = _stored_receipt(ctx, rec, duplicate=False)
    if principal.campaign is not None and receipt.campaign != principal.campaign:
        # another campaign's record, for a campaign-scoped dialer: as if it did not exist
        raise NotFound(f"no record {record_id!r}", hint="search with `evidence-vault find`")
    return _receipt_body(ctx, receipt)


# --- search and reading -------------------------------------------------------------------


@router.post(
    "/v1/records/search",
    tags=["records"],
    response_model=list[RecordSummaryOut],
    responses=_problems(400, 403),
    summary="Search the client's records",
)
def search(query: Annotated[SearchRequest, Body()], ctx: Ctx, principal: Caller) -> list[dict]:
    """Record summaries (no PII) of the caller's client, oldest recording first."""
    principal.require("client")
    phone = None
    if query.phone is not None:
        try:
            phone = normalise_phone(query.phone)
        except InvalidEvidence:
            # international form (the schema checked it) but no valid number: every sealed
            # record's number was validated, so none can match
            return []
    q = retrieve.Query(
        client=principal.client,
        campaign=query.campaign,
        order_ref=query.order_ref,
        phone=phone,
        agent=query.agent,
        since=_utc(query.since),
        until=_utc(query.until),
        limit=query.limit,
    )
    return [hit.to_dict() for hit in retrieve.find(ctx, q)]


@router.api_route(
    "/v1/records/search",
    methods=["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
def search_other_methods() -> JSONResponse:
    # without this, GET /v1/records/{record_id} would answer for a record named "search"
    return problems.problem(
        405, "method-not-allowed", "Method Not Allowed", headers={"Allow": "POST"}
    )


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@router.get(
    "/v1/records/{record_id}",
    tags=["records"],
    response_model=dict[str, Any],
    responses=_problems(403, 404, 410),
    summary="The decrypted evidence document (logged)",
)
def get_document(record_id: str, ctx: Ctx, principal: Caller) -> JSONResponse:
    """The evidence record and the measured audio facts; logs `evidence.accessed`."""
    principal.require("client")
    doc = retrieve.show(ctx, record_id, principal=principal, client=principal.client)
    return JSONResponse(doc, headers=_NO_STORE)


@router.get(
    "/v1/records/{record_id}/audio",
    tags=["records"],
    response_class=Response,
    responses={
        200: {
            "description": "the clip, byte-identical to the upload",
            "content": {t: _BINARY for t in ACCEPTED_MEDIA_TYPES},
        },
        206: {
            "description": "the requested byte range (`Content-Range`)",
            "content": {t: _BINARY for t in ACCEPTED_MEDIA_TYPES},
        },
        **_problems(403, 404, 410, 416),
    },
    summary="The clip (logged); Range requests seek",
)
def get_audio(
    record_id: str,
    ctx: Ctx,
    principal: Caller,
    range_: Annotated[
        str | None, Header(alias="Range", description="one range: bytes=a-b, a- or -n")
    ] = None,
) -> Response:
    """The clip; a single `Range: bytes=...` gives 206. Logs `evidence.accessed`."""
    principal.require("client")
    rec = retrieve.get_record(ctx, record_id, client=principal.client)
    refuse_if_shredded(rec)
    total = rec.clip_size
    headers = {"Accept-Ranges": "bytes", **_NO_STORE}
    wanted = _parse_range(range_, total) if range_ else None
    if wanted == "unsatisfiable":
        return problems.problem(
            416,
            "range-not-satisfiable",
            f"the range lies outside the clip of {total} bytes",
            hint="ask for bytes between 0 and the clip's size minus one",
            headers={"Content-Range": f"bytes */{total}"},
        )
    retrieve.record_access(ctx, rec, principal, "audio")
    if isinstance(wanted, tuple):
        start, end = wanted
        chunks = _decrypt_span(ctx, rec, start, end - start + 1)
        first = next(chunks)  # key and storage failures become problems, not broken bodies
        headers |= {"Content-Range": f"bytes {start}-{end}/{total}"}
        headers["Content-Length"] = str(end - start + 1)
        return StreamingResponse(
            _chain(first, chunks), status_code=206, media_type=rec.media_type, headers=headers
        )
    chunks = retrieve._open_object(ctx, rec, "clip")
    first = next(chunks, b"")
    headers["Content-Length"] = str(total)
    return StreamingResponse(_chain(first, chunks), media_type=rec.media_type, headers=headers)


def _parse_range(value: str, total: int) -> tuple[int, int] | str | None:
    """(first, last) of one satisfiable range, "unsatisfiable", or None to send it all.

    RFC 9110 §14: a header that does not parse, another unit, or several ranges are
    answered with the whole clip (200), which the RFC allows.
    """
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    m = re.fullmatch(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*", spec)
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:  # suffix: the last n bytes
        n = _position(m[2])
        if n == 0 or total == 0:
            return "unsatisfiable"
        return max(0, total - n), total - 1
    first = _position(m[1])
    if m[2] and _position(m[2]) < first:
        return None  # invalid: ignored
    if first >= total:
        return "unsatisfiable"
    return first, min(_position(m[2]) if m[2] else total - 1, total - 1)


#: more digits than any clip's size has: the value only matters as "beyond the end"
_POSITION_DIGITS = 18


def _position(digits: str) -> int:
    """A byte position of a Range header; any absurdly long number counts as 10**18.

    Python refuses to convert numbers of more than 4,300 digits (a 500 before); a
    position beyond every clip answers the same whatever its exact value.
    """
    digits = digits.lstrip("0") or "0"
    return 10**_POSITION_DIGITS if len(digits) > _POSITION_DIGITS else int(digits)


def _decrypt_span(ctx: VaultContext, rec: Record, offset: int, length: int) -> Iterator[bytes]:
    """Plaintext ``[offset, offset + length)`` of the clip, reading only its segments.

    Each piece is a whole number of segments (at most ``_RANGE_CHUNK`` bytes), so memory
    stays bounded for any range; the sealed header is fetched once.
    """
    dek = ctx.keys.unwrap(
        WrappedKey(rec.kek_id, rec.wrapped_dek), rec.client_id, {"record": rec.id}
    )
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
        stop = min(end, (offset // _RANGE_CHUNK + 1) * _RANGE_CHUNK)
        yield decrypt_range(dek, aad, read_at, sealed_size, offset, stop - offset)
        offset = stop


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


@router.get(
    "/v1/records/{record_id}/bundle",
    tags=["records"],
    response_class=Response,
    responses={
        200: {
            "description": "the evidence bundle (ZIP), checkable offline",
            "content": {"application/zip": _BINARY},
        },
        **_problems(403, 404, 410),
    },
    summary="The evidence bundle (logged)",
)
def get_bundle(record_id: str, ctx: Ctx, principal: Caller) -> Response:
    """The ZIP of clip, evidence, log entry, proof and checkpoint; logs `evidence.accessed`."""
    principal.require("client")
    # the ZIP holds the clip and the evidence in clear: built in the vault's spool, not in
    # the system temp directory, and removed once sent (or swept after a crash)
    workdir = Spool(ctx.settings.home).directory()
    try:
        path = export_bundle(
            ctx,
            record_id,
            workdir.path / "bundle.zip",
            principal=principal,
            client=principal.client,
        )
    except BaseException:
        workdir.close()
        raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"{record_id}.zip",
        headers=_NO_STORE,
        background=BackgroundTask(workdir.close),
    )


# --- disputes and holds -------------------------------------------------------------------


@router.post(
    "/v1/records/{record_id}/disputes",
    tags=["holds"],
    status_code=201,
    response_model=HoldOut,
    responses=_problems(400, 403, 404, 409),
    summary="Dispute a record: it is held until released",
)
def open_dispute(
    record_id: str, body: Annotated[HoldRequest, Body()], ctx: Ctx, principal: Caller
) -> dict:
    principal.require("client")
    return _place_hold(ctx, principal, record_id, body, "dispute")


@router.post(
    "/v1/records/{record_id}/holds",
    tags=["holds"],
    status_code=201,
    response_model=HoldOut,
    responses=_problems(400, 403, 404, 409),
    summary="Place a legal hold on a record",
)
def place_legal_hold(
    record_id: str, body: Annotated[HoldRequest, Body()], ctx: Ctx, principal: Caller
) -> dict:
    principal.require("admin")
    return _place_hold(ctx, principal, record_id, body, "legal")


def _place_hold(ctx, principal, record_id: str, body: HoldRequest, kind: str) -> dict:
    hold = _holds.place_hold(
        ctx,
        record_id,
        kind=kind,
        case_ref=body.case_ref,
        reason=body.reason,
        principal=principal.name,
        client=principal.client,
    )
    return hold.to_dict()


@router.post(
    "/v1/holds/{hold_id}/release",
    tags=["holds"],
    response_model=HoldOut,
    responses=_problems(403, 404, 409),
    summary="Request (first admin) or complete (second admin) a hold's release",
)
def release(hold_id: str, ctx: Ctx, principal: Caller) -> dict:
    """Four-eyes: the same person twice (with any token) gets 403; another admin releases."""
    principal.require("admin")
    with read_session(ctx.engine) as s:
        hold = s.get(Hold, hold_id)
    if hold is None or not principal.sees(hold.client_id):
        raise NotFound(f"no hold {hold_id!r}", hint="list holds with GET /v1/holds")
    return _holds.release_hold(ctx, hold_id, admin=principal).to_dict()


@router.get(
    "/v1/holds",
    tags=["holds"],
    response_model=list[HoldOut],
    responses=_problems(403),
    summary="Active holds of the caller's client(s)",
)
def list_active_holds(
    request: Request,
    ctx: Ctx,
    principal: Caller,
    record: Annotated[str | None, Query(description="only this record's holds")] = None,
) -> list[dict]:
    principal.require("client", "admin")
    params = request.query_params
    errors = [
        FieldError(f"query.{name}", "is not a parameter") for name in params if name != "record"
    ]
    if len(params.getlist("record")) > 1:
        errors.append(FieldError("query.record", "give at most one record"))
    if errors:
        raise InvalidRequest(errors, hint="the only parameter is 'record'")
    found = _holds.list_holds(ctx, client=principal.client, record_id=record)
    return [h.to_dict() for h in found]
