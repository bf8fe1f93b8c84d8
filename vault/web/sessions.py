"""Desk sessions: a random id in an HttpOnly, SameSite=Strict cookie; the database keeps its
SHA-256 only (like API tokens), so a database reader cannot ride a session.

A session ends after ``web_idle_minutes`` without a request and ``web_absolute_hours``
after sign-in, whichever comes first, and at sign-out (its row is deleted). Every POST form
carries the session's CSRF token, compared in constant time. Signing in always makes a new
session id (no fixation), dropping the browser's previous one.

:func:`sign_in_person` is the one way in for every sign-in method (password + TOTP here,
OpenID Connect in :mod:`vault.web.oidc`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request, Response
from sqlmodel import delete, select

from vault.db import write_session
from vault.db.models import DeskGrant, Person, WebSession
from vault.ledger.entry import format_time
from vault.sealing.credentials import SESSION_DOMAIN, new_session_secret, session_digest
from vault.services.context import VaultContext
from vault.services.credentials import SignInRefused, seal
from vault.services.people import Principal, principal_of

COOKIE = "desk_session"
#: a session waiting for its second factor lives this long
PENDING = timedelta(minutes=5)
FULL, PENDING_TOTP = "full", "totp"


@dataclass(frozen=True)
class DeskSession:
    id_hash: str
    person: Person
    stage: str
    csrf: str

    @property
    def principal(self) -> Principal:
        return principal_of(self.person)


def sign_in_person(
    request: Request, response: Response, person: Person, *, stage: str = FULL
) -> DeskSession:
    """Start a session for ``person`` (already authenticated) and set its cookie.

    Refuses (``SignInRefused``) a disabled person or an admin awaiting approval.
    """
    if person.disabled_at is not None or person.approved_at is None:
        raise SignInRefused()
    ctx: VaultContext = request.app.state.ctx
    secret = new_session_secret()
    now = ctx.clock()
    row = WebSession(
        id_hash=session_digest(secret),
        person_id=person.id,
        stage=stage,
        csrf=new_session_secret(),
        created_at=now,
        last_seen_at=now,
        tag=b"",
    )
    row.tag = seal(ctx).row_tag(SESSION_DOMAIN, *_tagged(row))
    old = _cookie_hash(request)
    life = timedelta(hours=ctx.settings.web_absolute_hours)
    with write_session(ctx.engine) as s:
        if old:
            _drop(s, old)
        # sessions nobody came back to: gone once past their absolute lifetime
        stale = select(WebSession.id_hash).where(WebSession.created_at < now - life)
        for id_hash in list(s.exec(stale)):
            _drop(s, id_hash)
        s.add(row)
    response.set_cookie(
        COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
        path="/",
    )
    return DeskSession(row.id_hash, person, stage, row.csrf)


def current_session(request: Request, *, stage: str = FULL) -> DeskSession | None:
    """The request's live session at ``stage``, touched; None when there is none (or it ended)."""
    id_hash = _cookie_hash(request)
    if id_hash is None:
        return None
    ctx: VaultContext = request.app.state.ctx
    now = ctx.clock()
    settings = ctx.settings
    with write_session(ctx.engine) as s:
        row = s.get(WebSession, id_hash)
        if row is None:
            return None
        person = s.get(Person, row.person_id)
        idle = timedelta(minutes=settings.web_idle_minutes)
        life = (
            PENDING if row.stage == PENDING_TOTP else timedelta(hours=settings.web_absolute_hours)
        )
        ended = (
            not seal(ctx).check_row(row.tag, SESSION_DOMAIN, *_tagged(row))
            or now - _aware(row.last_seen_at) > idle
            or now - _aware(row.created_at) > life
            or person is None
            or person.disabled_at is not None
            or person.approved_at is None
        )
        if ended:
            _drop(s, id_hash)
            return None
        if row.stage != stage:
            return None
        row.last_seen_at = now
        s.add(row)
        return DeskSession(row.id_hash, person, row.stage, row.csrf)


def sign_out(request: Request, response: Response) -> None:
    id_hash = _cookie_hash(request)
    if id_hash:
        ctx: VaultContext = request.app.state.ctx
        with write_session(ctx.engine) as s:
            _drop(s, id_hash)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def csrf_ok(session: DeskSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), str(token).encode())


def secure_cookie(request: Request) -> bool:
    ctx: VaultContext = request.app.state.ctx
    return ctx.settings.web_secure_cookie == "always" or request.url.scheme == "https"


def pending_person(request: Request) -> Person | None:
    """The person of a session waiting for the second factor."""
    session = current_session(request, stage=PENDING_TOTP)
    return session.person if session else None


def _tagged(row: WebSession) -> tuple[str, ...]:
    # everything that decides who the session is and how long it lives; not last_seen_at,
    # which moves on every request (a writer moving it can only shorten or stretch idling)
    return (row.id_hash, row.person_id, row.stage, row.csrf, format_time(row.created_at))


def _drop(s, id_hash: str) -> None:
    s.exec(delete(DeskGrant).where(DeskGrant.session_hash == id_hash))
    s.exec(delete(WebSession).where(WebSession.id_hash == id_hash))


def _cookie_hash(request: Request) -> str | None:
    secret = request.cookies.get(COOKIE, "")
    if len(secret) != 64 or not all(c in "0123456789abcdef" for c in secret):
        return None
    return session_digest(secret)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
