"""Desk pages of administration, per tenant: its people, its campaigns, its dialers' tokens.

Only admins. A tenant admin sees its own client only (another client answers like an
unknown page); a global admin first picks the client. Every action goes through the
services with the signed-in person as the acting principal, so their rules apply as at the
CLI and the API: a new admin is pending until a second admin approves it (four-eyes), an
admin's token is minted by nobody else, and creations, disablings, factor resets and
revocations are log entries naming the person.

A token's secret is shown once, on the answer to the form that created it (``no-store``
like every desk page); no later page has it, and the database keeps only its hash.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from vault.errors import Conflict, FieldError, InvalidEvidence, NotFound, PermissionDenied
from vault.identifiers import SLUG
from vault.services import admin as _admin
from vault.services import credentials, people, tokens
from vault.services.retention import BASES
from vault.web.desk import PREFIX, ctx_of, read_form, redirect, render, router, signed_in
from vault.web.sessions import DeskSession

#: roles an admin gives at the desk (the order of the form's choice)
ROLES = ("dialer", "client", "auditor", "admin")
SECTIONS = ("people", "campaigns", "tokens")
#: refused actions: error class -> (status, the page's message id)
_REFUSALS: list[tuple[type[Exception], int, str]] = [
    (InvalidEvidence, 422, "invalid"),
    (Conflict, 409, "conflict"),
    (PermissionDenied, 403, "forbidden"),
]


@router.get(f"{PREFIX}/admin")
def admin_home(request: Request) -> Response:
    """A tenant admin goes to its client; a global admin picks one."""
    session = signed_in(request, "admin")
    if session.person.client_id is not None:
        return redirect(f"{PREFIX}/admin/{session.person.client_id}/people")
    clients = _admin.list_clients(ctx_of(request))
    return render(request, "admin_clients.html", session, clients=clients)


def _tenant(request: Request, client: str) -> DeskSession:
    """The admin's session, if its scope covers ``client`` (else: as if there were none)."""
    session = signed_in(request, "admin")
    session.principal.require_client(client, "admin")
    if not SLUG.matches(client) or _admin.find_client(ctx_of(request), client) is None:
        raise NotFound("no such client")
    return session


def _page(request, session, client: str, section: str, *, status=200, **values) -> Response:
    ctx = ctx_of(request)
    data: dict = {}
    if section == "people":
        data["persons"] = people.list_persons(ctx, client)
        data["roles"] = ROLES
    elif section == "campaigns":
        data["campaigns"] = _admin.list_campaigns(ctx, client)
        data["client_default"] = _admin.find_client(ctx, client).retention_days
        data["bases"] = BASES
    else:
        data["tokens"] = tokens.list_tokens(ctx, client)
        persons = people.list_persons(ctx, client)
        data["dialers"] = [p for p in persons if p.role == "dialer" and p.status == "active"]
        data["campaigns"] = _admin.list_campaigns(ctx, client)
    values = {"refused": "", "fields": [], **values}
    return render(
        request,
        f"admin_{section}.html",
        session,
        status=status,
        client=client,
        section=section,
        sections=SECTIONS,
        **data,
        **values,
    )


def _act(
    request,
    session,
    client: str,
    section: str,
    action: Callable[[], object],
    done: Callable[[object], Response] | None = None,
) -> Response:
    """Run ``action``; back to the section (or ``done`` with its result), or the section
    again saying why it was refused."""
    try:
        result = action()
    except tuple(cls for cls, _, _ in _REFUSALS) as exc:
        status, kind = next((code, name) for cls, code, name in _REFUSALS if isinstance(exc, cls))
        fields = [e.field for e in getattr(exc, "errors", [])]
        return _page(request, session, client, section, status=status, refused=kind, fields=fields)
    if done is not None:
        return done(result)
    return redirect(f"{PREFIX}/admin/{client}/{section}")


async def _posted(request: Request, client: str) -> tuple[DeskSession, dict[str, str]]:
    session = await run_in_threadpool(_tenant, request, client)
    form = await read_form(request, session)
    return session, form


