"""Publishing each client's log as a C2SP tiled log in the bucket, for auditors without an account.

Under ``_tlog/{client}/`` (the leading ``_`` keeps it apart from every client's own prefix,
since a client id starts with a letter or digit): ``checkpoint``, ``tile/<L>/<N>[.p/<W>]``
and ``tile/entries/<N>[.p/<W>]`` (:mod:`vault.ledger.tiles`), plus ``key-handover/<size>``,
the co-signed checkpoint of each log-key rotation, so auditors follow a rotation from the
key they pinned. One bucket-policy statement
granting anonymous ``GetObject`` on ``_tlog/*`` makes every log readable with plain HTTP.

When: after each checkpoint (:func:`publish_after_checkpoint`, called where checkpoints are
made) and on the checkpoint timer, which also catches up after a failure
(:func:`publish_all`); on demand with ``evidence-vault log publish``. A failure is logged and
never blocks ingest. Where the log stands is read back from the published ``checkpoint``
itself, so there is no state to lose: a publish starts from that size.

Order: tiles and bundles first, the ``checkpoint`` last (it never names a tile that is not
there yet), then partial tiles made obsolete by a full one are deleted (C2SP allows it once
the full tile is available). Full tiles and bundles never change and are written once,
under Object Lock where the bucket has it; partial tiles are new objects too (the width is
in the path); only ``checkpoint`` is replaced in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import select

from vault.db import LogEntry, LogHead, read_session
from vault.db.models import Checkpoint as CheckpointRow
from vault.db.tree import StoredTree
from vault.errors import NotFound, ObjectExists, ObjectMissing, StorageError, VaultError
from vault.ledger.checkpoint import Checkpoint, NoteError, open_note
from vault.ledger.tiles import (
    CHECKPOINT,
    ENTRIES,
    HANDOVER,
    ROTATION,
    TILE_WIDTH,
    Tile,
    encode_bundle,
    hash_tile_bytes,
    published_tiles,
)
from vault.services.checkpoints import (
    CHECKPOINT_RETENTION,
    latest_checkpoint,
    log_verifiers,
)
from vault.services.claims import exclusive
from vault.services.context import VaultContext
from vault.services.witnessing import cosigned_note

TLOG_PREFIX = "_tlog"
CHECKPOINT_CONTENT_TYPE = "text/plain; charset=utf-8"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    client: str
    #: the size the published checkpoint had before, and has now
    old_size: int
    size: int
    #: tiles, bundles and hand-over notes written (ones already there are not counted)
    written: int

    def to_dict(self) -> dict[str, object]:
        return {
            "client": self.client,
            "old_size": self.old_size,
            "size": self.size,
            "written": self.written,
            "prefix": tiles_prefix(self.client),
        }


def tiles_prefix(client: str) -> str:
    return f"{TLOG_PREFIX}/{client}"


def published_size(ctx: VaultContext, client: str) -> int:
    """The size of the published checkpoint; 0 when none (or an unreadable one) is there."""
    return _published(ctx, client)[0]


def _published(ctx: VaultContext, client: str) -> tuple[int, bytes]:
    """The published checkpoint's size and note; (0, b"") when none (or an unreadable one)."""
    try:
        note = b"".join(ctx.store.get(f"{tiles_prefix(client)}/{CHECKPOINT}"))
        body, _ = open_note(note, log_verifiers(ctx))
        return Checkpoint.parse_body(body).size, note
    except (ObjectMissing, NoteError):
        return 0, b""


def _more_cosigned(note: bytes, published: bytes) -> bool:
    """``note`` is the published one with more signature lines (cosignatures came in)."""
    return set(published.splitlines()) < set(note.splitlines())


def publish(ctx: VaultContext, client: str) -> Published:
    """Bring the client's tiled log up to its latest checkpoint."""
    # one publisher per log across workers: a slow publish must never put an older
    # checkpoint back over a newer one
    with exclusive(ctx.engine, f"tiles {client}"):
        try:
            cp = latest_checkpoint(ctx, client)
        except NotFound:
            return Published(client, 0, 0, 0)
        # with the witnesses' cosignatures so far: an auditor of the tiles can hold the
        # checkpoint to a witness policy; they are added as they come (catch_up republishes)
        head = cosigned_note(ctx, client, cp.size, cp.note).encode()
        old, published = _published(ctx, client)
        if old > cp.size or (old == cp.size and not _more_cosigned(head, published)):
            _seen(ctx)[client] = old
            return Published(client, old, old, 0)
        tiles = published_tiles(cp.size, old)
        written = sum(_put_tile(ctx, client, t, _tile_data(ctx, client, t)) for t in tiles)
        for size, note in _handovers(ctx, client, old, cp.size):
            written += _put_once(ctx, f"{tiles_prefix(client)}/{HANDOVER}/{size}", note, True)
        ctx.store.replace(
            f"{tiles_prefix(client)}/{CHECKPOINT}", head, content_type=CHECKPOINT_CONTENT_TYPE
        )
        _seen(ctx)[client] = cp.size
        for t in tiles:
            if t.full:
                _drop_partials(ctx, client, t)
        return Published(client, old, cp.size, written)


