"""Helpers for the tiled-log tests and bench: grow a log fast, serve a directory over HTTP."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.vaults import CLIENT
from vault.db import LogHead, write_session
from vault.db.log import EntryDraft, append_entries
from vault.services.tiles import tiles_prefix

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def grow(vault, n: int, *, group: int = 5000) -> None:
    """Append ``n`` entries through the real append path, then checkpoint (and publish)."""
    ctx = vault.context
    with write_session(ctx.engine) as s:
        start = s.get(LogHead, CLIENT).size
    for first in range(start, start + n, group):
        drafts = [
            EntryDraft(
                "evidence.accessed", f"01m8{i:022d}", {"principal": f"p-{i}", "what": "audio"}
            )
            for i in range(first, min(start + n, first + group))
        ]
        with write_session(ctx.engine) as s:
            append_entries(s, CLIENT, drafts, T0, ctx.log_keys(CLIENT))
    vault.checkpoint(CLIENT)


def published_dir(vault) -> Path:
    """The local store keeps the log's prefix as a directory: a mirror as published."""
    return vault.context.store.root / tiles_prefix(CLIENT)


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@contextlib.contextmanager
def static_http(directory: Path) -> Iterator[str]:
    """A plain static HTTP server over ``directory`` on loopback (what a public prefix is)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
