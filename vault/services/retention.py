"""Retention: how long evidence is kept, and crypto-shredding it when that time is over.

Rules. Each campaign keeps evidence N days (its own ``retention_days`` or, when unset,
its client's default) counted from one of two starting points (``retention_basis``):

* ``recorded`` — the recording time;
* ``consent-use`` — the last use of the advertising consent the record documents (German
  UWG §7a: consent documentation is kept five years after each use). Every later record
  of the same client for the same callee is a use, and so is a use reported with
  :func:`record_consent_use`; each extends the record's ``retain_until`` and logs a
  ``retention.extended`` entry.

``retain_until`` is computed at ingest, stored in the record row and the log entry, and
written as the S3 Object Lock retain-until date where the bucket has Object Lock.

Shredding one record is a single database transaction holding the log's write lock: the
record's wrapped data key is emptied (the key of its ciphertext is gone: crypto-shredding)
and an ``evidence.shredded`` entry is appended. Deleting the objects (every version) comes
afterwards and is retried by every run until the store allows it; ciphertext without a key
is noise. A crash anywhere therefore leaves each record either intact or shredded, and a
rerun finishes the rest. The month's key-encryption keys are destroyed by the key sweep
(:mod:`vault.services.keys`) once nothing live is wrapped under them, which is what makes
shredding reach database backups too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from vault.db import Campaign, Client, Document, Hold, Record, read_session, write_session
from vault.db.log import EntryDraft, append_entries, log_head
from vault.errors import (
    FieldError,
    InvalidEvidence,
    NotFound,
    ObjectLocked,
    ObjectMissing,
    Shredded,
    StorageError,
    VaultError,
)
from vault.evidence import FUTURE_TOLERANCE, normalise_phone
from vault.identifiers import SLUG
from vault.ledger.entry import format_time
from vault.sealing import keyed_hash
from vault.services.binding import LogTail, check_record, sealed_object
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.logauth import TamperDetected

log = logging.getLogger(__name__)

BASES = ("recorded", "consent-use")
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class Rule:
    """A resolved retention rule of one campaign."""

    campaign: str
    days: int
    basis: str
    from_client_default: bool

    def describe(self) -> str:
        since = (
            "recording"
            if self.basis == "recorded"
            else "the last use of the advertising consent (UWG §7a)"
        )
        source = " (client default)" if self.from_client_default else ""
        return f"campaign {self.campaign}: {self.days} days after {since}{source}"

    def until(self, start: datetime) -> datetime:
        return start + timedelta(days=self.days)


def check_days(days: int | None, what: str = "retention_days") -> None:
    if days is not None and not 1 <= days <= MAX_RETENTION_DAYS:
        raise InvalidEvidence(
            [FieldError(what, f"must be between 1 and {MAX_RETENTION_DAYS}")],
            hint="give the retention period in days",
        )


def check_basis(basis: str) -> None:
    if basis not in BASES:
        raise InvalidEvidence(
            [FieldError("retention_basis", f"must be one of {', '.join(BASES)}")],
            hint="'recorded' counts from the recording, 'consent-use' from the last use "
            "of the consent",
        )


def rule_for(session: Session, campaign: Campaign) -> Rule:
    days, default = campaign.retention_days, False
    if days is None:
        client = session.get(Client, campaign.client_id)
        days, default = (client.retention_days if client else None), True
    if days is None:
        raise InvalidEvidence(
            [FieldError("campaign", f"campaign {campaign.name!r} has no retention rule")],
            hint="set one with `evidence-vault campaign retention` or a client default "
            "with `evidence-vault client retention`",
        )
    return Rule(campaign.name, days, campaign.retention_basis, default)


# -- consent use (UWG §7a) ---------------------------------------------------------------


def consent_extensions(
    session: Session, client: str, phone_hash: str, used_at: datetime
) -> tuple[list[Record], list[EntryDraft]]:
    """Extend every consent-based record of this callee to ``used_at`` + its period.

    Call with the client's log head locked (the caller appends the drafts in the same
    transaction), so two concurrent uses cannot lose an extension.
    """
    rows = session.exec(
        select(Record, Campaign)
        .join(Campaign, Campaign.id == Record.campaign_id)
        .where(
            Record.client_id == client,
            Record.phone_hash == phone_hash,
            Record.shredded_at.is_(None),  # type: ignore[union-attr]
            Campaign.retention_basis == "consent-use",
        )
        .order_by(Record.seq)
    )
    changed, drafts = [], []
    for rec, campaign in rows:
        rule = rule_for(session, campaign)
        until = rule.until(used_at)
        if until <= rec.retain_until:
            continue
        rec.retain_until, rec.retention_rule = until, rule.describe()
        session.add(rec)
        changed.append(rec)
        drafts.append(
            EntryDraft(
                "retention.extended",
                rec.id,
                {
                    "retain_until": format_time(until),
                    "rule": rule.describe(),
                    "cause": "consent-use",
                },
            )
        )
    return changed, drafts


def record_consent_use(
    ctx: VaultContext, client: str, phone: str, used_at: datetime | None = None
) -> list[str]:
    """A use of the callee's consent outside the vault (e.g. a mailing): extend its records.

    Returns the ids of the records whose retain-until date moved.
    """
    now = ctx.clock()
    used_at = used_at or now
    if used_at.tzinfo is None or used_at > now + FUTURE_TOLERANCE:
        # a typo here would extend a COMPLIANCE lock, which nothing can shorten again
        raise InvalidEvidence(
            [FieldError("used_at", "must be a time with a time zone, not in the future")],
            hint="give the time the consent was used, e.g. 2026-11-20T09:30:00Z",
        )
    with read_session(ctx.engine) as s:
        if s.get(Client, client) is None:
            raise NotFound(f"client {client!r} does not exist")
    phone_hash = keyed_hash(ctx.keys.index_key(client), "phone", normalise_phone(phone).encode())
    with write_session(ctx.engine) as s:
        log_head(s, client, lock=True)
        changed, drafts = consent_extensions(s, client, phone_hash, used_at)
        if drafts:
            append_entries(s, client, drafts, ctx.clock(), ctx.log_keys(client))
    extend_locks(ctx, changed)
    if drafts:
        checkpoint_after_commit(ctx, client)
    return [r.id for r in changed]


def extend_locks(ctx: VaultContext, records: Iterable[Record]) -> None:
    """Carry new retain-until dates to the store's Object Lock (after the commit).

    The database is authoritative (the retention run reads it); a lock left shorter by a
    failure here only loses the store's second line of defence, so it is logged, not raised.
    """
    if not ctx.store.supports_object_lock:
        return
    for rec in records:
        for key, version in record_objects(ctx, rec):
            try:
                ctx.store.extend_retention(key, rec.retain_until, version_id=version)
            except VaultError as exc:
                log.warning("could not extend the object lock of record %s: %s", rec.id, exc.kind)


# -- plan and run ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanItem:
    """One record the retention run would act on, and why."""

    record_id: str
    client: str
    retain_until: datetime
    rule: str
    action: str  # "shred", "keep" (held) or "purge" (shredded; objects still stored)
    why: str

    def to_dict(self) -> dict:
        return {
            "record_id": self.record_id,
            "client": self.client,
            "retain_until": format_time(self.retain_until),
            "rule": self.rule,
            "action": self.action,
            "why": self.why,
        }


@dataclass
class RunReport:
    shredded: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    kept: list[PlanItem] = field(default_factory=list)
    pending: list[PlanItem] = field(default_factory=list)
    keks_destroyed: list[str] = field(default_factory=list)
    rewrapped: int = 0

    def to_dict(self) -> dict:
        return {
            "shredded": self.shredded,
            "purged": self.purged,
            "kept": [k.to_dict() for k in self.kept],
            "pending": [p.to_dict() for p in self.pending],
            "keks_destroyed": self.keks_destroyed,
            "rewrapped": self.rewrapped,
        }


def plan(
    ctx: VaultContext, client: str | None = None, *, at: datetime | None = None
) -> list[PlanItem]:
    """What a run would do now, or at ``at``: expired records to shred, held ones kept,
    purges pending (holds as they stand now: a plan changes nothing)."""
    now = at or ctx.clock()
    with read_session(ctx.engine) as s:
        expired = _where_client(
            select(Record).where(
                Record.shredded_at.is_(None),  # type: ignore[union-attr]
                Record.retain_until <= now,
            ),
            client,
        )
        unpurged = _where_client(
            select(Record).where(
                Record.shredded_at.is_not(None),  # type: ignore[union-attr]
                Record.purged_at.is_(None),  # type: ignore[union-attr]
            ),
            client,
        )
        items = []
        # holds are few: which records have one, in one query, not one query per record
        on_hold = set(
            s.exec(
                _where_client(
                    select(Hold.record_id).where(Hold.released_at.is_(None)),  # type: ignore[union-attr]
                    client,
                    Hold.client_id,
                )
            )
        )
        for rec in s.exec(expired.order_by(Record.retain_until, Record.id)):
            holds = active_holds(s, rec.id) if rec.id in on_hold else []
            if holds:
                why = "; ".join(f"hold {h.id} ({h.kind}, case {h.case_ref})" for h in holds)
                items.append(_item(rec, "keep", f"expired but on hold: {why}"))
            else:
                items.append(
                    _item(rec, "shred", f"retention expired on {rec.retain_until:%Y-%m-%d}")
                )
        for rec in s.exec(unpurged.order_by(Record.shredded_at, Record.id)):
            items.append(_purge_item(rec))
    return items


def run(
    ctx: VaultContext,
    client: str | None = None,
    *,
    progress: Callable[[PlanItem], None] | None = None,
) -> RunReport:
    """Shred every expired record not on hold, purge their objects, then sweep the keys.

    Idempotent and resumable: records are shredded in batches of one client, each batch
    one transaction (all or nothing) and its objects' purge one more; whatever a crash left
    undone is still in the plan of the next run. See :func:`_batch_size`.
    """
    from vault.services.keys import sweep_keys

    report = RunReport()
    touched: set[str] = set()
    tail = LogTail()
    batch: list[PlanItem] = []
    done = 0  # records shredded or tried so far: the batches grow with it

    def flush() -> None:
        nonlocal done
        if batch:
            _shred_and_purge(ctx, batch, report, touched, tail, progress)
            done += len(batch)
            batch.clear()

    for item in plan(ctx, client):
        if item.action == "shred":
            if batch and (batch[0].client != item.client or len(batch) >= _batch_size(done)):
                flush()
            batch.append(item)
            continue
        flush()
        if item.action == "keep":
            report.kept.append(item)
        else:
            _purge_into(ctx, item, report)
        if progress:
            progress(item)
    flush()
    with read_session(ctx.engine) as s:
        # every tenant (the vault-wide log has no keys to sweep)
        clients = [client] if client else [c for c in s.exec(select(Client.id)) if SLUG.matches(c)]
    for c in clients:
        destroyed, rewrapped = sweep_keys(ctx, c)
        report.keks_destroyed += destroyed
        report.rewrapped += rewrapped
        if rewrapped:
            touched.add(c)  # key.rewrapped entries were appended: checkpoint them too
    for c in sorted(touched):
        checkpoint_after_commit(ctx, c)
    return report


#: the largest shred batch: one transaction, one log append and one purge commit for all
SHRED_BATCH = 128


def _batch_size(done: int) -> int:
    """How many records the next shred batch may take, after ``done`` in this run.

    The batches grow 1, 1, 2, 4, ... up to :data:`SHRED_BATCH`: the first records of a
    run go one by one (a run of a few records gains nothing from batching, and the first
    failure — a store that refuses deletes, a tampered row — is met after one record's
    work), and a crash never loses more than the run had already done.
    """
    return min(SHRED_BATCH, max(1, done))


def _shred_and_purge(
    ctx: VaultContext,
    batch: list[PlanItem],
    report: RunReport,
    touched: set[str],
    tail: LogTail,
    progress: Callable[[PlanItem], None] | None,
) -> None:
    """Shred a batch of one client's expired records, then purge their objects."""
    if len(batch) == 1:  # one record: exactly the single-record path
        item = batch[0]
        if shred_record(ctx, item.record_id, reason="retention", rule=item.rule, tail=tail):
            report.shredded.append(item.record_id)
            touched.add(item.client)
        _purge_into(ctx, item, report)
    else:
        shredded = _shred_batch(ctx, batch, tail)
        report.shredded += shredded
        if shredded:
            touched.add(batch[0].client)
        purged, pending = _purge_batch(
            ctx, batch[0].client, [i.record_id for i in batch], set(shredded)
        )
        report.purged += purged
        report.pending += [_purge_item(rec) for rec in pending]
    if progress:
        for item in batch:
            progress(item)


