"""The escalation desk: server-rendered pages under ``/desk``, served by ``evidence-vault serve``.

Every desk route is a :class:`DeskRoute`: whatever it answers (page, redirect, error,
audio) gets the security headers (a strict CSP without inline script, ``no-store``,
``no-referrer``, ``nosniff``, no framing), and vault errors become translated HTML pages,
never problem JSON. A record of another tenant answers exactly like an unknown one.
Paths carry only ids: phone numbers and other search input travel in POST bodies, so
neither URLs nor the access log ever hold them.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from babel import Locale
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from vault.errors import (
    Conflict,
    FieldError,
    InvalidEvidence,
    NotFound,
    PermissionDenied,
    TamperDetected,
    Unauthenticated,
    VaultError,
)
from vault.inputs import InvalidText, text_problem
from vault.services.context import VaultContext
from vault.web import i18n
from vault.web.assets import static_url
from vault.web.sessions import DeskSession, current_session, secure_cookie

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "/desk"
MAX_FORM = 64 * 1024
#: the double-submit cookie of forms posted without a session (sign-in, language switch)
PRE_CSRF = "desk_signin"
ROLES = ("client", "admin")

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
env.globals["static"] = static_url
# each language named in itself, for the switch
env.globals["languages"] = [
    (code, Locale.parse(code).get_display_name(code).capitalize()) for code in i18n.LOCALES
]


def content_security_policy(style_nonce: str) -> str:
    # wavesurfer.js puts its <style> into a shadow root: it carries this nonce; no other
    # inline style, and no inline script at all
    return (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self' 'nonce-{style_nonce}'; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def secure(response: Response, request: Request) -> Response:
    nonce = getattr(request.state, "style_nonce", None) or secrets.token_urlsafe(16)
    response.headers["Content-Security-Policy"] = content_security_policy(nonce)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response


class SignInRequired(Exception):
    """No live session: the route answers with a redirect to the sign-in page."""


class DeskRoute(APIRoute):
    """Security headers on every answer; errors as pages; no session: to the sign-in page."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            request.state.style_nonce = secrets.token_urlsafe(16)
            try:
                response = await handler(request)
            except SignInRequired:
                response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
            except VaultError as exc:
                response = error_page(request, exc)
            except (RequestValidationError, StarletteHTTPException):
                response = error_page(request, NotFound("no such page"))
            return secure(response, request)

        return run


router = APIRouter(route_class=DeskRoute, include_in_schema=False)


# -- sessions, forms ----------------------------------------------------------------------


def ctx_of(request: Request) -> VaultContext:
    return request.app.state.ctx


def signed_in(request: Request, *roles: str) -> DeskSession:
    """The live session of a person of one of ``roles`` (default: client or admin)."""
    session = current_session(request)
    if session is None:
        raise SignInRequired()
    request.state.principal = session.principal  # the access log names the person
    if session.person.role not in (roles or ROLES):
        raise PermissionDenied(f"a {session.person.role} cannot use this page")
    return session


async def read_form(request: Request, session: DeskSession | None = None) -> dict[str, str]:
    """The urlencoded form of a POST, text-checked; with ``session``, its CSRF token too."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await request.body()
    if kind != "application/x-www-form-urlencoded" or len(body) > MAX_FORM:
        raise InvalidText([FieldError("body", "is not a form of this page")])
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise InvalidText([FieldError("body", "is not a form of this page")]) from None
    errors = [
        FieldError(name[:40], problem)
        for name, value in pairs
        if (problem := text_problem(name) or text_problem(value, multiline=True))
    ]
    if errors:
        raise InvalidText(errors)
    form = dict(pairs)
    if session is not None:
        from vault.web.sessions import csrf_ok

        if not csrf_ok(session, form.get("csrf")):
            raise PermissionDenied("the form is stale or not from this site")
    return form


def pre_session_token(request: Request) -> str:
    """The form token of a browser without a session: its cookie's, or a new one (set by
    :func:`render` on the page that shows the form)."""
    token = request.cookies.get(PRE_CSRF, "")
    if len(token) != 43:
        token = getattr(request.state, "pre_csrf", "") or secrets.token_urlsafe(32)
        request.state.pre_csrf = token
    return token


def pre_session_token_ok(request: Request, sent: str | None) -> bool:
    """Double submit: the form's token equals its cookie (a cross-site form has neither)."""
    cookie = request.cookies.get(PRE_CSRF, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), str(sent or "").encode())