def _person_of(request: Request, session: DeskSession, client: str, handle: str):
    """A person of ``client`` (a global person, or another client's, looks unknown here)."""
    row = people.find_person(ctx_of(request), handle, session.principal)
    if row.client_id != client:
        raise NotFound("no such person")
    return row


# -- people -------------------------------------------------------------------------------


@router.get(PREFIX + "/admin/{client}/people")
def people_page(request: Request, client: str) -> Response:
    session = _tenant(request, client)
    return _page(request, session, client, "people")


@router.post(PREFIX + "/admin/{client}/people")
async def add_person(request: Request, client: str) -> Response:
    session, form = await _posted(request, client)

    def add() -> None:
        people.add_person(
            ctx_of(request),
            form.get("handle", "").strip(),
            role=form.get("role", ""),
            client=client,
            display_name=form.get("display_name", "").strip(),
            by=session.principal,
        )

    return await run_in_threadpool(_act, request, session, client, "people", add)


@router.post(PREFIX + "/admin/{client}/people/{handle}/{action}")
async def person_action(request: Request, client: str, handle: str, action: str) -> Response:
    session, _ = await _posted(request, client)
    change = {
        "approve": people.approve_person,
        "disable": people.disable_person,
        "reset-factor": credentials.reset_factor,
    }.get(action)
    if change is None:
        raise NotFound("no such action")

    def run() -> None:
        row = _person_of(request, session, client, handle)
        change(ctx_of(request), row.handle, by=session.principal)

    return await run_in_threadpool(_act, request, session, client, "people", run)


# -- campaigns ----------------------------------------------------------------------------


@router.get(PREFIX + "/admin/{client}/campaigns")
def campaigns_page(request: Request, client: str) -> Response:
    session = _tenant(request, client)
    return _page(request, session, client, "campaigns")


@router.post(PREFIX + "/admin/{client}/campaigns")
async def add_campaign(request: Request, client: str) -> Response:
    session, form = await _posted(request, client)

    def add() -> None:
        days = form.get("retention_days", "").strip()
        if days and not days.isdigit():
            raise InvalidEvidence([FieldError("retention_days", "is no number of days")])
        basis = form.get("retention_basis", "recorded")
        name = form.get("name", "").strip()
        _admin.add_campaign(ctx_of(request), client, name, int(days) if days else None, basis)

    return await run_in_threadpool(_act, request, session, client, "campaigns", add)


# -- tokens -------------------------------------------------------------------------------


@router.get(PREFIX + "/admin/{client}/tokens")
def tokens_page(request: Request, client: str) -> Response:
    session = _tenant(request, client)
    return _page(request, session, client, "tokens")


@router.post(PREFIX + "/admin/{client}/tokens")
async def create_token(request: Request, client: str) -> Response:
    session, form = await _posted(request, client)
    return await run_in_threadpool(_create_token, request, session, client, form)


def _create_token(request, session: DeskSession, client: str, form: dict) -> Response:
    def create():
        try:
            owner = _person_of(request, session, client, form.get("person", ""))
        except NotFound:
            owner = None
        if owner is None or owner.role != "dialer":  # the desk mints dialers' tokens only
            raise InvalidEvidence([FieldError("person", "is no dialer of this client")])
        return tokens.create_token(
            ctx_of(request),
            person=owner.handle,
            by=session.principal,
            campaign=form.get("campaign") or None,
            label=form.get("label", "").strip(),
        )

    def shown_once(made) -> Response:
        info, secret = made
        return render(
            request, "admin_token_created.html", session, client=client, token=info, secret=secret
        )

    return _act(request, session, client, "tokens", create, shown_once)


@router.post(PREFIX + "/admin/{client}/tokens/{token_id}/revoke")
async def revoke_token(request: Request, client: str, token_id: str) -> Response:
    session, _ = await _posted(request, client)

    def revoke() -> None:
        tokens.revoke_token(ctx_of(request), token_id, by=session.principal, client=client)

    return await run_in_threadpool(_act, request, session, client, "tokens", revoke)