def publish_after_checkpoint(ctx: VaultContext, client: str) -> None:
    """Publish, logging instead of raising: the log stands, the next try catches up."""
    try:
        publish(ctx, client)
    except Exception as exc:  # the store or the database may be down: the timer retries
        log.warning("publishing the tiles of log %s postponed: %s", client, _kind(exc))


def log_names(ctx: VaultContext) -> list[str]:
    """Every log: each client's and the vault-wide ``_vault``."""
    with read_session(ctx.engine) as s:
        return sorted(s.exec(select(LogHead.client_id)))


def publish_all(ctx: VaultContext) -> int:
    """Catch every client's tiled log up (the timer); how many were behind."""
    behind = 0
    for client in log_names(ctx):
        try:
            latest = latest_checkpoint(ctx, client).size
        except NotFound:
            continue
        if _seen(ctx).get(client) == latest:
            continue
        behind += 1
        publish_after_checkpoint(ctx, client)
    return behind


def _seen(ctx: VaultContext) -> dict[str, int]:
    """What this vault context last published, per log: the timer's cheap "anything new?"."""
    seen = getattr(ctx, "_tiles_published", None)
    if seen is None:
        seen = {}
        ctx._tiles_published = seen  # type: ignore[attr-defined]
    return seen


def _kind(exc: BaseException) -> str:
    return exc.kind if isinstance(exc, VaultError) else type(exc).__name__


def _tile_data(ctx: VaultContext, client: str, tile: Tile) -> bytes:
    with read_session(ctx.engine) as s:
        if tile.level == ENTRIES:
            first = tile.index * TILE_WIDTH
            rows = s.exec(
                select(LogEntry.entry)
                .where(LogEntry.client_id == client)
                .where(LogEntry.seq >= first, LogEntry.seq < first + tile.width)
                .order_by(LogEntry.seq)
            ).all()
            if len(rows) != tile.width:
                raise StorageError(
                    f"log {client} lacks entries for {tile.path}",
                    hint="run `evidence-vault verify`: entries are missing",
                )
            return encode_bundle(bytes(r) for r in rows)
        return hash_tile_bytes(tile, StoredTree(s, client))


def _handovers(ctx: VaultContext, client: str, old: int, new: int) -> list[tuple[int, bytes]]:
    """The co-signed hand-over checkpoints of key rotations logged in ``[old, new)``.

    A rotation entry at seq ``s`` is covered by the hand-over checkpoint of size ``s + 1``,
    signed in the same transaction (:func:`vault.services.keys.rotate_log_key`).
    """
    with read_session(ctx.engine) as s:
        seqs = s.exec(
            select(LogEntry.seq).where(
                LogEntry.client_id == client,
                LogEntry.type == ROTATION,
                LogEntry.seq >= old,
                LogEntry.seq < new,
            )
        ).all()
        rows = [s.get(CheckpointRow, (client, seq + 1)) for seq in seqs]
    return [(row.size, bytes(row.note)) for row in rows if row is not None]


def _put_tile(ctx: VaultContext, client: str, tile: Tile, data: bytes) -> bool:
    return _put_once(ctx, f"{tiles_prefix(client)}/{tile.path}", data, tile.full)


def _put_once(ctx: VaultContext, key: str, data: bytes, locked: bool) -> bool:
    """Write an object once; True if written, False if the same bytes were already there."""
    until = ctx.clock() + CHECKPOINT_RETENTION if locked else None
    try:
        ctx.store.put(key, [data], retain_until=until)
        return True
    except ObjectExists:
        # a publish that stopped half-way, or another worker: the same tree gives the
        # same tile, so anything else there was put by someone else
        if b"".join(ctx.store.get(key)) != data:
            raise VaultError(
                f"a different object is already published at {key}",
                hint="the published tiled log was altered: remove what someone else put "
                "there (on a versioned bucket, that version), then run `evidence-vault log "
                "publish` (docs/operations.md, 'The public tiled log')",
            ) from None
        return False


def _drop_partials(ctx: VaultContext, client: str, full: Tile) -> None:
    """Delete the partial versions of a tile that is now full (C2SP allows it)."""
    prefix = f"{tiles_prefix(client)}/{full.path}.p/"
    for key in list(ctx.store.list(prefix)):
        try:
            ctx.store.delete(key)
        except (ObjectMissing, StorageError) as exc:
            log.info("partial tile %s not deleted: %s", key, _kind(exc))
