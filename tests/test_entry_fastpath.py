"""The fast paths of verify give the same verdicts as the full checks they stand in for.

``parse_canonical`` may only accept bytes that the full ``parse_entry`` (stdlib decoder,
RFC 8785 re-encoding) accepts, with the same value; the precomputed-pad HMAC must equal
the one-shot tag check; ``CompactRange.append`` must give the same roots as the tree.
"""

from __future__ import annotations

import json
import os
import random

import pytest
import rfc8785

from vault.ledger.entry import (
    _DECODER,
    ENTRY_VERSIONS,
    _quick_canonical,
    canonical_json,
    parse_canonical,
    parse_entry,
)
from vault.ledger.merkle import CompactRange, MemoryNodes, leaf_hash, root
from vault.sealing import LogAuthenticator


def full_verdict(raw: bytes) -> dict | None:
    """What parse_entry decided before the fast path: the stdlib decode, then the stdlib
    C encoder's bytes (ASCII only) or else the RFC 8785 encoder's."""
    try:
        entry = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(entry, dict) or entry.get("v") not in ENTRY_VERSIONS:
        return None
    try:
        if raw.isascii() and _quick_canonical(entry) == raw:
            return entry
        return entry if rfc8785.dumps(entry) == raw else None
    except Exception:
        return None


def base_entry() -> dict:
    return {
        "v": 2,
        "log": "telco-de",
        "seq": 7,
        "type": "evidence.accessed",
        "time": "2026-11-22T00:00:00.000Z",
        "prev": "ab" * 32,
        "record": "01m8000000000000000000000007",
        "body": {"principal": "client:telco-de:escalation-001", "what": "audio", "n": [1, -2]},
    }


@pytest.mark.parametrize("code", range(128))
def test_every_ascii_character_in_values_and_keys(code):
    entry = base_entry()
    entry["body"] = {f"k{chr(code)}": f"a{chr(code)}b", "z": chr(code)}
    raw = rfc8785.dumps(entry)
    assert parse_canonical(raw) == entry == parse_entry(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v":2,"x":1.0}',
        b'{"v":2,"x":1e5}',
        b'{"v":2,"x":-0}',
        b'{"v":2,"x":1,"x":1}',
        b'{"v":2, "x":1}',
        b'{"x":1,"v":2}',
        b'{"v":2,"x":"\\u001F"}',
        b'{"v":2,"x":"\\u00e9"}',
        b'{"v":2,"x":"\\/"}',
        b'{"v":2,"x":"\\ud800"}',
        b'{"v":2,"x":NaN}',
        b'{"v":3}',
        b'{"v":true}',
        b"[2]",
        '{"v":2,"x":"é"}'.encode(),
        b'{"v":2,"x":123456789012345678901234567890}',
    ],
)
def test_awkward_bytes_never_accepted_by_the_fast_path_alone(raw):
    fast = parse_canonical(raw)
    if fast is not None:
        assert fast == full_verdict(raw)
    # and parse_entry's verdict is unchanged: accepted exactly when the full check accepts
    try:
        assert parse_entry(raw) == full_verdict(raw)
    except ValueError:
        assert full_verdict(raw) is None


def test_random_mutations_agree_with_the_full_check():
    rng = random.Random(13)
    alphabet = b' "\\{}[],:.-+eE0123456789abtrufnlsu/\x00\x7f'
    accepted = 0
    for i in range(4000):
        raw = bytearray(rfc8785.dumps(base_entry() | {"seq": i}))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(raw))
            op = rng.randrange(3)
            if op == 0:
                raw[pos] = rng.choice(alphabet)
            elif op == 1:
                raw.insert(pos, rng.choice(alphabet))
            else:
                del raw[pos]
        fast = parse_canonical(bytes(raw))
        if fast is not None:
            accepted += 1
            assert fast == full_verdict(bytes(raw)), bytes(raw)
    assert accepted > 0  # some mutations (inside strings) stay canonical


def test_entry_checker_equals_check_entry():
    auth = LogAuthenticator(os.urandom(32), "telco-de")
    check = auth.entry_checker()
    for seq in (0, 1, 255, 2**32, 2**63 - 1):
        digest = os.urandom(32)
        tag = auth.entry_tag(seq, digest)
        assert check(seq, digest, tag) is True
        assert check(seq + 1 if seq < 2**63 - 1 else 0, digest, tag) is False
        assert check(seq, digest, bytes(32)) is False
        assert check(seq, digest, None) is False
        assert check(seq, digest, tag[:-1]) is False
    other = LogAuthenticator(os.urandom(32), "telco-fr").entry_checker()
    assert other(3, digest, auth.entry_tag(3, digest)) is False
    with pytest.raises(ValueError):
        check(-1, digest, tag)
    with pytest.raises(ValueError):
        check(1, digest[:31], tag)


def test_compact_range_append_matches_the_tree():
    leaves = [leaf_hash(json.dumps(i).encode()) for i in range(70)]
    cr, nodes = CompactRange(), MemoryNodes()
    for n, leaf in enumerate(leaves, 1):
        cr.append(leaf)
        nodes.append(leaf)
        assert cr.size == n
        assert cr.root() == root(nodes, n)
    with pytest.raises(ValueError):
        cr.append(b"short")
    cr.append(bytearray(leaves[0]))  # still accepted, as before


@pytest.mark.parametrize(
    "value",
    [
        {"order": "A-1", "n": 3, "tags": ["x", "y"], "none": None, "ok": True},
        {"b": {"z": 1, "a": [{"y": 1, "x": 2}]}, "a": 0},
        {"phone": "+4915112345678901234", "id": 2**53 - 1},
        {"big": 2**53},
        {"neg": -(2**53)},
        {"f": 1.5},
        {"f": 1.0},
        {"name": "Jürgen", "é": 1},
        {"\u00e9": 1, "z": 2, "\U0001f600": 3},
        {"t": (1, 2)},
        {"ctl": "".join(chr(c) for c in range(32)) + '"\\/\x7f'},
        {1: "int key"},
        [1, "a", None],
        "text",
        7,
    ],
)
def test_canonical_json_equals_rfc8785(value):
    try:
        expected: bytes | type = rfc8785.dumps(value)
    except Exception as exc:
        expected = type(exc)
    try:
        got: bytes | type = canonical_json(value)
    except Exception as exc:
        got = type(exc)
    assert got == expected


def test_canonical_json_leaves_other_types_to_rfc8785():
    from datetime import UTC, datetime

    with pytest.raises(Exception) as fast:
        canonical_json({"when": datetime(2026, 1, 1, tzinfo=UTC)})
    with pytest.raises(Exception) as slow:
        rfc8785.dumps({"when": datetime(2026, 1, 1, tzinfo=UTC)})
    assert fast.type is slow.type


def test_canonical_json_every_code_point_as_rfc8785():
    # the BMP takes the fast path (keys and values); beyond it the fallback, checked too
    for start in range(0, 0x110000, 4096):
        chars = [chr(c) for c in range(start, start + 4096) if not 0xD800 <= c <= 0xDFFF]
        value = {c: c for c in chars} if start < 0x10000 else {"v": chars}
        assert canonical_json(value) == rfc8785.dumps(value), hex(start)


def test_canonical_json_sorts_keys_by_utf16_units():
    # U+FFFF sorts after U+1F600 by code point but before it by UTF-16 unit
    value = {"\uffff": 1, "\U0001f600": 2, "é": 3, "Z": 4}
    assert canonical_json(value) == rfc8785.dumps(value)
