"""The upload spool: where a clip waits, in clear, between the socket and sealing.

An upload is streamed to a file (never the whole clip in memory) and sealed from there.
That file holds the clip unencrypted, so it must never outlive its upload — not even
when the worker is killed mid-upload (SIGKILL, OOM killer, power loss), where no
``finally`` runs. Hence:

* the spool is ``<vault>/spool``, mode 0700, inside the vault's own 0700 directory, never
  the shared system temp directory; each file is created 0600;
* on Linux the file is *anonymous* (``O_TMPFILE``): it has no name in any directory from
  the first byte, and the kernel frees it when the last descriptor closes, which a killed
  process does too. The vault reads it back through ``/proc/self/fd/N``;
* a bundle download is built in a working directory ``bundle-<pid>-<random>`` of the
  spool, locked (``flock`` on the directory) and removed when the response has gone out;
* where ``O_TMPFILE`` is not available (another OS, a file system without it) the file
  gets a name ``upload-<pid>-<random>``, is locked with ``flock`` for its whole life and
  unlinked on every path out; :meth:`Spool.sweep` (at every open of the vault for
  writing, i.e. every ``serve`` worker) deletes the files no live process holds a lock
  on (and whose creating process is gone, or which are older than a minute: the moment
  between creating and locking a file). Several workers share the directory safely: a
  live upload's lock is never free.

Freed blocks of a deleted file may still be read from the raw device by root; that is
outside what a file system can promise (use an encrypted volume for the vault).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("vault.spool")

SPOOL_DIR = "spool"
_PREFIX = "upload-"
#: working directories of bundle downloads (the ZIP holds the clip and evidence in clear)
_DIR_PREFIX = "bundle-"
#: an unlocked named file younger than this may be one whose creator has not locked it yet
_GRACE_SECONDS = 60


class SpoolFile:
    """One upload's clip while it arrives: write it, then read it back by :attr:`path`."""

    def __init__(self, fd: int, path: str) -> None:
        self._file = os.fdopen(fd, "w+b")
        #: a path the clip can be opened by (in this process) until the spool file closes
        self.path = path
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._sha256.update(data)
        self.size += len(data)

    def write_all(self, chunks: list[bytes]) -> None:
        """Write the chunks as they came (an HTTP body's): joining them would copy the clip."""
        for chunk in chunks:
            self.write(chunk)

    def finish(self) -> str:
        """Flush what was written; the SHA-256 of it (hex), computed while it streamed."""
        self._file.flush()
        return self._sha256.hexdigest()

    def close(self) -> None:
        self._file.close()


class SpoolDir:
    """A working directory in the spool, locked while in use; :meth:`close` removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._fd)


class Spool:
    """The spool directory of the vault at ``home``."""

    def __init__(self, home: Path, *, anonymous: bool | None = None) -> None:
        self.dir = Path(home) / SPOOL_DIR
        #: None: anonymous files where the platform has them
        self._anonymous = hasattr(os, "O_TMPFILE") if anonymous is None else anonymous

    def prepare(self) -> int:
        """Create (or tighten) the directory and sweep it; the number of files removed."""
        self.dir.mkdir(mode=0o700, exist_ok=True)
        if self.dir.stat().st_mode & 0o077:
            os.chmod(self.dir, 0o700)
        return self.sweep()

    @contextlib.contextmanager
    def file(self) -> Iterator[SpoolFile]:
        """A fresh spool file, gone when the block ends, however it ends."""
        self.dir.mkdir(mode=0o700, exist_ok=True)
        fd, name = self._create()
        spooled = SpoolFile(fd, name or f"/proc/self/fd/{fd}")
        try:
            yield spooled
        finally:
            if name is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
            spooled.close()  # also releases the lock

    def directory(self) -> SpoolDir:
        """A fresh 0700 working directory (for a bundle download); close it when done."""
        self.dir.mkdir(mode=0o700, exist_ok=True)
        prefix = f"{_DIR_PREFIX}{os.getpid()}-"
        return SpoolDir(Path(tempfile.mkdtemp(prefix=prefix, dir=self.dir)))

    def _create(self) -> tuple[int, str | None]:
        if self._anonymous:
            try:
                flags = os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC
                return os.open(self.dir, flags, 0o600), None
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                self._anonymous = False  # this file system has no O_TMPFILE
        name = self.dir / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until the file is closed, or its process dies
        return fd, str(name)

    def sweep(self) -> int:
        """Delete the named spool files of dead uploads (no live lock); how many."""
        removed = 0
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.name.startswith((_PREFIX, _DIR_PREFIX)) or not _abandoned(entry.path):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        if removed:
            log.warning("removed %d abandoned spool file(s) from %s", removed, self.dir)
        return removed


def _abandoned(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False  # gone already, or not a plain file of ours
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live upload holds it
        # free: dead, unless its creator is alive and between open() and flock()
        if not _alive(_creator(path)):
            return True
        return time.time() - os.fstat(fd).st_mtime > _GRACE_SECONDS
    finally:
        os.close(fd)


def _creator(path: str) -> int | None:
    pid = Path(path).name.split("-", 2)[1]
    return int(pid) if pid.isascii() and pid.isdigit() and len(pid) < 10 else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True  # unknown: let the age decide
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
