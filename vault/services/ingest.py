"""Sealing one recorded order segment: validate, encrypt, store, chain — all or nothing.

Order of work, and why:

1. probe the audio and validate the evidence document (nothing written yet);
2. fingerprint clip and document with the tenant's index key and look up
   ``(campaign, call_id, segment)``: the same upload again returns the stored receipt,
   a different one is refused — before any object is written;
3. encrypt and upload the clip and metadata objects under keys that contain a fresh
   record id (a retry never collides with a half-finished attempt);
4. in one database transaction holding the log's write lock: insert the record row and
   append the ``evidence.sealed`` entry. Only this commit makes the record exist.
   Concurrent uploads of the same client in this process share that transaction (group
   commit, :mod:`vault.services.commits`): each record is still all or nothing.

A failure after step 3 and before the commit deletes the uploaded objects where the
store allows it; when it cannot (a crash, or Object Lock), the objects stay behind as
orphans, which ``verify`` reports. The record and its entry never exist half-way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import rfc8785
from sqlalchemy import Engine, bindparam, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from vault import audio
from vault.db import (
    Campaign,
    Client,
    LogEntry,
    Record,
    read_connection,
    read_session,
    write_session,
)
from vault.db.log import Appended, EntryDraft, LockedHead, LogWriter, append_entries, lock_head
from vault.db.models import IdempotencyKey
from vault.errors import Conflict, FieldError, InvalidAudio, InvalidEvidence, NotFound
from vault.evidence import Evidence, parse_evidence
from vault.identifiers import new_record_id
from vault.ledger import entry_hash
from vault.ledger.entry import format_time
from vault.results import Receipt
from vault.sealing import (
    CommitmentHasher,
    KeyedHasher,
    commitment,
    commitment_salt,
    data_key_context,
    encrypt_stream,
    keyed_hash,
    object_aad,
)
from vault.services.binding import row_digest
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.claims import claim
from vault.services.commits import GroupCommit, queue_for
from vault.services.context import VaultContext
from vault.services.dialers import SourceSignature, check_source, metadata_digest
from vault.services.idempotency import NewKey
from vault.services.keys import expiry_bucket
from vault.services.outages import outcome_unknown, unavailable
from vault.services.retention import Rule, consent_extensions, extend_locks, rule_for
from vault.storage import StoredObject

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
CLIP_FP_DOMAIN = "clip-fingerprint"
META_VERSION = 1


@dataclass(frozen=True)
class _Sealed:
    """Objects written, record row built; nothing committed yet."""

    record: Record
    commitments: dict[str, str]
    clip_ct_size: int
    meta_ct_size: int
    salt: bytes


@dataclass(frozen=True)
class _Prepared:
    evidence: Evidence
    info: audio.AudioInfo
    campaign: Campaign
    rule: Rule
    retain_until: datetime
    document: dict
    index_key: bytes
    meta_fp: str
    phone_hash: str

    def clip_fingerprint(self, clip: Path) -> str:
        """Only a retry needs this before sealing: the first upload hashes while sealing."""
        return keyed_hash(self.index_key, CLIP_FP_DOMAIN, _chunks(clip))


def ingest(
    ctx: VaultContext,
    clip: str | os.PathLike,
    meta: bytes | str | dict,
    *,
    media_type: str | None = None,
    signature: SourceSignature | None = None,
    idempotency_key: NewKey | None = None,
    salt: bytes | None = None,
) -> Receipt:
    """Seal one clip with its evidence metadata; idempotent on (campaign, call_id, segment).

    ``signature`` is the dialer host's source signature (:mod:`vault.services.dialers`):
    checked when present, required when the campaign says so. ``idempotency_key``: a key
    no request used yet, stored in the record's own transaction (none when the answer is
    an earlier record: the caller remembers the key then, see
    :func:`vault.services.idempotency.remember`); a key another request took meanwhile
    is a :class:`~vault.errors.Conflict` and nothing is sealed. ``salt``: the commitment
    salt the uploader proposed (32 bytes; docs/formats.md, "Commitment"), so that it can
    check the entry's clip commitment against the hash it took when it queued the clip,
    without reading the clip again; None draws a fresh one. A repeat answers with the
    salt the record was sealed with.
    """
    clip = Path(clip)
    salt = commitment_salt(salt)
    prepared = _prepare(ctx, clip, meta, media_type)
    ev = prepared.evidence
    committing: list[bool] = []  # non-empty once the commit began: the outcome may be known
    try:
        # a duplicate in flight waits here, then answers from the committed record
        with claim(ctx.engine, prepared.campaign.id, ev.call_id, ev.segment):
            receipt = _ingest_claimed(
                ctx, clip, prepared, committing, signature, meta, idempotency_key, salt
            )
    except Exception as exc:
        # an outage before the commit: nothing was sealed, a plain retryable failure; at
        # or after it: the record may exist, and the answer says so
        down = outcome_unknown(exc) if committing else unavailable(exc)
        if down is None or down is exc:
            raise
        raise down from None
    if not receipt.duplicate:
        try:
            # the log holds at least this entry; the cadence needs no query when not due
            checkpoint_after_commit(ctx, receipt.client, size=receipt.seq + 1)
        except Exception as exc:
            if unavailable(exc) is None:
                raise
            # sealed and chained; the checkpoint timer signs the tail once it is back
            log.warning("checkpoint after commit skipped: %s", unavailable(exc))
    return receipt


def _ingest_claimed(
    ctx: VaultContext,
    clip: Path,
    prepared: _Prepared,
    committing: list[bool],
    signature: SourceSignature | None,
    meta: bytes | str | dict,
    key: NewKey | None,
    salt: bytes,
) -> Receipt:
    existing = _existing_receipt(ctx, prepared, lambda: prepared.clip_fingerprint(clip))
    if existing:
        return existing  # sealed before: its entry holds whatever signature it had then
    source = _source(ctx, clip, prepared, signature, meta)
    record_id = new_record_id()
    uploaded: list[str] = []
    sealed = None
    try:
        sealed = _seal_objects(ctx, record_id, clip, prepared, uploaded, salt)
        committing.append(True)
        receipt = _commit(ctx, sealed, prepared, source, key)
    except IntegrityError:
        # another process sealed the same (campaign, call_id, segment) between our check and
        # commit, or took the same Idempotency-Key for another request; the loser cleans up
        # and answers like any retry would
        _discard(ctx, uploaded)
        fp = sealed.record.clip_fingerprint if sealed else prepared.clip_fingerprint(clip)
        existing = _existing_receipt(ctx, prepared, lambda: fp)
        if existing:
            return existing
        if key is not None:
            key.raise_if_taken(ctx)
        raise
    except BaseException as exc:
        if committing and unavailable(exc) is not None:
            # the commit may have happened (the connection broke on COMMIT, or an outage
            # hit after it): deleting the objects could destroy a sealed record. They
            # stay; `gc` collects them if no record owns them.
            raise
        _discard(ctx, uploaded)
        raise
    return receipt


def _prepare(ctx: VaultContext, clip: Path, meta, media_type: str | None) -> _Prepared:
    declared = media_type or audio.media_type_for_path(clip)
    info = audio.probe(clip, declared_type=declared)
    evidence = parse_evidence(meta, duration_ms=info.duration_ms, now=ctx.clock())
    campaign, rule = _campaign(ctx, evidence)
    retain_until = rule.until(evidence.recorded_at)
    if retain_until <= ctx.clock():
        raise InvalidEvidence(
            [
                FieldError(
                    "recorded_at",
                    f"is older than the retention period ({rule.describe()}): the evidence "
                    "would be due for deletion on arrival",
                )
            ],
            hint="check 'recorded_at', or the campaign's retention rule",
        )
    index_key = ctx.keys.index_key(evidence.client)
    document = {
        "v": META_VERSION,
        "evidence": evidence.to_document(),
        "audio": info.to_dict(),
    }
    return _Prepared(
        evidence=evidence,
        info=info,
        campaign=campaign,
        rule=rule,
        retain_until=retain_until,
        document=document,
        index_key=index_key,
        meta_fp=keyed_hash(index_key, "evidence-fingerprint", rfc8785.dumps(document)),
        phone_hash=keyed_hash(index_key, "phone", evidence.callee.phone.encode()),
    )


def _source(
    ctx: VaultContext,
    clip: Path,
    p: _Prepared,
    signature: SourceSignature | None,
    meta: bytes | str | dict,
) -> dict | None:
    """The entry's ``source`` after checking the signature (refused: nothing is stored)."""
    required = bool(p.campaign.require_source_signature)
    if signature is None and not required:
        return None
    clip_sha = hashlib.sha256()
    if signature is not None:
        for chunk in _chunks(clip):
            clip_sha.update(chunk)
    return check_source(
        ctx,
        p.evidence.client,
        required=required,
        signature=signature,
        clip_sha256=clip_sha.digest(),
        meta_sha256=metadata_digest(meta) if signature is not None else bytes(32),
        recorded_at=format_time(p.evidence.recorded_at),
    )


