"""Loopback network faults for the agent's tests: a TCP proxy that drops, stalls,
truncates or holds connections (seeded), and an HTTP proxy that rewrites receipts."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

PASS, DROP, STALL, TRUNCATE, HOLD = "pass", "drop", "stall", "truncate", "hold"
PAUSE = "pause"


class TcpProxy:
    """127.0.0.1:port → 127.0.0.1:target; ``choose()`` picks each connection's fault.

    drop: closed at once. stall: nothing forwarded for ``stall_seconds``, then closed.
    truncate: the request goes through, the answer is cut after a few bytes. hold: the
    request goes through, the answer is withheld until the proxy stops. pause: only the
    first ``pause_after`` bytes of the request go through, then nothing more (the server
    sits in the middle of the body); the connection ends when the server's end does.
    ``upstreams``: the local port of each connection to the target, in order.
    ``max_life`` (seconds): a passing connection is cut after a random life of up to this
    (seeded with ``flaky``), wherever its requests are — so a client's kept-alive
    connection meets faults too, not only its first few connections.
    """

    def __init__(self, target: int, choose: Callable[[], str] = lambda: PASS) -> None:
        self.target = target
        self.choose = choose
        self.stall_seconds = 1.5
        self.pause_after = 256 * 1024
        self.max_life: float | None = None
        self.cut = 0  # connections cut by max_life
        self._rng = random.Random(0)
        self.upstreams: list[int] = []
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    @classmethod
    def flaky(cls, target: int, seed: int, weights: dict[str, float]) -> TcpProxy:
        rng = random.Random(seed)
        kinds, w = list(weights), list(weights.values())
        proxy = cls(target, lambda: rng.choices(kinds, w)[0])
        proxy._rng = random.Random(seed + 1)
        return proxy

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            fault = self.choose()
            self.seen.append(fault)
            threading.Thread(target=self._serve, args=(client, fault), daemon=True).start()

    def _cut(self, client: socket.socket, upstream: socket.socket) -> None:
        self.cut += 1
        _shut(client, upstream)

    def _serve(self, client: socket.socket, fault: str) -> None:
        with contextlib.closing(client):
            if fault == DROP:
                return
            if fault == STALL:
                self._stop.wait(self.stall_seconds)
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=60)
            except OSError:
                return
            self.upstreams.append(upstream.getsockname()[1])
            with contextlib.closing(upstream):
                if fault == PAUSE:
                    args = (client, upstream, self.pause_after)
                    threading.Thread(target=_forward_some, args=args, daemon=True).start()
                    _pump(upstream, client, None)  # ends when the server's end goes
                    return
                up = threading.Thread(target=_pump, args=(client, upstream, None), daemon=True)
                up.start()
                if fault == PASS and self.max_life is not None:
                    life = self._rng.uniform(0.1, self.max_life)
                    timer = threading.Timer(life, self._cut, args=(client, upstream))
                    timer.daemon = True
                    timer.start()
                if fault == HOLD:
                    self._stop.wait()
                    return
                limit = random.Random(id(client)).randint(1, 200) if fault == TRUNCATE else None
                _pump(upstream, client, limit)


def _pump(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
    sent = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if limit is not None and sent + len(data) >= limit:
                dst.sendall(data[: max(0, limit - sent)])
                break
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _shut(*socks: socket.socket) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def _forward_some(src: socket.socket, dst: socket.socket, limit: int) -> None:
    """Forward the first ``limit`` bytes, then stop reading (the connection stays open)."""
    sent = 0
    with contextlib.suppress(OSError):
        while sent < limit:
            data = src.recv(min(65536, limit - sent))
            if not data:
                return
            dst.sendall(data)
            sent += len(data)


class ReceiptRewriter:
    """An HTTP proxy to ``upstream`` that passes ``rewrite`` every upload answer's JSON."""

    def __init__(self, upstream: str, rewrite: Callable[[dict], dict]) -> None:
        client = httpx.Client(base_url=upstream, timeout=60)

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                r = client.request(self.command, self.path, headers=headers, content=body)
                out = r.content
                if self.command == "POST" and r.status_code < 300:
                    out = json.dumps(rewrite(r.json())).encode()
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _relay

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_for(condition: Callable[[], object], timeout: float = 90, what: str = "it") -> object:
    """Poll until ``condition()`` is truthy; a guard against hanging, not a timed check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")
