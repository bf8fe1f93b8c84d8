"""Recording-ready webhooks of a CPaaS (Twilio's style): the vault fetches the clip itself.

The CPaaS calls ``POST /v1/webhooks/twilio/{client}/{campaign}`` when a recording is
ready, with form fields (``RecordingSid``, ``RecordingUrl``, ``CallSid``,
``RecordingStartTime``, ``AccountSid``...) and ``X-Twilio-Signature``: base64 of
HMAC-SHA1, keyed with the client's webhook secret (the account's auth token), over the URL
it called followed by every POST parameter's name and value, sorted by name. Then:

1. :func:`accept` checks the signature (tenant by tenant: another client's secret never
   fits), builds the evidence document (the campaign's template, the callback's
   ``EvidenceMetadata`` on top, ``call_id``/``recorded_at`` from the callback) and checks it
   with the vault's rules, except what needs the audio; refuses a recording URL outside
   the allowed origins (SSRF guard); and stores a durable :class:`~vault.db.models.PullJob`
   keyed by the recording SID, the document sealed under the client's KEK. A repeat of the
   callback finds the same job. The request is answered 202 before anything is fetched.
2. :class:`PullWorker` (a thread of every ``serve`` worker) claims due jobs with a lease
   (a killed worker's job is taken again once the lease ends), fetches the recording
   (a 404 while the CPaaS is still processing is normal: retried with exponential backoff
   and jitter, like 408, 429 and 5xx, for ``give_up_hours``), and ingests it. Ingest is
   idempotent on the call segment, so even a job run twice seals one record.

Nothing of the document (phone numbers, names) is logged or stored in clear; job errors
hold a kind and a short reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from vault.agent.retry import Backoff, is_transient, parse_retry_after
from vault.config import CpaasClient
from vault.db import Campaign, Client, read_session, write_session
from vault.db.models import PullJob
from vault.errors import (
    FieldError,
    InvalidAudio,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    VaultError,
)
from vault.evidence import parse_evidence
from vault.identifiers import new_record_id
from vault.ledger.entry import format_time
from vault.sealing import WrappedKey, data_key_context, decrypt_stream, encrypt_stream, object_aad
from vault.services.context import VaultContext
from vault.services.ingest import accepted_media_type, ingest
from vault.services.keys import expiry_bucket

log = logging.getLogger("vault.cpaas")

SOURCE = "twilio"
#: the custom parameter (query string or form) carrying the per-call evidence fields
METADATA_PARAM = "EvidenceMetadata"
#: form fields the webhook understands (others are signed and ignored)
REQUIRED = ("RecordingSid", "RecordingUrl", "CallSid")
_SID = r"[A-Za-z0-9]{2,64}"
#: the largest recording fetched
MAX_BYTES = 512 * 1024 * 1024
_BACKOFF = Backoff(base=2.0, cap=300.0)
_MAX_REDIRECTS = 5


# --- the signature --------------------------------------------------------------------


def twilio_signature(secret: bytes, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Base64 HMAC-SHA1 over ``url`` and the POST parameters sorted by name (then value)."""
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(secret, data.encode(), hashlib.sha1).digest()).decode()


def _check_signature(
    cfg: CpaasClient, url: str, form: Sequence[tuple[str, str]], given: str | None
) -> None:
    if not given:
        raise Unauthenticated(
            "the callback carries no X-Twilio-Signature",
            hint="configure the recording status callback on the CPaaS account whose auth "
            "token is this client's webhook secret",
        )
    expected = twilio_signature(cfg.secret(), url, form)
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise PermissionDenied(
            "the callback's X-Twilio-Signature does not match",
            hint="the callback must come from the CPaaS account of this client, to the exact "
            "URL configured there ([cpaas] public_url when the vault is behind a proxy)",
        )


# --- the SSRF guard ---------------------------------------------------------------------


