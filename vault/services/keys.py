"""Key lifecycle: KEK rotation and destruction, the monthly key sweep, log-key rotation.

KEKs are time-bucketed: a record's data key is wrapped under its client's KEK for the
month its retention ends (bucket ``exp-YYYY-MM``). When that month is over, every record
in the bucket has been shredded — except those kept longer by a hold or by a later use of
their consent. The sweep re-wraps those few under the bucket of their new end (or the
current month) and destroys the bucket's KEK. From then on the wrapped keys of the
shredded records are useless in *every* copy of the database, backups included.

Re-wrapping never touches stored objects: the data key stays the same, only its wrapping
changes. Each batch is one transaction that updates the rows (only those still wrapped
under the old KEK and not shredded meanwhile) and logs a ``key.rewrapped`` entry, so the
log explains why a record's KEK differs from the one its ``evidence.sealed`` entry names.

Log-key rotation appends a ``log.key_rotated`` entry to every client's log and signs the
checkpoint that covers it with both keys: an auditor who trusts the old key learns the
new one from that hand-over checkpoint. The old private key is then destroyed; its public
key stays in the keyring so the vault can still check the checkpoints it signed.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import select

from vault.db import Client, LogEntry, Record, read_session, write_session
from vault.db.log import EntryDraft, append_entries, log_head
from vault.db.models import Checkpoint as CheckpointRow
from vault.db.tree import StoredTree
from vault.errors import ConfigError, Conflict, NotFound
from vault.ledger.checkpoint import Checkpoint, add_signature, sign_note, verifier_key
from vault.ledger.entry import parse_entry
from vault.ledger.merkle import root as tree_root
from vault.results import KeyGeneration
from vault.sealing import WrappedKey, data_key_context
from vault.sealing.local import parse_kek_id
from vault.services.checkpoints import _store_note, checkpoint_key, origin
from vault.services.context import VaultContext

#: a bucket is swept this long after its month ended (an ingest in flight finishes first)
SWEEP_GRACE = timedelta(days=1)
#: a superseded KEK may be destroyed this long after its successor appeared
DESTROY_GRACE = timedelta(minutes=10)
BATCH = 200
SIGNING_KEY = "log"
_MONTH = re.compile(r"(?:exp-)?(\d{4})-(\d{2})")


def record_key(ctx: VaultContext, rec: Record) -> bytes:
    """The record's data key, unwrapped under the context it was wrapped with at sealing."""
    wrapped = WrappedKey(rec.kek_id, rec.wrapped_dek)
    return ctx.keys.unwrap(wrapped, rec.client_id, data_key_context(rec.id))


def expiry_bucket(retain_until: datetime) -> str:
    """The KEK bucket of a record: the month its retention ends."""
    return f"exp-{retain_until.astimezone(UTC):%Y-%m}"


def bucket_end(bucket: str) -> datetime | None:
    """The first instant after the bucket's month (None if the bucket is not a month)."""
    m = _MONTH.fullmatch(bucket)
    if not m:
        return None
    year, month = int(m[1]), int(m[2])
    days = calendar.monthrange(year, month)[1]
    return datetime(year, month, days, tzinfo=UTC) + timedelta(days=1)


# -- KEKs ---------------------------------------------------------------------------------


@dataclass
class RotationReport:
    rotated: list[tuple[str, str]] = field(default_factory=list)
    records: int = 0

    def to_dict(self) -> dict:
        return {
            "rotated": [{"from": a, "to": b} for a, b in self.rotated],
            "records": self.records,
        }


def rotate_kek(ctx: VaultContext, client: str, kek_id: str | None = None) -> RotationReport:
    """New generation for each of the client's KEKs (or just ``kek_id``); re-wrap its keys.

    Rerunning after a crash re-wraps what is left under the old generation into the
    newest one, without creating yet another.
    """
    _client_exists(ctx, client)
    live = ctx.keys.kek_ids(client)
    if kek_id is not None and kek_id not in live:
        raise NotFound(f"{kek_id} is not a live KEK of client {client!r}")
    if kek_id is not None and not _is_local(kek_id):
        raise ConfigError(
            f"{kek_id} is a key in AWS KMS: KMS rotates its backing material itself",
            hint="enable automatic rotation on the key (aws kms enable-key-rotation); to move "
            f"the client to another KMS key, change key_id in [keys.clients.{client}]",
        )
    # a client now sealing with KMS: "rotating" its older local KEKs moves their records'
    # data keys into KMS (the router wraps for the configured provider); no new generation
    kms_kek = ctx.keys.configured_kek_id(client)
    local = [k for k in live if _is_local(k)]
    report = RotationReport()
    for old in [kek_id] if kek_id else _rotation_sources(ctx, local):
        _, bucket, gen = parse_kek_id(old)
        newest = max(
            parse_kek_id(k)[2] for k in _local_kek_ids(ctx, client) if _bucket(k) == bucket
        )
        new = ctx.keys.new_kek_generation(client, bucket) if newest == gen and not kms_kek else None
        moved = rewrap(ctx, client, _live_under(ctx, old), lambda rec, b=bucket: b, "rotation")
        report.records += moved
        report.rotated.append((old, new or kms_kek or _newest(ctx, client, bucket)))
    return report


