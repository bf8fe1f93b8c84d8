"""Disputes and legal holds: evidence that must outlive its retention date.

A client opening a dispute on a record, or an admin placing a legal hold, creates a hold:
a database row, an S3 legal hold on the record's objects (where the bucket has Object
Lock) and a ``hold.placed`` entry. While any hold on a record is active, neither the
retention run nor an erasure request shreds it.

Releasing is four-eyes: one admin requests it (``hold.release_requested``), a *different*
admin completes it (``hold.released``, naming both). Both steps are logged. Admins are
compared as persons (``person:<handle>``), never as tokens: one person with two tokens is
one pair of eyes, and the operator alone (no person) cannot take either step.

Order of effects, and why: the S3 legal hold goes on *before* the database commit (a
failure leaves at most a store-side hold with no row, harmless and re-applied on retry),
and comes off *after* the release commits (a failure leaves the store stricter than the
database; the retention run lifts such a stale hold before deleting).
"""

from __future__ import annotations

import logging

from sqlmodel import select

from vault.db import Hold, Record, read_session, write_session
from vault.db.log import EntryDraft, append_entries, log_head
from vault.errors import (
    Conflict,
    FieldError,
    InvalidEvidence,
    NotFound,
    PermissionDenied,
    VaultError,
)
from vault.identifiers import CASE_REF, new_hold_id
from vault.inputs import text_problem
from vault.results import HoldInfo
from vault.services.binding import checked_record
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.people import Principal
from vault.services.retention import active_holds, record_objects

log = logging.getLogger(__name__)

KINDS = ("dispute", "legal")
MAX_REASON = 500


def place_hold(
    ctx: VaultContext,
    record_id: str,
    *,
    kind: str,
    case_ref: str,
    reason: str,
    principal: str,
    client: str | None = None,
) -> HoldInfo:
    """Open a dispute (``kind="dispute"``) or place a legal hold (``"legal"``) on a record."""
    _check(kind, case_ref, reason)
    rec = _record(ctx, record_id, client)
    if rec.shredded_at is not None:
        raise Conflict(
            f"record {record_id} was shredded on {rec.shredded_at:%Y-%m-%d}; there is no "
            "evidence left to hold"
        )
    _store_hold(ctx, rec, True)
    now = ctx.clock()
    hold = Hold(
        id=new_hold_id(),
        client_id=rec.client_id,
        record_id=rec.id,
        kind=kind,
        case_ref=case_ref,
        reason=reason,
        placed_by=principal,
        placed_at=now,
    )
    with write_session(ctx.engine) as s:
        log_head(s, rec.client_id, lock=True)  # a concurrent shred must see this hold
        current = s.get(Record, rec.id)
        if current.shredded_at is not None:
            raise Conflict(f"record {record_id} was shredded while the hold was being placed")
        s.add(hold)
        body = {"hold": hold.id, "kind": kind, "case": case_ref, "by": principal}
        append_entries(
            s,
            rec.client_id,
            [EntryDraft("hold.placed", rec.id, body)],
            now,
            ctx.log_keys(rec.client_id),
        )
    checkpoint_after_commit(ctx, rec.client_id)
    return _info(hold)


def release_hold(ctx: VaultContext, hold_id: str, *, admin: Principal) -> HoldInfo:
    """First call: request the release. Second call by another admin person: release."""
    admin.require("admin")
    if admin.person is None:
        raise PermissionDenied(
            "a hold release takes two named admin persons",
            hint="name yourself: `evidence-vault hold release HOLD --as HANDLE`",
        )
    now = ctx.clock()
    found = find_hold(ctx, hold_id, admin)
    who = admin.name
    with write_session(ctx.engine) as s:
        log_head(s, found.client, lock=True)
        hold = s.get(Hold, hold_id)
        if hold.released_at is not None:
            raise Conflict(f"hold {hold_id} was already released on {hold.released_at:%Y-%m-%d}")
        if hold.release_requested_by is None:
            hold.release_requested_by, hold.release_requested_at = who, now
            draft = EntryDraft(
                "hold.release_requested", hold.record_id, {"hold": hold.id, "by": who}
            )
        elif hold.release_requested_by == who:
            raise PermissionDenied(
                f"{who} already requested the release of hold {hold_id}: four-eyes rule",
                hint="a second, different admin must approve the release",
            )
        else:
            hold.released_by, hold.released_at = who, now
            draft = EntryDraft(
                "hold.released",
                hold.record_id,
                {"hold": hold.id, "requested_by": hold.release_requested_by, "approved_by": who},
            )
        s.add(hold)
        append_entries(s, hold.client_id, [draft], now, ctx.log_keys(hold.client_id))
        still_held = bool(active_holds(s, hold.record_id))
        rec = s.get(Record, hold.record_id)
    if hold.released_at is not None and not still_held:
        try:
            _store_hold(ctx, rec, False)
        except VaultError as exc:
            # the retention run lifts a stale store hold before purging
            log.warning("legal hold of record %s stays set in the store: %s", rec.id, exc.kind)
    checkpoint_after_commit(ctx, hold.client_id)
    return _info(hold)


def find_hold(ctx: VaultContext, hold_id: str, principal: Principal) -> HoldInfo:
    """The hold, if ``principal``'s scope covers it: another client's looks missing."""
    with read_session(ctx.engine) as s:
        found = s.get(Hold, hold_id)
    if found is None or not principal.sees(found.client_id):
        raise NotFound(f"no hold {hold_id!r}", hint="list holds with `evidence-vault hold list`")
    return _info(found)


def list_holds(
    ctx: VaultContext,
    *,
    client: str | None = None,
    record_id: str | None = None,
    include_released: bool = False,
) -> list[HoldInfo]:
    with read_session(ctx.engine) as s:
        stmt = select(Hold).order_by(Hold.placed_at, Hold.id)
        if client:
            stmt = stmt.where(Hold.client_id == client)
        if record_id:
            stmt = stmt.where(Hold.record_id == record_id)
        if not include_released:
            stmt = stmt.where(Hold.released_at.is_(None))  # type: ignore[union-attr]
        return [_info(h) for h in s.exec(stmt)]


def _store_hold(ctx: VaultContext, rec: Record, on: bool) -> None:
    if not ctx.store.supports_object_lock:
        return  # the database hold is the protection; docs/operations.md says so
    # the record's Textform documents are held with it
    for key, version in record_objects(ctx, rec):
        ctx.store.set_legal_hold(key, on, version_id=version)


def _record(ctx: VaultContext, record_id: str, client: str | None) -> Record:
    return checked_record(ctx, record_id, client).record


def _check(kind: str, case_ref: str, reason: str) -> None:
    errors = []
    if kind not in KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(KINDS)}"))
    if not CASE_REF.matches(case_ref):
        errors.append(
            FieldError(
                "case_ref",
                "must be 1-64 characters of letters, digits and . _ / : # -, starting with a "
                "letter or digit (a case number, not a description)",
            )
        )
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        errors.append(FieldError("reason", f"must be 1-{MAX_REASON} characters"))
    elif problem := text_problem(reason, multiline=True):  # a NUL fails on PostgreSQL
        errors.append(FieldError("reason", problem))
    if errors:
        raise InvalidEvidence(errors, hint="a hold needs a case reference and a reason")


def _info(h: Hold) -> HoldInfo:
    return HoldInfo(
        h.id,
        h.client_id,
        h.record_id,
        h.kind,
        h.case_ref,
        h.reason,
        h.placed_by,
        h.placed_at,
        h.release_requested_by,
        h.released_by,
        h.released_at,
    )