def origin_allowed(url: str, allowed: Iterable[str]) -> bool:
    """Whether ``url`` lies on one of the ``allowed`` origins (``*.`` for subdomains)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return False
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname.lower()
    for origin in allowed:
        o = urlsplit(origin)
        o_port = o.port or (443 if o.scheme == "https" else 80)
        o_host = (o.hostname or "").lower()
        if o.scheme != parts.scheme or o_port != port:
            continue
        if o_host.startswith("*."):
            if host.endswith(o_host[1:]):
                return True
        elif host == o_host:
            return True
    return False


# --- accepting a callback -----------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    job_id: str
    duplicate: bool
    state: str


def accept(
    ctx: VaultContext,
    client: str,
    campaign: str,
    url: str,
    query: Sequence[tuple[str, str]],
    form: Sequence[tuple[str, str]],
    signature: str | None,
) -> Accepted:
    """Check and record one recording-ready callback; the fetch happens later."""
    cfg = ctx.settings.cpaas.clients.get(client)
    if cfg is None:
        raise NotFound(
            "no CPaaS webhook is configured for this client",
            hint="add [cpaas.clients.NAME] to vault.toml (docs/dialers.md)",
        )
    _check_signature(cfg, url, form, signature)
    fields = dict(form)
    missing = [f for f in REQUIRED if not fields.get(f)]
    if missing:
        raise InvalidRequest(
            [FieldError(f"form.{f}", "is required") for f in missing],
            hint="a recording status callback carries RecordingSid, RecordingUrl and CallSid",
        )
    sid = fields["RecordingSid"]
    if not _valid_sid(sid):
        raise InvalidRequest([FieldError("form.RecordingSid", "is not a SID")])
    recording = fields["RecordingUrl"]
    if not origin_allowed(recording, ctx.settings.cpaas.allowed_origins):
        raise PermissionDenied(
            "the recording URL is not on an allowed origin, so the vault will not fetch it",
            hint="add the CPaaS's media origin to [cpaas] allowed_origins",
        )
    status = fields.get("RecordingStatus", "completed")
    if status != "completed":
        raise InvalidRequest(
            [FieldError("form.RecordingStatus", f"is {status!r}: nothing to fetch")],
            hint="send only the 'completed' recording status event to this URL",
        )
    existing = _job_by_sid(ctx, client, sid)
    if existing is not None and existing.state != "failed":
        return Accepted(existing.id, True, existing.state)
    document = _document(ctx, cfg, client, campaign, dict(query) | fields)
    if existing is not None:
        # sent again after it failed (its cause fixed, e.g. the template): tried afresh
        return _requeue(ctx, existing, recording, fields.get("AccountSid"), document)
    return _add_job(ctx, client, campaign, sid, recording, fields.get("AccountSid"), document)


def _valid_sid(sid: str) -> bool:
    return re.fullmatch(_SID, sid) is not None


def _document(
    ctx: VaultContext, cfg: CpaasClient, client: str, campaign: str, params: Mapping[str, str]
) -> dict:
    """The template, the callback's own fields on top, then what the callback states."""
    doc = _template(cfg, campaign)
    custom = params.get(METADATA_PARAM)
    if custom:
        doc = _merge(doc, _decode_custom(custom))
    for name, value in (("client", client), ("campaign", campaign)):
        if doc.get(name, value) != value:
            # a document naming another tenant or campaign than the URL never goes in
            raise PermissionDenied(
                f"the evidence names another {name} than the webhook URL",
                hint=f"each client and campaign has its own webhook URL; leave '{name}' out "
                "of the metadata or make it match",
            )
        doc[name] = value
    doc.setdefault("call_id", params["CallSid"])
    doc.setdefault("segment", 1)
    started = params.get("RecordingStartTime")
    if "recorded_at" not in doc and started:
        doc["recorded_at"] = _iso(started)
    # the vault's rules, all but the spans against the duration (known once fetched)
    parse_evidence(doc, now=ctx.clock())
    _require_campaign(ctx, client, campaign)
    return doc


def _template(cfg: CpaasClient, campaign: str) -> dict:
    path = cfg.templates.get(campaign)
    if path is None:
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise VaultError(
            f"the evidence template of campaign {campaign!r} cannot be read",
            hint="check the file [cpaas.clients.NAME] templates names: a JSON object",
        ) from None
    if not isinstance(doc, dict):
        raise VaultError(f"the evidence template of campaign {campaign!r} is not a JSON object")
    return doc


