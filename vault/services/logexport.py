"""Reading a client's log for an auditor: pages of entries, and the whole log as JSON Lines.

Entries and checkpoints only: no PII, no keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import select

from vault.db import LogEntry, LogHead, read_session
from vault.errors import NotFound
from vault.ledger.entry import entry_hash
from vault.ledger.offline import export_lines
from vault.services.checkpoints import list_checkpoints, log_verifier_key, origin
from vault.services.context import VaultContext
from vault.services.timestamps import all_timestamps
from vault.services.verify import rows as entry_rows
from vault.services.witnessing import cosigned_note
from vault.storage.files import atomic_output


@dataclass(frozen=True)
class LoggedEntry:
    seq: int
    #: the canonical JSON text, as hashed
    entry: bytes
    #: its RFC 9162 leaf hash, hex
    hash: str


@dataclass(frozen=True)
class EntryPage:
    #: entries in the log when the page was read
    size: int
    entries: list[LoggedEntry]


def log_size(ctx: VaultContext, client: str) -> int | None:
    """Entries in the client's log now; None if the client has no log."""
    with read_session(ctx.engine) as s:
        head = s.get(LogHead, client)
    return head.size if head is not None else None


def entry_page(ctx: VaultContext, client: str, start: int, limit: int) -> EntryPage | None:
    """Up to ``limit`` entries from seq ``start``; None if the client has no log."""
    with read_session(ctx.engine) as s:
        # the head and the page in one session: never an entry past the size reported
        head = s.get(LogHead, client)
        if head is None:
            return None
        got = list(
            s.exec(
                select(LogEntry.seq, LogEntry.entry)
                .where(LogEntry.client_id == client, LogEntry.seq >= start)
                .where(LogEntry.seq < head.size)
                .order_by(LogEntry.seq)
                .limit(limit)
            )
        )
        size = head.size
    entries = [LoggedEntry(seq, bytes(raw), entry_hash(bytes(raw))) for seq, raw in got]
    return EntryPage(size, entries)


def export_stream(ctx: VaultContext, client: str, size: int) -> Iterator[str]:
    """The first ``size`` entries and the checkpoints up to them, as lines (no newlines).

    The checkpoints are read now; the entries as the lines are consumed.
    """
    notes = [
        cosigned_note(ctx, client, cp.size, cp.note).encode()  # with witness cosignatures
        for cp in list_checkpoints(ctx, client)
        if cp.size <= size
    ]
    stamps = [(t.size, t.tsa, t.token) for t in all_timestamps(ctx, client, size)]
    return export_lines(
        origin(ctx, client),
        size,
        log_verifier_key(ctx),
        _upto(entry_rows(ctx, client), size),
        notes,
        stamps,
    )


def export_log(ctx: VaultContext, client: str, out: str | os.PathLike) -> Path:
    size = log_size(ctx, client)
    if size is None:
        raise NotFound(f"client {client!r} has no log", hint="check the client id")
    lines = export_stream(ctx, client, size)
    with atomic_output(out, "w") as fh:
        for line in lines:
            fh.write(line + "\n")
    return Path(out)


def _upto(rows: Iterable[tuple[int, bytes]], size: int) -> Iterator[tuple[int, bytes]]:
    # entries appended while the export runs are left for the next export
    for seq, raw in rows:
        if seq >= size:
            return
        yield seq, bytes(raw)
