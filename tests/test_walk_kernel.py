"""verify's compiled chain walk (``vault/ledger/_walk.c``) proves only what the Python walk
proves, and moves the walk exactly as the Python fast path would.

The kernel may only *skip* work: every row it accepts must be one the Python fast path
accepts, leaving the chain and the tree in the same state; every other row is handed back.
So these tests build real entries, tags and leaves, mutate them (random and chosen bytes),
and compare the two row by row; and they compare whole ``verify`` reports with and
without the kernel on a tampered vault.
"""

from __future__ import annotations

import hashlib
import random

import msgspec
import pytest

import vault.services.verify as verify_mod
from tests.support.tamper import sql
from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault.db import write_session
from vault.db.log import EntryDraft, append_entries
from vault.ledger.audit import ChainWalk
from vault.ledger.entry import GENESIS_PREV, LEAF_PREFIX, encode_entry
from vault.ledger.merkle import CompactRange
from vault.sealing import LogAuthenticator
from vault.services.logauth import LogKeys

KEY = bytes(range(32))
PLAIN = verify_mod._PLAIN_KINDS
NEVER = verify_mod._NEVER


def test_the_compiled_walk_is_built():
    """Where this fails, the C extension did not build (a C compiler and OpenSSL's and
    SQLite's headers are needed: ``apt-get install gcc libssl-dev libsqlite3-dev``, then
    ``pip install -e .`` again);
    verify still works there, in Python, several times slower."""
    from vault.ledger import _walk

    assert LogAuthenticator(KEY, CLIENT).entry_kernel(PLAIN) is not None
    assert _walk.Kernel.__name__ == "Kernel" and _walk.SqliteRange.__name__ == "SqliteRange"


def run(k, rows: list, start: int, chain, tree, anchor_seq: int, next_due: int) -> int:
    """``k.run`` over rows as walk_rows pairs them: ``(seq, entry, tag, type, record_id)``
    and the stored leaves ``(idx, hash)`` (a row whose leaf is None has none stored)."""
    leaves = [(row[0], row[5]) for row in rows if row[5] is not None]
    return k.run([row[:5] for row in rows], leaves, start, chain, tree, anchor_seq, next_due)


def kernel():
    k = LogAuthenticator(KEY, CLIENT).entry_kernel(PLAIN)
    assert k is not None
    return k


def entry_dict(seq: int, prev: str, kind: str = "evidence.accessed", record=None, body=None):
    entry = {
        "v": 2,
        "log": CLIENT,
        "seq": seq,
        "type": kind,
        "time": "2026-11-22T00:00:00.000Z",
        "prev": prev,
        "body": body if body is not None else {"principal": "client:telco-de:esc-001"},
    }
    if record is not None:
        entry["record"] = record
    return entry


def row_of(seq: int, raw: bytes, kind: str, record, *, leaf=True, tag=True) -> tuple:
    """A log row as walk_rows gives it, with a leaf and a tag that match the bytes."""
    digest = hashlib.sha256(LEAF_PREFIX + raw).digest()
    auth = LogAuthenticator(KEY, CLIENT)
    return (
        seq,
        raw,
        auth.entry_tag(seq, digest) if tag else None,
        kind,
        record,
        digest if leaf else None,
    )


def chain_rows(n: int, kinds=("evidence.accessed",)) -> list[tuple]:
    rows, prev = [], GENESIS_PREV
    for seq in range(n):
        kind = kinds[seq % len(kinds)]
        record = f"01m8{seq:022d}" if seq % 3 else None
        raw = encode_entry(entry_dict(seq, prev, kind, record))
        rows.append(row_of(seq, raw, kind, record))
        prev = hashlib.sha256(LEAF_PREFIX + raw).hexdigest()
    return rows


def python_step(chain: ChainWalk, tree: CompactRange, row: tuple, anchor_seq=-1, due=NEVER):
    """The Python fast path of ``_Walk._rows`` for one row, limited to the rows the kernel
    may take (plain kinds, not the anchored head, not completing a checkpoint's size)."""
    seq, raw, tag, kind, record, leaf = row
    raw = bytes(raw)
    digest = hashlib.sha256(LEAF_PREFIX + raw).digest()
    if seq == anchor_seq or tree.size + 1 >= due or kind not in PLAIN:
        return False
    check_tag = LogAuthenticator(KEY, CLIENT).entry_checker()
    if leaf is None or bytes(leaf) != digest or not check_tag(seq, digest, tag):
        return False
    entry = chain.clean(seq, raw, digest.hex())
    if entry is None or entry.get("type") != kind or entry.get("record") != record:
        return False
    chain.advance(seq, digest.hex(), entry)
    tree.append(digest)
    return True


