"""Desk pages of records: search, the record page, opening evidence with a reason, the
player's audio, the evidence bundle, the access history and opening a dispute.

Opening evidence takes a reason (a code of ``retrieve.ACCESS_REASONS`` and an optional case
reference): one ``evidence.accessed`` entry naming the person and the reason is appended
*before* anything is decrypted, and the session may then read that record's evidence and
audio (a ``desk_grant`` row, gone with the session). Downloading the bundle logs again.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from fastapi import Header, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlmodel import select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from vault.bundle.layout import REPORT_LANGUAGES
from vault.db import Campaign, LogEntry, Record, read_session, write_session
from vault.db.models import DeskGrant
from vault.errors import FieldError, InvalidEvidence, NotFound, PermissionDenied
from vault.evidence import normalise_phone
from vault.http.ranges import parse_range
from vault.ledger.entry import format_time, parse_entry
from vault.sealing.credentials import GRANT_DOMAIN
from vault.services import documents, retrieve
from vault.services import holds as _holds
from vault.services.credentials import seal
from vault.services.export import ReportOptions, export_bundle
from vault.services.integrity import check_integrity
from vault.services.retention import refuse_if_shredded
from vault.spool import Spool
from vault.web import i18n
from vault.web.desk import PREFIX, ctx_of, read_form, redirect, render, router, signed_in
from vault.web.sessions import DeskSession

PAGE_SIZE = 25
#: a search reads at most this many hits (the page says so when there are more)
MAX_HITS = 1000
STATES = ("any", "sealed", "held", "shredded")
_CASE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:#-]{0,63}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# -- search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Criteria:
    order_ref: str = ""
    phone: str = ""
    since: str = ""
    until: str = ""
    campaign: str = ""
    agent: str = ""
    state: str = "any"

    @property
    def empty(self) -> bool:
        return (
            not any((self.order_ref, self.phone, self.since, self.until, self.campaign, self.agent))
            and self.state == "any"
        )


@router.get(f"{PREFIX}/search")
def search_page(request: Request) -> Response:
    session = signed_in(request, "client")
    return render(request, "search.html", session, criteria=Criteria(), states=STATES, hits=None)


@router.post(f"{PREFIX}/search")
async def search(request: Request) -> Response:
    session = await run_in_threadpool(signed_in, request, "client")
    form = await read_form(request, session)
    return await run_in_threadpool(_search, request, session, form)


def _search(request: Request, session: DeskSession, form: dict[str, str]) -> Response:
    c = Criteria(**{k: form.get(k, "").strip() for k in Criteria.__dataclass_fields__})
    if c.state not in STATES:
        c = Criteria(**{**c.__dict__, "state": "any"})
    page = int(form["page"]) if form.get("page", "").isdigit() else 0
    errors: list[str] = []
    zone = i18n.choose_zone(request, ctx_of(request).settings.web_timezone)
    phone = None
    if c.phone:
        try:
            phone = normalise_phone(c.phone)
        except InvalidEvidence:
            errors.append("phone")
    since = _day(c.since, zone, errors, "since")
    until = _day(c.until, zone, errors, "until")
    until = until + timedelta(days=1) if until else None  # the whole last day
    for name in ("order_ref", "campaign", "agent"):
        if len(getattr(c, name)) > 128:
            errors.append(name)
    hits: list = []
    more = False
    if not errors and not c.empty:
        q = retrieve.Query(
            client=session.person.client_id,
            campaign=c.campaign or None,
            order_ref=c.order_ref or None,
            phone=phone,
            agent=c.agent or None,
            since=since,
            until=until,
            limit=MAX_HITS + 1,
        )
        found = retrieve.find(ctx_of(request), q)
        held = {h.record_id for h in _holds.list_holds(ctx_of(request), client=q.client)}
        found = [h for h in found if _state(h, held) == c.state or c.state == "any"]
        more = len(found) > MAX_HITS
        hits = [(h, _state(h, held)) for h in found[:MAX_HITS]]
    pages = max(1, -(-len(hits) // PAGE_SIZE))
    page = min(page, pages - 1)
    return render(
        request,
        "search.html",
        session,
        status=422 if errors else 200,
        criteria=c,
        states=STATES,
        errors=errors,
        hits=hits[page * PAGE_SIZE : (page + 1) * PAGE_SIZE] if not c.empty else None,
        total=len(hits),
        more=more,
        page=page,
        pages=pages,
        masked_phone=mask_phone(phone or c.phone) if c.phone else "",
        searched=not c.empty and not errors,
    )


def _state(hit, held: set[str]) -> str:
    if hit.state == "shredded":
        return "shredded"
    return "held" if hit.record_id in held else "sealed"


def _day(text: str, zone, errors: list[str], name: str) -> datetime | None:
    if not text:
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        errors.append(name)
        return None
    # a day in the reader's zone, from its first moment
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def mask_phone(phone: str) -> str:
    """``+49 ••• •••• 678``: enough to tell numbers apart on a screen, not to call one."""
    digits = phone.strip()
    if len(digits) < 6:
        return "•" * len(digits)
    return digits[:3] + "•" * (len(digits) - 6) + digits[-3:]


# -- the record page ----------------------------------------------------------------------


def _record(request: Request, session: DeskSession, record_id: str) -> Record:
    """The checked record of the person's client; another tenant's is "not found"."""
    if not re.fullmatch(r"[A-Za-z0-9]{1,40}", record_id):
        raise NotFound("no such record")
    return retrieve.get_record(ctx_of(request), record_id, client=session.person.client_id)


def _grant(request: Request, session: DeskSession, record_id: str) -> DeskGrant | None:
    """The session's logged opening of the record, if it has one the vault made."""
    ctx = ctx_of(request)
    with read_session(ctx.engine) as s:
        grant = s.get(DeskGrant, (session.id_hash, record_id))
    if grant is None or not seal(ctx).check_row(grant.tag, GRANT_DOMAIN, *_granted_fields(grant)):
        return None
    return grant


