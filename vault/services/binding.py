"""A record row is only as good as the log entry it is bound to: checked before every use.

The ``record`` row holds what search and the lifecycle need; whoever can write the
database can change it. Every column that matters is committed to by the record's
``evidence.sealed`` entry (explicitly, or through the ``row`` digest of the identifying
columns), and the entries that change a record later — ``retention.extended``,
``key.rewrapped``, ``evidence.shredded``, ``hold.placed`` / ``hold.released`` — say what
the row must look like now. Entries are authenticated by their tags
(:mod:`vault.services.logauth`), so the log is the reference and the row is checked
against it:

* by ``verify``, for every record, during its walk of the whole log;
* by :func:`check_record`, before a read, a hold, an erasure, a retention shred or a purge
  acts on one record: a row that disagrees is refused with :class:`TamperDetected`;
* by :class:`LogTail`, before anything is destroyed: :func:`check_record` finds a record's
  later entries by their ``record_id`` column, which is not covered by the tags, so a
  ``hold.placed`` entry re-pointed at another record would hide the hold. Before a shred
  the whole log after the record's seal is walked once (tags, lookup columns, chain, head,
  anchor), so the selection is known to be complete.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from vault.db import Campaign, LogEntry, Record, read_session
from vault.db.log import log_head
from vault.errors import NotFound
from vault.ledger.audit import CheckedEntry
from vault.ledger.entry import GENESIS_PREV, canonical_json, entry_hash, format_time, parse_entry
from vault.services.context import VaultContext
from vault.services.logauth import LogKeys, TamperDetected

#: entry types that change what a record row must look like after its seal
STATE_TYPES = (
    "evidence.shredded",
    "retention.extended",
    "key.rewrapped",
    "hold.placed",
    "hold.released",
)

#: the identifying columns committed to by the ``row`` digest of a v2 sealed entry (keyed
#: lookup hashes are among them, so the digest cannot be confirmed by guessing the rest)
ROW_COLUMNS = (
    "call_id",
    "segment",
    "order_ref",
    "agent_id",
    "phone_hash",
    "clip_fingerprint",
    "meta_fingerprint",
    "codec",
    "clip_size",
    "retention_rule",
)


def row_digest(rec: Record | dict) -> str:
    """Hex SHA-256 of the RFC 8785 JSON of the row's :data:`ROW_COLUMNS`."""
    get = rec.get if isinstance(rec, dict) else lambda name: getattr(rec, name)
    return hashlib.sha256(canonical_json({c: get(c) for c in ROW_COLUMNS})).hexdigest()


@dataclass
class LogFacts:
    """What entries after a record's seal say about it: shredded, retention extended, key
    re-wrapped, holds placed and released."""

    shredded: set[str] = field(default_factory=set)
    retain_until: dict[str, str] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    holds: dict[str, set[str]] = field(default_factory=dict)  # record -> open hold ids

    def add(self, entry: dict[str, Any]) -> None:
        kind, record, body = entry.get("type"), entry.get("record"), entry.get("body", {})
        if kind == "evidence.shredded":
            self.shredded.add(record)
        elif kind == "retention.extended":
            self.retain_until[record] = body.get("retain_until")
        elif kind == "key.rewrapped":
            self.edges.setdefault(body.get("from"), set()).add(body.get("to"))
        elif kind == "hold.placed":
            self.holds.setdefault(record, set()).add(body.get("hold"))
        elif kind == "hold.released":
            self.holds.get(record, set()).discard(body.get("hold"))

    def held(self, record: str) -> bool:
        return bool(self.holds.get(record))

    def reaches(self, start: str | None, target: str) -> bool:
        """Whether re-wrapping can have moved a key from KEK ``start`` to ``target``."""
        seen, todo = set(), [start]
        while todo:
            kek = todo.pop()
            if kek == target:
                return True
            if kek not in seen:
                seen.add(kek)
                todo += self.edges.get(kek, ())
        return False