def state(chain: ChainWalk, tree: CompactRange) -> tuple:
    return (chain.expected_seq, chain.prev_hash, chain.prev_record, tree.size, tree.hashes())


def test_a_clean_chain_is_walked_whole_as_the_python_walk_would():
    rows = chain_rows(300)
    chain, tree = ChainWalk(CLIENT), CompactRange()
    assert run(kernel(), rows, 0, chain, tree, -1, NEVER) == 300
    py_chain, py_tree = ChainWalk(CLIENT), CompactRange()
    assert all(python_step(py_chain, py_tree, row) for row in rows)
    assert state(chain, tree) == state(py_chain, py_tree)
    assert tree.root() == py_tree.root()


def test_memoryviews_as_postgresql_returns_them():
    rows = [
        (seq, memoryview(raw), memoryview(tag), kind, record, memoryview(leaf))
        for seq, raw, tag, kind, record, leaf in chain_rows(20)
    ]
    chain, tree = ChainWalk(CLIENT), CompactRange()
    assert run(kernel(), rows, 0, chain, tree, -1, NEVER) == 20


@pytest.mark.parametrize(
    "why, change",
    [
        ("record kind", lambda r: (*r[:3], "evidence.sealed", *r[4:])),
        ("missing tag", lambda r: (*r[:2], None, *r[3:])),
        ("wrong tag", lambda r: (*r[:2], bytes(32), *r[3:])),
        ("short tag", lambda r: (*r[:2], r[2][:31], *r[3:])),
        ("missing leaf", lambda r: (*r[:5], None)),
        ("wrong leaf", lambda r: (*r[:5], bytes(32))),
        ("type column", lambda r: (*r[:3], "hold.placed", *r[4:])),
        ("record column", lambda r: (*r[:4], "01m8zzzzzzzzzzzzzzzzzzzzzz", *r[5:])),
        ("record column NULL", lambda r: (*r[:4], None, *r[5:])),
        ("seq column", lambda r: (r[0] + 1, *r[1:])),
        ("not a tuple", lambda r: list(r)),
        ("unknown kind", lambda r: (*r[:3], "evidence.forged", *r[4:])),
    ],
)
def test_the_kernel_hands_back_a_row_it_cannot_prove(why, change):
    rows = chain_rows(10)
    rows[4] = change(rows[4])
    chain, tree = ChainWalk(CLIENT), CompactRange()
    assert run(kernel(), rows, 0, chain, tree, -1, NEVER) == 4, why
    assert (chain.expected_seq, tree.size) == (4, 4)
    assert chain.prev_hash == hashlib.sha256(LEAF_PREFIX + rows[3][1]).hexdigest()


def test_the_anchored_head_and_checkpoint_sizes_are_left_to_the_python_walk():
    rows = chain_rows(10)
    k = kernel()
    chain, tree = ChainWalk(CLIENT), CompactRange()
    assert run(k, rows, 0, chain, tree, 6, NEVER) == 6  # the anchored head's row
    chain, tree = ChainWalk(CLIENT), CompactRange()
    assert run(k, rows, 0, chain, tree, -1, 8) == 7  # the row that makes the tree 8 long
    assert run(k, rows, 8, chain, tree, -1, NEVER) == 8  # and the walk did not move past it


def test_resuming_after_a_handed_back_row():
    rows = chain_rows(12, kinds=("evidence.accessed", "evidence.sealed", "hold.placed"))
    k, chain, tree, i, handed = kernel(), ChainWalk(CLIENT), CompactRange(), 0, []
    while i < len(rows):
        i = run(k, rows, i, chain, tree, -1, NEVER)
        if i < len(rows):
            handed.append(i)
            assert python_step(chain, tree, rows[i]) is False  # a record kind
            seq, raw = rows[i][0], rows[i][1]
            digest = hashlib.sha256(LEAF_PREFIX + raw).digest()
            chain.advance(seq, digest.hex(), msgspec.json.decode(raw))
            tree.append(digest)
            i += 1
    assert handed == [1, 4, 7, 10]
    py_chain, py_tree = ChainWalk(CLIENT), CompactRange()
    for row in rows:
        if not python_step(py_chain, py_tree, row):
            digest = hashlib.sha256(LEAF_PREFIX + row[1]).digest()
            py_chain.advance(row[0], digest.hex(), msgspec.json.decode(row[1]))
            py_tree.append(digest)
    assert state(chain, tree) == state(py_chain, py_tree)