def _shred_batch(ctx: VaultContext, batch: list[PlanItem], tail: LogTail) -> list[str]:
    """:func:`shred_record` for several records of one client in ONE transaction: the same
    checks per record under the log head's lock, one ``append_entries`` for all their
    ``evidence.shredded`` entries. All or nothing: a tampered record refuses the batch."""
    now, client = ctx.clock(), batch[0].client
    rule_of = {i.record_id: i.rule for i in batch}
    with write_session(ctx.engine) as s:
        log_head(s, client, lock=True)  # holds and extensions serialise on this lock
        found = {r.id: r for r in s.exec(select(Record).where(Record.id.in_(list(rule_of))))}  # type: ignore[attr-defined]
        recs = [found[i.record_id] for i in batch if i.record_id in found]
        keys = ctx.log_keys(client)
        if recs:  # every entry after the earliest seal, as for each record alone
            tail.require(s, keys, client, min(r.seq for r in recs))
        todo: list[Record] = []
        with_holds = _with_active_holds(s, [r.id for r in recs])
        for rec in recs:
            state = check_record(s, keys, rec)
            held = rec.id in with_holds
            if held != state.held:
                raise TamperDetected(
                    f"record {rec.id}: its hold rows disagree with the hold entries of the "
                    "log; refusing to shred it",
                    hint="run `evidence-vault verify`; nothing was changed",
                )
            if not (state.shredded or held or rec.retain_until > now):
                todo.append(rec)
        drafts = [
            EntryDraft("evidence.shredded", rec.id, _shred_body(rec, "retention", rule_of[rec.id]))
            for rec in todo
        ]
        if drafts:
            append_entries(s, client, drafts, now, keys)
        for rec in todo:
            _mark_shredded(rec, now, "retention", rule_of[rec.id])
            s.add(rec)
    return [rec.id for rec in todo]