def destroy_kek(ctx: VaultContext, kek_id: str) -> None:
    """Destroy a KEK that no live record needs any more (crypto-shredding what remains)."""
    if not _is_local(kek_id):
        ctx.keys.destroy_kek(kek_id)  # aws-kms: refused with a ConfigError (delete it in KMS)
    tenant, bucket, gen = parse_kek_id(kek_id)
    if kek_id not in ctx.keys.kek_ids(tenant):
        if ctx.keys.destroyed_at(kek_id) is not None:
            return  # already destroyed: nothing left to do
        raise NotFound(
            f"there is no KEK {kek_id}", hint="list them with `evidence-vault keys list`"
        )
    live = len(_live_under(ctx, kek_id))
    if live:
        raise Conflict(
            f"{live} live record(s) are still wrapped under {kek_id}",
            hint="rotate it first with `evidence-vault keys rotate`",
        )
    generations = [parse_kek_id(k)[2] for k in _local_kek_ids(ctx, tenant) if _bucket(k) == bucket]
    end = bucket_end(bucket)
    if gen == max(generations, default=gen) and (end is None or ctx.clock() < end + SWEEP_GRACE):
        raise Conflict(
            f"{kek_id} is the current key of bucket {bucket}: new evidence is sealed under it",
            hint="rotate it first with `evidence-vault keys rotate`",
        )
    successor = ctx.keys.kek_created_at(f"local:{tenant}:{bucket}:{max(generations)}")
    if gen != max(generations) and successor and ctx.clock() - successor < DESTROY_GRACE:
        raise Conflict(
            f"{kek_id} was superseded less than {DESTROY_GRACE} ago; an upload in flight may "
            "still be sealing under it",
            hint="rotate again to pick up stragglers, then destroy it a few minutes later",
        )
    ctx.keys.destroy_kek(kek_id)


def sweep_keys(ctx: VaultContext, client: str) -> tuple[list[str], int]:
    """Destroy the KEKs of the client's closed buckets; returns (destroyed ids, re-wrapped)."""
    now = ctx.clock()
    destroyed, moved = [], 0
    for kek_id in _local_kek_ids(ctx, client):  # KMS keys have no buckets: never swept
        end = bucket_end(_bucket(kek_id))
        if end is None or now < end + SWEEP_GRACE:
            continue
        live = _live_under(ctx, kek_id)
        if live:
            moved += rewrap(
                ctx, client, live, lambda rec: expiry_bucket(max(rec.retain_until, now)), "rebucket"
            )
        if not _live_under(ctx, kek_id):
            ctx.keys.destroy_kek(kek_id)
            destroyed.append(kek_id)
    return destroyed, moved


def rewrap(
    ctx: VaultContext,
    client: str,
    records: Sequence[Record],
    bucket_of: Callable[[Record], str],
    reason: str,
) -> int:
    """Re-wrap the records' data keys into ``bucket_of(record)``; returns how many moved."""
    moved = 0
    for start in range(0, len(records), BATCH):
        moves = []
        for rec in records[start : start + BATCH]:
            new = ctx.keys.wrap(
                client, bucket_of(rec), record_key(ctx, rec), data_key_context(rec.id)
            )
            moves.append((rec.id, rec.kek_id, new))
        with write_session(ctx.engine) as s:
            log_head(s, client, lock=True)  # serialises with shredding and holds
            done: Counter[tuple[str, str]] = Counter()
            for rec_id, old, new in moves:
                result = s.execute(
                    update(Record)
                    .where(
                        Record.id == rec_id,
                        Record.kek_id == old,
                        Record.shredded_at.is_(None),  # type: ignore[union-attr]
                    )
                    .values(kek_id=new.kek_id, wrapped_dek=new.blob)
                )
                if result.rowcount:
                    done[(old, new.kek_id)] += 1
            drafts = [
                EntryDraft(
                    "key.rewrapped", None, {"from": o, "to": n, "records": c, "reason": reason}
                )
                for (o, n), c in sorted(done.items())
            ]
            if drafts:
                append_entries(s, client, drafts, ctx.clock(), ctx.log_keys(client))
        moved += sum(done.values())
    return moved


def key_status(ctx: VaultContext, client: str) -> list[dict]:
    """Each KEK of the client: live records under it, and whether it is destroyed."""
    with read_session(ctx.engine) as s:
        counts = dict(
            s.exec(
                select(Record.kek_id, func.count())
                .where(Record.client_id == client, Record.shredded_at.is_(None))  # type: ignore[union-attr]
                .group_by(Record.kek_id)
            ).all()
        )
    # KMS keys: the configured one, and older ones that still hold live records
    keks = set(ctx.keys.kek_ids(client)) | {k for k in counts if k and not _is_local(k)}
    return [
        {"kek": k, "bucket": _bucket(k) if _is_local(k) else None, "live_records": counts.get(k, 0)}
        for k in sorted(keks)
    ]