def _campaign(ctx: VaultContext, evidence: Evidence) -> tuple[Campaign, Rule]:
    with read_session(ctx.engine) as s:
        campaign = s.exec(
            _CAMPAIGN, params={"client": evidence.client, "name": evidence.campaign}
        ).first()
        # a campaign's client exists (foreign key): only a miss asks which is missing
        if campaign is None and s.get(Client, evidence.client) is None:
            raise NotFound(
                "the client named by the evidence does not exist",
                hint="check 'client', or create it with `evidence-vault client add`",
            )
        rule = rule_for(s, campaign) if campaign is not None else None
    if campaign is None:
        raise InvalidEvidence(
            [
                FieldError(
                    "campaign",
                    f"campaign {evidence.campaign!r} does not exist for client {evidence.client!r}",
                )
            ],
            hint="check 'campaign', or create it with `evidence-vault campaign add`",
        )
    return campaign, rule  # type: ignore[return-value]  # a campaign has a rule


def _existing_receipt(
    ctx: VaultContext, p: _Prepared, clip_fp: Callable[[], str]
) -> Receipt | None:
    # asked before every upload, and nearly always finds nothing: columns, no objects
    ev = p.evidence
    with read_connection(ctx.engine) as conn:
        rec = conn.execute(
            _EARLIER_RECORD,
            {"campaign": p.campaign.id, "call": ev.call_id, "segment": ev.segment},
        ).first()
        if rec is None:
            return None
        entry = conn.execute(_ENTRY_BYTES, {"client": rec.client_id, "seq": rec.seq}).scalar()
    if rec.shredded_at is not None:
        raise Conflict(
            f"call {ev.call_id!r} segment {ev.segment} of campaign "
            f"{ev.campaign!r} was sealed as record {rec.id} and crypto-shredded on "
            f"{rec.shredded_at:%Y-%m-%d}",
            hint="shredded evidence is not accepted again under the same call and segment",
        )
    if rec.clip_fingerprint != clip_fp():
        raise Conflict(
            f"call {ev.call_id!r} segment {ev.segment} of campaign "
            f"{ev.campaign!r} is already sealed with a different clip "
            f"(record {rec.id})",
            hint="evidence is never replaced; upload a new segment number for a new clip",
        )
    if rec.meta_fingerprint != p.meta_fp:
        raise Conflict(
            f"call {ev.call_id!r} segment {ev.segment} of campaign "
            f"{ev.campaign!r} is already sealed with different metadata "
            f"(record {rec.id})",
            hint="evidence is never replaced; upload a new segment number for a correction",
        )
    return Receipt(
        record_id=rec.id,
        client=rec.client_id,
        campaign=p.campaign.name,
        seq=rec.seq,
        entry_hash=entry_hash(bytes(entry)) if entry else "",
        sealed_at=rec.sealed_at,
        duplicate=True,
    )


