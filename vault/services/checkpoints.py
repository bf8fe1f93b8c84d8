"""Signed checkpoints of each client's log, and the proofs that hang off them.

A checkpoint is the C2SP ``tlog-checkpoint`` body (origin, tree size, root hash) in a
``signed-note`` signed with the vault's Ed25519 log key. It is written to object storage
first (``{client}/_checkpoints/{size}``, under Object Lock where the bucket has it) and then
to the database: a crash in between leaves a valid signed statement that ``verify`` still
checks, never a database row pointing at nothing.

Cadence: after a commit, a checkpoint is made when ``checkpoint_every`` entries have
accumulated or ``checkpoint_seconds`` have passed since the last one; ``serve`` also checks
every client on a timer (:class:`CheckpointTimer`), so the unsigned tail of a quiet log is
signed within ``checkpoint_seconds``; and on demand (``evidence-vault checkpoint``).

Before signing, every entry the previous checkpoint does not cover is re-checked — its
tag, its place and its chain link — and the root recomputed from those entries
(:func:`vault.services.logauth.checked_root`): the vault never signs an entry it did not
append.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Row, bindparam
from sqlmodel import select

from vault.db import read_connection, read_session, write_session
from vault.db.log import log_head
from vault.db.models import Checkpoint as CheckpointRow
from vault.db.models import LogHead, Record
from vault.db.tree import StoredTree
from vault.errors import NotFound, ObjectExists, VaultError
from vault.ledger.checkpoint import (
    Checkpoint,
    Verifier,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from vault.ledger.merkle import consistency_proof as _consistency
from vault.ledger.merkle import inclusion_proof as _inclusion
from vault.ledger.merkle import root as _root
from vault.results import ConsistencyProof, InclusionProof, SignedCheckpoint
from vault.services.context import VaultContext
from vault.services.logauth import checked_root

CHECKPOINT_RETENTION = timedelta(days=3650)
log = logging.getLogger(__name__)


def origin(ctx: VaultContext, client: str) -> str:
    return f"{ctx.settings.name}/{client}"


def log_verifier_key(ctx: VaultContext) -> str:
    """The C2SP verifier key string auditors pin: ``<name>+<key id>+<base64 key>``."""
    return verifier_key(ctx.settings.name, ctx.keys.signing_key().public_key_bytes())


def log_verifiers(ctx: VaultContext) -> list[Verifier]:
    """Every generation of the log key, current and retired: each signed checkpoints once."""
    ctx.keys.signing_key()  # generation 1 of a vault that never signed
    return [
        parse_verifier_key(verifier_key(ctx.settings.name, public))
        for _gen, public, _live in ctx.keys.signing_keys()
    ]


def checkpoint_key(client: str, size: int) -> str:
    return f"{client}/_checkpoints/{size}"


def make_checkpoint(ctx: VaultContext, client: str) -> SignedCheckpoint:
    """Sign the client's current tree head (or return the checkpoint that already covers it)."""
    with write_session(ctx.engine) as s:
        head = log_head(s, client, lock=True)
        existing = s.get(CheckpointRow, (client, head.size))
        if existing is not None:
            return _seen(ctx, _signed(existing))
        # every entry not yet under a signed checkpoint is re-checked (tag, position, chain)
        # and the root recomputed from them: the vault never signs what it did not append
        root = checked_root(
            s,
            ctx.log_keys(client),
            head.size,
            head.head_hash,
            log_verifiers(ctx),
            origin(ctx, client),
        )
        body = Checkpoint(origin=origin(ctx, client), size=head.size, root=root).body()
        note = sign_note(body, ctx.settings.name, ctx.keys.signing_key())
        key = checkpoint_key(client, head.size)
        version = _store_note(ctx, key, note)
        row = CheckpointRow(
            client_id=client,
            size=head.size,
            root_hash=root.hex(),
            note=note,
            created_at=ctx.clock(),
            object_key=key,
            object_version=version,
        )
        s.add(row)
    return _seen(ctx, _signed(row))


def _store_note(ctx: VaultContext, key: str, note: bytes) -> str | None:
    """Store the note (Object Lock where available); the version the store gave it."""
    until = ctx.clock() + CHECKPOINT_RETENTION
    try:
        return ctx.store.put(key, [note], retain_until=until).version_id
    except ObjectExists:
        # a crash after an earlier put: the same size has the same root, so the stored
        # note must be a valid signature over the same body; keep it if it is identical
        if b"".join(ctx.store.get(key)) != note:
            raise VaultError(
                f"a different checkpoint note is already stored at {key}",
                hint="run `evidence-vault verify`: the log may have been rewritten",
            ) from None
        stored = ctx.store.head(key)
        return stored.version_id if stored else None


