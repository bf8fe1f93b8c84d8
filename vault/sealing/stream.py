"""Segmented AEAD stream: AES-256-GCM over fixed-size segments (the "sealed object" format).

The construction follows Tink's AES-GCM-HKDF streaming AEAD and age's STREAM:

* every object gets a fresh random salt, and its own key
  ``HKDF-SHA256(ikm=DEK, salt=salt, info=STREAM_KEY_INFO ‖ aad)``, so one data key can seal
  several objects (clip and metadata) without any risk of nonce reuse, and a key derived
  for one record or role is useless for another;
* the plaintext is cut into segments of ``SEGMENT_SIZE`` bytes; segment ``i`` is sealed with
  nonce ``prefix(7) ‖ i (u32 BE) ‖ last (1 byte)`` and AD ``header ‖ aad``. The counter in
  the nonce detects reordering, and the last-flag detects truncation at a segment
  boundary and data appended after the end;
* memory stays O(segment) for any object size, and any byte range can be decrypted by
  fetching only the segments that hold it.

The byte layout is specified in ``docs/formats.md`` ("Sealed object").
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import DecryptionFailed, SealingError
from vault.sealing._encoding import require_key

MAGIC = b"EVS1"
VERSION = 1
SEGMENT_SIZE = 64 * 1024
TAG_SIZE = 16
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
# magic(4) ‖ version(1) ‖ segment size(4) ‖ salt(32) ‖ nonce prefix(7)
HEADER_SIZE = len(MAGIC) + 1 + 4 + SALT_SIZE + NONCE_PREFIX_SIZE
STREAM_KEY_INFO = b"evidence-vault/v1 stream key"

_HEADER = struct.Struct(f">{len(MAGIC)}sBI{SALT_SIZE}s{NONCE_PREFIX_SIZE}s")
assert _HEADER.size == HEADER_SIZE
_SEALED_SEGMENT = SEGMENT_SIZE + TAG_SIZE
# The counter is 32 bits wide; a 2**32nd segment would reuse a nonce. (2**32 segments of
# 64 KiB is 256 TiB, far beyond any recording, but the limit is enforced, not assumed.)
_MAX_SEGMENTS = 2**32

_TAMPERED = (
    "the object was modified, truncated or reordered, or the key or associated data is wrong"
)


@dataclass(frozen=True)
class _Header:
    raw: bytes
    salt: bytes
    nonce_prefix: bytes


# -- sizes --------------------------------------------------------------------------------


def _segment_count(plaintext_size: int) -> int:
    # An empty plaintext is one empty final segment; otherwise the final segment is never
    # empty (a plaintext of exactly k segments is k full segments, the k-th marked last).
    return max(1, -(-plaintext_size // SEGMENT_SIZE))


def ciphertext_size(plaintext_size: int) -> int:
    """The size of the sealed object for ``plaintext_size`` bytes of plaintext."""
    if plaintext_size < 0:
        raise ValueError("plaintext_size must not be negative")
    segments = _segment_count(plaintext_size)
    if segments > _MAX_SEGMENTS:
        raise SealingError(
            f"{plaintext_size} bytes is too large to seal as one object "
            f"(more than {_MAX_SEGMENTS} segments)"
        )
    return HEADER_SIZE + plaintext_size + segments * TAG_SIZE


def plaintext_size(ciphertext_size: int) -> int:
    """The plaintext size of a sealed object of ``ciphertext_size`` bytes.

    Raises DecryptionFailed when no sealed object can have that size (e.g. truncated).
    """
    body = ciphertext_size - HEADER_SIZE
    if body < TAG_SIZE:
        raise DecryptionFailed(
            f"{ciphertext_size} bytes is too short for a sealed object: it is truncated"
        )
    segments = -(-body // _SEALED_SEGMENT)
    size = body - segments * TAG_SIZE
    last = size - (segments - 1) * SEGMENT_SIZE
    # the final segment must hold 1..SEGMENT_SIZE bytes, or 0 only when it is the only one
    if segments > _MAX_SEGMENTS or last < 0 or (last == 0 and segments > 1):
        raise DecryptionFailed(
            f"{ciphertext_size} bytes is not a possible sealed-object size: "
            "it is truncated or has bytes appended"
        )
    return size


# -- encryption ---------------------------------------------------------------------------


def encrypt_stream(
    dek: bytes,
    aad: bytes,
    chunks: Iterable[bytes],
    *,
    _salt: bytes | None = None,
    _nonce_prefix: bytes | None = None,
) -> Iterator[bytes]:
    """Seal the plaintext given as ``chunks`` (any sizes); yield the header, then each segment.

    Memory is O(SEGMENT_SIZE + largest input chunk): a segment is sealed as soon as one more
    plaintext byte shows it is not the last. ``_salt`` and ``_nonce_prefix`` exist only for
    the test vectors; never pass them in product code (a repeated salt and prefix under one
    data key and AD would repeat nonces).
    """
    dek = require_key("data key", dek)
    aad = bytes(aad)
    salt = os.urandom(SALT_SIZE) if _salt is None else require_key("salt", _salt, SALT_SIZE)
    prefix = (
        os.urandom(NONCE_PREFIX_SIZE)
        if _nonce_prefix is None
        else require_key("nonce prefix", _nonce_prefix, NONCE_PREFIX_SIZE)
    )
    header = _Header(_HEADER.pack(MAGIC, VERSION, SEGMENT_SIZE, salt, prefix), salt, prefix)
    # validate eagerly, run lazily: argument errors surface at the call, not at first next()
    return _encrypt(_stream_cipher(dek, header.salt, aad), header, aad, chunks)


def _encrypt(aead: AESGCM, header: _Header, aad: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    ad = header.raw + aad
    yield header.raw
    pending = bytearray()
    index = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            if len(pending) == SEGMENT_SIZE:
                # more plaintext follows, so the full segment held back is not the last one
                yield _seal_segment(aead, header, ad, index, pending, last=False)
                index += 1
                pending.clear()
            take = min(SEGMENT_SIZE - len(pending), len(view))
            pending += view[:take]
            view = view[take:]
    yield _seal_segment(aead, header, ad, index, pending, last=True)


def _seal_segment(
    aead: AESGCM, header: _Header, ad: bytes, index: int, data: bytearray, *, last: bool
) -> bytes:
    return aead.encrypt(_nonce(header.nonce_prefix, index, last), data, ad)


# -- decryption ---------------------------------------------------------------------------


def decrypt_stream(dek: bytes, aad: bytes, read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Open a sealed object read through ``read(n)`` (like a file's ``read``); yield plaintext.

    Yields each segment's plaintext once its tag has been checked (nothing for an empty
    object). A truncation can only show at the end, so the plaintext is trustworthy as a
    whole only once the iterator finishes without DecryptionFailed.
    """
    dek = require_key("data key", dek)
    return _decrypt(dek, bytes(aad), read)