def _seal_objects(
    ctx: VaultContext,
    record_id: str,
    clip: Path,
    p: _Prepared,
    uploaded: list[str],
    salt: bytes,
) -> _Sealed:
    ev = p.evidence
    retain_until = p.retain_until
    lock_until = retain_until if retain_until > ctx.clock() else None
    prefix = object_prefix(ev.client, ev.campaign, ev.recorded_at, record_id)
    # the KEK of the month the retention ends: see vault.services.keys
    dek, wrapped = ctx.keys.generate(
        ev.client, expiry_bucket(retain_until), data_key_context(record_id)
    )

    # the metadata object goes up on a second thread while the clip streams: for a
    # typical clip it saves one storage round trip per ingest
    meta_plain = rfc8785.dumps({"salt": salt.hex(), "document": p.document})
    meta = _Upload(
        ctx,
        prefix + "/meta",
        encrypt_stream(dek, object_aad(ev.client, record_id, "meta"), [meta_plain]),
        lock_until,
        uploaded,
    )
    meta.start()
    clip_key = prefix + "/clip"
    clip_commit = CommitmentHasher(salt, "clip")
    clip_fp = KeyedHasher(p.index_key, CLIP_FP_DOMAIN)
    try:
        clip_obj = ctx.store.put(
            clip_key,
            encrypt_stream(
                dek,
                object_aad(ev.client, record_id, "clip"),
                _tee(_chunks(clip), clip_commit, clip_fp),
            ),
            retain_until=lock_until,
        )
        uploaded.append(clip_key)
    except BaseException:
        meta.join()  # a metadata object it wrote is in `uploaded`: discarded with the rest
        raise
    meta_obj = meta.result()
    commitments = {
        "clip": clip_commit.hexdigest(),
        "meta": commitment(salt, "meta", rfc8785.dumps(p.document)),
    }
    record = Record(
        id=record_id,
        client_id=ev.client,
        campaign_id=p.campaign.id,
        call_id=ev.call_id,
        segment=ev.segment,
        order_ref=ev.order_ref,
        agent_id=ev.agent_id,
        recorded_at=ev.recorded_at,
        sealed_at=ctx.clock(),
        retain_until=retain_until,
        retention_rule=p.rule.describe(),
        phone_hash=p.phone_hash,
        clip_fingerprint=clip_fp.hexdigest(),
        meta_fingerprint=p.meta_fp,
        media_type=p.info.media_type,
        codec=p.info.codec,
        duration_ms=p.info.duration_ms,
        clip_size=clip_commit.size,
        clip_key=clip_key,
        clip_sha256=clip_obj.sha256,
        clip_version=clip_obj.version_id,
        meta_key=meta_obj.key,
        meta_sha256=meta_obj.sha256,
        meta_version=meta_obj.version_id,
        kek_id=wrapped.kek_id,
        wrapped_dek=wrapped.blob,
        seq=-1,
    )
    return _Sealed(record, commitments, clip_obj.size, meta_obj.size, salt)