def _decode_custom(text: str) -> dict:
    t = text.strip()
    try:
        raw = base64.b64decode(t + "=" * (-len(t) % 4), altchars=b"-_", validate=True)
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        doc = None
    if not isinstance(doc, dict):
        raise InvalidRequest(
            [FieldError(METADATA_PARAM, "is not base64url of a JSON object")],
            hint="send the per-call evidence fields as base64url (no padding) of JSON",
        )
    return doc


def _merge(base: dict, top: Mapping[str, Any]) -> dict:
    """``top`` over ``base``; objects merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _iso(rfc2822: str) -> str:
    try:
        when = parsedate_to_datetime(rfc2822)
    except (TypeError, ValueError):
        raise InvalidRequest(
            [FieldError("form.RecordingStartTime", "is not an RFC 2822 date")]
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _require_campaign(ctx: VaultContext, client: str, campaign: str) -> None:
    with read_session(ctx.engine) as s:
        found = s.get(Client, client) is not None and (
            s.exec(
                select(Campaign.id).where(Campaign.client_id == client, Campaign.name == campaign)
            ).first()
            is not None
        )
    if not found:
        raise NotFound(
            "no such campaign for this client",
            hint="check the webhook URL, or create it with `evidence-vault campaign add`",
        )


def _job_by_sid(ctx: VaultContext, client: str, sid: str) -> PullJob | None:
    with read_session(ctx.engine) as s:
        return s.exec(
            select(PullJob).where(
                PullJob.client_id == client, PullJob.source == SOURCE, PullJob.source_key == sid
            )
        ).first()


def _add_job(
    ctx: VaultContext,
    client: str,
    campaign: str,
    sid: str,
    url: str,
    account: str | None,
    document: dict,
) -> Accepted:
    job_id = "pj" + new_record_id()
    now = ctx.clock()
    wrapped, sealed = _seal(ctx, client, job_id, document)
    try:
        with write_session(ctx.engine) as s:
            s.add(
                PullJob(
                    id=job_id,
                    client_id=client,
                    campaign=campaign,
                    source=SOURCE,
                    source_key=sid,
                    url=url,
                    account=account,
                    state="queued",
                    next_try=now,
                    created_at=now,
                    updated_at=now,
                    kek_id=wrapped.kek_id,
                    wrapped_dek=wrapped.blob,
                    meta_sealed=sealed,
                )
            )
    except IntegrityError:
        # the same callback, delivered twice at once: the other one stored the job
        existing = _job_by_sid(ctx, client, sid)
        if existing is None:
            raise
        return Accepted(existing.id, True, existing.state)
    log.info("cpaas job %s queued for client %s", job_id, client)
    return Accepted(job_id, False, "queued")


def _requeue(
    ctx: VaultContext, job: PullJob, url: str, account: str | None, document: dict
) -> Accepted:
    now = ctx.clock()
    wrapped, sealed = _seal(ctx, job.client_id, job.id, document)
    with write_session(ctx.engine) as s:
        s.exec(  # type: ignore[call-overload]
            update(PullJob)
            .where(PullJob.id == job.id, PullJob.state == "failed")
            .values(
                state="queued",
                url=url,
                account=account,
                attempts=0,
                next_try=now,
                lease_until=None,
                last_error=None,
                created_at=now,
                updated_at=now,
                kek_id=wrapped.kek_id,
                wrapped_dek=wrapped.blob,
                meta_sealed=sealed,
            )
        )
    log.info("cpaas job %s queued again for client %s", job.id, job.client_id)
    return Accepted(job.id, False, "queued")


# --- the sealed document ----------------------------------------------------------------


def _seal(ctx: VaultContext, client: str, job_id: str, document: dict) -> tuple[WrappedKey, bytes]:
    # a KEK bucket a month ahead: the job is done (and its document dropped) long before
    bucket = expiry_bucket(ctx.clock() + timedelta(days=40))
    dek, wrapped = ctx.keys.generate(client, bucket, data_key_context(job_id))
    plain = json.dumps(document, ensure_ascii=False).encode()
    return wrapped, b"".join(encrypt_stream(dek, object_aad(client, job_id, "meta"), [plain]))


def _open(ctx: VaultContext, job: PullJob) -> dict:
    assert job.kek_id and job.wrapped_dek is not None and job.meta_sealed is not None
    wrapped = WrappedKey(job.kek_id, job.wrapped_dek)
    dek = ctx.keys.unwrap(wrapped, job.client_id, data_key_context(job.id))
    aad = object_aad(job.client_id, job.id, "meta")
    plain = b"".join(decrypt_stream(dek, aad, io.BytesIO(job.meta_sealed).read))
    return json.loads(plain)


# --- running jobs ---------------------------------------------------------------------------


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def claim(ctx: VaultContext) -> PullJob | None:
    """The next due job, leased to this process (None: nothing due)."""
    now = ctx.clock()
    # a claim lasts the lease: a worker killed mid-fetch leaves the job to another after it
    lease = timedelta(seconds=ctx.settings.cpaas.lease_seconds)
    with read_session(ctx.engine) as s:
        candidates = s.exec(
            select(PullJob.id)
            .where(PullJob.state == "queued", PullJob.next_try <= now)
            .order_by(PullJob.next_try)
            .limit(8)
        ).all()
    for job_id in candidates:
        with write_session(ctx.engine) as s:
            taken = s.exec(  # type: ignore[call-overload]
                update(PullJob)
                .where(
                    PullJob.id == job_id,
                    PullJob.state == "queued",
                    (PullJob.lease_until.is_(None)) | (PullJob.lease_until < now),  # type: ignore[union-attr,operator]
                )
                .values(lease_until=now + lease, updated_at=now)
            )
            if taken.rowcount == 1:
                return s.get(PullJob, job_id)
    return None


def run_due(ctx: VaultContext, *, client: httpx.Client | None = None) -> int:
    """Run every job due now, one after the other; how many were run."""
    ran = 0
    own = client is None
    http = client or httpx.Client(timeout=30, follow_redirects=False)
    try:
        while (job := claim(ctx)) is not None:
            run_job(ctx, job, http)
            ran += 1
    finally:
        if own:
            http.close()
    return ran


def run_job(ctx: VaultContext, job: PullJob, http: httpx.Client) -> None:
    """Fetch and ingest one claimed job; record the outcome (retry, done or failed)."""
    try:
        document = _open(ctx, job)
        with ctx.spool().file() as spooled:
            media_type = _fetch(ctx, job, http, spooled)
            spooled.finish()
            receipt = ingest(ctx, spooled.path, document, media_type=media_type)
    except _Retry as retry:
        _retry_or_give_up(ctx, job, retry)
        return
    except VaultError as exc:
        if exc.http_status >= 500:  # the vault's own outage: retried
            _retry_or_give_up(ctx, job, _Retry(exc.kind))
            return
        _finish(ctx, job, "failed", error=f"{exc.kind}: {exc.message}"[:300])
        log.warning("cpaas job %s failed: %s", job.id, exc.kind)
        return
    _finish(ctx, job, "done", record_id=receipt.record_id)
    log.info("cpaas job %s sealed as record %s", job.id, receipt.record_id)


def _fetch(ctx: VaultContext, job: PullJob, http: httpx.Client, spooled) -> str | None:
    """Stream the recording into ``spooled``; its media type. Redirects are followed only
    within the allowed origins."""
    allowed = ctx.settings.cpaas.allowed_origins
    cfg = ctx.settings.cpaas.clients.get(job.client_id)
    auth = None
    if cfg is not None and cfg.fetch_basic_auth and job.account:
        auth = (job.account, cfg.secret().decode())
    url = job.url
    for _hop in range(_MAX_REDIRECTS + 1):
        if not origin_allowed(url, allowed):
            raise InvalidRequest(
                [FieldError("RecordingUrl", "leads outside the allowed origins")],
                hint="add the CPaaS's media origin to [cpaas] allowed_origins",
            )
        try:
            with http.stream("GET", url, auth=auth) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    auth = auth if urlsplit(url).netloc == urlsplit(job.url).netloc else None
                    continue
                if resp.status_code == 404 or is_transient(resp.status_code):
                    after = parse_retry_after(resp.headers.get("retry-after"))
                    raise _Retry(f"http-{resp.status_code}", after)
                if resp.status_code != 200:
                    raise InvalidRequest(
                        [FieldError("RecordingUrl", f"answered {resp.status_code}")],
                        hint="check the CPaaS account's media settings (fetch_basic_auth)",
                    )
                size = 0
                for chunk in resp.iter_bytes(1 << 20):
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise InvalidAudio(f"the recording is larger than {MAX_BYTES} bytes")
                    spooled.write(chunk)
                return accepted_media_type(resp.headers.get("content-type", ""))
        except httpx.HTTPError as exc:
            raise _Retry(type(exc).__name__) from None
    raise InvalidRequest([FieldError("RecordingUrl", "redirects too often")])


def _retry_or_give_up(ctx: VaultContext, job: PullJob, retry: _Retry) -> None:
    now = ctx.clock()
    give_up = timedelta(hours=ctx.settings.cpaas.give_up_hours)
    if now - _aware(job.created_at) >= give_up:
        _finish(ctx, job, "failed", error=f"gave up: {retry.reason}")
        log.warning("cpaas job %s given up: %s", job.id, retry.reason)
        return
    delay = _BACKOFF.delay(job.attempts, retry.retry_after)
    with write_session(ctx.engine) as s:
        s.exec(  # type: ignore[call-overload]
            update(PullJob)
            .where(PullJob.id == job.id, PullJob.state == "queued")
            .values(
                attempts=job.attempts + 1,
                next_try=now + timedelta(seconds=delay),
                lease_until=None,
                last_error=retry.reason[:300],
                updated_at=now,
            )
        )


def _finish(
    ctx: VaultContext, job: PullJob, state: str, *, error: str | None = None, record_id=None
) -> None:
    """A final state; the sealed document goes with it (nothing left to fetch for).

    Only a job still queued changes: a worker whose lease ran out (a very slow fetch) must
    not turn a job another worker finished back."""
    with write_session(ctx.engine) as s:
        s.exec(  # type: ignore[call-overload]
            update(PullJob)
            .where(PullJob.id == job.id, PullJob.state == "queued")
            .values(
                state=state,
                record_id=record_id,
                last_error=error,
                lease_until=None,
                attempts=job.attempts + 1,
                updated_at=ctx.clock(),
                meta_sealed=None,
                wrapped_dek=None,
            )
        )


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def jobs(ctx: VaultContext, client: str | None = None) -> list[dict]:
    """The jobs (of ``client``), newest first, without their documents."""
    with read_session(ctx.engine) as s:
        q = select(PullJob).order_by(PullJob.created_at.desc())  # type: ignore[attr-defined]
        if client is not None:
            q = q.where(PullJob.client_id == client)
        rows = s.exec(q).all()
    return [
        {
            "id": j.id,
            "client": j.client_id,
            "campaign": j.campaign,
            "source": j.source,
            "recording_sid": j.source_key,
            "state": j.state,
            "attempts": j.attempts,
            "last_error": j.last_error,
            "record_id": j.record_id,
            "created_at": format_time(j.created_at),
            "next_try": format_time(j.next_try),
        }
        for j in rows
    ]


class PullWorker:
    """Runs due pull jobs every ``interval`` seconds (every ``serve`` worker runs one; the
    lease keeps two from running the same job at once)."""

    def __init__(self, ctx: VaultContext, interval: float = 1.0) -> None:
        self._ctx, self._interval = ctx, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpaas pull", daemon=True)

    def start(self) -> PullWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=30, follow_redirects=False) as http:
            while not self._stop.wait(self._interval):
                try:
                    while not self._stop.is_set() and (job := claim(self._ctx)) is not None:
                        run_job(self._ctx, job, http)
                except Exception as exc:  # the database may be down: try again next tick
                    log.warning("cpaas pull: %s (pid %d)", type(exc).__name__, os.getpid())
