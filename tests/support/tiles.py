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


class _Server(ThreadingHTTPServer):
    # the default listen backlog (5) drops the SYNs of a parallel mirror: 1 s retries
    request_queue_size = 128


@contextlib.contextmanager
def static_http(directory: Path) -> Iterator[str]:
    """A plain static HTTP server over ``directory`` on loopback (what a public prefix is)."""
    server = _Server(("127.0.0.1", 0), partial(_Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- the committed test vector (tests/vectors/tlog-tiles/) ---------------------------------

VECTOR_SIZE = 257  # one full tile and bundle, a partial of width 1 at levels 0 and 1


def vector_files() -> dict[str, bytes]:
    """The tiled log of a 257-entry log, built from pure code only: path -> bytes.

    Entries as the vault writes them (canonical JSON, chained by ``prev``), the tree with
    :class:`MemoryNodes`, the checkpoint signed with the vault test key of
    tests/vectors/c2sp_note.json ("vault": seed, name, origin).
    """
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vault.ledger.checkpoint import Checkpoint, sign_note
    from vault.ledger.entry import GENESIS_PREV, encode_entry, entry_hash, make_entry
    from vault.ledger.merkle import MemoryNodes, leaf_hash, root
    from vault.ledger.tiles import (
        CHECKPOINT,
        ENTRIES,
        TILE_WIDTH,
        encode_bundle,
        hash_tile_bytes,
        published_tiles,
    )
    from vault.sealing import LogSigner

    keys = json.loads((Path(__file__).parents[1] / "vectors" / "c2sp_note.json").read_text())
    k = keys["vault"]
    entries, prev = [], GENESIS_PREV
    for seq in range(VECTOR_SIZE):
        body = {"principal": f"client:telco-de:auditor-{seq % 7}", "what": "audio"}
        entry = make_entry(
            log=CLIENT, seq=seq, type="evidence.accessed", time=T0, prev=prev,
            record=f"01m8{seq:022d}", body=body,
        )  # fmt: skip
        raw = encode_entry(entry)
        entries.append(raw)
        prev = entry_hash(raw)
    nodes = MemoryNodes(leaf_hash(e) for e in entries)
    files: dict[str, bytes] = {}
    for tile in published_tiles(VECTOR_SIZE):
        if tile.level == ENTRIES:
            first = tile.index * TILE_WIDTH
            files[tile.path] = encode_bundle(entries[first : first + tile.width])
        else:
            files[tile.path] = hash_tile_bytes(tile, nodes)
    body = Checkpoint(k["origin"], VECTOR_SIZE, root(nodes, VECTOR_SIZE)).body()
    signer = LogSigner(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(k["seed"])))
    files[CHECKPOINT] = sign_note(body, k["name"], signer)
    return files