def _granted_fields(grant: DeskGrant) -> tuple[str, ...]:
    return (
        grant.session_hash,
        grant.record_id,
        grant.reason,
        grant.case_ref,
        format_time(grant.granted_at),
    )


@router.get(PREFIX + "/records/{record_id}")
def record_page(request: Request, record_id: str) -> Response:
    session = signed_in(request, "client")
    rec = _record(request, session, record_id)
    return _record_view(request, session, rec, _grant(request, session, rec.id))


def _record_view(
    request: Request, session: DeskSession, rec: Record, grant: DeskGrant | None, **extra
) -> Response:
    ctx = ctx_of(request)
    document = None
    if grant is not None and rec.shredded_at is None:
        document = retrieve.read_document(ctx, rec)
    return render(
        request,
        "record.html",
        session,
        rec=rec,
        campaign=_campaign(ctx, rec),
        holds=_holds.list_holds(ctx, client=rec.client_id, record_id=rec.id),
        accesses=access_history(ctx, rec),
        textform=documents.textform_facts(ctx, rec.id, client=rec.client_id),
        grant=grant,
        doc=document,
        reasons=retrieve.ACCESS_REASONS,
        masked_phone=mask_phone(document["evidence"]["callee"]["phone"]) if document else "",
        regions=_regions(document) if document else [],
        **extra,
    )


@router.get(PREFIX + "/records/{record_id}/integrity")
def integrity_page(request: Request, record_id: str) -> Response:
    """The record's integrity checks, run now (the record page loads this into its panel).

    Every view checks again: the stored objects are read and hashed, the inclusion proof
    and the checkpoint signature verified; nothing is cached.
    """
    session = signed_in(request, "client")
    ctx = ctx_of(request)
    rec = _record(request, session, record_id)
    return render(
        request,
        "integrity.html",
        session,
        rec=rec,
        integrity=check_integrity(ctx, rec),
        checked_at=ctx.clock(),
    )