CHOSEN = [
    # (what, entry bytes as a function of the clean bytes)
    ("a space after a colon", lambda b: b.replace(b'"v":2', b'"v": 2')),
    ("an escaped quote", lambda b: b.replace(b"esc-001", b'esc-\\"001')),
    ("an escaped slash", lambda b: b.replace(b"esc-001", b"esc\\/001")),
    ("a \\u escape", lambda b: b.replace(b"esc-001", b"esc\\u0041001")),
    ("a tab", lambda b: b.replace(b"esc-001", b"esc\t001")),
    ("DEL", lambda b: b.replace(b"esc-001", b"esc\x7f001")),
    ("UTF-8", lambda b: b.replace(b"esc-001", "esc-é01".encode())),
    ("a float", lambda b: b.replace(b'"v":2', b'"v":2.0')),
    ("an exponent", lambda b: b.replace(b'"v":2', b'"v":2e0')),
    ("a leading zero", lambda b: b.replace(b'"v":2', b'"v":02')),
    ("minus zero", lambda b: b.replace(b'"body":{', b'"body":{"a":-0,')),
    ("16 digits", lambda b: b.replace(b'"body":{', b'"body":{"a":1234567890123456,')),
    ("keys out of order", lambda b: b.replace(b'"body":{', b'"body":{"z":1,"a":1,')),
    ("a duplicate key", lambda b: b.replace(b'"body":{', b'"body":{"a":1,"a":1,')),
    ("v 3", lambda b: b.replace(b'"v":2', b'"v":3')),
    ("v true", lambda b: b.replace(b'"v":2', b'"v":true')),
    ("seq as a string", lambda b: b.replace(b'"seq":4', b'"seq":"4"')),
    ("another log", lambda b: b.replace(b'"log":"telco-de"', b'"log":"telco-fr"')),
    ("a trailing newline", lambda b: b + b"\n"),
    ("a trailing comma", lambda b: b[:-1] + b",}"),
    ("an array at the top", lambda b: b"[" + b + b"]"),
    (
        "upper-case prev",
        lambda b: b[: b.index(b'"prev":"') + 8] + b[b.index(b'"prev":"') + 8 :].upper(),
    ),
    ("record null", lambda b: b.replace(b'"seq"', b'"record":null,"seq"')),
    ("truncated", lambda b: b[:-1]),
    (
        "nested too deep",
        lambda b: b.replace(b'"body":{', b'"body":{"a":' + b"[" * 40 + b"]" * 40 + b","),
    ),
]


@pytest.mark.parametrize("what, change", CHOSEN, ids=[c[0] for c in CHOSEN])
def test_chosen_changes_agree_with_the_python_walk(what, change):
    agree_on(change)


def test_random_mutations_agree_with_the_python_walk():
    """A few thousand byte-level changes of an entry, with its leaf and tag made to match,
    so that only the JSON and field checks decide: the kernel never accepts what the
    Python fast path refuses, and accepts the unchanged entry."""
    rng = random.Random(1309)
    tokens = [
        b" ",
        b'"',
        b"\\",
        b"-",
        b"0",
        b"9",
        b".",
        b"e",
        b",",
        b":",
        b"{",
        b"}",
        b"[",
        b"]",
        b"a",
        b"z",
        b"\x7f",
        b"\x00",
        "é".encode(),
        b"true",
        b"null",
        b"-0",
    ]
    accepted = 0

    def mutate(b: bytes) -> bytes:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b) + 1)
            op = rng.randrange(3)
            if op == 0:
                b = b[:i] + rng.choice(tokens) + b[i:]
            elif op == 1 and i < len(b):
                b = b[:i] + b[i + 1 :]
            elif i < len(b):
                b = b[:i] + bytes([rng.randrange(256)]) + b[i + 1 :]
        return b

    for _ in range(3000):
        accepted += agree_on(mutate)
    assert 0 < accepted < 3000  # changes inside strings pass both; most fail both


def agree_on(change) -> bool:
    """Build a 6-entry chain whose entry 4 is ``change``d (leaf and tag recomputed), walk
    it with the kernel and with the Python fast path, and compare; True if accepted."""
    rows = chain_rows(4)
    prev = hashlib.sha256(LEAF_PREFIX + rows[-1][1]).hexdigest()
    clean = encode_entry(entry_dict(4, prev, record="01m8r4"))
    raw = change(clean)
    rows.append(row_of(4, raw, "evidence.accessed", "01m8r4"))
    k_chain, k_tree = ChainWalk(CLIENT), CompactRange()
    stop = run(kernel(), rows, 0, k_chain, k_tree, -1, NEVER)
    p_chain, p_tree = ChainWalk(CLIENT), CompactRange()
    p_ok = [python_step(p_chain, p_tree, row) for row in rows]
    assert stop >= 4 and all(p_ok[:4])
    if stop == 5:  # the kernel accepted the changed entry: so must the Python walk
        assert p_ok[4], raw
        assert state(k_chain, k_tree) == state(p_chain, p_tree)
    if raw == clean:
        assert stop == 5
    return stop == 5