def _rotation_sources(ctx: VaultContext, live: list[str]) -> list[str]:
    """The KEKs a rotation of all buckets re-wraps from: per bucket, the older generations
    still holding live records (an interrupted rotation, finished into the newest one),
    else the newest generation (a new rotation)."""
    buckets: dict[str, list[str]] = {}
    for k in sorted(live, key=lambda k: parse_kek_id(k)[2]):
        buckets.setdefault(_bucket(k), []).append(k)
    sources = []
    for _bucket_name, ids in sorted(buckets.items()):
        unfinished = [k for k in ids[:-1] if _live_under(ctx, k)]
        sources += unfinished or ids[-1:]
    return sources


def _live_under(ctx: VaultContext, kek_id: str) -> list[Record]:
    with read_session(ctx.engine) as s:
        return list(
            s.exec(
                select(Record)
                .where(Record.kek_id == kek_id, Record.shredded_at.is_(None))  # type: ignore[union-attr]
                .order_by(Record.id)
            )
        )


def _bucket(kek_id: str) -> str:
    return parse_kek_id(kek_id)[1]


def _is_local(kek_id: str) -> bool:
    """A KEK of the local keyring (buckets, generations); ``aws-kms:`` keys have neither."""
    return kek_id.startswith("local:")


def _local_kek_ids(ctx: VaultContext, client: str) -> list[str]:
    return [k for k in ctx.keys.kek_ids(client) if _is_local(k)]


def _newest(ctx: VaultContext, client: str, bucket: str) -> str:
    return max(
        (k for k in _local_kek_ids(ctx, client) if _bucket(k) == bucket),
        key=lambda k: parse_kek_id(k)[2],
    )


def _client_exists(ctx: VaultContext, client: str) -> None:
    with read_session(ctx.engine) as s:
        if s.get(Client, client) is None:
            raise NotFound(f"client {client!r} does not exist")


# -- the log signing key ------------------------------------------------------------------


def log_keys(ctx: VaultContext) -> list[KeyGeneration]:
    """Every generation of the log signing key, oldest first; the last one signs now."""
    gens = ctx.keys.signing_keys(SIGNING_KEY)
    if not gens:
        ctx.keys.signing_key(SIGNING_KEY)
        gens = ctx.keys.signing_keys(SIGNING_KEY)
    newest = gens[-1][0]
    return [
        KeyGeneration(g, verifier_key(ctx.settings.name, pub), g == newest) for g, pub, _ in gens
    ]


def rotate_log_key(ctx: VaultContext) -> dict:
    """Hand the log over to a new signing key; resumes an unfinished hand-over."""
    gens = ctx.keys.signing_keys(SIGNING_KEY)
    if len(gens) >= 2 and gens[-2][2]:
        old_gen = gens[-2][0]  # the previous rotation stopped before retiring the old key
    else:
        ctx.keys.signing_key(SIGNING_KEY)  # a vault that never signed has generation 1 now
        old_gen = ctx.keys.signing_keys(SIGNING_KEY)[-1][0]
        ctx.keys.rotate_signing_key(SIGNING_KEY, after=old_gen)
    old = ctx.keys.signing_key_generation(SIGNING_KEY, old_gen)
    new = ctx.keys.signing_key(SIGNING_KEY)
    name = ctx.settings.name
    old_vk = verifier_key(name, old.public_key_bytes())
    new_vk = verifier_key(name, new.public_key_bytes())
    with read_session(ctx.engine) as s:
        clients = list(s.exec(select(Client.id).order_by(Client.id)))
    handed = []
    for client in clients:
        if _hand_over(ctx, client, old, new, old_vk, new_vk):
            handed.append(client)
    ctx.keys.retire_signing_key(SIGNING_KEY, old_gen)
    return {"old": old_vk, "new": new_vk, "clients": handed}


def _hand_over(ctx: VaultContext, client: str, old, new, old_vk: str, new_vk: str) -> bool:
    """Log the key change and sign the checkpoint covering it with both keys (one txn)."""
    now = ctx.clock()
    with write_session(ctx.engine) as s:
        log_head(s, client, lock=True)
        if _rotation_logged(s, client, new_vk):
            return False
        body = {"old": old_vk, "new": new_vk}
        append_entries(
            s, client, [EntryDraft("log.key_rotated", None, body)], now, ctx.log_keys(client)
        )
        head = log_head(s, client)
        root = tree_root(StoredTree(s, client), head.size)
        text = Checkpoint(origin=origin(ctx, client), size=head.size, root=root).body()
        note = add_signature(sign_note(text, ctx.settings.name, new), ctx.settings.name, old)
        key = checkpoint_key(client, head.size)
        _store_note(ctx, key, note)
        s.add(
            CheckpointRow(
                client_id=client,
                size=head.size,
                root_hash=root.hex(),
                note=note,
                created_at=now,
                object_key=key,
            )
        )
    return True


def _rotation_logged(s, client: str, new_vk: str) -> bool:
    rows = s.exec(
        select(LogEntry.entry).where(
            LogEntry.client_id == client, LogEntry.type == "log.key_rotated"
        )
    )
    return any(parse_entry(bytes(raw))["body"].get("new") == new_vk for raw in rows)