def _campaign(ctx, rec: Record) -> str:
    with read_session(ctx.engine) as s:
        row = s.get(Campaign, rec.campaign_id)
    return row.name if row else ""


def _regions(doc: dict) -> list[dict]:
    """The player's regions from the sealed spans (milliseconds)."""
    ev, out = doc["evidence"], []
    consent_at = ev.get("consent", {}).get("recording_at_ms")
    if consent_at is not None:
        identity_start = ev["identity"]["span_ms"][0]
        out.append({"id": "consent", "start": consent_at, "end": max(consent_at, identity_start)})
    out.append(
        {
            "id": "identity",
            "start": ev["identity"]["span_ms"][0],
            "end": ev["identity"]["span_ms"][1],
        }
    )
    out.append(
        {"id": "intent", "start": ev["intent"]["span_ms"][0], "end": ev["intent"]["span_ms"][1]}
    )
    if ev.get("withdrawal_notice_span_ms"):
        start, end = ev["withdrawal_notice_span_ms"]
        out.append({"id": "withdrawal", "start": start, "end": end})
    return out


def access_history(ctx, rec: Record) -> list[dict]:
    """Who opened the record, when and why: its ``evidence.accessed`` entries, oldest first."""
    with read_session(ctx.engine) as s:
        # by the record_id index alone: with client_id in the query SQLite walked the
        # client's whole log by its primary key (12 ms at 20,000 records, growing)
        rows = s.exec(
            select(LogEntry).where(
                LogEntry.record_id == rec.id, LogEntry.type == "evidence.accessed"
            )
        ).all()
    out = []
    for row in sorted(rows, key=lambda r: r.seq):
        if row.client_id != rec.client_id:
            continue
        entry = parse_entry(bytes(row.entry))
        body = entry["body"]
        out.append(
            {
                "seq": row.seq,
                "time": datetime.fromisoformat(entry["time"].replace("Z", "+00:00")),
                "principal": body.get("principal", ""),
                "what": body.get("what", ""),
                "reason": body.get("reason", ""),
                "case": body.get("case", ""),
            }
        )
    return out


@router.post(PREFIX + "/records/{record_id}/open")
async def open_evidence(request: Request, record_id: str) -> Response:
    session = await run_in_threadpool(signed_in, request, "client")
    form = await read_form(request, session)
    return await run_in_threadpool(_open, request, session, record_id, form)


def _open(request: Request, session: DeskSession, record_id: str, form: dict) -> Response:
    ctx = ctx_of(request)
    rec = _record(request, session, record_id)
    refuse_if_shredded(rec)
    reason, case = form.get("reason", ""), form.get("case", "").strip()
    errors = []
    if reason not in retrieve.ACCESS_REASONS:
        errors.append(FieldError("reason", "choose why you open the evidence"))
    if case and not _CASE_REF.fullmatch(case):
        errors.append(FieldError("case", "a case reference (letters, digits, . _ / : # -)"))
    if errors:
        raise InvalidEvidence(errors)
    # logged first: the access is on record even if what follows fails
    retrieve.record_access(
        ctx, rec, session.principal, "evidence", reason=reason, case=case or None
    )
    grant = DeskGrant(
        session_hash=session.id_hash,
        record_id=rec.id,
        reason=reason,
        case_ref=case,
        granted_at=ctx.clock(),
        tag=b"",
    )
    grant.tag = seal(ctx).row_tag(GRANT_DOMAIN, *_granted_fields(grant))
    with write_session(ctx.engine) as s:
        s.merge(grant)
    # the opened page is the answer itself, not a redirect to it: one render, one round
    # trip less on the way to the audio. desk.js puts the record's own address into the
    # history (``canonical``), so reloading shows the page instead of posting again.
    page = f"{PREFIX}/records/{rec.id}"
    return _record_view(request, session, rec, grant, canonical=f"{page}#evidence", here=page)


def _granted(request: Request, session: DeskSession, record_id: str) -> tuple[Record, DeskGrant]:
    rec = _record(request, session, record_id)
    grant = _grant(request, session, rec.id)
    if grant is None:
        raise PermissionDenied("give a reason on the record page first")
    refuse_if_shredded(rec)
    return rec, grant


