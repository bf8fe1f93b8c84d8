"""RFC 9457 problem details for every error the API returns.

``type`` is ``/problems/{kind}`` (documented in docs/api.md), ``title`` a short fixed text
per kind, ``detail`` the error's message (never PII: VaultError messages never carry any),
``hint`` what to do, and ``errors`` one ``{field, message}`` per broken rule of the input.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from vault.errors import BackendUnavailable, VaultError
from vault.errors import InvalidRequest as InvalidRequest  # the routes raise it from here

MEDIA_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    411: "Length required",
    413: "Content too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Invalid input",
    500: "Integrity or key failure",
    503: "Service unavailable",
}


def problem(
    status: int,
    kind: str,
    detail: str,
    *,
    hint: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{kind}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if hint:
        body["hint"] = hint
    if errors is not None:
        body["errors"] = errors
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="evidence-vault"', **(headers or {})}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


#: the services' advice names CLI commands; an HTTP caller gets the API's way instead
#: (pattern, replacement), first match wins per command
_HTTP_ADVICE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"`evidence-vault find`"), "`POST /v1/records/search`"),
    (re.compile(r"`evidence-vault client add`"), "`POST /v1/clients`"),
    (re.compile(r"`evidence-vault client list`"), "`GET /v1/clients`"),
    (re.compile(r"`evidence-vault campaign add`"), "`POST /v1/clients/{client}/campaigns`"),
    (re.compile(r"`evidence-vault hold list`"), "`GET /v1/holds`"),
    (re.compile(r"`evidence-vault token list`"), "`GET /v1/tokens`"),
    (re.compile(r"`evidence-vault person list`"), "`GET /v1/persons`"),
    (re.compile(r"`evidence-vault person approve (\S+)`"), r"`POST /v1/persons/\1/approve`"),
    (re.compile(r"`evidence-vault log keys?`"), "`GET /v1/log-keys`"),
    (
        re.compile(r"make one with `evidence-vault checkpoint`"),
        "the vault signs one within its checkpoint interval; ask again then",
    ),
]
#: a command left over is the operator's to run, on the vault host
_CLI_COMMAND = re.compile(r"`evidence-vault [^`]*`")


def http_hint(hint: str | None) -> str | None:
    """The hint with HTTP advice in place of CLI commands; an operator's command is
    marked as such (an HTTP caller cannot run it)."""
    if not hint:
        return hint
    for pattern, replacement in _HTTP_ADVICE:
        hint = pattern.sub(replacement, hint)
    if _CLI_COMMAND.search(hint):
        hint = f"ask the vault's operator: {hint}"
    return hint


async def vault_error(request: Request | None, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VaultError)
    if request is not None:
        request.state.failure = exc  # the access log names its kind
    errors = [{"field": e.field, "message": e.message} for e in getattr(exc, "errors", [])]
    hint = http_hint(exc.hint)
    headers = None
    if isinstance(exc, BackendUnavailable):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(
        exc.http_status, exc.kind, exc.message, hint=hint, errors=errors or None, headers=headers
    )


#: a body that is not JSON: named as a whole (FastAPI's location is a character offset)
NOT_JSON = "request body is not valid JSON"


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            errors.append({"field": "body", "message": NOT_JSON})
            continue
        # the location, never the offending value: it may be PII
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        errors.append({"field": where or "request", "message": str(err.get("msg", "invalid"))})
    return problem(
        422,
        "invalid-request",
        "the request is invalid",
        errors=errors,
        hint="correct the listed fields and send it again",
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        # Starlette names only the first route's methods; a path served by several
        # routes (GET and POST apart) allows the union of them
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem(exc.status_code, kind, str(exc.detail), headers=headers or None)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _leaf_routes(routes):
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI's included routers
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


async def unexpected_error(_request: Request, _exc: Exception) -> JSONResponse:
    # logged by the middleware with the request id; the body says nothing more
    return problem(500, "internal-error", "the server failed to handle the request")


# -- OpenAPI ------------------------------------------------------------------------------

#: the problem document as an inline schema (no ``$ref``): each error response documents
#: its own media type without a model
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` lists one entry per broken field rule.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`/problems/{kind}`"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "hint": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_DESCRIPTIONS = {
    400: "The body could not be parsed (`http-error`)",
    401: "Missing, unknown, expired or revoked token (`unauthenticated`)",
    403: "The token's role may not do this (`permission-denied`)",
    404: "No such resource, or one of another client (`not-found`)",
    409: "Clashes with what is stored (`conflict`)",
    410: "The record was crypto-shredded (`shredded`)",
    413: "The upload is above the size limit (`too-large`)",
    415: "Not an accepted audio media type (`unsupported-media-type`)",
    416: "The range lies outside the clip (`range-not-satisfiable`)",
    422: "Invalid input, one entry per field (`invalid-request`, `invalid-evidence`, "
    "`invalid-audio`)",
    503: "Database or object store unavailable (`backend-unavailable`; for an upload that "
    "may have been sealed, `outcome-unknown`), or too many uploads in progress "
    "(`busy`); retry after `Retry-After` seconds",
}


def openapi_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problem statuses a route answers (plus 422 and 503)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 422, 503}):
        response: dict[str, Any] = {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
        if status == 503:
            response["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
            }
        out[status] = response
    return out