def _decrypt(dek: bytes, aad: bytes, read: Callable[[int], bytes]) -> Iterator[bytes]:
    header = _parse_header(_read_exact(read, HEADER_SIZE))
    aead = _stream_cipher(dek, header.salt, aad)
    ad = header.raw + aad
    sealed = _read_exact(read, _SEALED_SEGMENT)
    index = 0
    while True:
        if len(sealed) < TAG_SIZE:
            raise DecryptionFailed(
                f"the object ends inside segment {index} (only {len(sealed)} bytes, "
                f"less than a {TAG_SIZE}-byte tag): it is truncated"
            )
        if index >= _MAX_SEGMENTS:
            raise DecryptionFailed(
                f"the object has more than {_MAX_SEGMENTS} segments: it was not sealed by "
                "this format"
            )
        # A full-size segment may or may not be the last: look one segment ahead.
        following = _read_exact(read, _SEALED_SEGMENT) if len(sealed) == _SEALED_SEGMENT else b""
        last = not following
        plain = _open_segment(aead, header, ad, index, sealed, last=last)
        if last:
            if not plain and index > 0:
                # never written by encrypt_stream: the final segment is empty only when the
                # whole object is
                raise DecryptionFailed(
                    f"segment {index} is an empty final segment after non-empty ones: "
                    "the object is not in canonical form"
                )
            if plain:
                yield plain
            return
        yield plain
        index += 1
        sealed = following