@router.get(PREFIX + "/records/{record_id}/audio")
def audio(
    request: Request,
    record_id: str,
    range_: str | None = Header(None, alias="Range"),
) -> Response:
    """The clip for the player, with HTTP Range; covered by the logged opening (grant)."""
    session = signed_in(request, "client")
    rec, _grant_row = _granted(request, session, record_id)
    ctx = ctx_of(request)
    total = rec.clip_size
    headers = {"Accept-Ranges": "bytes"}
    wanted = parse_range(range_, total) if range_ else None
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={"Content-Range": f"bytes */{total}"})
    if isinstance(wanted, tuple):
        start, end = wanted
        headers |= {
            "Content-Range": f"bytes {start}-{end}/{total}",
            "Content-Length": str(end - start + 1),
        }
        chunks = _started(retrieve.decrypt_clip_range(ctx, rec, start, end - start + 1))
        return StreamingResponse(chunks, 206, media_type=rec.media_type, headers=headers)
    headers["Content-Length"] = str(total)
    chunks = _started(retrieve.open_object(ctx, rec, "clip"))
    return StreamingResponse(chunks, media_type=rec.media_type, headers=headers)


def _started(chunks):
    """The first piece is decrypted before the answer starts: a key or storage failure is
    an error page, not a broken body."""
    first = next(chunks, b"")

    def rest():
        if first:
            yield first
        yield from chunks

    return rest()


@router.post(PREFIX + "/records/{record_id}/bundle")
async def bundle(request: Request, record_id: str) -> Response:
    session = await run_in_threadpool(signed_in, request, "client")
    await read_form(request, session)
    return await run_in_threadpool(_bundle, request, session, record_id)


def _report_language(request: Request) -> str:
    lang = i18n.choose_locale(request)
    return lang if lang in REPORT_LANGUAGES else "de"


def _bundle(request: Request, session: DeskSession, record_id: str) -> Response:
    ctx = ctx_of(request)
    rec, grant = _granted(request, session, record_id)
    workdir = Spool(ctx.settings.home).directory()
    try:
        path = export_bundle(
            ctx,
            rec.id,
            workdir.path / "bundle.zip",
            principal=session.principal,
            client=session.person.client_id,
            reason=grant.reason,
            case=grant.case_ref or None,
            # the report in the desk's language; times in the client's zone, not the browser's
            options=ReportOptions(_report_language(request), ctx.settings.web_timezone),
        )
    except BaseException:
        workdir.close()
        raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"{rec.id}.zip",
        background=BackgroundTask(workdir.close),
    )


@router.get(PREFIX + "/records/{record_id}/accesses.csv")
def accesses_csv(request: Request, record_id: str) -> Response:
    session = signed_in(request, "client")
    rec = _record(request, session, record_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["seq", "time", "principal", "what", "reason", "case"])
    for a in access_history(ctx_of(request), rec):
        writer.writerow(
            [a["seq"], a["time"].isoformat()]
            + [_cell(a[k]) for k in ("principal", "what", "reason", "case")]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{rec.id}-accesses.csv"'},
    )


def _cell(value: str) -> str:
    # a spreadsheet runs cells starting with these as formulas
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


@router.post(PREFIX + "/records/{record_id}/dispute")
async def dispute(request: Request, record_id: str) -> Response:
    session = await run_in_threadpool(signed_in, request, "client")
    form = await read_form(request, session)
    return await run_in_threadpool(_dispute, request, session, record_id, form)


def _dispute(request: Request, session: DeskSession, record_id: str, form: dict) -> Response:
    rec = _record(request, session, record_id)
    _holds.place_hold(
        ctx_of(request),
        rec.id,
        kind="dispute",
        case_ref=form.get("case_ref", "").strip(),
        reason=form.get("reason", "").strip(),
        principal=session.principal.name,
        client=session.person.client_id,
    )
    return redirect(f"{PREFIX}/records/{rec.id}#holds")