@dataclass(frozen=True)
class _ToCommit:
    """One upload's share of a group commit: its row's columns and its entry's body."""

    engine: Engine
    writer: LogWriter  # the client's entry tags and head anchor
    fields: dict  # the record row's columns; each attempt inserts a copy
    body: dict  # the evidence.sealed body
    consent_basis: bool  # its campaign's retention counts from the last consent use
    key_row: dict | None = None  # the upload's Idempotency-Key row (record_id filled in)


@dataclass(frozen=True)
class _Committed:
    appended: Appended
    sealed_at: datetime
    extended: list[Record]


def commit_queue(engine: Engine) -> GroupCommit[_ToCommit, _Committed]:
    """This process's group-commit queue of sealed records for ``engine``."""
    return queue_for(
        engine,
        "records",
        lambda: GroupCommit(_commit_batch, begin=_begin_batch, split_on=(IntegrityError,)),
    )


def _commit(
    ctx: VaultContext,
    sealed: _Sealed,
    p: _Prepared,
    source: dict | None,
    key: NewKey | None = None,
) -> Receipt:
    """Commit the record and its entry, together with concurrent uploads of the client.

    See :mod:`vault.services.commits`: alone when nobody else commits, else in a batch
    that is one transaction. A duplicate call segment within a batch makes the batch retry
    member by member, so the duplicate's IntegrityError reaches only its own ``ingest``.
    """
    record = sealed.record
    body = sealed_entry_body(
        record, p.campaign.name, sealed.commitments, sealed.clip_ct_size, sealed.meta_ct_size
    )
    if source is not None:
        body["source"] = source  # which dialer host signed the clip (docs/formats.md)
    done = commit_queue(ctx.engine).submit(
        record.client_id,
        _ToCommit(
            ctx.engine,
            ctx.log_keys(record.client_id),
            record.model_dump(),
            body,
            p.rule.basis == "consent-use",
            None if key is None else key.row(record.id, record.sealed_at),
        ),
    )
    record.seq, record.sealed_at = done.appended.seq, done.sealed_at
    extend_locks(ctx, done.extended)
    return Receipt(
        record.id,
        record.client_id,
        p.campaign.name,
        done.appended.seq,
        done.appended.entry_hash,
        done.sealed_at,
        salt=sealed.salt,
        entry=done.appended.entry,
    )