def _purge_batch(
    ctx: VaultContext, client: str, record_ids: list[str], shredded_now: set[str]
) -> tuple[list[str], list[Record]]:
    """:func:`purge_objects` for a batch: the deletes, one commit for their ``purged_at``.
    Returns the purged ids and the records left shredded but unpurged (pending), in order.

    Objects go only when the log says shredded and unheld. For ``shredded_now`` the batch
    itself appended the shred entry, under the head lock, after checking the record against
    its log; a hold cannot be placed on a shredded record since (:mod:`vault.services.holds`
    refuses under the same lock), so only the hold rows are read again. Any other record is
    checked against its log here, as :func:`purge_objects` does.
    """
    keys = ctx.log_keys(client)
    with read_session(ctx.engine) as s:
        found = {r.id: r for r in s.exec(select(Record).where(Record.id.in_(record_ids)))}  # type: ignore[attr-defined]
        recs = [found[rid] for rid in record_ids if rid in found]
        with_holds = _with_active_holds(s, record_ids)
        purgeable = []
        for rec in recs:
            if rec.id in with_holds:
                continue
            if rec.id in shredded_now:
                purgeable.append(rec)
                continue
            state = check_record(s, keys, rec)
            if state.shredded and not state.held:
                purgeable.append(rec)
    gone = set()
    for rec in purgeable:
        if rec.purged_at is not None or all(
            _delete(ctx, k, rec) for k in (rec.clip_key, rec.meta_key)
        ):
            gone.add(rec.id)
    fresh = [r.id for r in purgeable if r.id in gone and r.purged_at is None]
    if fresh:
        with write_session(ctx.engine) as s:
            now = ctx.clock()
            for row in s.exec(select(Record).where(Record.id.in_(fresh))):  # type: ignore[attr-defined]
                row.purged_at = now
                s.add(row)
    pending = [r for r in recs if r.id not in gone and r.shredded_at is not None]
    return [r.id for r in recs if r.id in gone], pending


