"""Verifying a client's evidence: the hash chain, the record rows and every stored object.

For each client: the chain audit (:mod:`vault.ledger.audit`); every ``evidence.sealed``
entry's objects exist and hash to the committed SHA-256; the record row agrees with the
entry it points to; and no object sits under the client's prefix that no entry commits
to (an orphan, e.g. left by a crash between upload and commit). Needs no key: it reads
ciphertext only, so an auditor's machine can run it.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Dialect
from sqlmodel import select

from vault.db import Campaign, Client, Document, Hold, LogEntry, LogHead, Record, read_session
from vault.db.models import MerkleNode, Person
from vault.errors import DecryptionFailed, KeyUnavailable, ObjectMissing
from vault.ledger.audit import ChainWalk, CheckedEntry, Finding
from vault.ledger.entry import ENTRY_TYPES, parse_canonical, parse_entry
from vault.ledger.merkle import LEAF_PREFIX, CompactRange
from vault.services.audit import (
    CheckpointAudit,
    RecordOpener,
    open_threads,
    stored_tree_findings,
)
from vault.services.binding import STATE_TYPES, LogFacts, row_mismatch
from vault.services.context import VaultContext
from vault.services.dialers import load_history, policy_findings, source_findings
from vault.services.documents import decrypt_document, document_mismatch
from vault.services.logauth import Anchor, LogKeys, TamperDetected
from vault.services.objects import SealedObject, storage_findings
from vault.services.orphans import acknowledged_orphans
from vault.services.people import GLOBAL_LOG, oidc_link_logged
from vault.services.timestamps import timestamp_findings, timestamp_pins
from vault.services.witnessing import witness_findings

PAGE = 1000
#: the entries the walk hands to the per-record checks (the clip's, then its documents')
_RECORD_KINDS = frozenset({"evidence.sealed", "document.sealed"})
#: the kinds the compiled walk may take on its own (records need the storage checks here)
_PLAIN_KINDS = ENTRY_TYPES - _RECORD_KINDS
_NEVER = 2**63 - 1

log = logging.getLogger(__name__)
#: entries per round trip of the chain walk (~300 bytes each)
WALK_PAGE = 10_000
_NO_END = 2**62
#: logs this long are walked by ranges in worker processes (see _parallel_walk)
PARALLEL_MIN = 200_000
#: entries per range: a power of two, so each range's compact range joins exactly
RANGE = 1 << 16


@dataclass
class Report:
    clients: list[str] = field(default_factory=list)
    entries: int = 0
    records: int = 0
    objects: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {
            "clean": self.clean,
            "clients": self.clients,
            "entries": self.entries,
            "records": self.records,
            "objects": self.objects,
            "checkpoints": self.checkpoints,
            "findings": [f.to_dict() for f in self.findings],
        }


Progress = Callable[[int], None]


def verify(
    ctx: VaultContext,
    client: str | None = None,
    progress: Progress | None = None,
    *,
    deep: bool = False,
) -> Report:
    report = Report()
    with read_session(ctx.engine) as s:
        clients = [client] if client else list(s.exec(select(Client.id).order_by(Client.id)))
    for c in clients:
        report.clients.append(c)
        _verify_client(ctx, c, report, progress or (lambda n: None), deep)
        report.findings += _oidc_link_findings(ctx, c)
    if client is None:
        report.findings += _credential_findings(ctx)
    return report


def _credential_findings(ctx: VaultContext) -> list[Finding]:
    """Desk credential rows whose tag fails: changed outside the vault (sign-in refused)."""
    from vault.services.credentials import tampered_credentials

    return [
        Finding(
            "modified",
            "_vault",
            f"the sign-in credential of person {handle} fails its tag: it was changed "
            "outside the vault; reset it with `evidence-vault person set-password`",
        )
        for handle in tampered_credentials(ctx)
    ] + _token_and_throttle_findings(ctx)


def _token_and_throttle_findings(ctx: VaultContext) -> list[Finding]:
    """API token rows and sign-in throttle counters whose tag fails."""
    from vault.services.credentials import tampered_throttle_counters
    from vault.services.tokens import tampered_tokens

    found = [
        Finding(
            "modified",
            "_vault",
            f"API token {token} fails its tag: it was inserted or changed outside the vault "
            "and authenticates nobody; revoke it and create a new one",
        )
        for token in tampered_tokens(ctx)
    ]
    if counters := tampered_throttle_counters(ctx):
        found.append(
            Finding(
                "modified",
                "_vault",
                f"{counters} sign-in throttle counter(s) fail their tag: changed outside the "
                "vault; they lock their handle or address afresh at the next sign-in",
            )
        )
    return found


def _oidc_link_findings(ctx: VaultContext, log: str) -> list[Finding]:
    """Persons of this log whose single sign-on link no tagged entry names (sign-in refused)."""
    owner = None if log == GLOBAL_LOG else log
    with read_session(ctx.engine) as s:
        scope = Person.client_id.is_(None) if owner is None else Person.client_id == owner
        linked = s.exec(select(Person).where(scope, Person.oidc_subject.is_not(None))).all()
    return [
        Finding(
            "modified",
            log,
            f"person {p.handle}'s single sign-on link is not the one its log names: it was "
            "changed outside the vault; link it again with `evidence-vault person link-oidc`",
        )
        for p in linked
        if not oidc_link_logged(ctx, p)
    ]


def count_entries(ctx: VaultContext, client: str | None = None) -> int:
    with read_session(ctx.engine) as s:
        stmt = select(LogHead.size)
        if client:
            stmt = stmt.where(LogHead.client_id == client)
        return sum(s.exec(stmt))


def _verify_client(
    ctx: VaultContext, client: str, report: Report, progress: Progress, deep: bool
) -> None:
    keys = ctx.log_keys(client)
    anchor = _read_anchor(keys, report)  # before the head: a later commit may move both
    with read_session(ctx.engine) as s:
        head = s.get(LogHead, client)
    if head is None:
        report.findings.append(Finding("missing", client, "the client's log head is missing"))
        return
    records = _records(ctx, client)
    checkpoints = CheckpointAudit(ctx, client)
    report.findings += checkpoints.findings
    committed: set[str] = set(checkpoints.keys)
    sealed: list[SealedObject] = []
    sealed_ids: set[str] = set()
    facts = _load_facts(ctx, client)
    documents = _DocumentCheck(ctx, client, report, facts, records if deep else None)
    campaigns = _campaigns(ctx, client)
    dialer_keys = load_history(ctx, client)
    report.findings.extend(policy_findings(ctx, client, dialer_keys))
    opener = RecordOpener(ctx, open_threads(), records, facts.shredded) if deep else None

    def check_sealed(item: CheckedEntry) -> None:
        sealed_ids.add(item.entry.get("record", ""))
        # the source signature, judged by the log's own dialer registrations
        report.findings.extend(source_findings(dialer_keys, client, item))
        report.findings.extend(
            _check_sealed(
                ctx, client, item, records, committed, report, opener, facts, campaigns, sealed
            )
        )

    def check_entry(item: CheckedEntry) -> None:
        if item.entry.get("type") == "document.sealed":
            report.findings.extend(documents.check(item, sealed))
        else:
            check_sealed(item)

    walk = _Walk(client, keys, anchor, checkpoints, report, check_entry)
    workers = _workers(head.size)
    if workers > 1:
        _parallel_walk(ctx, keys, walk, head.size, workers, progress, opener)
    else:
        for page in walk_rows(ctx, client):
            with _ahead(opener, page=page):
                walk.page(page)
            progress(len(page))
    tree = walk.tree
    report.findings.extend(walk.chain.finish(head.size, head.head_hash))
    if anchor is not None and anchor.size > walk.end:
        report.findings.append(
            Finding(
                "truncated",
                client,
                f"the vault anchored a log of {anchor.size} entries outside the database, "
                f"but the stored log ends at {walk.end}: entries were cut off the end",
                seq=walk.end,
            )
        )
    report.checkpoints += checkpoints.count
    report.findings += checkpoints.remaining(tree.size)
    report.findings += stored_tree_findings(ctx, client, tree)
    report.findings += _hold_findings(ctx, client, facts)
    report.findings += timestamp_findings(ctx, client)
    report.findings += documents.unsealed_rows()
    report.findings += witness_findings(ctx, client)
    for rec_id, rec in records.items():
        if rec_id not in sealed_ids:
            report.findings.append(
                Finding(
                    "missing",
                    client,
                    "record row has no evidence.sealed entry in the log",
                    seq=rec.seq,
                    record=rec_id,
                )
            )
    report.findings += storage_findings(
        ctx,
        client,
        sealed,
        {**checkpoints.pinned, **timestamp_pins(ctx, client)},
        records,
        facts,
        acknowledged_orphans(ctx, client),
    )


def rows(ctx: VaultContext, client: str) -> Iterator[tuple[int, bytes]]:
    """Entries in seq order."""
    return _paged(ctx, LogEntry.seq, LogEntry.entry, LogEntry.client_id == client)


@dataclass(frozen=True)
class Page:
    """A page of the walk: rows ``(seq, entry, tag, type, record_id)`` in seq order, and the
    stored level-0 Merkle nodes ``(idx, hash)`` for those seqs, in idx order."""

    rows: list[tuple]
    leaves: list[tuple]

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, i: int) -> tuple:
        """Row ``i`` with its stored leaf appended (None when it has none)."""
        row = self.rows[i]
        return (*row, self._leaf_of.get(row[0]))

    def joined(self) -> list[tuple]:
        """Every row with its stored leaf appended, as :meth:`row` gives it."""
        leaf_of = self._leaf_of
        return [(*row, leaf_of.get(row[0])) for row in self.rows]

    @cached_property
    def _leaf_of(self) -> dict:
        # by value, not by position: a tampered row's seq may not even be an integer
        return dict(self.leaves)


def walk_rows(
    ctx: VaultContext, client: str, start: int = 0, end: int | None = None
) -> Iterator[Page]:
    """The walk's pages for the rows with ``start <= seq < end`` (all rows by default).

    Each page is two range scans, WALK_PAGE entries and then their stored leaves: ~0.4 µs
    per entry cheaper than a join in SQL, and the compiled walk pairs them by seq without
    making a tuple per row. The statements are compiled once and run on the driver's own
    cursor: their rows are plain tuples, with no per-row wrapping (that was a third of the
    walk's time).
    """
    entries, leaves = _walk_sql(ctx.engine.dialect)
    after, bound = start - 1, _NO_END if end is None else end
    with ctx.engine.connect() as conn:
        driver = conn.connection.driver_connection
        cursor = driver.cursor()  # type: ignore[union-attr]
        try:
            while True:
                rows = _run(cursor, entries, client=client, after=after, end=bound)
                if rows:
                    last = rows[-1][0]
                    stored = _run(cursor, leaves, client=client, after=after, last=last)
                driver.rollback()  # type: ignore[union-attr]  # no transaction held between pages
                if not rows:
                    return
                yield Page(rows, stored)
                after = last
        finally:
            cursor.close()


def _run(cursor: Any, statement: _Statement, **values: object) -> list[tuple]:
    sql, names, params = statement
    values = {**params, **values}
    cursor.execute(sql, [values[n] for n in names] if names else values)
    return cursor.fetchall()


#: a compiled statement: its SQL, its positional parameter names (None: named), defaults
_Statement = tuple[str, tuple[str, ...] | None, dict]


@lru_cache(maxsize=8)
def _walk_sql(dialect: Dialect) -> tuple[_Statement, _Statement]:
    entries = (
        select(LogEntry.seq, LogEntry.entry, LogEntry.tag, LogEntry.type, LogEntry.record_id)
        .where(
            LogEntry.client_id == bindparam("client"),
            LogEntry.seq > bindparam("after"),
            LogEntry.seq < bindparam("end"),
        )
        .order_by(LogEntry.seq)
        .limit(WALK_PAGE)
    )
    leaves = (
        select(MerkleNode.idx, MerkleNode.hash)
        .where(
            MerkleNode.client_id == bindparam("client"),
            MerkleNode.level == 0,
            MerkleNode.idx > bindparam("after"),
            MerkleNode.idx <= bindparam("last"),
        )
        .order_by(MerkleNode.idx)
    )
    return _compiled(entries, dialect), _compiled(leaves, dialect)


def _compiled(stmt: Any, dialect: Dialect) -> _Statement:
    compiled = stmt.compile(dialect=dialect)
    names = tuple(compiled.positiontup) if compiled.positiontup else None
    return str(compiled), names, dict(compiled.params)


class _Walk:
    """The chain walk of verify: every check of every entry, one row at a time.

    Each row is first tried on the fast path (:meth:`_fast`): the tag, the stored leaf,
    the canonical form and the chain all checked with as little work as proves them.
    Any row it cannot prove clean goes through :meth:`_slow`, the full audit, which
    names what is wrong; so the findings are exactly those of the full audit.
    """

    def __init__(
        self,
        client: str,
        keys: LogKeys,
        anchor: Anchor | None,
        checkpoints: CheckpointAudit,
        report: Report,
        check_sealed: Callable[[CheckedEntry], None],
    ) -> None:
        self.client, self.checkpoints, self.report = client, checkpoints, report
        self.chain = ChainWalk(client)
        self.tree = CompactRange()
        self.end = 0  # one past the last stored entry
        self._check_tag = keys.entry_checker()
        self._anchor = anchor
        self.anchor_seq = anchor.size - 1 if anchor is not None else -1
        self._check_sealed = check_sealed
        self._kernel = _kernel(keys)
        self._due_sizes = sorted(checkpoints.sizes())

    def can_join(self, start: int, done: _CleanRange) -> bool:
        """Whether a range checked elsewhere continues exactly where this walk stands."""
        chain = self.chain
        # the tree too: an entry that did not parse moved the chain on but added no leaf
        return (
            chain.expected_seq == start
            and self.tree.size == start
            and chain.prev_hash == done.prev_hash
        )

    def join(self, done: _CleanRange) -> None:
        """Go on past a range a worker found clean, as if it had been walked here."""
        start, report = self.chain.expected_seq, self.report
        for event in done.events:
            if event[0] == "cp":
                _, size, hashes = event
                report.findings += self.checkpoints.at(self.tree.joined(size, hashes))
            else:
                _, seq, hex_hash, entry = event
                self._check_sealed(CheckedEntry(seq=seq, hash=hex_hash, entry=entry))
        self.tree = self.tree.joined(done.size, done.hashes)
        seq, hex_hash, record = done.last
        self.chain.advance(seq, hex_hash, {"record": record})
        report.entries += done.size
        self.end = seq + 1
        assert self.tree.size == start + done.size

    def page(self, page: Page) -> None:
        """Walk a page: the compiled kernel over every row it proves clean, and the rows it
        hands back (records, checkpoint sizes, anything it cannot prove) here."""
        kernel, rows, i = self._kernel, page.rows, 0
        if kernel is None:
            self._rows(page.joined())
        while kernel is not None and i < len(rows):
            j = kernel.run(
                rows, page.leaves, i, self.chain, self.tree, self.anchor_seq, self._next_due()
            )
            self.report.entries += j - i
            if j < len(rows):
                self._rows([page.row(j)])
            i = j + 1
        if rows:
            self.end = rows[-1][0] + 1

    def _next_due(self) -> int:
        """The smallest checkpoint size beyond the tree's: the kernel stops before it."""
        return _next_size(self._due_sizes, self.tree.size)

    def _rows(self, rows: list[tuple]) -> None:
        sha256, chain, tree, check_tag = hashlib.sha256, self.chain, self.tree, self._check_tag
        clean, advance, append = chain.clean, chain.advance, tree.append
        due, anchor_seq, entries = self.checkpoints.due, self.anchor_seq, 0
        for row in rows:
            seq, raw, tag, kind, record, leaf = row
            raw = bytes(raw)
            digest = sha256(LEAF_PREFIX + raw).digest()
            hex_hash = digest.hex()
            entry = (
                clean(seq, raw, hex_hash)
                if seq != anchor_seq
                and leaf is not None
                and bytes(leaf) == digest
                and check_tag(seq, digest, None if tag is None else bytes(tag))
                else None
            )
            if entry is None or entry.get("type") != kind or entry.get("record") != record:
                self._slow(row, raw, digest, hex_hash)
                continue
            advance(seq, hex_hash, entry)
            entries += 1
            append(digest)
            if due(tree.size):
                self.report.findings += self.checkpoints.at(tree)
            if kind in _RECORD_KINDS:
                self._check_sealed(CheckedEntry(seq=seq, hash=hex_hash, entry=entry))
        self.report.entries += entries

    def _slow(self, row: tuple, raw: bytes, digest: bytes, hex_hash: str) -> None:
        """The full audit of one row, its findings in the order the checks come."""
        seq, _, tag, kind, record, leaf = row
        findings = self.report.findings
        if not self._check_tag(seq, digest, None if tag is None else bytes(tag)):
            findings.append(
                Finding(
                    "unauthenticated",
                    self.client,
                    "entry was not appended by the vault: its tag is "
                    + ("missing" if tag is None else "wrong"),
                    seq=seq,
                    record=record,
                )
            )
        for item in self.chain.step(seq, raw, hex_hash):
            if isinstance(item, Finding):
                findings.append(item)
                continue
            findings.extend(self._entry_findings(item, kind, record, leaf))
            self.report.entries += 1
            self.tree.append(digest)
            findings.extend(self._leaf_findings(item, leaf))
            findings.extend(self.checkpoints.at(self.tree))
            if item.entry.get("type") in _RECORD_KINDS:
                self._check_sealed(item)

    def _entry_findings(
        self, item: CheckedEntry, kind: str | None, record: str | None, leaf: object
    ) -> list[Finding]:
        out = []
        if item.entry.get("type") != kind or item.entry.get("record") != record:
            out.append(
                Finding(
                    "modified",
                    self.client,
                    "the log_entry row's type or record_id column disagrees with the entry",
                    seq=item.seq,
                    record=item.entry.get("record"),
                )
            )
        anchor = self._anchor
        if anchor is not None and item.seq == anchor.size - 1 and item.hash != anchor.head_hash:
            out.append(
                Finding(
                    "forked",
                    self.client,
                    "the entry at the anchored head differs from the one the vault appended",
                    seq=item.seq,
                )
            )
        return out

    def _leaf_findings(self, item: CheckedEntry, leaf: bytes | None) -> list[Finding]:
        if leaf is None:
            return [
                Finding(
                    "missing",
                    self.client,
                    "the entry's Merkle leaf is not stored",
                    seq=item.seq,
                    record=item.entry.get("record"),
                )
            ]
        if bytes(leaf).hex() != item.hash:
            return [
                Finding(
                    "modified",
                    self.client,
                    "the stored Merkle leaf differs from the entry's hash; proofs "
                    "served for it would fail",
                    seq=item.seq,
                    record=item.entry.get("record"),
                )
            ]
        return []


def _read_anchor(keys: LogKeys, report: Report) -> Anchor | None:
    try:
        return keys.read_anchor()
    except TamperDetected as exc:
        report.findings.append(Finding("modified", keys.client, exc.message))
        return None


def _paged(ctx: VaultContext, key, value, *where) -> Iterator[tuple[int, bytes]]:
    """``(key, value)`` rows in key order, a page at a time (keyset pagination, no offsets)."""
    after = -1
    while True:
        with read_session(ctx.engine) as s:
            stmt = select(key, value).where(*where, key > after).order_by(key).limit(PAGE)
            page = list(s.exec(stmt))
        if not page:
            return
        yield from page
        after = page[-1][0]


def _ahead(
    opener: RecordOpener | None, page: Page | None = None, events: Sequence[tuple] = ()
) -> contextlib.AbstractContextManager[None]:
    """Open the records a walk page or a joined range (events) reaches, ahead of it."""
    if opener is None:
        return contextlib.nullcontext()
    rows = page.rows if page is not None else []
    return opener.ahead(
        [(row[0], parse_canonical(bytes(row[1]))) for row in rows if row[3] == "evidence.sealed"]
        + [(event[1], event[3]) for event in events if event[0] != "cp"]
    )


def _records(ctx: VaultContext, client: str) -> dict[str, Record]:
    with read_session(ctx.engine) as s:
        return {r.id: r for r in s.exec(select(Record).where(Record.client_id == client))}


def _check_sealed(
    ctx: VaultContext,
    client: str,
    item: CheckedEntry,
    records: dict[str, Record],
    committed: set[str],
    report: Report,
    opener: RecordOpener | None,
    facts: LogFacts,
    campaigns: dict[int, tuple[str, str]],
    sealed_objects: list[SealedObject],
) -> list[Finding]:
    entry, body = item.entry, item.entry.get("body", {})
    rec_id = entry.get("record")
    rec = records.get(rec_id)
    shredded = rec_id in facts.shredded
    out: list[Finding] = []
    objects = body.get("objects", {})
    for role in ("clip", "meta"):
        obj = objects.get(role, {})
        committed.add(obj.get("key", ""))
        sealed_objects.append(
            SealedObject(obj.get("key", ""), obj.get("version"), rec_id, item.seq, role)
        )
        report.objects += 1
    opened = opener is not None and rec is not None and not shredded
    if opened:
        out += opener.open(rec, item)
    for role in () if opened else ("clip", "meta"):
        obj = objects.get(role, {})
        key = obj.get("key", "")
        problem = _check_object(ctx, key, obj.get("sha256"), obj.get("size"), obj.get("version"))
        if problem and shredded and problem[0] == "missing":
            continue  # deleted after shredding, as the retention run does
        if problem:
            kind, detail = problem
            out.append(
                Finding(
                    kind, client, f"{role} object {detail}", seq=item.seq, record=rec_id, key=key
                )
            )
    if rec is None:
        out.append(
            Finding(
                "missing", client, "the sealed record's row is missing", seq=item.seq, record=rec_id
            )
        )
        return out
    report.records += 1
    mismatch = row_mismatch(rec, item, facts, campaigns.get(rec.campaign_id))
    if mismatch:
        out.append(
            Finding(
                "modified",
                client,
                f"record row disagrees with its log entry: {mismatch}",
                seq=item.seq,
                record=rec_id,
            )
        )
    return out


class _DocumentCheck:
    """Checks each ``document.sealed`` entry as the walk reaches it: its object (present,
    the committed SHA-256) and its row; afterwards, rows that no entry seals."""

    def __init__(
        self,
        ctx: VaultContext,
        client: str,
        report: Report,
        facts: LogFacts,
        deep: dict[str, Record] | None = None,
    ) -> None:
        #: ``deep``: the records, when each live document is also decrypted (``--deep``)
        self._deep = deep
        self._ctx, self._client, self._report = ctx, client, report
        with read_session(ctx.engine) as s:
            self._rows = {
                d.id: d for d in s.exec(select(Document).where(Document.client_id == client))
            }
        self._shredded = facts.shredded
        self._seen: set[str] = set()

    def check(self, item: CheckedEntry, sealed_objects: list[SealedObject]) -> list[Finding]:
        entry, body = item.entry, item.entry.get("body", {})
        rec_id, doc_id = entry.get("record"), body.get("document")
        obj = body.get("object", {})
        key = obj.get("key", "")
        sealed_objects.append(SealedObject(key, obj.get("version"), rec_id, item.seq, "document"))
        self._report.objects += 1
        shredded = rec_id in self._shredded
        out: list[Finding] = []
        problem = _check_object(
            self._ctx, key, obj.get("sha256"), obj.get("size"), obj.get("version")
        )
        if problem and not (shredded and problem[0] == "missing"):  # purged after shredding
            kind, detail = problem
            out.append(
                Finding(
                    kind,
                    self._client,
                    f"document object {detail}",
                    seq=item.seq,
                    record=rec_id,
                    key=key,
                )
            )
        self._seen.add(doc_id)
        row = self._rows.get(doc_id)
        if row is None:
            out.append(
                Finding(
                    "missing",
                    self._client,
                    "the sealed document's row is missing",
                    seq=item.seq,
                    record=rec_id,
                )
            )
            return out
        mismatch = document_mismatch(row, entry, shredded)
        if mismatch:
            out.append(
                Finding(
                    "modified",
                    self._client,
                    f"document row disagrees with its log entry: {mismatch}",
                    seq=item.seq,
                    record=rec_id,
                )
            )
        rec = (self._deep or {}).get(rec_id or "")
        if rec is not None and not (out or shredded):
            out += self._opened(rec, row, item)
        return out

    def _opened(self, rec: Record, row: Document, item: CheckedEntry) -> list[Finding]:
        """``--deep``: every AEAD tag of the document and its plaintext commitment."""
        try:
            decrypt_document(self._ctx, rec, row, item.entry)
        except (DecryptionFailed, KeyUnavailable) as exc:
            return [
                Finding(
                    "modified",
                    self._client,
                    f"document object does not open: {exc.message}",
                    seq=item.seq,
                    record=rec.id,
                    key=row.object_key,
                )
            ]
        return []

    def unsealed_rows(self) -> list[Finding]:
        return [
            Finding(
                "missing",
                self._client,
                f"document row {d.id} has no document.sealed entry in the log",
                seq=d.seq,
                record=d.record_id,
            )
            for d_id, d in sorted(self._rows.items())
            if d_id not in self._seen
        ]


def _check_object(
    ctx: VaultContext, key: str, sha256: str | None, size: int | None, version: str | None
) -> tuple[str, str] | None:
    h, n = hashlib.sha256(), 0
    try:
        for chunk in ctx.store.get(key, version_id=version):
            h.update(chunk)
            n += len(chunk)
    except ObjectMissing:
        return "missing", "is missing from object storage"
    if h.hexdigest() != sha256:
        return "modified", f"does not match its committed SHA-256 ({n} bytes stored, {size} sealed)"
    return None


def _hold_findings(ctx: VaultContext, client: str, facts: LogFacts) -> list[Finding]:
    """Open hold rows must be exactly the holds the log placed and has not released."""
    rows: dict[str, set[str]] = {}
    with read_session(ctx.engine) as s:
        for record, hold in s.exec(
            select(Hold.record_id, Hold.id).where(
                Hold.client_id == client,
                Hold.released_at.is_(None),  # type: ignore[union-attr]
            )
        ):
            rows.setdefault(record, set()).add(hold)
    out = []
    for record in sorted({*rows, *(r for r, h in facts.holds.items() if h)}):
        if rows.get(record, set()) != facts.holds.get(record, set()):
            out.append(
                Finding(
                    "modified",
                    client,
                    "the open hold rows disagree with the log's hold entries",
                    record=record,
                )
            )
    return out


def _load_facts(ctx: VaultContext, client: str) -> LogFacts:
    """The later facts about every record, loaded before the walk reaches the sealed entries.

    Selected by the ``type`` column; the walk checks every row's column against its entry,
    so a lying column is itself a finding.
    """
    facts = LogFacts()
    with read_session(ctx.engine) as s:
        # sorted here, not by ORDER BY seq: SQLite would then walk the whole log in seq
        # order instead of taking these few rows from the (client_id, type) index
        rows = s.exec(
            select(LogEntry.seq, LogEntry.entry).where(
                LogEntry.client_id == client,
                LogEntry.type.in_(STATE_TYPES),  # type: ignore[attr-defined]
            )
        )
        for _, raw in sorted(rows):
            try:
                facts.add(parse_entry(bytes(raw)))
            except ValueError:
                continue  # the walk reports the entry itself, and skips it too
    return facts


def _campaigns(ctx: VaultContext, client: str) -> dict[int, tuple[str, str]]:
    """The client's campaigns; a row pointing at another client's campaign finds none."""
    with read_session(ctx.engine) as s:
        rows = s.exec(select(Campaign).where(Campaign.client_id == client))
        return {c.id: (c.client_id, c.name) for c in rows}


# --- the walk by ranges, in worker processes -----------------------------------------------
#
# A range [start, end) is checked in a worker from the hash of the entry before it; when
# every entry in it passes the fast path, the worker returns what the walk needs to go on
# as if it had walked the range itself: the range's compact Merkle range (joined to the
# walk's exactly, because ranges are aligned powers of two), the compact range at each
# checkpoint size inside it, and the sealed entries for their object and row checks (made
# here, in order). A range with anything the fast path cannot prove is walked here, row
# by row, with the full audit: the findings are the sequential walk's, in its order.

_FORKED: tuple[VaultContext, LogKeys] | None = None


@dataclass(frozen=True)
class _CleanRange:
    prev_hash: str  # the hash of entry start-1 the range was checked against
    size: int
    last: tuple[int, str, str | None]  # seq, hash and record of its last entry
    events: list[tuple]  # ("cp", size, hashes) and ("sealed", seq, hash, entry), in order
    hashes: tuple[bytes, ...]


def _workers(size: int) -> int:
    """Worker processes for a log of ``size`` entries: 1 (walk here) unless it pays and is
    safe. Workers are forked (no import, the keys stay in memory, never on a pipe), which
    is only safe from a process with no other thread."""
    import multiprocessing
    import os
    import threading

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if size < PARALLEL_MIN or (cpus or 1) < 2 or threading.active_count() != 1:
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(cpus or 1, 4)


def _parallel_walk(
    ctx: VaultContext,
    keys: LogKeys,
    walk: _Walk,
    size: int,
    workers: int,
    progress: Progress,
    opener: RecordOpener | None,
) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _FORKED
    client, anchor_seq = walk.client, walk.anchor_seq
    due = frozenset(walk.checkpoints.sizes())
    starts = list(range(0, size, RANGE))
    _FORKED = (ctx, keys)
    try:
        with ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("fork"), initializer=_forked_init
        ) as pool:
            futures = [
                pool.submit(
                    _check_range,
                    client,
                    start,
                    None if start == starts[-1] else start + RANGE,  # the last: to the end
                    anchor_seq,
                    due,
                )
                for start in starts
            ]
            for start, future in zip(starts, futures, strict=True):
                try:
                    done = future.result()
                except Exception:  # a worker died (memory, a signal): walk its range here
                    done = None
                end = None if start == starts[-1] else start + RANGE
                if done is not None and walk.can_join(start, done):
                    with _ahead(opener, events=done.events):
                        walk.join(done)
                    progress(done.size)
                    continue
                for page in walk_rows(ctx, client, start, end):
                    with _ahead(opener, page=page):
                        walk.page(page)
                    progress(len(page))
    finally:
        _FORKED = None