@contextlib.contextmanager
def _begin_batch(client: str, first: _ToCommit) -> Iterator[tuple[Session, LockedHead]]:
    """The batch's transaction, holding the client's log head lock; and the head."""
    with write_session(first.engine) as s:
        yield s, lock_head(s, client)


def _commit_batch(locked: tuple[Session, LockedHead], items: list[_ToCommit]) -> list[_Committed]:
    """Commit sealed records of one client in the transaction :func:`_begin_batch` opened
    (under the log head's lock).

    Per record, in order: the consent extensions its call causes (earlier records of the
    batch included, as if committed one by one), then its ``evidence.sealed`` entry and
    the extension entries; one ``append_entries`` for all. The entries of a batch share
    one time, the latest ``sealed_at`` of its members, which every member's row takes
    (a lone commit keeps its own). Rows go in as one multi-row INSERT when no record of
    the batch's callees can be extended (the common case), else one by one, each before
    the next member's consent lookup.
    """
    s, head = locked
    base = head.size
    client = items[0].fields["client_id"]
    sealed_at = max(it.fields["sealed_at"] for it in items)
    rows = [{**it.fields, "sealed_at": sealed_at} for it in items]
    extended: list[list[Record]] = []
    drafts: list[EntryDraft] = []
    fast = not any(it.consent_basis for it in items) and not _consent_records(
        s, client, {r["phone_hash"] for r in rows}
    )
    for row, it in zip(rows, items, strict=True):
        ext: list[Record] = []
        ext_drafts: list[EntryDraft] = []
        if not fast:
            # this call is a use of the callee's consent: it extends consent-based records
            ext, ext_drafts = consent_extensions(s, client, row["phone_hash"], row["recorded_at"])
        row["seq"] = base + len(drafts)
        drafts += [EntryDraft("evidence.sealed", row["id"], it.body), *ext_drafts]
        extended.append(ext)
        if not fast:
            s.connection().execute(_INSERT_RECORD, row)  # seen by the next member's lookup
    if fast:
        # one row: a plain execute (an executemany costs psycopg a pipeline round trip)
        s.connection().execute(_INSERT_RECORD, rows if len(rows) > 1 else rows[0])
    keys = [it.key_row for it in items if it.key_row is not None]
    if keys:  # after the records: a key row refers to its record
        s.connection().execute(_INSERT_KEY, keys if len(keys) > 1 else keys[0])
    appended = append_entries(s, client, drafts, sealed_at, items[0].writer)
    out = []
    for row, ext in zip(rows, extended, strict=True):
        entry = appended[row["seq"] - base]
        if entry.seq != row["seq"]:  # pragma: no cover - append_entries numbers from the head
            raise RuntimeError("group commit: an entry's seq differs from its record's")
        out.append(_Committed(entry, sealed_at, ext))
    return out


def _consent_records(s: Session, client: str, phone_hashes: set[str]) -> bool:
    """Whether any record :func:`consent_extensions` could extend exists for these callees
    (the same filter, for a whole batch in one query)."""
    found = s.execute(_CONSENT_RECORDS, {"client": client, "hashes": list(phone_hashes)})
    return found.first() is not None