def decrypt_range(
    dek: bytes,
    aad: bytes,
    read_at: Callable[[int, int], bytes],
    ciphertext_size: int,
    offset: int,
    length: int,
) -> bytes:
    """Decrypt plaintext bytes ``[offset, offset + length)`` of a sealed object.

    ``read_at(start, n)`` returns ``n`` ciphertext bytes from ``start``; it is called once for
    the header and once for the contiguous run of segments that hold the range.
    ``ciphertext_size`` must be the size recorded when the object was sealed (not only what
    storage reports now): it decides which segment must carry the last-flag, which is what
    detects a truncated object. A range outside the object raises SealingError.
    """
    dek = require_key("data key", dek)
    aad = bytes(aad)
    total = plaintext_size(ciphertext_size)
    if offset < 0 or length < 0 or offset + length > total:
        raise SealingError(
            f"range [{offset}, {offset + length}) lies outside the object's {total} plaintext bytes"
        )
    header = _parse_header(_read_at_exact(read_at, 0, HEADER_SIZE, "the header"))
    if length == 0:
        return b""
    aead = _stream_cipher(dek, header.salt, aad)
    ad = header.raw + aad
    final = _segment_count(total) - 1
    first, stop = offset // SEGMENT_SIZE, (offset + length - 1) // SEGMENT_SIZE + 1
    start = HEADER_SIZE + first * _SEALED_SEGMENT
    end = min(HEADER_SIZE + stop * _SEALED_SEGMENT, ciphertext_size)
    what = f"segments {first}..{stop - 1}"
    sealed = memoryview(_read_at_exact(read_at, start, end - start, what))
    out = bytearray()
    for index in range(first, stop):
        at = (index - first) * _SEALED_SEGMENT
        out += _open_segment(
            aead, header, ad, index, sealed[at : at + _SEALED_SEGMENT], last=index == final
        )
    skip = offset - first * SEGMENT_SIZE
    return bytes(out[skip : skip + length])


def _open_segment(
    aead: AESGCM, header: _Header, ad: bytes, index: int, sealed: bytes | memoryview, *, last: bool
) -> bytes:
    try:
        return aead.decrypt(_nonce(header.nonce_prefix, index, last), sealed, ad)
    except InvalidTag:
        pass
    # Diagnose on the failure path only (one more GCM): a valid segment whose last-flag is
    # the opposite of its position means the object was cut short or had data appended.
    try:
        aead.decrypt(_nonce(header.nonce_prefix, index, not last), sealed, ad)
    except InvalidTag:
        raise DecryptionFailed(
            f"segment {index} failed authentication: {_TAMPERED}",
            hint="restore the object from a backup, or check that the right record is opened",
        ) from None
    if last:
        raise DecryptionFailed(
            f"the object ends after segment {index}, which is not its final segment: "
            "the object is truncated",
            hint="restore the object from a backup",
        )
    raise DecryptionFailed(
        f"segment {index} is the object's final segment but more data follows it: "
        "data was appended to the object",
        hint="restore the object from a backup",
    )


# -- shared -------------------------------------------------------------------------------


def _stream_cipher(dek: bytes, salt: bytes, aad: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=STREAM_KEY_INFO + aad).derive(
        dek
    )
    return AESGCM(key)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if not 0 <= index < _MAX_SEGMENTS:
        raise SealingError(
            f"segment counter overflow at segment {index}: an object holds at most "
            f"{_MAX_SEGMENTS} segments"
        )
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _parse_header(raw: bytes) -> _Header:
    if len(raw) < HEADER_SIZE:
        raise DecryptionFailed(
            f"the object is {len(raw)} bytes, too short for the {HEADER_SIZE}-byte "
            "sealed-object header: it is truncated or not a sealed object"
        )
    magic, version, segment_size, salt, prefix = _HEADER.unpack(raw)
    if magic != MAGIC:
        raise DecryptionFailed(
            "the object does not start with the sealed-object magic: it is not a sealed "
            "object or its header was modified"
        )
    if version != VERSION:
        raise DecryptionFailed(
            f"sealed-object version {version} is not supported (this vault reads {VERSION})",
            hint="upgrade evidence-vault, or the header was modified",
        )
    if segment_size != SEGMENT_SIZE:
        # Fixed, not taken from the header: an attacker-chosen size could make a reader
        # buffer up to 4 GiB before the first tag check.
        raise DecryptionFailed(
            f"segment size {segment_size} is not supported (version {VERSION} uses "
            f"{SEGMENT_SIZE}): the header was modified"
        )
    return _Header(bytes(raw), salt, prefix)


def _read_exact(read: Callable[[int], bytes], n: int) -> bytes:
    """Up to ``n`` bytes; fewer only at the end of the stream (short reads are retried)."""
    first = read(n)
    if len(first) == n and isinstance(first, bytes):
        return first  # the common case: no copy at all
    if len(first) > n:
        raise ValueError(f"read({n}) returned {len(first)} bytes")
    out = bytearray(first)
    while first and len(out) < n:
        chunk = read(n - len(out))
        if not chunk:
            break
        if len(chunk) > n - len(out):
            raise ValueError(f"read({n - len(out)}) returned {len(chunk)} bytes")
        out += chunk
    return bytes(out)


def _read_at_exact(read_at: Callable[[int, int], bytes], start: int, n: int, what: str) -> bytes:
    data = bytes(read_at(start, n))
    if len(data) != n:
        raise DecryptionFailed(
            f"reading {what} returned {len(data)} of {n} bytes: the stored object is "
            "shorter than the sealed one (truncated)",
            hint="restore the object from a backup",
        )
    return data
