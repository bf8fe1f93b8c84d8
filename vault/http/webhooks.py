"""HTTP routes: recording-ready webhooks of a CPaaS (:mod:`vault.services.cpaas`).

No bearer token: the request signature (``X-Twilio-Signature``, keyed with the client's
webhook secret) is the authentication, and the client in the path picks the secret, so a
callback can only ever reach the tenant whose secret signed it. The body is a small form
(read whole, bounded); the recording is fetched later, off the request: 202.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from vault.errors import FieldError
from vault.http import problems
from vault.http.deps import SLUG, Ctx
from vault.http.problems import InvalidRequest
from vault.services import cpaas

router = APIRouter()

#: a recording callback is a few hundred bytes; anything near this is not one
MAX_FORM_BYTES = 64 * 1024
_FORM = "application/x-www-form-urlencoded"


class AcceptedOut(BaseModel):
    job_id: str
    duplicate: bool
    state: str


@router.post(
    "/v1/webhooks/twilio/{client}/{campaign}",
    tags=["webhooks"],
    status_code=202,
    response_model=AcceptedOut,
    responses={
        200: {"model": AcceptedOut, "description": "a repeat of a callback already accepted"},
        **problems.openapi_responses(401, 403, 404, 413, 415),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {_FORM: {"schema": {"type": "object", "additionalProperties": True}}},
        }
    },
    summary="A CPaaS recording-ready callback (Twilio style); the vault fetches the clip",
)
async def twilio_recording(
    request: Request,
    ctx: Ctx,
    client: Annotated[str, Path(pattern=SLUG, max_length=64)],
    campaign: Annotated[str, Path(pattern=SLUG, max_length=64)],
    signature: Annotated[
        str | None,
        Header(
            alias="X-Twilio-Signature",
            max_length=200,
            pattern=r"^[A-Za-z0-9+/=]+$",
            description="base64 HMAC-SHA1 of the URL and the sorted form parameters",
        ),
    ] = None,
) -> JSONResponse:
    """Accept a recording status callback: 202 and a job id; the fetch runs later."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
        return problems.problem(
            415,
            "unsupported-media-type",
            "the callback must be a form",
            hint=f"send Content-Type: {_FORM}",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return problems.problem(
                413, "too-large", f"the callback is larger than {MAX_FORM_BYTES} bytes"
            )
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidRequest([FieldError("body", "is not UTF-8")]) from None
    url = _signed_url(request, ctx.settings.cpaas.public_url)
    accepted = await run_in_threadpool(
        cpaas.accept,
        ctx,
        client,
        campaign,
        url,
        request.query_params.multi_items(),
        form,
        signature,
    )
    return JSONResponse(
        {"job_id": accepted.job_id, "duplicate": accepted.duplicate, "state": accepted.state},
        status_code=200 if accepted.duplicate else 202,
    )


def _signed_url(request: Request, public_url: str) -> str:
    """The URL as the CPaaS called it: ``public_url`` + path + query behind a proxy."""
    if not public_url:
        return str(request.url)
    query = request.url.query
    return public_url + request.url.path + (f"?{query}" if query else "")