def row_mismatch(
    rec: Record, item: CheckedEntry, facts: LogFacts, campaign: tuple[str, str] | None
) -> str | None:
    """The columns of ``rec`` that disagree with its sealed entry and the later facts.

    ``campaign`` is the (client, name) of the row's ``campaign_id``. Version-1 entries
    commit to less (no ``row`` digest, versions, sealed time or codec): their rows are
    checked on what they do commit to.
    """
    body = item.entry.get("body", {})
    objects = body.get("objects", {})
    clip, meta = objects.get("clip", {}), objects.get("meta", {})
    retain_until = facts.retain_until.get(rec.id, body.get("retain_until"))
    shredded = rec.id in facts.shredded
    pairs: dict[str, tuple[Any, Any]] = {
        "seq": (rec.seq, item.seq),
        "client_id": (rec.client_id, item.entry.get("log")),
        "campaign_id": (campaign, (rec.client_id, body.get("campaign"))),
        "clip_key": (rec.clip_key, clip.get("key")),
        "clip_sha256": (rec.clip_sha256, clip.get("sha256")),
        "meta_key": (rec.meta_key, meta.get("key")),
        "meta_sha256": (rec.meta_sha256, meta.get("sha256")),
        "recorded_at": (format_time(rec.recorded_at), body.get("recorded_at")),
        "retain_until": (format_time(rec.retain_until), retain_until),
        "kek": (True, facts.reaches(body.get("kek"), rec.kek_id)),
        "duration_ms": (rec.duration_ms, body.get("duration_ms")),
        "media_type": (rec.media_type, body.get("media_type")),
        # a shredded record keeps no key; a live one must still have one
        "wrapped_dek": (bool(rec.wrapped_dek), not shredded),
        "shredded_at": (rec.shredded_at is not None, shredded),
    }
    if item.entry.get("v", 1) >= 2:
        pairs.update(
            {
                "sealed_at": (format_time(rec.sealed_at), item.entry.get("time")),
                "clip_version": (rec.clip_version, clip.get("version")),
                "meta_version": (rec.meta_version, meta.get("version")),
            }
        )
        if not shredded:  # shredding empties the keyed lookup hashes the digest covers
            pairs["row"] = (row_digest(rec), body.get("row"))
    bad = [name for name, (row, entry) in pairs.items() if row != entry]
    return ", ".join(bad) if bad else None


def sealed_object(rec: Record, role: str) -> tuple[str, str | None]:
    """The key and the version the vault wrote of a record's ``clip`` or ``meta`` object.

    Every read, hold, lock extension and delete names the version: one stacked on the key
    by someone else is never read, held or locked (None: a store without versions).
    """
    if role == "clip":
        return rec.clip_key, rec.clip_version
    return rec.meta_key, rec.meta_version


@dataclass(frozen=True)
class RecordState:
    """A record row that agrees with the log, and what the log says about it."""

    record: Record
    shredded: bool
    held: bool


def check_record(session: Session, keys: LogKeys, rec: Record) -> RecordState:
    """Check one record row against its authenticated entries; TamperDetected if it differs.

    Reads the sealed entry (by the row's ``seq``), the entries that changed the record
    since (by the ``record_id`` column) and the client's re-wrap entries; each must carry
    a valid tag and say what its lookup columns say. The row then must match them.
    """
    client = rec.client_id
    sealed = session.get(LogEntry, (client, rec.seq))
    if sealed is None:
        _refuse(rec, "its sealed log entry is missing")
    item = _authentic(keys, sealed, rec)
    if item.entry.get("type") != "evidence.sealed" or item.entry.get("record") != rec.id:
        _refuse(rec, "the log entry at its seq is not its evidence.sealed entry")
    facts = LogFacts()
    later = session.exec(
        select(LogEntry)
        .where(
            LogEntry.client_id == client,
            LogEntry.seq > rec.seq,
            # every entry of the record whatever its type column says (a re-labelled
            # extension is still found), and the client's re-wraps
            (LogEntry.record_id == rec.id) | (LogEntry.type == "key.rewrapped"),
        )
        .order_by(LogEntry.seq)
    )
    for row in later:
        facts.add(_authentic(keys, row, rec).entry)
    campaign = session.get(Campaign, rec.campaign_id)
    where = (campaign.client_id, campaign.name) if campaign else None
    mismatch = row_mismatch(rec, item, facts, where)
    if mismatch:
        _refuse(rec, f"its row disagrees with its log entries ({mismatch})")
    return RecordState(rec, rec.id in facts.shredded, facts.held(rec.id))


