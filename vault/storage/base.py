"""The object store interface shared by the local directory and S3 backends.

Both backends store opaque bytes (the vault only ever hands them ciphertext) under
'/'-separated keys, never overwrite, and stream in both directions with bounded memory.

Versions: on a versioned bucket (every Object Lock bucket is one) anyone allowed to
PutObject can stack a newer version on a key the vault wrote, and a plain DELETE adds a
delete marker that hides the key. ``put`` therefore returns the version id the store gave,
and every call that reads or acts on one object takes ``version_id``: with it, the call
reads or acts on exactly that version, whatever was stacked on top; a version id that does
not exist, or names a delete marker, is ``ObjectMissing``. Without it (``None``), a call
acts on the key's latest version, as S3 does - and fails with ``ObjectMissing`` when that
latest version is a delete marker. ``versions`` shows everything under a prefix, delete
markers included; ``list`` shows only keys whose latest version is an object.
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


@dataclass(frozen=True)
class LockState:
    """The Object Lock protection of one object version, as the store reports it."""

    #: "COMPLIANCE", "GOVERNANCE", or None when no retention is set
    mode: str | None
    #: aware UTC; None when no retention is set
    retain_until: datetime | None
    legal_hold: bool


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of ``ObjectStore.versions``: an object version or a delete marker."""

    #: relative to the store's prefix, like the keys of ``list``
    key: str
    #: None for an object with no version id (unversioned bucket, local directory)
    version_id: str | None
    #: the version a request without version id reads (a delete marker: the key looks gone)
    is_latest: bool
    is_delete_marker: bool
    #: bytes; 0 for a delete marker
    size: int
    #: aware UTC, as the store reports it (S3: whole seconds on some servers)
    last_modified: datetime | None


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
        """Store a new object; ``ObjectExists`` if the key exists (never overwrites).

        The returned ``version_id`` is the one the store gave (None where it keeps no
        versions): pass it to every later call on this object.
        """
        ...

    def replace(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Write a small *mutable* object, replacing what is under ``key`` atomically.

        The one exception to never-overwrite, for published objects that must change in
        place (a tiled log's ``checkpoint``): readers see the old or the new bytes, never
        none. On a versioned bucket the old bytes stay as an older version. Never use it
        for evidence.
        """
        ...

    def get(self, key: str, *, version_id: str | None = None) -> Iterator[bytes]:
        """The object's bytes as chunks; ``ObjectMissing`` is raised by the call itself."""
        ...

    def read_range(
        self, key: str, start: int, length: int, *, version_id: str | None = None
    ) -> bytes:
        """Up to ``length`` bytes from ``start``; shorter (or empty) past the end."""
        ...

    def head(self, key: str, *, version_id: str | None = None) -> StoredObject | None:
        """The object (or that version of it), or None if missing or a delete marker."""
        ...

    def exists(self, key: str, *, version_id: str | None = None) -> bool: ...

    def delete(
        self, key: str, *, version_id: str | None = None, all_versions: bool = False
    ) -> None:
        """Delete the object.

        - ``version_id``: remove exactly that version, for good - an object version
          (``ObjectLocked`` while Object Lock or a legal hold protects it) or a delete
          marker (which makes the version under it the latest again);
        - ``all_versions``: remove every version and delete marker of the key, markers last;
        - neither: on a versioned bucket only a delete marker is added (S3's plain DELETE),
          the versions stay.

        ``ObjectMissing`` if there is nothing to delete; both arguments at once is a
        ``StorageError``.
        """
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (plain string prefix), sorted.

        Only keys whose *latest* version is an object: a key hidden by a delete marker is
        not listed (S3 ListObjectsV2), even though its versions are still stored. Use
        ``versions`` to see those.
        """
        ...

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every object version and delete marker under ``prefix``, sorted by key.

        The versions of one key come together, but their order among themselves is the
        store's: use ``is_latest``, not the position, to tell which one a plain read gets.
        """
        ...

    def set_legal_hold(self, key: str, on: bool, *, version_id: str | None = None) -> None: ...

    def get_retention(self, key: str, *, version_id: str | None = None) -> datetime | None: ...

    def extend_retention(
        self, key: str, retain_until: datetime, *, version_id: str | None = None
    ) -> None:
        """Move the object's Object Lock date later (never earlier); no-op without a lock."""
        ...

    def lock_state(self, key: str, *, version_id: str | None = None) -> LockState:
        """The retention mode and date and the legal hold of the object (or version)."""
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


def check_delete_args(version_id: str | None, all_versions: bool) -> None:
    if version_id is not None and all_versions:
        raise StorageError(
            "delete got both a version id and all_versions",
            hint="delete one version, or every version of the key, not both",
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
