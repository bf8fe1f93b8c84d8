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

import asyncio
import base64
import binascii
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from vault.errors import FieldError, InvalidEvidence, NotFound, PermissionDenied
from vault.evidence import Evidence, normalise_phone, parse_evidence
from vault.http import problems
from vault.http.deps import CASE_REF, Caller, Ctx
from vault.http.problems import InvalidRequest
from vault.http.ranges import parse_range, position
from vault.services import holds as _holds
from vault.services import idempotency, outages, receipts, retrieve
from vault.services.context import VaultContext
from vault.services.dialers import SourceSignature
from vault.services.export import ReportOptions, export_bundle
from vault.services.ingest import Receipt, accepted_media_type, ingest
from vault.services.retention import refuse_if_shredded
from vault.services.tokens import Principal

router = APIRouter()

#: the largest clip an upload may carry; ``app.state.max_upload_bytes`` overrides it
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
#: what is held before a write to the spool file (one trip to the thread pool each)
_WRITE_CHUNK = 1024 * 1024
#: the media types the API documents; aliases (``audio/x-wav``, ``audio/mp3``...) are
#: accepted too (vault.audio) and stored under these names
ACCEPTED_MEDIA_TYPES = ("audio/wav", "audio/mpeg", "audio/ogg", "audio/flac")
_NO_STORE = {"Cache-Control": "no-store"}
#: seconds a client waits before it retries an upload refused as ``busy``
_BUSY_RETRY_AFTER = 1

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
    textform: str = Field(
        description='"pending" while a Textform document its campaign requires is missing '
        '(pending Textform), else "complete"'
    )
    pending_documents: list[str] = Field(description="the required document kinds missing")


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
        pattern=CASE_REF,
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
    evidence_signature: Annotated[
        str | None,
        Header(
            alias="Evidence-Signature",
            max_length=300,
            description="the dialer host's source signature: 'key=<key id>; sig=<base64url>' "
            "(docs/formats.md)",
        ),
    ] = None,
    commitment_salt: Annotated[
        str | None,
        Header(
            alias="Commitment-Salt",
            pattern=r"^[0-9a-f]{64}$",
            description="64 lowercase hex: 32 random bytes the uploader drew, for the entry's "
            "commitments instead of a salt the vault draws; a repeat keeps the record's salt",
        ),
    ] = None,
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
    signature = None if evidence_signature is None else SourceSignature.parse(evidence_signature)
    # the evidence's rules and the key's earlier request in one trip to the thread pool:
    # each trip waits for the interpreter lock behind the uploads being sealed
    earlier = await run_in_threadpool(_before_the_body, ctx, principal, raw, idempotency_key)
    meta_sha = hashlib.sha256(f"{evidence_metadata}\n{declared}".encode()).hexdigest()
    if earlier is not None:
        earlier.check_metadata(meta_sha)  # known before a byte of the clip
    if not _uploads(request).enter(ctx.settings.max_uploads):
        return problems.problem(
            503,
            "busy",
            "this worker is receiving as many uploads as it may at once",
            hint="retry after the Retry-After seconds",
            headers={"Retry-After": str(_BUSY_RETRY_AFTER), "Connection": "close"},
        )
    try:
        return await _receive_and_seal(
            request,
            ctx,
            principal,
            raw,
            media_type,
            limit,
            idempotency_key,
            meta_sha,
            earlier,
            opening=opening,
            signature=signature,
            salt=None if commitment_salt is None else bytes.fromhex(commitment_salt),
        )
    finally:
        _uploads(request).leave()


class UploadsInProgress:
    """The uploads this worker is receiving or sealing (one event loop: no lock needed)."""

    def __init__(self) -> None:
        self.count = 0

    def enter(self, cap: int) -> bool:
        if self.count >= cap:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1


def _uploads(request: Request) -> UploadsInProgress:
    state = request.app.state
    if not hasattr(state, "uploads"):
        state.uploads = UploadsInProgress()
    return state.uploads


async def _receive_and_seal(
    request: Request,
    ctx: VaultContext,
    principal: Principal,
    raw: bytes,
    media_type: str,
    limit: int,
    idempotency_key: str | None,
    meta_sha: str,
    earlier: idempotency.EarlierRequest | None,
    *,
    opening: bool,
    signature: SourceSignature | None = None,
    salt: bytes | None = None,
) -> Response:
    with ctx.spool().file() as spooled:
        try:
            if not await _receive(request, spooled.write_all, limit, ctx.settings.receive_timeout):
                return _too_large(limit)
        except _Stalled:
            # the spool file goes with this block; the connection is closed
            return problems.problem(
                408,
                "request-timeout",
                f"the upload's body stalled: no bytes for {ctx.settings.receive_timeout:g} s",
                hint="send the whole upload again (with the same Idempotency-Key)",
                headers={"Connection": "close"},
            )
        # one trip to the thread pool from here to the answer: each trip waits for the
        # interpreter lock behind the other uploads being sealed
        status, body = await run_in_threadpool(
            partial(
                _seal_received,
                ctx,
                principal,
                spooled,
                raw,
                media_type=media_type,
                idempotency_key=idempotency_key,
                meta_sha=meta_sha,
                earlier=earlier,
                opening=opening,
                signature=signature,
                salt=salt,
            )
        )
    return JSONResponse(body, status_code=status)