def _forked_init() -> None:
    assert _FORKED is not None
    # the parent's pooled connections are its own: this process opens new ones
    _FORKED[0].engine.dispose(close=False)
    # A worker lives for one verify and makes no reference cycles worth collecting; the
    # collector's passes over each page's tuples, and over the heap inherited from the
    # parent (whose pages they also copy), took ~10 % of its time (docs/performance.md).
    gc.disable()


def _check_range(
    client: str, start: int, end: int | None, anchor_seq: int, due: frozenset[int]
) -> _CleanRange | None:
    """In a worker: the range's result if every entry passes the fast path, else None."""
    assert _FORKED is not None
    ctx, keys = _FORKED
    chain, tree, check_tag = ChainWalk(client), CompactRange(), keys.entry_checker()
    if start:
        before = next(walk_rows(ctx, client, start - 1, start), None)
        if before is None:
            return None  # a gap before the range: the walk here names it
        chain.expected_seq = start
        chain.prev_hash = hashlib.sha256(LEAF_PREFIX + bytes(before.rows[0][1])).hexdigest()
    prev_hash, events = chain.prev_hash, list[tuple]()
    kernel, due_sizes = _kernel(keys), sorted(due)

    def next_due() -> int:
        # this range's tree counts from its start; checkpoint sizes from the log's
        return _next_size(due_sizes, start + tree.size) - start

    def clean(row: tuple) -> bool:
        """The Python fast path for a row the kernel handed back (or for every row)."""
        seq, raw, tag, kind, record, leaf = row
        raw = bytes(raw)
        digest = hashlib.sha256(LEAF_PREFIX + raw).digest()
        hex_hash = digest.hex()
        if seq == anchor_seq or leaf is None or bytes(leaf) != digest:
            return False
        if not check_tag(seq, digest, None if tag is None else bytes(tag)):
            return False
        entry = chain.clean(seq, raw, hex_hash)
        if entry is None or entry.get("type") != kind or entry.get("record") != record:
            return False
        chain.advance(seq, hex_hash, entry)
        tree.append(digest)
        if seq + 1 in due:
            events.append(("cp", tree.size, tree.hashes()))
        if kind in _RECORD_KINDS:
            events.append(("sealed", seq, hex_hash, entry))
        return True

    stored = _sqlite_range(ctx, client, start, end) if kernel is not None else None
    if stored is not None:  # read in C, no Python object per row but the handed-back ones
        try:
            while (row := stored.run(kernel, chain, tree, anchor_seq, next_due())) is not None:
                if not clean(row):
                    return None
        finally:
            stored.close()
    else:
        for page in walk_rows(ctx, client, start, end):
            i, n, joined = 0, len(page), page.joined() if kernel is None else None
            while i < n:
                if kernel is not None:
                    i = kernel.run(page.rows, page.leaves, i, chain, tree, anchor_seq, next_due())
                    if i == n:
                        break
                if not clean(page.row(i) if joined is None else joined[i]):
                    return None
                i += 1
    if not tree.size or (end is not None and tree.size != end - start):
        return None
    last = (chain.expected_seq - 1, chain.prev_hash, chain.prev_record)
    return _CleanRange(prev_hash, tree.size, last, events, tree.hashes())


