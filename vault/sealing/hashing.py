"""Keyed hashes (for lookups without plaintext) and salted commitments (for the ledger).

* :func:`keyed_hash` — HMAC-SHA256 under a tenant's index key with a domain label: the
  database can find a record by phone number, or recognise a repeated upload, without
  holding the phone number or the clip; without the key the values cannot be confirmed by
  guessing (phone numbers are few enough to enumerate, so a plain hash would not do).
* :func:`commitment` — salted SHA-256 of a plaintext. The ledger carries commitments, never
  plaintext; the salt lives inside the encrypted metadata, so once a record is
  crypto-shredded its commitments cannot be tested against guesses any more.
* :class:`Sha256Counter` — SHA-256 and byte count of a stream (e.g. a ciphertext as it is
  uploaded).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from vault.sealing._encoding import encode_items, require_key, require_text

INDEX_KEY_SIZE = 32
SALT_SIZE = 32


def keyed_hash(key: bytes, domain: str, data: bytes | Iterable[bytes]) -> str:
    """Hex HMAC-SHA256 of ``len32(domain) ‖ domain ‖ data`` under a 32-byte index key.

    ``domain`` (e.g. ``"phone"``, ``"clip-fingerprint"``) keeps hashes made for one purpose
    from ever matching hashes made for another. ``data`` is bytes or an iterable of byte
    chunks (hashed as their concatenation, in constant memory).
    """
    hasher = KeyedHasher(key, domain)
    for chunk in _chunks(data):
        hasher.update(chunk)
    return hasher.hexdigest()


class KeyedHasher:
    """:func:`keyed_hash` fed incrementally, e.g. alongside encryption in one read."""

    def __init__(self, key: bytes, domain: str) -> None:
        key = require_key("index key", key, INDEX_KEY_SIZE)
        self._mac = hmac.new(key, encode_items(require_text("domain", domain)), hashlib.sha256)

    def update(self, data: bytes | memoryview) -> None:
        self._mac.update(data)

    def hexdigest(self) -> str:
        return self._mac.hexdigest()


def new_salt() -> bytes:
    """A fresh random 32-byte salt for commitments."""
    return os.urandom(SALT_SIZE)


def commitment_salt(proposed: bytes | None = None) -> bytes:
    """The salt an uploader proposed (exactly 32 bytes, else ValueError), or a fresh one."""
    return new_salt() if proposed is None else require_key("salt", proposed, SALT_SIZE)


class Sha256Counter:
    """Incremental SHA-256 that also counts the bytes it has seen."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        self._size += memoryview(data).nbytes

    @property
    def size(self) -> int:
        """Number of bytes hashed so far."""
        return self._size

    def digest(self) -> bytes:
        return self._hash.digest()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class CommitmentHasher(Sha256Counter):
    """Incremental :func:`commitment`: feed the plaintext with ``update``; ``size`` counts it."""

    def __init__(self, salt: bytes, role: str) -> None:
        super().__init__()
        self._hash.update(_commitment_prefix(salt, role))


def commitment(salt: bytes, role: str, data: bytes | Iterable[bytes]) -> str:
    """Hex SHA-256 of ``salt ‖ role ‖ 0x00 ‖ data`` (``data`` as bytes or byte chunks)."""
    hasher = CommitmentHasher(salt, role)
    for chunk in _chunks(data):
        hasher.update(chunk)
    return hasher.hexdigest()


def _commitment_prefix(salt: bytes, role: str) -> bytes:
    # The salt has a fixed length and the role cannot contain NUL, so the prefix is
    # unambiguous without length fields.
    salt = require_key("salt", salt, SALT_SIZE)
    role = require_text("role", role)
    if "\x00" in role:
        raise ValueError("role must not contain NUL")
    return salt + role.encode("utf-8") + b"\x00"


def _chunks(data: bytes | Iterable[bytes]) -> Iterable[bytes | memoryview]:
    if isinstance(data, bytes | bytearray | memoryview):
        return (data,)
    if isinstance(data, str):
        # a str is iterable too, but hashing its characters would be a silent bug
        raise TypeError("data must be bytes or an iterable of bytes, not str")
    return data