class _Received(Protocol):
    """The upload's spool file, as sealing needs it (``vault.spool.SpoolFile``)."""

    path: str

    def finish(self) -> str: ...


def _seal_received(
    ctx: VaultContext,
    principal: Principal,
    spooled: _Received,
    raw: bytes,
    *,
    media_type: str,
    idempotency_key: str | None,
    meta_sha: str,
    earlier: idempotency.EarlierRequest | None,
    opening: bool,
    signature: SourceSignature | None,
    salt: bytes | None,
) -> tuple[int, dict]:
    """Seal the received clip (or find the earlier request's record); the answer."""
    clip_sha = spooled.finish()
    if earlier is not None and earlier.covers_clip(meta_sha, clip_sha):
        receipt = receipts.earlier_receipt(ctx, earlier.record_id)
        return 200, receipts.receipt_document(ctx, receipt, opening=opening)
    # new key, or one stored before keys covered the clip: ingest compares the clip with
    # the sealed call segment's (a different one is a 409 there); an outage here is a 503:
    # ``backend-unavailable`` before the commit (nothing sealed), ``outcome-unknown`` from
    # it on
    new_key = None
    if idempotency_key is not None and earlier is None and principal.token_id:
        # stored with the record, in its transaction (a key seen before is remembered
        # below: it needs no new row, or its own check)
        new_key = idempotency.NewKey(principal.token_id, idempotency_key, meta_sha, clip_sha)
    receipt = ingest(
        ctx,
        spooled.path,
        raw,
        media_type=media_type,
        signature=signature,
        idempotency_key=new_key,
        salt=salt,
    )
    stored_key = new_key is not None and not receipt.duplicate
    try:
        if idempotency_key is not None and not stored_key:
            idempotency.remember(
                ctx, principal, idempotency_key, meta_sha, clip_sha, receipt.record_id
            )
        body = receipts.receipt_document(ctx, receipt, opening=opening)
    except Exception as exc:
        # sealed, but the receipt did not go out: a retry with the same key answers it
        unknown = outages.outcome_unknown(exc)
        if unknown is None:
            raise
        raise unknown from None
    return 200 if receipt.duplicate else 201, body


def _declared_length(header: str) -> int:
    """Content-Length as a number (0 when it is none); the streamed count decides anyway."""
    text = header.strip()
    if not (text.isascii() and text.isdigit()):  # "²" is a digit to str.isdigit
        return 0
    return position(text)


def _accepted_media_type(declared: str) -> str | None:
    if "/" not in declared.split(";", 1)[0]:  # a media type, not a bare name like "wav"
        return None
    return accepted_media_type(declared)


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


def _before_the_body(
    ctx: VaultContext, principal: Principal, raw: bytes, key: str | None
) -> idempotency.EarlierRequest | None:
    """The checks made before the clip is received; the key's earlier request, if any."""
    _check_evidence(ctx, principal, raw)
    return None if key is None else idempotency.earlier_request(ctx, principal, key)


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
        # refused whether that campaign exists or not: the answer tells nothing about
        # the client's other campaigns (a dialer must not see them)
        raise PermissionDenied(
            "the campaign named by the evidence is outside this token's scope",
            hint=f"this token uploads into campaign {principal.campaign!r} only; use a token "
            "of the evidence's campaign",
        )
    return evidence


class _Stalled(Exception):
    """No byte of the body arrived within the receive timeout."""


async def _body(request: Request, idle: float) -> AsyncIterator[bytes]:
    """The body's chunks; :class:`_Stalled` once none arrives for ``idle`` seconds."""
    chunks = request.stream().__aiter__()
    while True:
        try:
            yield await asyncio.wait_for(chunks.__anext__(), idle)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _Stalled from None


async def _receive(
    request: Request, write: Callable[[list[bytes]], None], limit: int, idle: float
) -> bool:
    """Stream the body to ``write`` (the spool file), a list of chunks at a time, as they
    arrived: not joined, which would copy the clip twice more; False once it exceeds
    ``limit`` bytes."""
    size = held = 0
    pending: list[bytes] = []
    async for chunk in _body(request, idle):
        size += len(chunk)
        if size > limit:
            return False
        pending.append(chunk)
        held += len(chunk)
        if held >= _WRITE_CHUNK:
            await run_in_threadpool(write, pending)
            pending, held = [], 0
    if pending:
        await run_in_threadpool(write, pending)
    return True


