"""Keep-alive connections that end: clients spread over the workers again after a restart.

``serve --workers N`` lets the kernel hand each new TCP connection to one worker. A client
with a keep-alive connection stays on its worker for as long as the connection lives, so
when a worker is killed and replaced, every client it had moves to the survivors and the
new worker gets nothing until those connections end — which, for a busy dialer, is never.
So a connection is closed (``Connection: close`` on a response) once it has carried
``connection_max_requests`` requests or lived ``connection_max_seconds``; the client's next
request opens a new connection, which the kernel may give to any worker.

ASGI does not name connections; the client's address and port do, for as long as the
connection is open (uvicorn sets ``scope["client"]`` per connection).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[..., Any]

#: forget a connection not seen for this long (it ended without our ``close``)
_FORGET_AFTER = 600.0


class ConnectionLifetime:
    """ASGI middleware closing each HTTP connection after N requests or T seconds.

    ``limits`` returns ``(max_requests, max_seconds)``, read at each request so that the
    settings of the vault opened in the lifespan apply; 0 means no limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: Callable[[], tuple[int, float]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._limits = limits
        self._clock = clock
        self._seen: dict[tuple[str, int], tuple[float, int, float]] = {}
        self._next_sweep = 0.0

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or not client:
            await self.app(scope, receive, send)
            return
        close = self._count(tuple(client))

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                ]
                headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_closing if close else send)

    def _count(self, peer: tuple[str, int]) -> bool:
        """Count one request on ``peer``'s connection; True if it is the connection's last."""
        max_requests, max_seconds = self._limits()
        now = self._clock()
        self._sweep(now)
        opened, requests, _ = self._seen.get(peer, (now, 0, now))
        requests += 1
        last = (max_requests > 0 and requests >= max_requests) or (
            max_seconds > 0 and now - opened >= max_seconds
        )
        if last:
            self._seen.pop(peer, None)  # the next connection from this port starts afresh
        else:
            self._seen[peer] = (opened, requests, now)
        return last

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60
        stale = [p for p, (_, _, seen) in self._seen.items() if now - seen > _FORGET_AFTER]
        for peer in stale:
            del self._seen[peer]