def test_every_printable_ascii_character_is_encoded_as_itself():
    """The kernel takes unescaped printable ASCII in strings as canonical: msgspec (whose
    re-encoding the Python walk compares) must write each such character as itself."""
    for code in range(0x20, 0x7F):
        char = chr(code)
        if char in '"\\':
            continue
        assert msgspec.json.encode(char) == b'"' + char.encode() + b'"'


def test_leaves_are_paired_by_seq_whatever_is_missing_or_extra():
    rows = chain_rows(30)
    rows5 = [row[:5] for row in rows]
    leaves = [(row[0], row[5]) for row in rows]
    k = kernel()
    # extra leaves before, between and after; a gap at seq 20: the walk stops there
    paired = [(-5, bytes(32)), *leaves[:20], *leaves[21:], (99, bytes(32))]
    chain, tree = ChainWalk(CLIENT), CompactRange()
    assert k.run(rows5, paired, 0, chain, tree, -1, NEVER) == 20
    # a junk item among the leaves: the rows from there on go back to the Python walk
    junk = [*leaves[:10], ("x",), *leaves[10:]]
    chain, tree = ChainWalk(CLIENT), CompactRange()
    assert k.run(rows5, junk, 0, chain, tree, -1, NEVER) == 10
    # resuming in the middle finds the leaf by seq, in a list starting elsewhere
    chain, tree = ChainWalk(CLIENT), CompactRange()
    assert k.run(rows5, leaves, 0, chain, tree, -1, 12) == 11
    assert k.run(rows5, leaves[3:], 11, chain, tree, -1, NEVER) == 30
    py_chain, py_tree = ChainWalk(CLIENT), CompactRange()
    assert all(python_step(py_chain, py_tree, row) for row in rows)
    assert state(chain, tree) == state(py_chain, py_tree)


def test_a_page_pairs_rows_and_leaves_as_the_kernel_does():
    rng = random.Random(7)
    for _ in range(200):
        seqs = sorted(rng.sample(range(60), rng.randint(0, 30)))
        idxs = sorted(rng.sample(range(60), rng.randint(0, 30)))
        page = verify_mod.Page(
            [(s, b"e", None, "evidence.accessed", None) for s in seqs],
            [(i, bytes([i]) * 32) for i in idxs],
        )
        expected = [(*row, bytes([row[0]]) * 32 if row[0] in idxs else None) for row in page.rows]
        assert page.joined() == expected
        assert [page.row(i) for i in range(len(page))] == expected


@pytest.fixture
def tampered(tmp_path):
    vault = make_vault(tmp_path / "vault")
    for i in range(3):
        vault.ingest(clip(tmp_path, seed=i), order_meta(i))
    drafts = [
        EntryDraft("evidence.accessed", f"01m8{i:022d}", {"principal": "p", "what": "audio"})
        for i in range(60)
    ]
    with write_session(vault.context.engine) as s:
        append_entries(s, CLIENT, drafts, verify_mod_time(), vault.context.log_keys(CLIENT))
    vault.checkpoint(CLIENT)
    raw = next(e for seq, e in verify_mod.rows(vault.context, CLIENT) if seq == 20)
    edited = bytes(raw).replace(b"audio", b"video")
    sql(
        vault,
        "UPDATE log_entry SET entry = :e WHERE client_id = :c AND seq = 20",
        e=edited,
        c=CLIENT,
    )
    sql(vault, "UPDATE log_entry SET type = 'hold.placed' WHERE seq = 30")
    sql(vault, "UPDATE log_entry SET tag = NULL WHERE seq = 40")
    sql(vault, "DELETE FROM merkle_node WHERE level = 0 AND idx = 50")
    yield vault
    vault.close()


def verify_mod_time():
    from datetime import UTC, datetime

    return datetime(2026, 11, 22, tzinfo=UTC)