def maybe_checkpoint(
    ctx: VaultContext, client: str, size: int | None = None
) -> SignedCheckpoint | None:
    """The cadence rule, checked after each commit; cheap when nothing is due.

    ``size``: the log's size the caller's commit reached, when it knows it. Then the last
    checkpoint this process saw is asked first, without a query: if it makes a checkpoint
    not due, so does any newer one (a larger size, signed later). A checkpoint that is due
    by that one is looked up as before.
    """
    seen = ctx.checkpoints_seen.get(client)
    if size is not None and seen is not None and not _due(ctx, size, *seen):
        return None
    with read_session(ctx.engine) as s:
        head_size = s.get(LogHead, client).size
        last = s.exec(
            select(CheckpointRow)
            .where(CheckpointRow.client_id == client)
            .order_by(CheckpointRow.size.desc())
            .limit(1)
        ).first()
    if last is None:
        return make_checkpoint(ctx, client)
    _remember(ctx, client, last.size, _aware(last.created_at))
    due = _due(ctx, head_size, last.size, last.created_at)
    return make_checkpoint(ctx, client) if due else None


def _due(ctx: VaultContext, size: int, last_size: int, last_signed: datetime) -> bool:
    """Whether a log of ``size`` entries needs a checkpoint after one of ``last_size``."""
    if last_size >= size:
        return False
    return size - last_size >= ctx.settings.checkpoint_every or ctx.clock() - _aware(
        last_signed
    ) >= timedelta(seconds=ctx.settings.checkpoint_seconds)


def _seen(ctx: VaultContext, signed: SignedCheckpoint) -> SignedCheckpoint:
    _remember(ctx, signed.client, signed.size, signed.created_at)
    return signed


def _remember(ctx: VaultContext, client: str, size: int, signed_at: datetime) -> None:
    """Keep the newest checkpoint this process signed or read (for the cadence); an older
    one read later (a thread's stale look-up) does not replace it."""
    seen = ctx.checkpoints_seen.get(client)
    if seen is None or seen[0] < size:
        ctx.checkpoints_seen[client] = (size, signed_at)


def checkpoint_after_commit(ctx: VaultContext, client: str, size: int | None = None) -> None:
    """Apply the cadence; the committed entries stand even if signing fails now.

    A missed checkpoint is made by the next append or by `evidence-vault checkpoint`.
    ``size``: see :func:`maybe_checkpoint`.
    """
    try:
        signed = maybe_checkpoint(ctx, client, size)
    except VaultError as exc:
        log.warning("checkpoint of log %s postponed: %s", client, exc.kind)
        return
    if signed is not None:
        from vault.services.tiles import publish_after_checkpoint  # it imports this module

        publish_after_checkpoint(ctx, client)


def checkpoint_all_due(ctx: VaultContext) -> int:
    """Apply the cadence to every client's log now, and publish their tiled logs; how many
    checkpoints were signed."""
    with read_session(ctx.engine) as s:
        clients = list(s.exec(select(LogHead.client_id)))
    signed = 0
    for client in clients:
        try:
            signed += maybe_checkpoint(ctx, client) is not None
        except VaultError as exc:
            log.warning("checkpoint of log %s postponed: %s", client, exc.kind)
    from vault.services.tiles import publish_all  # it imports this module

    publish_all(ctx)  # the new checkpoints, and catching up after a failed publish
    return signed


class CheckpointTimer:
    """Signs due checkpoints every ``interval`` seconds, appends or not (``serve``).

    Without it the time cadence acted only on the next append, so the unsigned tail of a
    quiet log could stay unsigned for ever. Every worker of ``serve`` runs one; signing is
    idempotent per tree size, so they never sign twice.
    """

    def __init__(self, ctx: VaultContext, interval: float) -> None:
        self._ctx, self._interval = ctx, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint timer", daemon=True)

    def start(self) -> CheckpointTimer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                checkpoint_all_due(self._ctx)
            except Exception as exc:  # the database may be down: try again next tick
                log.warning("checkpoint timer: %s", type(exc).__name__)
            self._witness()

    def _witness(self) -> None:
        """Witness cosigning catches up here, off the ingest path (a witness outage only
        delays it): ``vault.services.witnessing``."""
        if not self._ctx.settings.witnessing.witnesses:
            return
        from vault.services.witnessing import catch_up

        try:
            catch_up(self._ctx, pending_only=True)
        except Exception as exc:  # the database may be down: try again next tick
            log.warning("witness cosigning: %s", type(exc).__name__)


def latest_checkpoint(ctx: VaultContext, client: str) -> SignedCheckpoint:
    with read_session(ctx.engine) as s:
        row = s.exec(
            select(CheckpointRow)
            .where(CheckpointRow.client_id == client)
            .order_by(CheckpointRow.size.desc())
            .limit(1)
        ).first()
    if row is None:
        raise NotFound(
            f"client {client!r} has no checkpoint yet",
            hint="make one with `evidence-vault checkpoint`",
        )
    return _signed(row)