# built once: a commit builds no statement objects (their cost shows at small batches),
# nor does an upload's check for its campaign and for an earlier record (building the
# select took more CPU than running it: ~0.25 ms each)
_CAMPAIGN = select(Campaign).where(
    Campaign.client_id == bindparam("client"), Campaign.name == bindparam("name")
)
_EARLIER_RECORD = select(
    Record.id,
    Record.client_id,
    Record.seq,
    Record.sealed_at,
    Record.shredded_at,
    Record.clip_fingerprint,
    Record.meta_fingerprint,
).where(
    Record.campaign_id == bindparam("campaign"),
    Record.call_id == bindparam("call"),
    Record.segment == bindparam("segment"),
)
_ENTRY_BYTES = select(LogEntry.entry).where(
    LogEntry.client_id == bindparam("client"), LogEntry.seq == bindparam("seq")
)
_INSERT_RECORD = insert(Record.__table__)  # type: ignore[attr-defined]
_INSERT_KEY = insert(IdempotencyKey.__table__)  # type: ignore[attr-defined]
_CONSENT_RECORDS = (
    select(Record.id)
    .join(Campaign, Campaign.id == Record.campaign_id)
    .where(
        Record.client_id == bindparam("client"),
        Record.phone_hash.in_(bindparam("hashes", expanding=True)),  # type: ignore[attr-defined]
        Record.shredded_at.is_(None),  # type: ignore[union-attr]
        Campaign.retention_basis == "consent-use",
    )
    .limit(1)
)


def sealed_entry_body(
    record: Record, campaign: str, commitments: dict, clip_ct_size: int, meta_ct_size: int
) -> dict:
    """The ``evidence.sealed`` body: commitments and object hashes, never PII."""
    return {
        "campaign": campaign,
        "recorded_at": format_time(record.recorded_at),
        "retain_until": format_time(record.retain_until),
        "media_type": record.media_type,
        "duration_ms": record.duration_ms,
        "kek": record.kek_id,
        "objects": {
            "clip": _object(record.clip_key, record.clip_sha256, clip_ct_size, record.clip_version),
            "meta": _object(record.meta_key, record.meta_sha256, meta_ct_size, record.meta_version),
        },
        "commitments": commitments,
        # the identifying columns, as a digest: bound without putting them in the log
        "row": row_digest(record),
    }


def _object(key: str, sha256: str, size: int, version: str | None) -> dict:
    out: dict = {"key": key, "sha256": sha256, "size": size}
    if version is not None:
        out["version"] = version
    return out


def _discard(ctx: VaultContext, keys: list[str]) -> None:
    """Best effort: a locked or unreachable object stays behind and verify reports it."""
    for key in keys:
        with contextlib.suppress(Exception):
            ctx.store.delete(key, all_versions=True)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            yield chunk


def _tee(chunks: Iterator[bytes], *hashers: CommitmentHasher | KeyedHasher) -> Iterator[bytes]:
    """Pass chunks on to the encryptor while hashing them: one read of the clip."""
    for chunk in chunks:
        for hasher in hashers:
            hasher.update(chunk)
        yield chunk


class _Upload(threading.Thread):
    """One object put on its own thread; ``result()`` joins and re-raises its failure."""

    def __init__(
        self,
        ctx: VaultContext,
        key: str,
        chunks: Iterator[bytes],
        retain_until: datetime | None,
        uploaded: list[str],
    ) -> None:
        super().__init__(name=f"upload {key}", daemon=True)
        self._args = (ctx, key, chunks, retain_until, uploaded)
        self._stored: StoredObject | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        ctx, key, chunks, retain_until, uploaded = self._args
        try:
            self._stored = ctx.store.put(key, chunks, retain_until=retain_until)
            uploaded.append(key)
        except BaseException as exc:
            self._error = exc

    def result(self) -> StoredObject:
        self.join()
        if self._error is not None:
            raise self._error
        assert self._stored is not None
        return self._stored


def accepted_media_type(declared: str) -> str | None:
    """The canonical media type of a declared one (``audio/x-wav`` is ``audio/wav``), or
    None for one the vault does not take."""
    try:
        return audio.normalise_media_type(declared)
    except InvalidAudio:
        return None


def object_prefix(client: str, campaign: str, recorded_at: datetime, record_id: str) -> str:
    return f"{client}/{campaign}/{recorded_at:%Y}/{recorded_at:%m}/{record_id}"
