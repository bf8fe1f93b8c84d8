"""Reverse proxies the operator named in ``[web] trusted_proxies``: only from them are
``X-Forwarded-For`` and ``X-Forwarded-Proto`` believed.

Behind a TLS-terminating proxy every request comes from the proxy's address over plain
HTTP. Without this the desk's per-address sign-in lock would lock everyone at once after
five failures from anyone, and ``secure_cookie = "auto"`` could not see that the browser
used https. The parsing is uvicorn's (the right-most forwarded address that is not a
trusted proxy is the client); a request from any other peer keeps its own address, so a
client cannot pick its address by sending the header itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


class TrustedProxies:
    """ASGI middleware, built on the first request: only then are the settings known (each
    ``serve`` worker opens the vault in the app's lifespan)."""

    def __init__(self, app: ASGIApp, trusted: Callable[[], tuple[str, ...] | None]) -> None:
        self.app = app
        self._trusted = trusted
        self._inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if self._inner is None:
            hosts = self._trusted()
            if hosts is None:  # no vault open yet: nobody is trusted, nothing is kept
                await self.app(scope, receive, send)
                return
            self._inner = self._wrap(hosts)
        await self._inner(scope, receive, send)

    def _wrap(self, hosts: tuple[str, ...]) -> ASGIApp:
        if not hosts:
            return self.app
        return cast(ASGIApp, ProxyHeadersMiddleware(self.app, list(hosts)))  # type: ignore[arg-type]