def covering_checkpoint(ctx: VaultContext, client: str, seq: int) -> SignedCheckpoint | None:
    """The latest checkpoint if it covers entry ``seq``, else None.

    A fresh upload's receipt asks this, and its entry is rarely covered yet: one query of
    columns, which finds no row and builds no object.
    """
    with read_connection(ctx.engine) as conn:
        row = conn.execute(_COVERING, {"client": client, "seq": seq}).first()
    return None if row is None else _signed(row)


# built once: building it took more CPU than running it
_COVERING = (
    select(
        CheckpointRow.client_id,
        CheckpointRow.size,
        CheckpointRow.root_hash,
        CheckpointRow.note,
        CheckpointRow.created_at,
    )
    .where(CheckpointRow.client_id == bindparam("client"), CheckpointRow.size > bindparam("seq"))
    .order_by(CheckpointRow.size.desc())  # type: ignore[attr-defined]
    .limit(1)
)


def checkpoint_of_size(ctx: VaultContext, client: str, size: int) -> SignedCheckpoint:
    """The signed checkpoint of the first ``size`` entries; NotFound if none was signed."""
    with read_session(ctx.engine) as s:
        row = s.get(CheckpointRow, (client, size))
    if row is None:
        raise NotFound(
            f"client {client!r} has no checkpoint of size {size}",
            hint="use the size of a checkpoint you hold, or leave tree_size out",
        )
    return _signed(row)


def list_checkpoints(ctx: VaultContext, client: str) -> list[SignedCheckpoint]:
    with read_session(ctx.engine) as s:
        rows = s.exec(
            select(CheckpointRow)
            .where(CheckpointRow.client_id == client)
            .order_by(CheckpointRow.size)
        )
        return [_signed(r) for r in rows]


def inclusion_for_record(
    ctx: VaultContext, record_id: str, client: str | None = None
) -> InclusionProof:
    """Proof that the record's ``evidence.sealed`` entry is in the latest checkpoint.

    Makes a checkpoint first when none covers the entry yet.
    """
    with read_session(ctx.engine) as s:
        rec = s.get(Record, record_id)
    if rec is None or (client is not None and rec.client_id != client):
        raise NotFound(f"no record {record_id!r}", hint="search with `evidence-vault find`")
    cp = latest_checkpoint_covering(ctx, rec.client_id, rec.seq)
    return inclusion_at(ctx, rec.client_id, rec.seq, cp, record_id=rec.id)


def latest_checkpoint_covering(ctx: VaultContext, client: str, seq: int) -> SignedCheckpoint:
    try:
        cp = latest_checkpoint(ctx, client)
    except NotFound:
        cp = None
    if cp is None or cp.size <= seq:
        cp = make_checkpoint(ctx, client)
    return cp


def inclusion_at(
    ctx: VaultContext, client: str, seq: int, cp: SignedCheckpoint, record_id: str | None = None
) -> InclusionProof:
    with read_session(ctx.engine) as s:
        tree = _AlsoFetching(StoredTree(s, client), (0, seq))
        hashes = _inclusion(tree, seq, cp.size)
        leaf = tree.extra()
    return InclusionProof(
        client,
        record_id,
        seq,
        leaf.hex(),
        cp.size,
        cp.root_hash,
        [h.hex() for h in hashes],
        cp.note,
    )


class _AlsoFetching:
    """A node source that adds one more node (the leaf) to the proof's single query."""

    def __init__(self, tree: StoredTree, coord: tuple[int, int]) -> None:
        self._tree, self._coord = tree, coord
        self._got: bytes | None = None

    def nodes(self, coords):
        found = self._tree.nodes([*coords, self._coord])
        self._got = found[self._coord]
        return found

    def extra(self) -> bytes:
        if self._got is None:  # a one-entry tree: the proof needed no nodes
            self._got = self._tree.nodes([self._coord])[self._coord]
        return self._got


def consistency(
    ctx: VaultContext, client: str, old: int, new: int | None = None
) -> ConsistencyProof:
    with read_session(ctx.engine) as s:
        head = s.get(LogHead, client)
        if head is None:
            raise NotFound(f"client {client!r} has no log")
        new = head.size if new is None else new
        if not 0 < old <= new <= head.size:
            raise NotFound(
                f"no consistency proof from size {old} to size {new}: the log has "
                f"{head.size} entries",
                hint="choose 0 < FROM <= TO <= the log size",
            )
        tree = StoredTree(s, client)
        hashes = _consistency(tree, old, new)
        old_root, new_root = _root(tree, old), _root(tree, new)
    return ConsistencyProof(
        client, old, new, old_root.hex(), new_root.hex(), [h.hex() for h in hashes]
    )


def _signed(row: CheckpointRow | Row) -> SignedCheckpoint:
    return SignedCheckpoint(
        row.client_id, row.size, row.root_hash, bytes(row.note).decode(), _aware(row.created_at)
    )


def _aware(ts: datetime) -> datetime:
    from datetime import UTC

    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
