"""What every router depends on: the open vault, the caller, and the shared path patterns.

A leaf of :mod:`vault.http`: the routers import from here, :mod:`vault.http.app` imports
the routers, and nothing here imports a router or the app.

Identifier patterns come from :mod:`vault.inputs` (one rule for the HTTP schema, the
evidence parser and the services), anchored with ``^...$`` for JSON Schema tools. Pydantic
matches them like ``re.search``, and ``$`` there also matches before a final newline: the
guard (:mod:`vault.http.guard`) refuses every control character before a route runs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vault import identifiers
from vault.services.context import VaultContext
from vault.services.tokens import Principal, authenticate

#: client and campaign names
SLUG = identifiers.SLUG.pattern
#: person handles
HANDLE = identifiers.HANDLE.pattern
#: a hold's case reference
CASE_REF = identifiers.CASE_REF.pattern
#: token ids are ``tk`` + hex; anything else cannot name one
TOKEN_ID = r"^[A-Za-z0-9_-]{1,40}$"

_bearer = HTTPBearer(auto_error=False, description="An API token: `evt1_...`")


async def get_ctx(request: Request) -> VaultContext:
    # async: FastAPI runs a plain function dependency in the thread pool, one more trip
    # per request (and a wait for the interpreter lock) to read an attribute
    return request.app.state.ctx


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller (a database read: FastAPI runs it in the thread pool)."""
    ctx = request.app.state.ctx
    principal = authenticate(ctx, credentials.credentials if credentials else None)
    request.state.principal = principal  # the access log names the caller
    return principal


Ctx = Annotated[VaultContext, Depends(get_ctx)]
Caller = Annotated[Principal, Depends(get_principal)]
ClientId = Annotated[str, Path(description="The client (tenant) id", pattern=SLUG, max_length=64)]
