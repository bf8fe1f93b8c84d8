"""The one unambiguous byte encoding used for every associated-data and key-derivation input.

Concatenating strings is ambiguous (``"ab" + "c" == "a" + "bc"``), so wherever several
values go into one MAC, AD or KDF input they are encoded as a sequence of
``u32 big-endian length ‖ bytes`` items, each ``str`` as UTF-8. The first item is always a
domain label, so that an encoding made for one purpose can never be mistaken for one made
for another.
"""

from __future__ import annotations

import struct

_MAX_ITEM = 0xFFFFFFFF


def encode_items(*items: str | bytes) -> bytes:
    """``len32(item) ‖ item`` for each item in order (``str`` encoded as UTF-8)."""
    out = bytearray()
    for item in items:
        raw = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        if len(raw) > _MAX_ITEM:
            raise ValueError("an encoded item is longer than 2**32 - 1 bytes")
        out += struct.pack(">I", len(raw))
        out += raw
    return bytes(out)


def require_text(name: str, value: object) -> str:
    """A non-empty ``str`` that is valid Unicode text (no lone surrogates)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Unicode text") from None
    return value


def require_key(name: str, value: object, size: int = 32) -> bytes:
    """A bytes-like secret of exactly ``size`` bytes, returned as ``bytes``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    raw = bytes(value)
    if len(raw) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(raw)}")
    return raw