# --- receipts -----------------------------------------------------------------------------

#: how often a waiting receipt request looks for a covering checkpoint (one query each)
_PROOF_POLL_SECONDS = 0.25
#: the longest a receipt request may wait for its proof
MAX_RECEIPT_WAIT = 60


@router.get(
    "/v1/records/{record_id}/receipt",
    tags=["records"],
    response_model=ReceiptOut,
    responses=_problems(403, 404),
    summary="The receipt of a record; `wait` waits for its inclusion proof",
)
async def get_receipt(
    request: Request,
    record_id: str,
    ctx: Ctx,
    principal: Caller,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_RECEIPT_WAIT,
            description="seconds to wait for a checkpoint to cover the record; the answer "
            "comes as soon as one does (default 0: answer at once)",
        ),
    ] = 0,
) -> dict:
    """The receipt, with the inclusion proof once a checkpoint covers the record.

    The vault signs a checkpoint within `checkpoint_seconds` of an append (docs/api.md);
    `wait` saves polling for it.
    """
    principal.require("dialer", "client")
    # one trip to the thread pool for the first answer: each trip costs the event loop a
    # wake-up, and most asks are answered at once
    receipt, body = await run_in_threadpool(_receipt_now, ctx, record_id, principal)
    deadline = time.monotonic() + wait
    while True:
        if body is None:
            body = await run_in_threadpool(receipts.receipt_document, ctx, receipt)
        left = deadline - time.monotonic()
        if body["inclusion_proof"] is not None or left <= 0:
            return body
        # an async sleep: a waiting request holds no worker thread
        await asyncio.sleep(min(_PROOF_POLL_SECONDS, left))
        if await request.is_disconnected():
            return body
        body = None


def _receipt_now(
    ctx: VaultContext, record_id: str, principal: Principal
) -> tuple[Receipt, dict | None]:
    receipt = receipts.receipt_for(ctx, record_id, principal)
    return receipt, receipts.receipt_document(ctx, receipt)


# --- search and reading -------------------------------------------------------------------


def search(
    ctx: Ctx, principal: Caller, query: Annotated[SearchRequest | None, Body()] = None
) -> list[dict]:
    """Record summaries (no PII) of the caller's client, oldest recording first.

    Every field is optional; no body at all (or an empty one) means no filters.
    """
    principal.require("client")
    query = query or SearchRequest()
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


router.add_api_route(
    "/v1/records/search",
    search,
    methods=["POST"],
    tags=["records"],
    response_model=list[RecordSummaryOut],
    responses=_problems(400, 403),
    summary="Search the client's records",
    # a JSON body sent without Content-Type (curl -d) is still read as JSON: the route
    # takes nothing else, and every field is optional
    strict_content_type=False,
)


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
    wanted = parse_range(range_, total) if range_ else None
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
        chunks = retrieve.decrypt_clip_range(ctx, rec, start, end - start + 1)
        first = next(chunks)  # key and storage failures become problems, not broken bodies
        headers |= {"Content-Range": f"bytes {start}-{end}/{total}"}
        headers["Content-Length"] = str(end - start + 1)
        return StreamingResponse(
            _chain(first, chunks), status_code=206, media_type=rec.media_type, headers=headers
        )
    chunks = retrieve.open_object(ctx, rec, "clip")
    first = next(chunks, b"")
    headers["Content-Length"] = str(total)
    return StreamingResponse(_chain(first, chunks), media_type=rec.media_type, headers=headers)


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
def get_bundle(
    record_id: str,
    ctx: Ctx,
    principal: Caller,
    language: Annotated[
        Literal["de", "en"], Query(description="language of the dispute report")
    ] = "de",
    pdf: Annotated[bool, Query(description="include report.pdf (PDF/A-3b)")] = True,
) -> Response:
    """The ZIP of clip, evidence, log entry, proof, checkpoint, chain of custody and the
    dispute report (report.html, report.pdf); logs `evidence.accessed`."""
    principal.require("client")
    # the ZIP holds the clip and the evidence in clear: built in the vault's spool, not in
    # the system temp directory, and removed once sent (or swept after a crash)
    workdir = ctx.spool().directory()
    try:
        path = export_bundle(
            ctx,
            record_id,
            workdir.path / "bundle.zip",
            principal=principal,
            client=principal.client,
            options=ReportOptions(language, ctx.settings.web_timezone, pdf),
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
    _holds.find_hold(ctx, hold_id, principal)  # another client's hold looks missing
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