def test_verify_finds_the_same_with_and_without_the_kernel(tampered, monkeypatch, caplog):
    with_kernel = tampered.verify()
    assert "not built" not in caplog.text
    monkeypatch.setattr(LogKeys, "entry_kernel", lambda self, kinds: None)
    verify_mod._warn_python_walk.cache_clear()
    without = tampered.verify()
    assert "compiled chain walk (vault/ledger/_walk.c) is not built" in caplog.text
    assert [f.to_dict() for f in with_kernel.findings] == [f.to_dict() for f in without.findings]
    assert with_kernel.entries == without.entries
    kinds = {(f.kind, f.seq) for f in with_kernel.findings}
    assert ("unauthenticated", 40) in kinds and ("missing", 50) in kinds
    assert any(seq == 20 for _, seq in kinds) and any(seq == 30 for _, seq in kinds)


def walk_all(k, ranges, handle) -> tuple[list, tuple]:
    """Drive a kernel over ``ranges`` (a callable giving the next handed-back row or None)
    and ``handle`` each handed-back row; the rows handed back and the final state."""
    chain, tree, handed = ChainWalk(CLIENT), CompactRange(), []
    for row in ranges(k, chain, tree):
        handed.append(row)
        handle(chain, tree, row)
    return handed, state(chain, tree)


def moved_on(chain: ChainWalk, tree: CompactRange, row: tuple) -> None:
    """What the Python walk does with a row in the end, clean or not: audit it, append it."""
    seq, raw = row[0], row[1]
    raw = raw.encode() if isinstance(raw, str) else bytes(raw)
    digest = hashlib.sha256(LEAF_PREFIX + raw).digest()
    chain.step(seq, raw, digest.hex())
    tree.append(digest)


def by_pages(ctx):
    def ranges(k, chain, tree):
        for page in verify_mod.walk_rows(ctx, CLIENT):
            i = 0
            while i < len(page):
                i = k.run(page.rows, page.leaves, i, chain, tree, -1, NEVER)
                if i < len(page):
                    yield page.row(i)
                    i += 1

    return ranges


def by_sqlite(ctx):
    def ranges(k, chain, tree):
        reader = verify_mod._sqlite_range(ctx, CLIENT, 0, None)
        assert reader is not None
        try:
            while (row := reader.run(k, chain, tree, -1, NEVER)) is not None:
                yield row
        finally:
            reader.close()

    return ranges


def test_the_sqlite_reader_hands_back_what_the_pages_hand_back(tampered):
    """The compiled SQLite reader gives the Python walk the very rows (same values, same
    types) that walk_rows would, for tampered rows of every kind, and moves the walk the
    same way; and it is what the range workers use on SQLite."""
    ctx = tampered.context
    sql(tampered, "UPDATE log_entry SET entry = CAST(entry AS TEXT) WHERE seq = 12")
    sql(tampered, "UPDATE log_entry SET type = 7 WHERE seq = 13")
    sql(tampered, "UPDATE log_entry SET record_id = x'00ff' WHERE seq = 14")
    sql(tampered, "UPDATE log_entry SET tag = 'text' WHERE seq = 15")
    sql(tampered, "UPDATE merkle_node SET hash = 3.5 WHERE level = 0 AND idx = 16")
    sql(tampered, "DELETE FROM log_entry WHERE seq = 25")
    sql(tampered, "UPDATE log_entry SET seq = 0.5 WHERE seq = 1")  # a REAL between rows
    k = LogKeys.entry_kernel(ctx.log_keys(CLIENT), PLAIN)
    pages, pages_state = walk_all(k, by_pages(ctx), moved_on)
    direct, direct_state = walk_all(k, by_sqlite(ctx), moved_on)
    assert direct == pages
    assert [type(v) for row in direct for v in row] == [type(v) for row in pages for v in row]
    assert direct_state == pages_state
    handed = {row[0] for row in direct}
    # the sealed records (one moved to seq 0.5), the tampered rows, 21 (chained to the
    # edited 20) and 26 (after the gap): every other row is the kernel's
    assert handed == {0, 0.5, 2, 12, 13, 14, 15, 16, 20, 21, 26, 30, 40, 50}


def test_the_sqlite_reader_reads_one_snapshot(tampered):
    ctx = tampered.context
    k = LogKeys.entry_kernel(ctx.log_keys(CLIENT), PLAIN)
    reader = verify_mod._sqlite_range(ctx, CLIENT, 0, None)
    chain, tree = ChainWalk(CLIENT), CompactRange()
    first = reader.run(k, chain, tree, -1, NEVER)  # seq 0 is a sealed record: handed back
    assert first[0] == 0
    sql(tampered, "DELETE FROM log_entry WHERE seq > 10")
    rows = [first]
    moved_on(chain, tree, first)
    while (row := reader.run(k, chain, tree, -1, NEVER)) is not None:
        rows.append(row)
        moved_on(chain, tree, row)
    reader.close()
    assert tree.size == 3 + 60  # the rows deleted after the read began were still read
