"""Verifying a client's evidence: the hash chain, the record rows and every stored object.

For each client: the chain audit (:mod:`vault.ledger.audit`); every ``evidence.sealed``
entry's objects exist and hash to the committed SHA-256; the record row agrees with the
entry it points to; and no object sits under the client's prefix that no entry commits
to (an orphan, e.g. left by a crash between upload and commit). Needs no key: it reads
ciphertext only, so an auditor's machine can run it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlmodel import select

from vault.db import Campaign, Client, Document, Hold, LogEntry, LogHead, Record, read_session
from vault.db.models import MerkleNode, Person
from vault.errors import DecryptionFailed, KeyUnavailable, ObjectMissing
from vault.ledger.audit import CheckedEntry, Finding, audit_chain
from vault.ledger.entry import parse_entry
from vault.ledger.merkle import CompactRange
from vault.services.audit import CheckpointAudit, deep_check, stored_tree_findings
from vault.services.binding import STATE_TYPES, LogFacts, row_mismatch
from vault.services.context import VaultContext
from vault.services.documents import decrypt_document, document_mismatch
from vault.services.logauth import Anchor, LogKeys, TamperDetected
from vault.services.objects import SealedObject, storage_findings
from vault.services.orphans import acknowledged_orphans
from vault.services.people import GLOBAL_LOG, oidc_link_logged
from vault.services.timestamps import timestamp_findings, timestamp_pins
from vault.services.witnessing import witness_findings

PAGE = 1000


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
    ]


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
    committed: set[str] = set(checkpoints.keys)
    sealed: list[SealedObject] = []
    sealed_ids: set[str] = set()
    tree = CompactRange()
    leaves = _LeafCheck(ctx, client)
    facts = _load_facts(ctx, client)
    documents = _DocumentCheck(ctx, client, report, facts, records if deep else None)
    campaigns = _campaigns(ctx, client)
    tags = _TagCheck(keys, tagged_rows(ctx, client))
    for item in audit_chain(client, tags, head.size, head.head_hash):
        report.findings += tags.drain()
        if isinstance(item, Finding):
            report.findings.append(item)
            continue
        bad_columns = tags.columns_finding(item)
        if bad_columns:
            report.findings.append(bad_columns)
        if anchor is not None and item.seq == anchor.size - 1 and item.hash != anchor.head_hash:
            report.findings.append(
                Finding(
                    "forked",
                    client,
                    "the entry at the anchored head differs from the one the vault appended",
                    seq=item.seq,
                )
            )
        report.entries += 1
        progress(1)
        tree.append(bytes.fromhex(item.hash))
        report.findings += leaves.check(item)
        report.findings += checkpoints.at(tree)
        if item.entry.get("type") == "evidence.sealed":
            sealed_ids.add(item.entry.get("record", ""))
            report.findings += _check_sealed(
                ctx, client, item, records, committed, report, deep, facts, campaigns, sealed
            )
        elif item.entry.get("type") == "document.sealed":
            report.findings += documents.check(item, sealed)
    report.findings += tags.drain()
    if anchor is not None and anchor.size > tags.end:
        report.findings.append(
            Finding(
                "truncated",
                client,
                f"the vault anchored a log of {anchor.size} entries outside the database, "
                f"but the stored log ends at {tags.end}: entries were cut off the end",
                seq=tags.end,
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


def tagged_rows(ctx: VaultContext, client: str) -> Iterator[tuple]:
    """``(seq, entry, tag, type, record_id)`` in seq order, a page at a time."""
    after = -1
    while True:
        with read_session(ctx.engine) as s:
            page = s.exec(
                select(
                    LogEntry.seq, LogEntry.entry, LogEntry.tag, LogEntry.type, LogEntry.record_id
                )
                .where(LogEntry.client_id == client, LogEntry.seq > after)
                .order_by(LogEntry.seq)
                .limit(PAGE)
            ).all()
        if not page:
            return
        yield from page
        after = page[-1][0]


class _TagCheck:
    """Feeds ``(seq, entry)`` to the chain audit while checking each row's tag and columns.

    A row whose tag does not verify was not appended by the vault (``unauthenticated``);
    ``type`` and ``record_id`` are lookup columns and must say what the entry says.
    """

    def __init__(self, keys: LogKeys, rows: Iterator[tuple]) -> None:
        self._keys, self._rows = keys, rows
        self._found: list[Finding] = []
        self.end = 0  # one past the last stored entry
        self.columns: tuple[str | None, str | None] = (None, None)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        client = self._keys.client
        for seq, raw, tag, kind, record in self._rows:
            raw = bytes(raw)
            self.end = seq + 1
            if not self._keys.check_entry(seq, raw, bytes(tag) if tag is not None else None):
                self._found.append(
                    Finding(
                        "unauthenticated",
                        client,
                        "entry was not appended by the vault: its tag is "
                        + ("missing" if tag is None else "wrong"),
                        seq=seq,
                        record=record,
                    )
                )
            self.columns = (kind, record)
            yield seq, raw

    def columns_finding(self, item: CheckedEntry) -> Finding | None:
        """The entry the audit just yielded against its row's ``type``/``record_id``."""
        kind, record = self.columns
        if item.entry.get("type") == kind and item.entry.get("record") == record:
            return None
        return Finding(
            "modified",
            self._keys.client,
            "the log_entry row's type or record_id column disagrees with the entry",
            seq=item.seq,
            record=item.entry.get("record"),
        )

    def drain(self) -> list[Finding]:
        out, self._found = self._found, []
        return out


def _read_anchor(keys: LogKeys, report: Report) -> Anchor | None:
    try:
        return keys.read_anchor()
    except TamperDetected as exc:
        report.findings.append(Finding("modified", keys.client, exc.message))
        return None


def _stored_leaves(ctx: VaultContext, client: str) -> Iterator[tuple[int, bytes]]:
    return _paged(
        ctx, MerkleNode.idx, MerkleNode.hash, MerkleNode.client_id == client, MerkleNode.level == 0
    )


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


class _LeafCheck:
    """Walks the stored level-0 Merkle nodes in step with the entries."""

    def __init__(self, ctx: VaultContext, client: str) -> None:
        self._client = client
        self._leaves = _stored_leaves(ctx, client)
        self._next = next(self._leaves, None)

    def check(self, item: CheckedEntry) -> list[Finding]:
        while self._next is not None and self._next[0] < item.seq:
            self._next = next(self._leaves, None)
        if self._next is None or self._next[0] != item.seq:
            return [
                Finding(
                    "missing",
                    self._client,
                    "the entry's Merkle leaf is not stored",
                    seq=item.seq,
                    record=item.entry.get("record"),
                )
            ]
        if bytes(self._next[1]).hex() != item.hash:
            return [
                Finding(
                    "modified",
                    self._client,
                    "the stored Merkle leaf differs from the entry's hash; proofs "
                    "served for it would fail",
                    seq=item.seq,
                    record=item.entry.get("record"),
                )
            ]
        return []


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
    deep: bool,
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
    opened = deep and rec is not None and not shredded
    if opened:
        out += deep_check(ctx, rec, item)
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
        rows = s.exec(
            select(LogEntry.entry)
            .where(LogEntry.client_id == client, LogEntry.type.in_(STATE_TYPES))  # type: ignore[attr-defined]
            .order_by(LogEntry.seq)
        )
        for raw in rows:
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
