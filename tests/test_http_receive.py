"""A stalled upload is cut off (408, its spool file gone); past the upload cap, 503 busy.

Real ``evidence-vault serve`` (one worker, the embedded database) with a 1 s receive
timeout and a cap of one upload at a time; the stalling client is a raw socket that sends
the headers and half of the body, then nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.vaults import CLIENT, clip, make_vault, order_meta, person_token
from tests.test_http_multiprocess import Server, upload_headers


@pytest.fixture
def server(tmp_path):
    vault = make_vault(tmp_path / "vault")
    _, secret = person_token(vault.context, "dialer", CLIENT)
    vault.close()
    env = {"EVIDENCE_VAULT_RECEIVE_TIMEOUT": "1", "EVIDENCE_VAULT_MAX_UPLOADS": "1"}
    srv = Server(tmp_path / "vault", env, tmp_path / "server.log", workers=1)
    try:
        srv.wait_ready()
        srv.auth = {"Authorization": f"Bearer {secret}"}
        srv.home = tmp_path / "vault"
        yield srv
    finally:
        srv.stop()


def _spool_files(pid: int, spool: Path) -> int:
    """How many files in the spool directory process ``pid`` holds open."""
    held = 0
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith(str(spool)):
                    held += 1
    return held


def _stall(server, body: bytes, meta: dict) -> socket.socket:
    """Send the headers and half of ``body``; then nothing more."""
    headers = upload_headers(server.auth, meta)
    sock = socket.create_connection(("127.0.0.1", server.port))
    request = (
        f"POST /v1/records HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(request.encode() + body[: len(body) // 2])
    return sock


def _answer(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_a_stalled_upload_gets_408_and_leaves_no_spool_file(server, tmp_path):
    body = clip(tmp_path, seconds=4.0).read_bytes()
    (worker,) = server.workers() or [server.proc.pid]  # one worker: uvicorn itself
    sock = _stall(server, body, order_meta(0))
    try:
        deadline = time.monotonic() + 10
        while _spool_files(worker, server.home / "spool") == 0:
            assert time.monotonic() < deadline, "the worker never spooled the upload"
            time.sleep(0.02)
        answer = _answer(sock)  # the server answers, then closes the connection
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"/problems/request-timeout" in answer
    assert _spool_files(worker, server.home / "spool") == 0
    assert os.listdir(server.home / "spool") == []
    # the worker goes on serving
    with httpx.Client(timeout=30) as c:
        r = c.post(
            server.url + "/v1/records",
            content=body,
            headers=upload_headers(server.auth, order_meta(0)),
        )
    assert r.status_code == 201, r.text


def test_past_the_upload_cap_an_upload_gets_503_busy_with_retry_after(server, tmp_path):
    body = clip(tmp_path).read_bytes()
    (worker,) = server.workers() or [server.proc.pid]  # one worker: uvicorn itself
    sock = _stall(server, body, order_meta(0))  # holds the one upload slot
    try:
        deadline = time.monotonic() + 10
        while _spool_files(worker, server.home / "spool") == 0:
            assert time.monotonic() < deadline, "the worker never spooled the upload"
            time.sleep(0.02)
        with httpx.Client(timeout=30) as c:
            busy = c.post(
                server.url + "/v1/records",
                content=body,
                headers=upload_headers(server.auth, order_meta(1)),
            )
        assert busy.status_code == 503, busy.text
        assert busy.json()["type"] == "/problems/busy"
        assert int(busy.headers["Retry-After"]) >= 1
        assert _answer(sock).startswith(b"HTTP/1.1 408 ")  # the slot is freed
    finally:
        sock.close()
    with httpx.Client(timeout=30) as c:
        r = c.post(
            server.url + "/v1/records",
            content=body,
            headers=upload_headers(server.auth, order_meta(1)),
        )
    assert r.status_code == 201, r.text


def test_the_http_settings_come_from_vault_toml_or_the_environment(tmp_path):
    from dataclasses import replace

    from vault.config import ConfigError, Settings, apply_env, load_settings

    settings = replace(Settings(home=tmp_path), receive_timeout=5, max_uploads=3)
    (tmp_path / "vault.toml").write_text(settings.to_toml())
    loaded = load_settings(tmp_path, env={})
    assert (loaded.receive_timeout, loaded.max_uploads) == (5, 3)
    env = apply_env(loaded, {"EVIDENCE_VAULT_CONNECTION_MAX_REQUESTS": "7"})
    assert env.connection_max_requests == 7 and env.connection_max_seconds == 60
    for var, value in [
        ("EVIDENCE_VAULT_MAX_UPLOADS", "0"),
        ("EVIDENCE_VAULT_RECEIVE_TIMEOUT", "soon"),
        ("EVIDENCE_VAULT_CONNECTION_MAX_SECONDS", "-1"),
    ]:
        with pytest.raises(ConfigError, match=var):
            apply_env(loaded, {var: value})
