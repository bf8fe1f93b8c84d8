"""`evidence-vault serve --workers 2` on PostgreSQL + SeaweedFS, as a real subprocess.

Many concurrent uploads (distinct calls, repeats, repeats under the same
``Idempotency-Key``) land on both worker processes: every call segment is stored exactly
once, the log has no gap and no fork, and verify is clean (a duplicate in flight waits
for the call segment's claim and uploads nothing). Then one worker is killed with
SIGKILL while it receives an upload: no row and no entry of that upload exist (only its
objects may remain, as orphans that verify reports), and the client's retry succeeds on
the restarted (or the other) worker.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlmodel import func, select

from tests.support.vaults import CLIENT, PgDatabase, clip, make_vault, order_meta, person_token
from tests.support.vaults import postgres_available as _pg_reason
from vault.config import S3Settings
from vault.db import LogEntry, LogHead, Record, read_session
from vault.ledger import GENESIS_PREV, entry_hash, parse_entry

pytestmark = [pytest.mark.postgres, pytest.mark.seaweedfs]

DISTINCT, REPEATED, SAME_KEY = 40, 10, 5  # calls; of them repeated; of those, same key
THREADS = 16


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Server:
    """The CLI's ``serve`` in its own session; its log goes to a file."""

    def __init__(self, home: Path, env: dict, log: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        exe = Path(sys.executable).parent / "evidence-vault"
        self._out = log.open("wb")
        args = ["--vault", str(home), "serve", "--port", str(self.port), "--workers", str(workers)]
        self.proc = subprocess.Popen(
            [str(exe), *args],
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers_expected = workers

    def workers(self) -> list[int]:
        """The live uvicorn worker processes (spawned children, not the resource tracker)."""
        return [p for p in children(self.proc.pid) if "spawn_main" in cmdline(p)]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            ready = self.log.read_text(errors="replace").count("Application startup complete")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(self.url + "/readyz", timeout=2)
                if r.status_code == 200 and ready >= self.workers_expected:
                    return
            time.sleep(0.2)
        raise AssertionError("the server did not become ready:\n" + self.tail())

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # uvicorn's supervisor stops its workers
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


@pytest.fixture
def served(tmp_path, seaweedfs, seaweedfs_bucket):
    reason = _pg_reason()
    if reason:
        pytest.skip(reason)
    pg = PgDatabase()
    s3 = S3Settings(
        prefix="mp-" + secrets.token_hex(6),
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        region="us-east-1",
        access_key_id=seaweedfs.access_key,
        secret_access_key=seaweedfs.secret_key,
        object_lock=True,
    )
    vault = make_vault(tmp_path / "vault", storage="s3", database_url=pg.url, s3=s3)
    _, secret = person_token(vault.context, "dialer", CLIENT)
    env = {
        "AWS_ACCESS_KEY_ID": seaweedfs.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweedfs.secret_key,
    }
    server = Server(vault.settings.home, env, tmp_path / "server.log")
    try:
        server.wait_ready()
        yield vault, server, {"Authorization": f"Bearer {secret}"}
    finally:
        server.stop()
        vault.close()
        pg.drop()


# --- helpers ------------------------------------------------------------------------------


def meta_header(meta: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(meta).encode()).rstrip(b"=").decode()


def upload_headers(auth: dict, meta: dict, key: str | None = None) -> dict:
    h = {**auth, "Content-Type": "audio/wav", "Evidence-Metadata": meta_header(meta)}
    if key:
        h["Idempotency-Key"] = key
    return h


def post(url: str, headers: dict, body: bytes) -> httpx.Response:
    # a new connection per upload, so the kernel spreads them over both workers
    with httpx.Client(timeout=60) as c:
        return c.post(url + "/v1/records", content=body, headers=headers)


def counts(vault) -> tuple[int, int]:
    with read_session(vault.context.engine) as s:
        records = s.exec(select(func.count()).select_from(Record)).one()
        entries = s.exec(
            select(func.count()).select_from(LogEntry).where(LogEntry.client_id == CLIENT)
        ).one()
    return records, entries


def assert_linear(vault) -> int:
    with read_session(vault.context.engine) as s:
        rows = list(
            s.exec(select(LogEntry).where(LogEntry.client_id == CLIENT).order_by(LogEntry.seq))
        )
        head = s.get(LogHead, CLIENT)
        seqs = sorted(s.exec(select(Record.seq)))
    assert [r.seq for r in rows] == list(range(len(rows)))  # no gap, no duplicate seq
    prev = GENESIS_PREV
    for r in rows:  # one chain, no fork
        entry = parse_entry(bytes(r.entry))
        assert entry["prev"] == prev
        prev = entry_hash(bytes(r.entry))
    assert (head.size, head.head_hash) == (len(rows), prev)
    sealed = [r.seq for r in rows if r.type == "evidence.sealed"]
    assert seqs == sealed  # one row per sealed entry, each at its entry
    return len(rows)


def assert_verified(vault) -> list:
    """verify finds nothing but orphans (objects of a killed upload)."""
    report = vault.verify()
    assert {f.kind for f in report.findings} <= {"orphan"}, [f.to_dict() for f in report.findings]
    return [f for f in report.findings if f.kind == "orphan"]


def bytes_read(pids: list[int]) -> dict[int, int]:
    """``rchar`` of each process: every byte it read, sockets included."""
    out = {}
    for pid in pids:
        io = Path(f"/proc/{pid}/io").read_text()
        out[pid] = int(re.search(r"^rchar: (\d+)", io, re.M).group(1))
    return out


def server_side_inode(port: int, client_port: int) -> int | None:
    """The socket inode of the server's end of our connection (from /proc/net/tcp)."""
    want_local, want_remote = f":{port:04X}", f":{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[1].endswith(want_local) and f[2].endswith(want_remote) and f[9] != "0":
            return int(f[9])
    return None


def holder(workers: list[int], inode: int) -> int | None:
    target = f"socket:[{inode}]"
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return pid
    return None


# --- the test -------------------------------------------------------------------------------


def test_two_workers_concurrent_uploads_and_a_killed_worker(served, tmp_path):
    vault, server, auth = served
    clips = {n: clip(tmp_path, seed=n).read_bytes() for n in range(DISTINCT + 1)}
    plan = []  # (call, idempotency key): every call once, then repeats of the first ten
    for n in range(DISTINCT):
        plan.append((n, f"key-{n}" if n < SAME_KEY else None))
    for n in range(REPEATED):
        plan.append((n, f"key-{n}" if n < SAME_KEY else None))
    random.Random(7).shuffle(plan)

    def one(job):
        n, key = job
        r = post(server.url, upload_headers(auth, order_meta(n), key), clips[n])
        return n, r.status_code, r.json(), r.headers.get("x-request-id")

    workers = server.workers()
    assert len(workers) == 2
    read_before = bytes_read(workers)
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(one, plan))
    read = {pid: n - read_before[pid] for pid, n in bytes_read(workers).items()}

    by_call: dict[int, list] = {}
    for n, status, body, _ in results:
        assert status in (200, 201), body
        by_call.setdefault(n, []).append((status, body))
    assert sorted(by_call) == list(range(DISTINCT))
    for n, answers in by_call.items():
        # exactly one upload created the record; every repeat answered with its receipt
        assert sorted(s for s, _ in answers) == [200] * (len(answers) - 1) + [201], n
        assert len({b["record_id"] for _, b in answers}) == 1
        assert len({b["seq"] for _, b in answers}) == 1
        assert [b["duplicate"] for s, b in answers if s == 201] == [False]
    records, _ = counts(vault)
    assert records == DISTINCT
    assert assert_linear(vault) >= DISTINCT
    report = vault.verify()
    assert report.clean, [f.to_dict() for f in report.findings]

    # both workers took uploads: each read at least a few clips' bytes off its sockets
    # (the access log's pid= would say so too, but workers started by uvicorn's spawn do
    # not inherit the CLI's logging set-up: the vault.http lines are not written)
    assert all(n > 3 * len(clips[0]) for n in read.values()), read

    # -- kill the worker that is receiving an upload --------------------------------------
    n = DISTINCT  # a new call
    body = clips[n]
    headers = upload_headers(auth, order_meta(n))
    before = counts(vault)
    sock = socket.create_connection(("127.0.0.1", server.port))
    try:
        request = (
            f"POST /v1/records HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(request.encode() + body[: len(body) // 2])  # half of it, then stall
        deadline = time.monotonic() + 10
        victim = None
        while victim is None:
            assert time.monotonic() < deadline, "no worker took the connection"
            inode = server_side_inode(server.port, sock.getsockname()[1])
            victim = inode and holder(server.workers(), inode)
            time.sleep(0.05)
        time.sleep(0.3)  # let the worker get into the upload's body
        os.kill(victim, signal.SIGKILL)
        sock.settimeout(10)
        with contextlib.suppress(OSError):
            assert sock.recv(1024) == b""  # the connection died with the worker
    finally:
        sock.close()
    assert counts(vault) == before  # no row, no entry of the killed upload

    # the client retries until a worker answers: the record is created now, once
    deadline = time.monotonic() + 30
    while True:
        try:
            r = post(server.url, headers, body)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert r.status_code == 201, r.text
    assert r.json()["duplicate"] is False
    assert counts(vault)[0] == before[0] + 1
    assert assert_linear(vault) == before[1] + 1
    assert_verified(vault)  # the killed upload may have left objects: orphans, nothing else

    # uvicorn's supervisor replaced the killed worker
    deadline = time.monotonic() + 30
    while not (len(server.workers()) == 2 and victim not in server.workers()):
        assert time.monotonic() < deadline, f"workers: {server.workers()}\n{server.tail()}"
        time.sleep(0.2)
