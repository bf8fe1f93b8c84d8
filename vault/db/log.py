"""The per-client log as stored in the database: appending, serialised so the head never forks.

The entries themselves (canonical bytes, hashes) are :mod:`vault.ledger.entry`, pure code.

Callers run :func:`append_entries` inside :func:`vault.db.write_session`, in the same
transaction as the rows the entries describe: either both commit or neither does.
Several drafts in one call share one lock acquisition and one commit (group commit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, select

from vault.db.engine import AFTER_COMMIT
from vault.db.models import LogEntry, LogHead
from vault.db.tree import add_leaves
from vault.errors import NotFound
from vault.ledger.entry import GENESIS_PREV, encode_entry, entry_hash, make_entry


@dataclass(frozen=True)
class EntryDraft:
    type: str
    record: str | None
    body: dict[str, Any] = field(default_factory=dict)


class LogWriter(Protocol):
    """What appending needs besides the database: the client's keys, held outside it.

    ``entry_tag`` authenticates an entry (``vault.sealing.logauth``); ``anchor`` records the
    new head outside the database once the transaction has committed.
    """

    def entry_tag(self, seq: int, entry_hash: bytes) -> bytes: ...

    def anchor(self, size: int, head_hash: str) -> None: ...


@dataclass(frozen=True)
class Appended:
    seq: int
    entry_hash: str
    entry: bytes


def log_head(session: Session, client_id: str, *, lock: bool = False) -> LogHead:
    stmt = select(LogHead).where(LogHead.client_id == client_id)
    if lock:
        stmt = stmt.with_for_update()
    head = session.exec(stmt).first()
    if head is None:
        raise NotFound(
            f"client {client_id!r} has no log", hint="create it with `evidence-vault client add`"
        )
    return head


def new_log(session: Session, client_id: str) -> LogHead:
    head = LogHead(client_id=client_id, size=0, head_hash=GENESIS_PREV)
    session.add(head)
    return head


def append_entries(
    session: Session,
    client_id: str,
    drafts: Sequence[EntryDraft],
    now: datetime,
    writer: LogWriter,
) -> list[Appended]:
    """Append drafts to the client's log under its head lock; returns each entry's seq and hash.

    Each entry row carries its tag from ``writer``; after the transaction commits, the new
    head is anchored through ``writer`` (see :func:`vault.db.engine.write_session`).

    If the caller locked the head with :func:`lock_head` in this session (the group
    commit's hot path), that head is used and updated with Core statements: no ORM object,
    one statement less. Otherwise the head is locked and loaded here as an ORM object,
    which the session keeps up to date for callers that read it afterwards.
    """
    locked_heads = session.info.get(_LOCKED_HEADS, {})
    locked, head = locked_heads.get(client_id), None
    if locked is None:
        head = log_head(session, client_id, lock=True)
        locked = LockedHead(head.size, head.head_hash)
    out: list[Appended] = []
    rows: list[dict] = []
    prev, seq = locked.head_hash, locked.size
    for draft in drafts:
        entry = make_entry(
            log=client_id,
            seq=seq,
            type=draft.type,
            time=now,
            prev=prev,
            record=draft.record,
            body=draft.body,
        )
        raw = encode_entry(entry)
        prev = entry_hash(raw)
        rows.append(
            {
                "client_id": client_id,
                "seq": seq,
                "type": draft.type,
                "record_id": draft.record,
                "entry": raw,
                "tag": writer.entry_tag(seq, bytes.fromhex(prev)),
            }
        )
        out.append(Appended(seq=seq, entry_hash=prev, entry=raw))
        seq += 1
    if not rows:
        return out
    # Core inserts on the connection (the ORM's bulk path costs more Python than the SQL):
    # group commit costs one statement per table, not one per row
    conn = session.connection()
    conn.execute(_INSERT_ENTRY, rows)
    add_leaves(session, client_id, locked.size, [bytes.fromhex(a.entry_hash) for a in out])
    if head is None:
        conn.execute(_UPDATE_HEAD, {"client": client_id, "new_size": seq, "new_hash": prev})
        locked_heads[client_id] = LockedHead(seq, prev)
    else:
        head.size, head.head_hash = seq, prev
        session.add(head)
    new_size, new_hash = seq, prev
    after_commit(session, lambda: writer.anchor(new_size, new_hash))
    return out


@dataclass(frozen=True)
class LockedHead:
    size: int
    head_hash: str


def lock_head(session: Session, client_id: str) -> LockedHead:
    """Lock the client's log head row (``FOR UPDATE``) and read it, without an ORM object.

    :func:`append_entries` in the same session then appends from this head (and keeps it
    current), so it neither reads the head again nor loads it into the session."""
    row = session.execute(_LOCK_HEAD, {"client": client_id}).first()
    if row is None:
        log_head(session, client_id)  # raises NotFound, with its message
    assert row is not None
    locked = LockedHead(row.size, row.head_hash)
    session.info.setdefault(_LOCKED_HEADS, {})[client_id] = locked
    return locked


#: ``session.info`` key: the heads :func:`lock_head` locked in this session, by client
_LOCKED_HEADS = "vault_locked_heads"
# built once: the hot path compiles nothing (SQLAlchemy caches by statement object)
_INSERT_ENTRY = insert(LogEntry.__table__)  # type: ignore[attr-defined]
_LOCK_HEAD = (
    select(LogHead.size, LogHead.head_hash)
    .where(LogHead.client_id == bindparam("client"))
    .with_for_update()
)
_UPDATE_HEAD = (
    update(LogHead.__table__)  # type: ignore[attr-defined]
    .where(LogHead.__table__.c.client_id == bindparam("client"))  # type: ignore[attr-defined]
    .values(size=bindparam("new_size"), head_hash=bindparam("new_hash"))
)


def after_commit(session: Session, hook: Any) -> None:
    """Run ``hook`` once the write session's transaction has committed (never on rollback)."""
    session.info.setdefault(AFTER_COMMIT, []).append(hook)
