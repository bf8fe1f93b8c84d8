"""HTTP routes: Textform documents sealed with a record (TKG §54(3), EnWG §41b, BGB §312h).

``POST /v1/records/{id}/documents?kind=...`` takes the raw document (an e-mail as
``message/rfc822``, a PDF, an SMS text as ``text/plain``), bounded by
:data:`vault.services.documents.MAX_DOCUMENT_BYTES`, and seals it like a clip; the same
document again answers 200 with the stored receipt, and so does a retry with the same
``Idempotency-Key``. Reading one back logs ``evidence.accessed`` first. Rules as for
records: a record of another client (or, for a dialer token, of another campaign)
answers exactly like a missing one.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from vault.errors import FieldError
from vault.http import problems
from vault.http.deps import CASE_REF, Caller, Ctx
from vault.http.problems import InvalidRequest
from vault.http.records import _problems, _receive, _Stalled, _too_large
from vault.services import documents, idempotency
from vault.services.retrieve import ACCESS_REASONS

router = APIRouter()

_NO_STORE = {"Cache-Control": "no-store"}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_MEDIA = tuple(documents.MEDIA_TYPES)


class DocumentOut(BaseModel):
    document_id: str
    record_id: str
    client: str
    kind: str
    media_type: str
    size: int
    seq: int
    entry_hash: str
    sealed_at: str
    duplicate: bool


class DocumentListOut(BaseModel):
    record_id: str
    documents: list[DocumentOut]
    required: list[str]
    missing: list[str]
    textform: str


@router.post(
    "/v1/records/{record_id}/documents",
    tags=["documents"],
    status_code=201,
    response_model=DocumentOut,
    responses={
        200: {"model": DocumentOut, "description": "the same document again, or the same key"},
        **_problems(403, 404, 409, 410, 413, 415),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "the document, raw",
            "content": {t: _BINARY for t in _MEDIA},
        }
    },
    summary="Seal a Textform document with a record",
)
async def attach(
    request: Request,
    record_id: str,
    ctx: Ctx,
    principal: Caller,
    kind: Annotated[
        str,
        Query(
            description="what the document is: " + ", ".join(documents.KINDS),
            json_schema_extra={"enum": list(documents.KINDS)},
        ),
    ],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="a retry with the same key and request gets the same receipt",
        ),
    ] = None,
) -> Response:
    """Seal the body as a document of `kind`; 201 new, 200 for the same document again."""
    principal.require("dialer", "client")
    declared = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if declared not in documents.MEDIA_TYPES:
        return problems.problem(
            415,
            "unsupported-media-type",
            "the body must be the document, sent with its media type",
            hint=f"send Content-Type: one of {', '.join(_MEDIA)}",
            headers={"Accept-Post": ", ".join(_MEDIA)},
        )
    limit = documents.MAX_DOCUMENT_BYTES
    chunks: list[bytes] = []
    try:
        if not await _receive(request, chunks.extend, limit, ctx.settings.receive_timeout):
            return _too_large(limit)
    except _Stalled:
        return problems.problem(
            408,
            "request-timeout",
            f"the upload's body stalled: no bytes for {ctx.settings.receive_timeout:g} s",
            hint="send the whole document again (with the same Idempotency-Key)",
            headers={"Connection": "close"},
        )
    data = b"".join(chunks)
    request_hash = (
        hashlib.sha256(f"{kind}\n{declared}".encode()).hexdigest()[:32]
        + hashlib.sha256(data).hexdigest()[:32]
    )
    if idempotency_key is not None:
        earlier = await run_in_threadpool(
            idempotency.earlier_request, ctx, principal, idempotency_key
        )
        if earlier is not None:
            doc_id = idempotency.check_document_retry(earlier, request_hash, record_id)
            info = await run_in_threadpool(
                documents.document_info, ctx, record_id, doc_id, client=principal.client
            )
            return JSONResponse(info.to_dict(), 200)
    info = await run_in_threadpool(
        lambda: documents.attach_bytes(
            ctx,
            record_id,
            data,
            kind=kind,
            media_type=declared,
            client=principal.client,
            campaign=principal.campaign,
        )
    )
    if idempotency_key is not None:
        await run_in_threadpool(
            idempotency.remember_document,
            ctx,
            principal,
            idempotency_key,
            request_hash,
            record_id,
            info.document_id,
        )
    return JSONResponse(info.to_dict(), 200 if info.duplicate else 201)


@router.get(
    "/v1/records/{record_id}/documents",
    tags=["documents"],
    response_model=DocumentListOut,
    responses=_problems(403, 404),
    summary="A record's Textform documents and whether any required one is missing",
)
def list_documents(record_id: str, ctx: Ctx, principal: Caller) -> dict[str, Any]:
    """Receipts only (no content; not an access). `textform` is "pending" while a kind
    the campaign requires is missing."""
    principal.require("client")
    return documents.listing(ctx, record_id, client=principal.client).to_dict()


@router.get(
    "/v1/records/{record_id}/documents/{document_id}",
    tags=["documents"],
    response_class=Response,
    responses={
        200: {
            "description": "the document, byte-identical to what was attached",
            "content": {t: _BINARY for t in _MEDIA},
        },
        **_problems(403, 404, 410),
    },
    summary="A Textform document (logged)",
)
def get_document(
    record_id: str,
    document_id: str,
    ctx: Ctx,
    principal: Caller,
    reason: Annotated[
        str | None,
        Query(
            description="why it is opened (logged)",
            json_schema_extra={"enum": list(ACCESS_REASONS)},
        ),
    ] = None,
    case: Annotated[
        str | None, Query(pattern=CASE_REF, description="a case reference (logged)")
    ] = None,
) -> Response:
    """The document's bytes; logs `evidence.accessed` (`what: document`) first."""
    principal.require("client")
    if reason is not None and reason not in ACCESS_REASONS:
        raise InvalidRequest(
            [FieldError("query.reason", f"must be one of {', '.join(ACCESS_REASONS)}")],
            hint="give the reason code of the opening",
        )
    info, data = documents.open_document(
        ctx,
        record_id,
        document_id,
        principal=principal,
        client=principal.client,
        reason=reason,
        case=case,
    )
    return Response(data, media_type=info.media_type, headers=_NO_STORE)