def _next_size(sizes: list[int], size: int) -> int:
    """The smallest of the sorted checkpoint ``sizes`` beyond ``size`` (_NEVER if none)."""
    at = bisect.bisect_right(sizes, size)
    return sizes[at] if at < len(sizes) else _NEVER


def _kernel(keys: LogKeys) -> Any | None:
    """The compiled walk for this log's plain entries; None (and a warning, once) if the
    extension is not built."""
    kernel = keys.entry_kernel(_PLAIN_KINDS)
    if kernel is None:
        _warn_python_walk()
    return kernel


@lru_cache(maxsize=1)
def _warn_python_walk() -> None:
    log.warning(
        "verify's compiled chain walk (vault/ledger/_walk.c) is not built: the log is "
        "walked in Python, several times slower (the README says what the build needs)"
    )


def _sqlite_range(ctx: VaultContext, client: str, start: int, end: int | None) -> Any | None:
    """The compiled reader of a range, where the log is in a SQLite file and it is built.

    Python's sqlite3 module makes a tuple and an object per column per row, and hands the
    interpreter lock back and forth around every step: that was ~60 % of a worker's time
    with the compiled walk. The reader has its own read-only connection and one snapshot.
    """
    url = ctx.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    try:
        from vault.ledger._walk import SqliteRange
    except ImportError:
        return None
    return SqliteRange(url.database, client, start, _NO_END if end is None else end)
