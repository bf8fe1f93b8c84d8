"""Desk pages of holds: the open disputes and holds, and the admins' four-eyes release queue.

A release takes two different admin persons (:func:`vault.services.holds.release_hold`):
the first requests it, a second approves it; the same person twice is refused and the
page says so.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from vault.errors import Conflict, PermissionDenied
from vault.services import holds as _holds
from vault.web.desk import PREFIX, ctx_of, read_form, redirect, render, router, signed_in
from vault.web.sessions import DeskSession


@router.get(f"{PREFIX}/holds")
def holds_page(request: Request) -> Response:
    session = signed_in(request)
    return _page(request, session)


def _page(request: Request, session: DeskSession, *, refused: str = "", status: int = 200):
    found = _holds.list_holds(ctx_of(request), client=session.person.client_id)
    return render(
        request,
        "holds.html",
        session,
        status=status,
        holds=found,
        me=session.principal.name,
        admin=session.person.role == "admin",
        refused=refused,
    )


@router.post(PREFIX + "/holds/{hold_id}/release")
async def release(request: Request, hold_id: str) -> Response:
    session = await run_in_threadpool(signed_in, request, "admin")
    await read_form(request, session)
    return await run_in_threadpool(_release, request, session, hold_id)


def _release(request: Request, session: DeskSession, hold_id: str) -> Response:
    try:
        _holds.release_hold(ctx_of(request), hold_id, admin=session.principal)
    except PermissionDenied:
        return _page(request, session, refused="four-eyes", status=403)
    except Conflict:
        return _page(request, session, refused="released", status=409)
    return redirect(f"{PREFIX}/holds")