def _with_active_holds(session: Session, record_ids: list[str]) -> set[str]:
    """Which of these records have an unreleased hold row (one query)."""
    if not record_ids:
        return set()
    return set(
        session.exec(
            select(Hold.record_id).where(
                Hold.record_id.in_(record_ids),  # type: ignore[attr-defined]
                Hold.released_at.is_(None),  # type: ignore[union-attr]
            )
        )
    )


def _purge_into(ctx: VaultContext, item: PlanItem, report: RunReport) -> None:
    if purge_objects(ctx, item.record_id):
        report.purged.append(item.record_id)
        return
    with read_session(ctx.engine) as s:
        rec = s.get(Record, item.record_id)
    # pending means "shredded, objects still stored": a record shredded by this run is
    # reported as a purge, and one that was not shredded (held or extended meanwhile) is
    # not pending at all (the next plan says why)
    if rec is not None and rec.shredded_at is not None:
        report.pending.append(_purge_item(rec))


def shred_record(
    ctx: VaultContext, record_id: str, *, reason: str, rule: str, tail: LogTail | None = None
) -> bool:
    """Crypto-shred one record (see the module docstring). False if it is held, already
    shredded, or — for ``reason="retention"`` — no longer expired (its date moved on).

    ``tail`` carries the log walk of a run over many records (each client's log is then
    walked once, not once per record)."""
    now = ctx.clock()
    with read_session(ctx.engine) as s:
        rec = s.get(Record, record_id)
    if rec is None:
        raise NotFound(f"no record {record_id!r}")
    with write_session(ctx.engine) as s:
        log_head(s, rec.client_id, lock=True)  # holds and extensions serialise on this lock
        rec = s.get(Record, record_id)
        keys = ctx.log_keys(rec.client_id)
        # every entry after the seal, not only those whose record_id column names it
        (tail or LogTail()).require(s, keys, rec.client_id, rec.seq)
        state = check_record(s, keys, rec)
        held = bool(active_holds(s, record_id))
        if held != state.held:
            raise TamperDetected(
                f"record {record_id}: its hold rows disagree with the hold entries of the log; "
                "refusing to shred it",
                hint="run `evidence-vault verify`; nothing was changed",
            )
        if state.shredded or held:
            return False
        if reason == "retention" and rec.retain_until > now:
            return False
        append_entries(
            s,
            rec.client_id,
            [EntryDraft("evidence.shredded", rec.id, _shred_body(rec, reason, rule))],
            now,
            ctx.log_keys(rec.client_id),
        )
        _mark_shredded(rec, now, reason, rule)
        s.add(rec)
        # its Textform documents' keys were wrapped under the record's key, gone now; their
        # rows drop the wrapped keys and fingerprints too
        s.execute(
            update(Document)
            .where(Document.record_id == rec.id)  # type: ignore[arg-type]
            .values(wrapped_key=b"", fingerprint="")
        )
    return True