def _authentic(keys: LogKeys, row: LogEntry, rec: Record) -> CheckedEntry:
    raw = bytes(row.entry)
    if not keys.check_entry(row.seq, raw, bytes(row.tag) if row.tag is not None else None):
        _refuse(rec, f"log entry {row.seq} was not appended by the vault")
    try:
        entry = parse_entry(raw)
    except ValueError:
        _refuse(rec, f"log entry {row.seq} is not a valid entry")
    if (
        entry.get("seq") != row.seq
        or entry.get("log") != rec.client_id
        or entry.get("type") != row.type
        or entry.get("record") != row.record_id
    ):
        _refuse(rec, f"log entry {row.seq} disagrees with its row")
    return CheckedEntry(row.seq, entry_hash(raw), entry)


def _refuse(rec: Record, why: str) -> None:
    raise TamperDetected(
        f"record {rec.id}: {why}; refusing to act on it",
        hint="run `evidence-vault verify` and restore the database from a backup; "
        "nothing was changed",
    )


def checked_record(ctx: VaultContext, record_id: str, client: str | None = None) -> RecordState:
    """Load a record (another tenant's looks missing) and check it against the log."""
    with read_session(ctx.engine) as s:
        rec = s.get(Record, record_id)
        if rec is None or (client is not None and rec.client_id != client):
            raise NotFound(f"no record {record_id!r}", hint="search with `evidence-vault find`")
        return check_record(s, ctx.log_keys(rec.client_id), rec)


class LogTail:
    """The part of each client's log that has been walked and found honest, for one run.

    A shred must not rely on lookup columns alone (see the module docstring). Walking the
    log from the record's seal to the head costs one HMAC and one JSON parse per entry, so
    a retention run or an erasure walks each client's tail once and only extends it after.
    """

    def __init__(self) -> None:
        self._walked: dict[str, tuple[int, int, str]] = {}  # client -> (from, size, head)

    def require(self, session: Session, keys: LogKeys, client: str, after_seq: int) -> None:
        """TamperDetected unless every entry after ``after_seq`` up to the head is honest."""
        head = log_head(session, client)
        anchor = keys.read_anchor()
        if anchor is not None and anchor.size > head.size:
            raise TamperDetected(
                f"log {client}: the head is behind its anchor ({head.size} < {anchor.size} "
                "entries); refusing to destroy anything",
                hint="run `evidence-vault verify` and restore the database from a backup; "
                "nothing was changed",
            )
        walked = self._walked.get(client)
        if walked and walked[0] <= after_seq and walked[1] <= head.size:
            start, prev_hash = walked[1], walked[2]  # only the entries appended since
            first = walked[0]
        else:
            start, prev_hash, first = after_seq, None, after_seq
        last = _walk(session, keys, client, start, head.size, prev_hash)
        if last != head.head_hash:
            _refuse_log(client, "the entries do not lead to the log's head")
        self._walked[client] = (first, head.size, head.head_hash)


def _walk(
    session: Session, keys: LogKeys, client: str, start: int, size: int, prev: str | None
) -> str:
    """Check entries ``start .. size-1`` (``start`` itself only as the link if ``prev`` is
    None); returns the hash of the last one."""
    # plain columns, not ORM objects: the walk reads every row after the record
    rows = session.execute(
        select(LogEntry.seq, LogEntry.type, LogEntry.record_id, LogEntry.entry, LogEntry.tag)
        .where(LogEntry.client_id == client, LogEntry.seq >= start)
        .order_by(LogEntry.seq)
    )
    expected = start
    for seq, kind, record, raw, tag in rows:
        if seq != expected:
            _refuse_log(client, f"log entry {expected} is missing")
        raw = bytes(raw)
        digest = entry_hash(raw)
        if not keys.auth.check_entry(
            seq, bytes.fromhex(digest), None if tag is None else bytes(tag)
        ):
            _refuse_log(client, f"log entry {seq} was not appended by the vault")
        # the tag vouches for the bytes, so a plain parse is enough here
        entry = json.loads(raw)
        if prev is not None and entry.get("prev") != prev:
            _refuse_log(client, f"log entry {seq} does not link to the one before")
        if entry.get("type") != kind or entry.get("record") != record:
            _refuse_log(client, f"log entry {seq} disagrees with its row")
        prev, expected = digest, expected + 1
    if expected < size:
        _refuse_log(client, f"log entry {expected} is missing")
    return prev if prev is not None else GENESIS_PREV


def _refuse_log(client: str, why: str) -> None:
    raise TamperDetected(
        f"log {client}: {why}; refusing to destroy anything",
        hint="run `evidence-vault verify` and restore the database from a backup; "
        "nothing was changed",
    )
