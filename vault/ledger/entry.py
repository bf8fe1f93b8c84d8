"""Log entries: canonical JSON (RFC 8785) and their leaf hash. Pure; no I/O.

Hashing with SHA-256 here is ledger arithmetic (the RFC 9162 leaf hash), not a
confidentiality primitive; keys and ciphers live only in ``vault.sealing``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import rfc8785

#: the version this vault writes. Version 2 (issue 9): the ``evidence.sealed`` body also
#: commits to the object versions and the ``row`` digest of the identifying columns, and
#: the entry time is the record's ``sealed_at``. Version-1 entries stay valid.
ENTRY_VERSION = 2
ENTRY_VERSIONS = frozenset({1, 2})
GENESIS_PREV = "0" * 64
LEAF_PREFIX = b"\x00"

#: entry types this version writes; the audit accepts only these
ENTRY_TYPES = frozenset(
    {
        "evidence.sealed",
        "evidence.accessed",
        "campaign.policy",
        "dialer.registered",
        "dialer.revoked",
        "evidence.shredded",
        "document.sealed",
        "object.orphaned",
        "retention.extended",
        "hold.placed",
        "hold.release_requested",
        "hold.released",
        "key.rewrapped",
        "log.key_rotated",
        "person.created",
        "person.approved",
        "person.disabled",
        "person.credential",
        "person.oidc_linked",
        "token.created",
        "token.revoked",
    }
)


def format_time(ts: datetime) -> str:
    """UTC, millisecond precision, 'Z' suffix: one spelling per instant, as hashing needs."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def make_entry(
    *,
    log: str,
    seq: int,
    type: str,
    time: datetime,
    prev: str,
    record: str | None,
    body: dict[str, Any],
) -> dict[str, Any]:
    if type not in ENTRY_TYPES:
        raise ValueError(f"unknown entry type {type!r}")
    entry: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "log": log,
        "seq": seq,
        "type": type,
        "time": format_time(time),
        "prev": prev,
        "body": body,
    }
    if record is not None:
        entry["record"] = record
    return entry


def encode_entry(entry: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of an entry (the C encoder when it provably gives the same bytes)."""
    quick = _quick_canonical(entry)
    if quick.isascii():
        try:
            _DECODER.decode(quick.decode())  # refuses floats, where the two encoders differ
            return quick
        except ValueError:
            pass
    return rfc8785.dumps(entry)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of any JSON value: ``rfc8785.dumps``, but in C when provably equal.

    msgspec's sorted, compact encoding is the RFC 8785 one (strings as UTF-8 with the same
    escapes, checked for every code point in ``tests/test_entry_fastpath.py``) when the
    output holds no character beyond U+FFFF (below it, code-point order is UTF-16 order,
    which RFC 8785 sorts keys by), no float (the float-refusing decoder reads it back), no
    integer of 16 digits or more (RFC 8785 refuses integers beyond 2**53; a run of 16
    digits inside a string merely takes the slow path) and reads back equal to the value
    (no type was converted on the way, e.g. a datetime into a string). Anything else is
    left to ``rfc8785.dumps``, including its errors.
    """
    try:
        quick = _SORTED_ENCODER.encode(value)
        if _ASTRAL_OR_LONG_DIGITS.search(quick) is None and _FAST_DECODER.decode(quick) == value:
            return quick
    except (msgspec.EncodeError, msgspec.DecodeError, OverflowError, TypeError, ValueError):
        pass
    return rfc8785.dumps(value)


def entry_hash(entry_bytes: bytes) -> str:
    """The RFC 9162 leaf hash of an entry, hex."""
    return hashlib.sha256(LEAF_PREFIX + entry_bytes).hexdigest()


def parse_entry(entry_bytes: bytes) -> dict[str, Any]:
    """Decode stored entry bytes; raise ValueError if they are not canonical JSON of an entry."""
    entry = parse_canonical(entry_bytes)
    if entry is not None:
        return entry
    entry = _DECODER.decode(entry_bytes.decode("utf-8"))
    if not isinstance(entry, dict) or entry.get("v") not in ENTRY_VERSIONS:
        raise ValueError("not a version-1 or version-2 log entry")
    quick = entry_bytes.isascii() and _quick_canonical(entry) == entry_bytes
    if not quick and rfc8785.dumps(entry) != entry_bytes:
        raise ValueError("entry bytes are not in canonical form")
    return entry


def parse_canonical(entry_bytes: bytes) -> dict[str, Any] | None:
    """The entry, when a cheap proof shows it is canonical; None means "not proven here".

    The proof: the bytes are ASCII, hold no floating-point number, and msgspec's sorted,
    compact re-encoding of what they decode to gives the same bytes back. For such JSON
    that re-encoding is the stdlib one of :func:`_quick_canonical`, hence RFC 8785 (every
    string is ASCII after decoding, or the re-encoding would not be ASCII; keys sort the
    same by code point and by UTF-16 unit; escapes are the short ones and lowercase
    ``\\u00xx``, as ``tests/test_entry_fastpath.py`` checks character by character).
    ``parse_entry`` decides every entry this refuses, with the reason to report.
    """
    if not entry_bytes.isascii():
        return None
    try:
        entry = _FAST_DECODER.decode(entry_bytes)
    except (msgspec.DecodeError, ValueError):
        return None
    if type(entry) is not dict or entry.get("v") not in ENTRY_VERSIONS:
        return None
    try:
        same = _SORTED_ENCODER.encode(entry) == entry_bytes
    except (msgspec.EncodeError, OverflowError, TypeError):
        return None
    return entry if same else None


def _refuse_float(text: str) -> float:
    raise ValueError("a float")


def _no_floats(text: str) -> float:
    raise ValueError("log entries hold integers only, no floating-point numbers")


# built once: json.loads/dumps with options construct a new coder on every call
_DECODER = json.JSONDecoder(parse_float=_no_floats)
_FAST_DECODER = msgspec.json.Decoder(float_hook=_refuse_float)
_SORTED_ENCODER = msgspec.json.Encoder(order="sorted")
#: a 4-byte UTF-8 sequence's lead byte (a character beyond U+FFFF), or 16 digits in a row
_ASTRAL_OR_LONG_DIGITS = re.compile(rb"[\xf0-\xff]|[0-9]{16}")
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _quick_canonical(entry: dict[str, Any]) -> bytes:
    """The stdlib's C encoder, which equals RFC 8785 for ASCII JSON without floats.

    For such JSON, sorted keys, minimal separators and the stdlib's escapes produce exactly
    the RFC 8785 bytes (key order by UTF-16 units and ECMAScript number formatting, where
    the two differ, need non-ASCII keys or floats). Anything else takes the full encoder.
    """
    return _ENCODER.encode(entry).encode()
