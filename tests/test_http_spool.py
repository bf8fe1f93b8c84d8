"""A `serve` worker killed mid-upload leaves no plaintext; its log holds no PII.

Real ``evidence-vault serve --workers 2`` on PostgreSQL (local object store): half of a
clip is sent, the worker holding the connection is killed with SIGKILL, and then neither
the vault directory nor the system temp directory holds any piece of the clip. A named
spool file a crashed worker left (as on a file system without ``O_TMPFILE``) is gone after
a restart. Requests with a NUL, a lone surrogate and a 5,000-digit Range are answered
4xx, and the server's log (uvicorn's stderr, tracebacks included) names no value.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support.vaults import CLIENT, PgDatabase, clip, make_vault, order_meta, person_token
from tests.support.vaults import postgres_available as _pg_reason
from tests.test_http_multiprocess import Server, holder, server_side_inode, upload_headers

pytestmark = pytest.mark.postgres

MAX_SCANNED = 64 * 1024 * 1024


@pytest.fixture
def pg_vault(tmp_path):
    reason = _pg_reason()
    if reason:
        pytest.skip(reason)
    pg = PgDatabase()
    vault = make_vault(tmp_path / "vault", database_url=pg.url)
    try:
        yield vault
    finally:
        vault.close()
        pg.drop()


def _files(root: Path):
    for dirpath, _dirs, names in os.walk(root, onerror=lambda _e: None):
        for name in names:
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink() and path.stat().st_size < MAX_SCANNED:
                    yield path


def _holding(roots: list[Path], needles: list[bytes]) -> list[Path]:
    found = []
    for root in roots:
        for path in _files(root):
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                if any(n in data for n in needles):
                    found.append(path)
    return found


def test_killed_worker_leaves_no_plaintext_and_its_log_no_pii(pg_vault, tmp_path):
    vault = pg_vault
    home = vault.settings.home
    _, secret = person_token(vault.context, "dialer", CLIENT)
    _, reading = person_token(vault.context, "client", CLIENT)
    auth = {"Authorization": f"Bearer {secret}"}
    reader = {"Authorization": f"Bearer {reading}"}
    server = Server(home, {}, tmp_path / "server.log")
    try:
        server.wait_ready()
        # a clip that is nowhere else on this machine: random bytes after a WAV header
        body = clip(tmp_path).read_bytes()[:44] + os.urandom(4 * 1024 * 1024)
        sent = body[: len(body) // 2]
        needles = [sent[i : i + 48] for i in range(1024, len(sent), len(sent) // 16)]
        headers = upload_headers(auth, order_meta(1))
        sock = socket.create_connection(("127.0.0.1", server.port))
        try:
            request = (
                f"POST /v1/records HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                + f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(request.encode() + sent)
            deadline = time.monotonic() + 10
            victim = None
            while victim is None:
                assert time.monotonic() < deadline, "no worker took the connection"
                inode = server_side_inode(server.port, sock.getsockname()[1])
                victim = inode and holder(server.workers(), inode)
                time.sleep(0.05)
            # the worker has spooled what it read: wait until its spool file holds bytes
            deadline = time.monotonic() + 10
            while not _spooling(victim, home / "spool"):
                assert time.monotonic() < deadline, "the worker never spooled the upload"
                time.sleep(0.05)
            os.kill(victim, signal.SIGKILL)
            sock.settimeout(10)
            with contextlib.suppress(OSError):
                assert sock.recv(1024) == b""
        finally:
            sock.close()
        deadline = time.monotonic() + 10
        while not _dead(victim):  # its descriptors are closed once it is a zombie or gone
            assert time.monotonic() < deadline
            time.sleep(0.05)

        roots = [home, Path(tempfile.gettempdir())]
        assert _holding(roots, needles) == []  # no piece of the clip in clear, anywhere
        assert sorted(os.listdir(home / "spool")) == []

        # PII-bearing refusals on the live server: 4xx, and nothing in its log
        with httpx.Client(base_url=server.url, timeout=30) as c:
            reason = {"case_ref": "C-1", "reason": "Max Mustermann\x00 1980-01-31"}
            assert (
                c.post("/v1/records/rec_x/disputes", json=reason, headers=reader).status_code == 422
            )
            search = {"order_ref": "Mustermann\x00", "agent": "+4915112345678\x00"}
            assert c.post("/v1/records/search", json=search, headers=reader).status_code == 422
            holds = c.get("/v1/holds", params={"record": "Mustermann\x00"}, headers=reader)
            assert holds.status_code == 422
            surrogate = '{"agent": "Mustermann \\ud800"}'
            h = {**reader, "Content-Type": "application/json"}
            assert c.post("/v1/records/search", content=surrogate, headers=h).status_code == 422
            r = c.get(
                "/v1/records/rec_x/audio", headers={**reader, "Range": "bytes=" + "9" * 5000 + "-"}
            )
            assert 400 <= r.status_code < 500

        # a named spool file a crashed worker left (no O_TMPFILE there): swept on restart
        leftover = home / "spool" / "upload-999999999-deadbeef"
        leftover.write_bytes(sent[:4096])
        leftover.chmod(0o600)
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    for value in ("Mustermann", "1980-01-31", "+4915112345678", "parameters:"):
        assert value not in log, value
    assert "Traceback" not in log

    again = Server(home, {}, tmp_path / "server2.log")
    try:
        again.wait_ready()
        assert os.listdir(home / "spool") == []
    finally:
        again.stop()


def _spooling(pid: int, spool: Path) -> bool:
    """Whether process ``pid`` has a non-empty file open in the spool directory."""
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith(str(spool)) and fd.stat().st_size > 0:
                    return True
    return False


def _dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