def _shred_body(rec: Record, reason: str, rule: str) -> dict:
    return {
        "reason": reason,
        "rule": rule,
        "retain_until": format_time(rec.retain_until),
        "kek": rec.kek_id,
    }


def _mark_shredded(rec: Record, now: datetime, reason: str, rule: str) -> None:
    rec.shredded_at, rec.shred_reason, rec.shred_rule = now, reason, rule
    # the key goes, and with it every lookup value derived from personal data
    rec.wrapped_dek = b""
    rec.phone_hash = rec.clip_fingerprint = rec.meta_fingerprint = ""


def purge_objects(ctx: VaultContext, record_id: str) -> bool:
    """Delete a shredded record's objects (every version); True once they are gone."""
    with read_session(ctx.engine) as s:
        rec = s.get(Record, record_id)
        if rec is None:
            return False
        # objects are deleted only when the log, not just a row, says shredded and unheld
        state = check_record(s, ctx.log_keys(rec.client_id), rec)
        held = bool(active_holds(s, record_id)) or state.held
    if not state.shredded or held:
        return False
    if rec.purged_at is None:
        for key, _version in record_objects(ctx, rec):
            if not _delete(ctx, key, rec):
                return False
        with write_session(ctx.engine) as s:
            row = s.get(Record, record_id)
            row.purged_at = ctx.clock()
            s.add(row)
    return True


