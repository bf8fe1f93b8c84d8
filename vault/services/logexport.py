"""Exporting a client's log for an auditor: entries and checkpoints, no PII, no keys."""

from __future__ import annotations

import os
from pathlib import Path

from vault.db import LogHead, read_session
from vault.errors import NotFound
from vault.ledger.offline import export_lines
from vault.services.checkpoints import list_checkpoints, log_verifier_key, origin
from vault.services.context import VaultContext
from vault.services.verify import rows as entry_rows
from vault.storage.files import atomic_output


def export_log(ctx: VaultContext, client: str, out: str | os.PathLike) -> Path:
    with read_session(ctx.engine) as s:
        head = s.get(LogHead, client)
    if head is None:
        raise NotFound(f"client {client!r} has no log", hint="check the client id")
    notes = [cp.note.encode() for cp in list_checkpoints(ctx, client) if cp.size <= head.size]
    lines = export_lines(
        origin(ctx, client),
        head.size,
        log_verifier_key(ctx),
        _upto(entry_rows(ctx, client), head.size),
        notes,
    )
    with atomic_output(out, "w") as fh:
        for line in lines:
            fh.write(line + "\n")
    return Path(out)


def _upto(rows, size: int):
    # entries appended while the export runs are left for the next export
    for seq, raw in rows:
        if seq >= size:
            return
        yield seq, raw
