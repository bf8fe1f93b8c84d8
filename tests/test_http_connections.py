"""Keep-alive connections end after N requests or T seconds (``Connection: close``).

Unit tests drive the middleware with a clock of their own; the last test holds a raw
keep-alive socket against a real ``evidence-vault serve`` and sees the server close it.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.support.vaults import make_vault
from tests.test_http_multiprocess import Server
from vault.http.connections import ConnectionLifetime


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _request(mw: ConnectionLifetime, peer=("10.0.0.1", 40000)) -> dict:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(mw({"type": "http", "client": peer}, receive, send))
    return dict(sent[0]["headers"])


def closes(headers: dict) -> bool:
    return headers.get(b"connection") == b"close"


def test_the_nth_request_closes_its_connection():
    mw = ConnectionLifetime(_ok, lambda: (3, 0))
    assert [closes(_request(mw)) for _ in range(7)] == [False, False, True] * 2 + [False]
    assert _request(mw)[b"x"] == b"1"  # the app's own headers are kept


def test_an_old_connection_closes_on_its_next_request():
    clock = Clock()
    mw = ConnectionLifetime(_ok, lambda: (0, 300.0), clock)
    assert not closes(_request(mw))
    clock.now += 299
    assert not closes(_request(mw))
    clock.now += 1
    assert closes(_request(mw))
    assert not closes(_request(mw))  # a new connection from the same port starts afresh


def test_connections_are_counted_apart_and_zero_means_never():
    mw = ConnectionLifetime(_ok, lambda: (2, 0))
    a, b = ("10.0.0.1", 1), ("10.0.0.2", 1)
    assert not closes(_request(mw, a)) and not closes(_request(mw, b))
    assert closes(_request(mw, a)) and closes(_request(mw, b))
    never = ConnectionLifetime(_ok, lambda: (0, 0))
    assert not any(closes(_request(never)) for _ in range(50))


def _get(sock: socket.socket, port: int) -> bytes:
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("max_requests", [3, 0])
def test_a_real_server_closes_a_keep_alive_connection_after_n_requests(tmp_path, max_requests):
    make_vault(tmp_path / "vault").close()
    env = {"EVIDENCE_VAULT_CONNECTION_MAX_REQUESTS": str(max_requests)}
    server = Server(tmp_path / "vault", env, tmp_path / "server.log", workers=1)
    try:
        server.wait_ready()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        answers = [_get(sock, server.port) for _ in range(max_requests or 5)]
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
        marked = [b"connection: close" in a.lower() for a in answers]
        if max_requests:
            assert marked == [False, False, True]
            assert sock.recv(1) == b""  # the server has closed its end
        else:
            assert not any(marked)
            assert _get(sock, server.port).startswith(b"HTTP/1.1 200")  # still open
        sock.close()
    finally:
        server.stop()