def record_objects(ctx: VaultContext, rec: Record) -> list[tuple[str, str | None]]:
    """(key, version) of every object sealed for a record: clip, metadata, and each of its
    Textform documents (which share its retention, holds and shredding)."""
    with read_session(ctx.engine) as s:
        docs = s.exec(
            select(Document.object_key, Document.object_version)
            .where(Document.record_id == rec.id)
            .order_by(Document.seq)
        ).all()
    return [sealed_object(rec, "clip"), sealed_object(rec, "meta"), *((k, v) for k, v in docs)]


def _version_of(ctx: VaultContext, rec: Record, key: str) -> str | None:
    return dict(record_objects(ctx, rec)).get(key)


def _delete(ctx: VaultContext, key: str, rec: Record) -> bool:
    # every version of the key: the sealed one, and anything stacked on it
    try:
        ctx.store.delete(key, all_versions=True)
    except ObjectMissing:
        pass
    except ObjectLocked:
        if rec.retain_until > ctx.clock():
            return False  # e.g. erased before its date: the store's lock still runs
        try:  # a legal hold whose release did not reach the store: no hold remains now
            ctx.store.set_legal_hold(key, False, version_id=_version_of(ctx, rec, key))
            ctx.store.delete(key, all_versions=True)
        except (ObjectLocked, StorageError) as exc:
            log.warning("objects of record %s stay until the store allows: %s", rec.id, exc.kind)
            return False
    except StorageError as exc:
        log.warning("objects of record %s not deleted yet: %s", rec.id, exc.kind)
        return False
    return True


def active_holds(session: Session, record_id: str) -> list[Hold]:
    return list(
        session.exec(
            select(Hold)
            .where(Hold.record_id == record_id, Hold.released_at.is_(None))  # type: ignore[union-attr]
            .order_by(Hold.placed_at)
        )
    )


def refuse_if_shredded(rec: Record) -> None:
    """Reading a shredded record explains what happened to it, when and under which rule."""
    if rec.shredded_at is None:
        return
    cause = (
        f"under the retention rule '{rec.shred_rule}'"
        if rec.shred_reason == "retention"
        else f"on an erasure request ({rec.shred_rule})"
    )
    raise Shredded(
        f"record {rec.id} was crypto-shredded on {rec.shredded_at:%Y-%m-%d} {cause}; its "
        "evidence can no longer be opened by anyone",
        hint="the log still proves what was sealed and when (`evidence-vault proof`)",
    )


def _purge_item(rec: Record) -> PlanItem:
    return _item(
        rec,
        "purge",
        f"shredded on {rec.shredded_at:%Y-%m-%d}; its ciphertext objects are still stored "
        "(deleted once the store allows)",
    )


def _item(rec: Record, action: str, why: str) -> PlanItem:
    rule = rec.retention_rule or f"retain until {rec.retain_until:%Y-%m-%d}"
    return PlanItem(rec.id, rec.client_id, rec.retain_until, rule, action, why)


def _where_client(stmt, client: str | None, column=Record.client_id):
    return stmt.where(column == client) if client else stmt
