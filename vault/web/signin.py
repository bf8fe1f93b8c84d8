"""Signing in and out: handle + password, then the TOTP code when the person has one.

Every failure shows the same page text (nothing says whether the handle exists); the
counts behind throttling live in the database (:mod:`vault.services.credentials`). The
sign-in form is protected from cross-site posting by a double-submit token (a cookie and
a form field), since there is no session yet to hold one.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from vault.db import read_session
from vault.db.models import Person
from vault.services import credentials
from vault.web import sessions
from vault.web.desk import (
    PREFIX,
    ctx_of,
    pre_session_token,
    pre_session_token_ok,
    read_form,
    redirect,
    render,
    router,
)


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _sso_offered(request: Request) -> bool:
    """Whether ``[oidc]`` is configured (read once per app)."""
    state = request.app.state
    if not hasattr(state, "desk_sso"):
        import os

        from vault.web.oidc import load_oidc_settings

        try:
            state.desk_sso = (
                load_oidc_settings(ctx_of(request).settings.home, os.environ) is not None
            )
        except Exception:  # a broken [oidc] table: /sso answers for itself
            state.desk_sso = True
    return state.desk_sso


def _page(request: Request, template: str, *, failed: str = "", status: int = 200) -> Response:
    # render() sets the double-submit cookie of this token
    return render(
        request,
        template,
        status=status,
        signin_token=pre_session_token(request),
        failed=failed,
        sso=_sso_offered(request),
    )


def _token_ok(request: Request, form: dict[str, str]) -> bool:
    return pre_session_token_ok(request, form.get("token", ""))


@router.get(f"{PREFIX}/sign-in")
def sign_in_page(request: Request) -> Response:
    if sessions.current_session(request) is not None:
        return redirect(PREFIX)
    return _page(request, "sign_in.html")


@router.post(f"{PREFIX}/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    if not _token_ok(request, form):
        return _page(request, "sign_in.html", failed="stale", status=400)
    ctx = ctx_of(request)
    try:
        ok = await run_in_threadpool(
            credentials.check_password_step,
            ctx,
            form.get("handle", "").strip(),
            form.get("password", ""),
            _address(request),
        )
    except credentials.SignInLocked:
        return _page(request, "sign_in.html", failed="locked", status=429)
    except credentials.SignInRefused:
        return _page(request, "sign_in.html", failed="refused", status=401)
    person = await run_in_threadpool(_person, ctx, ok.person_id)
    response = redirect(f"{PREFIX}/sign-in/code" if ok.needs_totp else PREFIX)
    stage = sessions.PENDING_TOTP if ok.needs_totp else sessions.FULL
    await run_in_threadpool(sessions.sign_in_person, request, response, person, stage=stage)
    return response


@router.get(f"{PREFIX}/sign-in/code")
def code_page(request: Request) -> Response:
    if sessions.pending_person(request) is None:
        return redirect(f"{PREFIX}/sign-in")
    return _page(request, "sign_in_code.html")


@router.post(f"{PREFIX}/sign-in/code")
async def code(request: Request) -> Response:
    form = await read_form(request)
    person = await run_in_threadpool(sessions.pending_person, request)
    if person is None:
        return redirect(f"{PREFIX}/sign-in")
    if not _token_ok(request, form):
        return _page(request, "sign_in_code.html", failed="stale", status=400)
    try:
        await run_in_threadpool(
            credentials.check_totp_step,
            ctx_of(request),
            person.id,
            form.get("code", "").strip().replace(" ", ""),
            _address(request),
        )
    except credentials.SignInLocked:
        return _page(request, "sign_in_code.html", failed="locked", status=429)
    except credentials.SignInRefused:
        return _page(request, "sign_in_code.html", failed="refused", status=401)
    response = redirect(PREFIX)
    # a new session id for the full session: the pending one is dropped
    await run_in_threadpool(sessions.sign_in_person, request, response, person)
    return response


@router.post(f"{PREFIX}/sign-out")
async def sign_out(request: Request) -> Response:
    session = await run_in_threadpool(sessions.current_session, request)
    if session is not None:
        await read_form(request, session)  # CSRF: nobody signs you out from another site
    response = redirect(f"{PREFIX}/sign-in")
    await run_in_threadpool(sessions.sign_out, request, response)
    return response


def _person(ctx, person_id: str) -> Person | None:
    with read_session(ctx.engine) as s:
        return s.get(Person, person_id)
