"""The ASGI application: authentication, problem details, logging without PII, health.

Endpoints are plain ``def`` functions where they do blocking work (database, storage,
crypto): FastAPI runs them in its thread pool, so one slow request never stalls the
event loop. Several worker processes share nothing but the database and the object
store: every guarantee (one record per call segment, one log without forks) is enforced
there, not in process memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vault import __version__
from vault.errors import VaultError
from vault.http import admin, documents, guard, ledger, problems, records, webhooks
from vault.http.access import AccessLog
from vault.http.connections import ConnectionLifetime
from vault.http.deps import Ctx
from vault.http.memory import cap_malloc_arenas, fix_mmap_threshold
from vault.http.proxies import TrustedProxies
from vault.services import credentials, outages
from vault.services.checkpoints import CheckpointTimer
from vault.services.context import VaultContext, open_from_environment, ready_checks
from vault.services.cpaas import PullWorker
from vault.services.timestamps import TimestampTimer
from vault.web import desk, docs


def create_app(ctx: VaultContext | None = None) -> FastAPI:
    """The API around an open vault (``ctx``), or around the one EVIDENCE_VAULT_HOME names."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = ctx is None
        if own:
            app.state.ctx = open_from_environment()
        vault_ctx = app.state.ctx
        credentials.ready_for_sign_in()  # before the desk's first sign-in, not on it
        # the unsigned tail of every log is signed within checkpoint_seconds, appends or not
        timer = CheckpointTimer(vault_ctx, vault_ctx.settings.checkpoint_seconds).start()
        # ... and time-stamped by the configured TSAs, never on an upload's path
        stamper = TimestampTimer(vault_ctx, vault_ctx.settings.timestamp_interval).start()
        # recordings announced by CPaaS webhooks are fetched here, never on the request
        puller = PullWorker(vault_ctx).start() if vault_ctx.settings.cpaas.clients else None
        try:
            yield
        finally:
            if puller is not None:
                puller.stop()
            stamper.stop()
            timer.stop()
            app.state.outages.stop()
            if own:
                vault_ctx.close()

    app = FastAPI(
        title="evidence-vault",
        version=__version__,
        description="Sealed, hash-chained evidence of recorded order segments. "
        "Errors are RFC 9457 problem details (`application/problem+json`).",
        lifespan=lifespan,
        dependencies=[Depends(guard.refuse_bad_text)],
        docs_url=None,  # vault.web.docs serves /docs from vendored files, not a CDN
        redoc_url=None,
    )
    if ctx is not None:
        app.state.ctx = ctx
    app.state.outages = outages.OutageLog(lambda backend: outages.answers(app.state.ctx, backend))
    app.add_exception_handler(VaultError, problems.vault_error)
    app.add_exception_handler(RequestValidationError, problems.validation_error)
    app.add_exception_handler(StarletteHTTPException, problems.http_error)
    app.add_exception_handler(Exception, problems.unexpected_error)
    app.add_middleware(AccessLog)
    app.add_middleware(ConnectionLifetime, limits=lambda: _connection_limits(app))
    # outermost (added last): every other layer sees the client behind a trusted proxy
    app.add_middleware(TrustedProxies, trusted=lambda: _trusted_proxies(app))
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["health"])
    app.include_router(records.router)
    app.include_router(documents.router)
    app.include_router(ledger.router)
    app.include_router(admin.router)
    app.include_router(webhooks.router)
    app.include_router(desk.router)  # the escalation desk (HTML), beside the JSON API
    docs.install(app)
    return app


def _connection_limits(app: FastAPI) -> tuple[int, float]:
    ctx = getattr(app.state, "ctx", None)
    if ctx is None:
        return 0, 0.0
    return ctx.settings.connection_max_requests, ctx.settings.connection_max_seconds


def _trusted_proxies(app: FastAPI) -> tuple[str, ...] | None:
    ctx = getattr(app.state, "ctx", None)
    return ctx.settings.web_trusted_proxies if ctx is not None else None


def from_environment() -> FastAPI:
    """The factory ``evidence-vault serve`` gives uvicorn: each worker opens the vault."""
    cap_malloc_arenas()
    fix_mmap_threshold()
    return create_app()


def healthz() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


def readyz(ctx: Ctx) -> JSONResponse:
    """Readiness: the metadata database and the object store answer."""
    checks = ready_checks(ctx)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