# -- rendering ----------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    session: DeskSession | None = None,
    *,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    ctx = ctx_of(request)
    lang = i18n.choose_locale(request)
    catalogue = i18n.translations(lang)
    # every page has the language switch: its token is the session's, or the double-submit
    # cookie's before sign-in
    form_token = session.csrf if session else pre_session_token(request)
    fmt = i18n.Formats(lang, i18n.choose_zone(request, ctx.settings.web_timezone))
    html = env.get_template(template).render(
        gettext=catalogue.gettext,
        ngettext=catalogue.ngettext,
        _=catalogue.gettext,
        lang=lang,
        fmt=fmt,
        session=session,
        person=session.person if session else None,
        csrf=session.csrf if session else "",
        form_token=form_token,
        style_nonce=getattr(request.state, "style_nonce", ""),
        here=values.pop("here", request.url.path),
        **values,
    )
    response = HTMLResponse(html, status_code=status)
    if session is None and request.cookies.get(PRE_CSRF) != form_token:
        response.set_cookie(
            PRE_CSRF,
            form_token,
            httponly=True,
            samesite="strict",
            secure=secure_cookie(request),
            path="/",
        )
    return response


#: error class -> (status, the page's message id)
_ERRORS: list[tuple[type[VaultError], int, str]] = [
    (NotFound, 404, "not-found"),
    (InvalidEvidence, 422, "invalid"),
    (TamperDetected, 409, "tampered"),
    (Conflict, 409, "conflict"),
    (PermissionDenied, 403, "forbidden"),
    (Unauthenticated, 401, "unauthenticated"),
]


def error_page(request: Request, exc: VaultError) -> HTMLResponse:
    status, kind = 500, "failed"
    for cls, code, name in _ERRORS:
        if isinstance(exc, cls):
            status, kind = code, name
            break
    session = current_session(request)
    fields = [e.field for e in getattr(exc, "errors", [])] if kind == "invalid" else []
    return render(request, "error.html", session, status=status, kind=kind, fields=fields)


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# -- pages that need no record ------------------------------------------------------------


@router.get(PREFIX)
def home(request: Request) -> Response:
    session = signed_in(request)
    return redirect(f"{PREFIX}/search" if session.person.role == "client" else f"{PREFIX}/holds")


@router.post(f"{PREFIX}/language")
async def language(request: Request) -> Response:
    """The language switch: remembered in a cookie; back to the page it was pressed on.

    CSRF-checked like every form: another site must not change what a person reads."""
    session = await run_in_threadpool(current_session, request)
    form = await read_form(request, session)
    if session is None and not pre_session_token_ok(request, form.get("csrf")):
        raise PermissionDenied("the form is stale or not from this site")
    lang = form.get("lang", "")
    back = form.get("back", PREFIX)
    if not back.startswith(f"{PREFIX}") or "//" in back or "\\" in back:
        back = PREFIX
    response = redirect(back)
    if lang in i18n.LOCALES:
        response.set_cookie(i18n.LANG_COOKIE, lang, samesite="strict", path="/", max_age=31536000)
    return response


from vault.web import admin, holds, oidc, records, signin  # noqa: E402  (they add routes to ``router``)

# single sign-on comes with the desk (its routes answer 404 until [oidc] is configured)
router.include_router(oidc.router)

__all__ = ["admin", "holds", "oidc", "records", "router", "signin"]
