"""The ledger's pure parts: canonical entries, leaf hashes, the chain audit, and vectors."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vault.ledger import GENESIS_PREV, encode_entry, entry_hash, make_entry, parse_entry
from vault.ledger.audit import CheckedEntry, Finding, audit_chain

VECTORS = json.loads((Path(__file__).parent / "vectors" / "ledger.json").read_text())
T = datetime(2026, 11, 22, 9, 14, 3, 123456, tzinfo=UTC)


def build_chain(n: int, log: str = "telco-de") -> list[tuple[int, bytes]]:
    rows, prev = [], GENESIS_PREV
    for seq in range(n):
        raw = encode_entry(
            make_entry(
                log=log,
                seq=seq,
                type="evidence.sealed",
                time=T,
                prev=prev,
                record=f"r{seq}",
                body={"n": seq},
            )
        )
        rows.append((seq, raw))
        prev = entry_hash(raw)
    return rows


def findings(rows, head_size=None, head_hash=None, log="telco-de") -> list[Finding]:
    head_size = len(rows) if head_size is None else head_size
    head_hash = head_hash or (entry_hash(rows[-1][1]) if rows else GENESIS_PREV)
    return [f for f in audit_chain(log, rows, head_size, head_hash) if isinstance(f, Finding)]


def test_entry_is_rfc8785_canonical_and_leaf_hashed():
    e = make_entry(
        log="telco-de",
        seq=0,
        type="evidence.sealed",
        time=T,
        prev=GENESIS_PREV,
        record="r0",
        body={"b": 2, "a": [1, "ü"]},
    )
    raw = encode_entry(e)
    assert raw == (
        b'{"body":{"a":[1,"\xc3\xbc"],"b":2},"log":"telco-de","prev":"'
        + GENESIS_PREV.encode()
        + b'","record":"r0","seq":0,'
        b'"time":"2026-11-22T09:14:03.123Z","type":"evidence.sealed","v":2}'
    )
    assert entry_hash(raw) == hashlib.sha256(b"\x00" + raw).hexdigest()
    assert parse_entry(raw) == e


def test_non_canonical_bytes_are_rejected():
    raw = encode_entry(
        make_entry(
            log="x", seq=0, type="evidence.sealed", time=T, prev=GENESIS_PREV, record=None, body={}
        )
    )
    with pytest.raises(ValueError, match="canonical"):
        parse_entry(raw.replace(b",", b", ", 1))


def test_unknown_entry_type_cannot_be_made():
    with pytest.raises(ValueError, match="unknown entry type"):
        make_entry(
            log="x", seq=0, type="evidence.deleted", time=T, prev=GENESIS_PREV, record=None, body={}
        )


@pytest.mark.parametrize("vector", VECTORS["entries"], ids=lambda v: v["name"])
def test_entry_vectors(vector):
    e = vector["entry"]
    raw = encode_entry(e)
    assert raw.decode() == vector["canonical"]
    assert entry_hash(raw) == vector["leaf_hash"]


def test_vector_chain_links():
    entries = VECTORS["entries"]
    assert entries[0]["entry"]["prev"] == GENESIS_PREV
    for a, b in itertools.pairwise(entries):
        assert b["entry"]["prev"] == a["leaf_hash"]


def test_clean_chain_has_no_findings_and_yields_every_entry():
    rows = build_chain(50)
    out = list(audit_chain("telco-de", rows, 50, entry_hash(rows[-1][1])))
    assert [x.seq for x in out if isinstance(x, CheckedEntry)] == list(range(50))
    assert not [x for x in out if isinstance(x, Finding)]


def test_edited_entry_is_named():
    rows = build_chain(10)
    seq, raw = rows[4]
    rows[4] = (seq, raw.replace(b'"n":4', b'"n":5'))
    [f] = findings(rows, head_hash=entry_hash(build_chain(10)[-1][1]))
    assert (f.kind, f.seq, f.record) == ("modified", 4, "r4")


def test_edited_last_entry_disagrees_with_head():
    good = build_chain(5)
    rows = [*good[:4], (4, good[4][1].replace(b'"n":4', b'"n":9'))]
    [f] = findings(rows, head_size=5, head_hash=entry_hash(good[4][1]))
    assert (f.kind, f.seq) == ("modified", 4)
    assert "does not hash to the recorded log head" in f.detail


def test_deleted_entry_is_a_gap():
    rows = build_chain(10)
    del rows[6]
    fs = findings(rows, head_size=10, head_hash=entry_hash(build_chain(10)[-1][1]))
    assert ("missing", 6) in [(f.kind, f.seq) for f in fs]


def test_swapped_entries_are_reordered():
    rows = build_chain(10)
    (s3, r3), (s4, r4) = rows[3], rows[4]
    rows[3], rows[4] = (s3, r4), (s4, r3)
    fs = findings(rows, head_hash=entry_hash(build_chain(10)[-1][1]))
    assert [(f.kind, f.seq) for f in fs if f.kind == "reordered"] == [
        ("reordered", 3),
        ("reordered", 4),
    ]


def test_truncated_log():
    full = build_chain(10)
    [f] = findings(full[:7], head_size=10, head_hash=entry_hash(full[-1][1]))
    assert (f.kind, f.seq) == ("truncated", 7)


def test_entries_beyond_head_are_a_fork():
    full = build_chain(10)
    [f] = findings(full, head_size=8, head_hash=entry_hash(full[7][1]))
    assert (f.kind, f.seq) == ("forked", 8)


def test_entry_of_another_log():
    rows = build_chain(3, log="other")
    fs = findings(rows, log="telco-de")
    assert {f.kind for f in fs} == {"modified"}
    assert all("another log" in f.detail for f in fs)


def test_floats_are_refused_and_non_ascii_takes_the_full_encoder():
    raw = encode_entry(
        make_entry(
            log="x",
            seq=0,
            type="evidence.accessed",
            time=T,
            prev=GENESIS_PREV,
            record=None,
            body={"n": 1},
        )
    )
    with pytest.raises(ValueError, match="no floating-point numbers"):
        parse_entry(raw.replace(b'"n":1', b'"n":1.5'))
    uni = encode_entry(
        make_entry(
            log="x",
            seq=0,
            type="evidence.accessed",
            time=T,
            prev=GENESIS_PREV,
            record=None,
            body={"principal": "local:jürgen", "\U0001f600": 1, "\ue000": 2},
        )
    )
    assert parse_entry(uni)["body"]["principal"] == "local:jürgen"
    # the stdlib orders these two keys by code point, RFC 8785 by UTF-16 units
    swapped = uni.replace(
        '"\U0001f600":1,"\ue000":2'.encode(), '"\ue000":2,"\U0001f600":1'.encode()
    )
    assert swapped != uni
    with pytest.raises(ValueError, match="canonical"):
        parse_entry(swapped)


def _random_json(rng, depth=0):
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.randrange(-(2**53), 2**53)
    if kind == 1:
        return "".join(
            rng.choice('ab"\\\n\t\x01\x1fü€😀\ue000 /<') for _ in range(rng.randrange(6))
        )
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.random() * 10 ** rng.randrange(-8, 25)
    if kind in (4, 5):
        return {_random_key(rng): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def _random_key(rng):
    return "".join(rng.choice("abAB_😀\ue000é") for _ in range(rng.randrange(1, 4)))


def test_fast_encoder_always_equals_rfc8785():
    import random

    import rfc8785

    rng = random.Random(8785)
    for _ in range(3000):
        doc = {"body": _random_json(rng), "v": 1}
        assert encode_entry(doc) == rfc8785.dumps(doc)
