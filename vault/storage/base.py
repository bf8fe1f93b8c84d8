"""The object store interface shared by the local directory and S3 backends.

Both backends store opaque bytes (the vault only ever hands them ciphertext) under
'/'-separated keys, never overwrite, and stream in both directions with bounded memory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from vault.errors import StorageError

#: size of the chunks ``get`` yields
CHUNK_SIZE = 1024 * 1024

MAX_KEY_LENGTH = 1024
#: one segment becomes one file or directory name in the local backend (NAME_MAX is 255)
MAX_SEGMENT_LENGTH = 255

# A segment may not start with '.': that rules out '.' and '..' (path traversal and
# aliasing in the local backend) and keeps the '.tmp-' names of unfinished local writes
# out of the key space.
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

_KEY_RULES = (
    "keys are '/'-separated segments of ASCII letters, digits, '.', '_' and '-', "
    "each not starting with '.', no empty segment, no leading '/', at most "
    f"{MAX_KEY_LENGTH} characters"
)

LEGAL_HOLD_NEEDS_LOCK = "legal holds need an S3 bucket with Object Lock"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    #: hex SHA-256 of the stored bytes; "" when the backend cannot tell cheaply (see ``head``)
    sha256: str
    version_id: str | None
    #: the Object Lock retain-until date actually applied, else None
    retain_until: datetime | None


@runtime_checkable
class ObjectStore(Protocol):
    """What the vault needs from an object store.

    Errors: ``ObjectExists`` (a put would overwrite), ``ObjectMissing`` (no such key),
    ``ObjectLocked`` (Object Lock / legal hold refused a delete), ``StorageError``
    (anything else: invalid key, unreachable endpoint, I/O error). An exception raised by
    the ``chunks`` iterator given to ``put`` propagates unchanged, after cleanup.
    """

    @property
    def name(self) -> str:
        """ "local" or "s3"."""
        ...

    @property
    def supports_object_lock(self) -> bool:
        """True when retain-until dates and legal holds are enforced by the store."""
        ...

    def put(
        self, key: str, chunks: Iterable[bytes], *, retain_until: datetime | None = None
    ) -> StoredObject:
        """Store a new object; ``ObjectExists`` if the key exists (never overwrites)."""
        ...

    def get(self, key: str) -> Iterator[bytes]:
        """The object's bytes as chunks; ``ObjectMissing`` is raised by the call itself."""
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start``; shorter (or empty) past the end."""
        ...

    def head(self, key: str) -> StoredObject | None: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str, *, all_versions: bool = False) -> None: ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (plain string prefix), sorted."""
        ...

    def set_legal_hold(self, key: str, on: bool) -> None: ...

    def get_retention(self, key: str) -> datetime | None: ...

    def extend_retention(self, key: str, retain_until: datetime) -> None:
        """Move the object's Object Lock date later (never earlier); no-op without a lock."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise ``StorageError``."""
    if not isinstance(key, str) or not key:
        raise StorageError("object key is empty", hint=_KEY_RULES)
    if len(key) > MAX_KEY_LENGTH:
        raise StorageError(
            f"object key is longer than {MAX_KEY_LENGTH} characters", hint=_KEY_RULES
        )
    for segment in key.split("/"):
        if not _valid_segment(segment):
            raise StorageError(f"invalid object key {_shown(key)}", hint=_KEY_RULES)
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a valid key ("" and a trailing '/' are fine)."""
    if prefix == "":
        return prefix
    if not isinstance(prefix, str) or len(prefix) > MAX_KEY_LENGTH:
        raise StorageError("invalid key prefix", hint=_KEY_RULES)
    *whole, last = prefix.split("/")
    # every segment but the last is complete; the last may be empty or partial
    if not all(_valid_segment(s) for s in whole) or not (last == "" or _valid_segment(last)):
        raise StorageError(f"invalid key prefix {_shown(prefix)}", hint=_KEY_RULES)
    return prefix


def normalise_retain_until(retain_until: datetime) -> datetime:
    """UTC, rounded *up* to a whole second.

    S3 keeps retain-until dates to the second; rounding up means the stored date is never
    earlier than the one asked for, and the value we return is the one the server keeps.
    """
    if retain_until.tzinfo is None or retain_until.utcoffset() is None:
        raise StorageError(
            "retain_until must be timezone-aware",
            hint="pass an aware datetime, e.g. datetime.now(UTC) + ...",
        )
    utc = retain_until.astimezone(UTC)
    whole = utc.replace(microsecond=0)
    return whole if whole == utc else whole + timedelta(seconds=1)


def check_range(start: int, length: int) -> None:
    if start < 0 or length < 0:
        raise StorageError(
            f"invalid byte range: start={start} length={length}",
            hint="start and length must not be negative",
        )


def _valid_segment(segment: str) -> bool:
    return len(segment) <= MAX_SEGMENT_LENGTH and _SEGMENT.fullmatch(segment) is not None


def _shown(key: str) -> str:
    # keys are ids, never PII, but a bad key may be anything: cap and escape it
    return repr(key[:80] + ("..." if len(key) > 80 else ""))


class ChunkReader:
    """A file-like ``read(n)`` over an object's chunk iterator, hashing what it hands out.

    Decryption wants ``read(n)``; stores stream chunks. Hashing on the way lets one pass
    over a stored object both decrypt it and check its committed SHA-256.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = memoryview(b"")
        self._sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int) -> bytes:
        # slices of the current chunk: one copy per returned piece, none for buffering
        parts = []
        while n > 0:
            if not self._chunk:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk = memoryview(chunk)
            piece = self._chunk[:n]
            self._chunk = self._chunk[len(piece) :]
            parts.append(piece)
            n -= len(piece)
        out = b"".join(parts) if len(parts) != 1 else parts[0].tobytes()
        self._sha.update(out)
        self.size += len(out)
        return out

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
