"""Collecting orphans: stored objects no committed record owns.

An upload writes its objects before the commit that makes its record exist; an outage or a
killed worker in between leaves them behind (the vault keeps them rather than risk deleting
a record that did commit: :mod:`vault.services.ingest`). ``gc`` finds them and, once they
are older than a grace period (an upload in flight right now is younger), deletes them.

Under Object Lock the store refuses until the lock runs out. Such an orphan is recorded in
the client's log once, as an ``object.orphaned`` entry (key, version, size: no PII), so
``verify`` knows it and stops reporting it; a later ``gc`` deletes it once its lock has
expired.

Owned, and never touched: every object an ``evidence.sealed`` entry commits to or a record
row names, and everything under a vault-owned prefix (``{client}/_...``: checkpoint notes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from vault.db import Client, Document, LogEntry, Record, read_session, write_session
from vault.db.log import EntryDraft, append_entries
from vault.errors import ObjectLocked, ObjectMissing, StorageError
from vault.ledger.entry import parse_entry
from vault.services.context import VaultContext

log = logging.getLogger(__name__)

ORPHANED = "object.orphaned"
#: objects younger than this may belong to an upload in flight
DEFAULT_GRACE = timedelta(hours=1)


@dataclass
class Collected:
    """What one ``gc`` found and did, per object key (never anything else)."""

    deleted: list[dict] = field(default_factory=list)
    acknowledged: list[dict] = field(default_factory=list)  # locked: recorded in the log
    locked: list[dict] = field(default_factory=list)  # recorded before, still locked
    within_grace: int = 0  # orphans within the grace period, left alone
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "acknowledged": self.acknowledged,
            "still_locked": self.locked,
            "within_grace": self.within_grace,
        }


def owned_keys(ctx: VaultContext, client: str) -> set[str]:
    """Keys a committed record of ``client`` owns: from its log and from its rows."""
    owned: set[str] = set()
    with read_session(ctx.engine) as s:
        for entry in s.exec(
            select(LogEntry.entry).where(
                LogEntry.client_id == client,
                LogEntry.type.in_(("evidence.sealed", "document.sealed")),  # type: ignore[attr-defined]
            )
        ):
            body = parse_entry(entry).get("body", {})
            # a record's clip and metadata; a Textform document's one object
            objects = [*body.get("objects", {}).values(), body.get("object")]
            for obj in objects:
                if isinstance(obj, dict) and obj.get("key"):
                    owned.add(obj["key"])
        owned.update(s.exec(select(Document.object_key).where(Document.client_id == client)).all())
        for clip_key, meta_key in s.exec(
            select(Record.clip_key, Record.meta_key).where(Record.client_id == client)
        ):
            owned.update(k for k in (clip_key, meta_key) if k)
    return owned


def acknowledged_orphans(ctx: VaultContext, client: str) -> set[tuple[str, str | None]]:
    """(key, version) of every ``object.orphaned`` entry in ``client``'s log."""
    with read_session(ctx.engine) as s:
        rows = s.exec(
            select(LogEntry.entry).where(LogEntry.client_id == client, LogEntry.type == ORPHANED)
        )
        bodies = [parse_entry(r).get("body", {}) for r in rows]
    return {(b.get("key", ""), b.get("version")) for b in bodies}


def collect(
    ctx: VaultContext,
    *,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    client: str | None = None,
) -> Collected:
    """Delete (or, under a lock, record) every orphan older than ``grace``, of every client
    (or of ``client``); with ``dry_run`` only list what would be deleted or recorded."""
    out = Collected(dry_run=dry_run)
    with read_session(ctx.engine) as s:
        clients = [c.id for c in s.exec(select(Client)) if client in (None, c.id)]
    for client in clients:
        _collect_client(ctx, client, ctx.clock() - grace, out)
    return out


def _collect_client(ctx: VaultContext, client: str, before: datetime, out: Collected) -> None:
    owned = owned_keys(ctx, client)
    known = acknowledged_orphans(ctx, client)
    drafts: list[EntryDraft] = []
    for v in ctx.store.versions(client + "/"):
        if v.is_delete_marker or v.key in owned or v.key.startswith(f"{client}/_"):
            continue
        if v.last_modified is None or v.last_modified > _aware(before):
            out.within_grace += 1
            continue
        item = {"key": v.key, "version": v.version_id, "size": v.size}
        if out.dry_run:
            out.deleted.append(item)
            continue
        try:
            ctx.store.delete(v.key, version_id=v.version_id)
        except ObjectMissing:
            continue
        except ObjectLocked:
            if (v.key, v.version_id) in known:
                out.locked.append(item)
            else:
                out.acknowledged.append(item)
                drafts.append(EntryDraft(ORPHANED, None, item))
            continue
        except StorageError as exc:
            log.warning("orphan not deleted yet: %s", exc.kind)
            continue
        out.deleted.append(item)
    if drafts:
        with write_session(ctx.engine) as s:
            append_entries(s, client, drafts, ctx.clock(), ctx.log_keys(client))


def parse_grace(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``2d`` (a bare number: seconds); ValueError otherwise."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    if not (number.isascii() and number.isdigit()) or len(number) > 9:
        raise ValueError("a duration such as 90s, 30m, 1h or 2d")
    return timedelta(seconds=int(number) * units[unit])


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
