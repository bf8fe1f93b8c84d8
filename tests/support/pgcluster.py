"""A private PostgreSQL cluster on loopback that a test may stop and start: a real outage.

``initdb`` into a fresh directory, ``pg_ctl start`` on a free port (trust auth, loopback
only, the Unix socket inside the data directory). ``stop()`` is ``pg_ctl stop -m fast``:
every connection is cut, as when the database restarts. PostgreSQL refuses to run as root,
so under root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def cluster_unavailable() -> str | None:
    """Why a private cluster cannot run here, or None."""
    if _tool("initdb") is None or _tool("pg_ctl") is None:
        return "initdb / pg_ctl are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to own a cluster"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    """``with PrivateCluster() as pg: pg.url ... pg.stop(); pg.start()``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vault-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(_tool("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _run(self, *args: str | None) -> None:
        cmd = [str(a) for a in args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self._run(
            _tool("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(_tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def __enter__(self) -> PrivateCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
