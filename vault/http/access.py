"""The access log: one line per request, and the answer to a request that failed.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware`` (``app.middleware
("http")``): that one runs every request in a task of its own and passes the request body
and the answer through memory streams, which cost a 1 MiB upload and a small receipt
request measurable CPU on the vault's shared cores (docs/performance.md). What it logs and
answers is unchanged.
"""

from __future__ import annotations

import logging
import os
import re
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request

from vault.errors import BackendUnavailable
from vault.http import problems
from vault.services import outages

log = logging.getLogger("vault.http")

Scope = dict[str, Any]
Message = dict[str, Any]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class AccessLog:
    """One line per request: method, path (never the query string), status, time to the
    answer's start, caller (``person:<handle>/<token id>``), and for a refusal or failure
    the problem's kind; ``X-Request-Id`` on every answer.

    Paths hold only ids; query strings and bodies may hold PII (phone numbers, names), so
    they are never logged. A failed request (5xx) logs at WARNING, in this one line; only
    a real bug (an unexpected exception) adds where it happened. An exception that reaches
    this layer before an answer started is answered here: an outage as a 503 the client
    retries, anything else as a 500 problem without its message.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        started = time.perf_counter()
        answered: list[float] = []
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answered.append(time.perf_counter())
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if answered:  # the answer is on its way: nothing else can be sent
                    raise
                response = await _failure_answer(Request(scope, receive), exc, request_id)
                await response(scope, receive, send_with_id)
        finally:
            _log_line(scope, status, (answered or [time.perf_counter()])[0] - started, request_id)


def _request_id(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when it is a plain token, else a fresh one."""
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            given = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(given):  # echoed in the log and the answer
                return given
            break
    return uuid.uuid4().hex[:16]


async def _failure_answer(request: Request, exc: Exception, request_id: str):
    down = outages.unavailable(exc)
    if down is not None:
        # an outage, not a bug: a 503 the client retries, no traceback
        return await problems.vault_error(request, down)
    # answered and logged here, not by the server: its traceback would print the
    # exception's text, and a database's (PostgreSQL's DETAIL) may quote a value
    _log_failure(exc, request_id)
    request.state.failure = None
    return await problems.unexpected_error(request, exc)


def _log_line(scope: Scope, status: int, seconds: float, request_id: str) -> None:
    state = scope.get("state") or {}
    failure = state.get("failure")
    if isinstance(failure, BackendUnavailable):
        scope["app"].state.outages.went_down(failure)
    who = state.get("principal")
    kind = failure.kind if failure is not None else "internal-error" if status == 500 else "-"
    log.log(
        logging.WARNING if status >= 500 else logging.INFO,
        "%s %s %d %.1fms %s pid=%d req=%s%s",
        scope["method"],
        scope["path"],
        status,
        seconds * 1000,
        f"{who.name}/{who.token_id}" if who else "-",  # the person and their token
        os.getpid(),
        request_id,
        f" kind={kind}" if status >= 400 else "",
    )


def _log_failure(exc: Exception, request_id: str) -> None:
    """The failure's type, SQLSTATE and where it happened; never its message or values."""
    where = " < ".join(
        f"{Path(f.filename).name}:{f.lineno}:{f.name}"
        for f in reversed(traceback.extract_tb(exc.__traceback__)[-8:])
    )
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    log.error(
        "unhandled %s%s req=%s at %s",
        type(exc).__name__,
        f" sqlstate={sqlstate}" if sqlstate else "",
        request_id,
        where,
    )
