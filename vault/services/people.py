"""People: who acts on the vault. Tokens, holds and the logs name persons, not credentials.

A person has a ``handle`` (the name the logs use: ``person:<handle>``), one role and one
client (``None``: every client, admins only). A dialer's person is a machine account; the
person who created it answers for it (``created_by``).

Two admins are needed to make an admin. An admin created by another admin is *pending*
until a second admin (not its creator, not itself, with the same or a wider scope)
approves it; only the vault's **operator** — whoever runs the CLI on the vault host, with
the keyring — creates approved admins at once. The operator could rewrite the database
anyway; the vault cannot refuse it anything, so it does not pretend to (docs/operations.md).

Every creation, approval and disabling of a person is a log entry naming who did it: in
the person's client's log, or, for a global person, in the vault-wide log
:data:`GLOBAL_LOG` (a log like a client's, under an id no client can have).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from vault.db import Client, LogEntry, read_session, write_session
from vault.db.log import EntryDraft, append_entries, new_log
from vault.db.models import Person
from vault.errors import (
    Conflict,
    FieldError,
    InvalidEvidence,
    NotFound,
    PermissionDenied,
)
from vault.identifiers import HANDLE, SLUG
from vault.ledger import parse_entry
from vault.results import PersonInfo
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext

ROLES = ("dialer", "client", "auditor", "admin")
#: the log of events that concern no single client (global admins). Client ids are slugs
#: (``[a-z0-9]`` first), so no client can ever be called this.
GLOBAL_LOG = "_vault"
_TEXT = re.compile(r"[^\x00-\x1f\x7f]*")
_ISSUER = re.compile(r"https?://(?:(?![?#])[!-~]){1,250}")  # printable, no query, no fragment
_SUBJECT = re.compile(r"[\x20-\x7e]{1,255}")  # OpenID Connect Core 1.0, 2: ASCII, <= 255


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (through a token, or named at the CLI) or the operator.

    ``name`` is what logs and holds record: ``person:<handle>``, or for the operator at
    the vault host ``local:<user>``. Four-eyes compares these names, so two tokens of one
    person are one pair of eyes.
    """

    token_id: str | None
    role: str
    client: str | None
    campaign: str | None = None
    person: str | None = None
    person_id: str | None = None
    operator: str | None = None

    @property
    def name(self) -> str:
        if self.person is not None:
            return f"person:{self.person}"
        return self.operator or f"{self.role}:{self.token_id}"

    @property
    def is_operator(self) -> bool:
        return self.operator is not None and self.person is None

    def sees(self, client: str) -> bool:
        """Whether this principal's scope covers ``client`` at all."""
        return self.client is None or self.client == client

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise PermissionDenied(
                f"a {self.role} cannot do this",
                hint=f"act as a person (or with a token) of role {' or '.join(roles)}",
            )

    def require_client(self, client: str, *roles: str) -> None:
        """Role check, then scope: another tenant looks exactly like a missing one."""
        if not self.sees(client):
            raise NotFound(f"client {client!r} does not exist")
        self.require(*roles)


def operator(name: str) -> Principal:
    """The vault host's operator (``local:<user>``): a global admin that needs no approval."""
    return Principal(token_id=None, role="admin", client=None, operator=name)


# -- use cases ----------------------------------------------------------------------------


def add_person(
    ctx: VaultContext,
    handle: str,
    *,
    role: str,
    client: str | None = None,
    display_name: str = "",
    by: Principal,
) -> PersonInfo:
    """Create a person. An admin is pending unless the operator creates it (see module)."""
    _check(handle, role, client, display_name)
    by.require("admin")
    if client is None and by.client is not None:
        raise PermissionDenied(
            "a tenant admin cannot create a person of every client",
            hint="give the person your client, or ask a global admin",
        )
    if client is not None and not by.sees(client):
        raise NotFound(f"client {client!r} does not exist")
    approved = role != "admin" or by.is_operator
    now = ctx.clock()
    row = Person(
        id="p" + secrets.token_hex(8),
        handle=handle,
        display_name=display_name,
        role=role,
        client_id=client,
        created_by=by.name,
        created_at=now,
        approved_by=by.name if approved else None,
        approved_at=now if approved else None,
    )
    log = log_of(ctx, client)
    body = {"person": handle, "role": role, "by": by.name, "approved": approved}
    try:
        with write_session(ctx.engine) as s:
            if client is not None and s.get(Client, client) is None:
                raise NotFound(f"client {client!r} does not exist")
            if s.exec(select(Person.id).where(Person.handle == handle)).first():
                raise _taken(handle)
            s.add(row)
            s.flush()
            append_entries(
                s, log, [EntryDraft("person.created", None, body)], now, ctx.log_keys(log)
            )
    except IntegrityError as exc:  # a concurrent creation of the same handle
        raise _taken(handle) from exc
    checkpoint_after_commit(ctx, log)
    return _info(row)


def approve_person(ctx: VaultContext, handle: str, *, by: Principal) -> PersonInfo:
    """A second admin approves a pending admin: not its creator, not itself."""
    by.require("admin")
    now = ctx.clock()
    with write_session(ctx.engine) as s:
        row = _get(s, handle, by)
        if row.disabled_at is not None:
            raise Conflict(f"person {handle} is disabled", hint="create a new person instead")
        if row.approved_at is not None:
            raise Conflict(f"person {handle} is already approved by {row.approved_by}")
        if row.client_id is None and by.client is not None:
            raise PermissionDenied(
                "a tenant admin cannot approve an admin of every client",
                hint="a global admin, or the operator on the vault host, must approve",
            )
        if by.name in (row.created_by, f"person:{handle}"):
            raise PermissionDenied(
                f"{by.name} created person {handle} (or is it): four-eyes rule",
                hint="a second, different admin must approve",
            )
        row.approved_by, row.approved_at = by.name, now
        s.add(row)
        log = row.client_id or GLOBAL_LOG
        body = {"person": handle, "by": by.name, "created_by": row.created_by}
        append_entries(s, log, [EntryDraft("person.approved", None, body)], now, ctx.log_keys(log))
    checkpoint_after_commit(ctx, log)
    return _info(row)


def disable_person(ctx: VaultContext, handle: str, *, by: Principal) -> PersonInfo:
    """Disable a person at once: every token of theirs stops working (idempotent)."""
    by.require("admin")
    now = ctx.clock()
    with write_session(ctx.engine) as s:
        row = _get(s, handle, by)
        if row.client_id is None and by.client is not None:
            raise PermissionDenied(
                "a tenant admin cannot disable a person of every client",
                hint="ask a global admin, or the operator on the vault host",
            )
        if row.disabled_at is not None:
            return _info(row)
        row.disabled_by, row.disabled_at = by.name, now
        s.add(row)
        log = row.client_id or GLOBAL_LOG
        body = {"person": handle, "by": by.name}
        append_entries(s, log, [EntryDraft("person.disabled", None, body)], now, ctx.log_keys(log))
    checkpoint_after_commit(ctx, log)
    return _info(row)


def link_oidc(
    ctx: VaultContext, handle: str, issuer: str, subject: str, *, by: Principal
) -> PersonInfo:
    """Let ``handle`` sign in as ``subject`` of the OpenID provider ``issuer``. Logged.

    The link replaces any earlier one of the person; an identity already linked to another
    person is refused. The entry names the issuer and the SHA-256 of the link, not the
    subject (an identifier at someone else's service).
    """
    by.require("admin")
    link = oidc_link(issuer, subject)
    now = ctx.clock()
    try:
        with write_session(ctx.engine) as s:
            row = _get(s, handle, by)
            if row.client_id is None and by.client is not None:
                raise PermissionDenied(
                    "a tenant admin cannot link a person of every client",
                    hint="ask a global admin, or the operator on the vault host",
                )
            if row.disabled_at is not None:
                raise Conflict(f"person {handle} is disabled", hint="create a new person instead")
            taken = s.exec(select(Person).where(Person.oidc_subject == link)).first()
            if taken is not None and taken.id != row.id:
                raise _identity_taken()
            row.oidc_subject = link
            s.add(row)
            s.flush()
            log = row.client_id or GLOBAL_LOG
            body = {
                "person": handle,
                "by": by.name,
                "issuer": issuer,
                "link_sha256": hashlib.sha256(link.encode()).hexdigest(),
            }
            append_entries(
                s, log, [EntryDraft("person.oidc_linked", None, body)], now, ctx.log_keys(log)
            )
    except IntegrityError as exc:  # linked to another person concurrently
        raise _identity_taken() from exc
    checkpoint_after_commit(ctx, log)
    return _info(row)


def oidc_link_logged(ctx: VaultContext, row: Person) -> bool:
    """Whether the newest authentic ``person.oidc_linked`` entry of ``row`` names its
    current link: a database writer who sets ``oidc_subject`` to their own identity (or
    renames the person) has no entry tagged under the log key to show for it."""
    if row.oidc_subject is None:
        return False
    log = row.client_id or GLOBAL_LOG
    keys = ctx.log_keys(log)
    digest = hashlib.sha256(row.oidc_subject.encode()).hexdigest()
    with read_session(ctx.engine) as s:
        rows = s.exec(
            select(LogEntry.seq, LogEntry.entry, LogEntry.tag)
            .where(LogEntry.client_id == log, LogEntry.type == "person.oidc_linked")
            .order_by(LogEntry.seq.desc())
        )
        for seq, raw, tag in rows:
            if not keys.check_entry(seq, bytes(raw), tag):
                continue  # not the vault's entry (verify reports it)
            body = parse_entry(bytes(raw))["body"]
            if body.get("person") == row.handle:
                return hmac.compare_digest(str(body.get("link_sha256")), digest)
    return False


def oidc_link(issuer: str, subject: str) -> str:
    """``issuer#subject``: an issuer is an https URL without fragment (OpenID Connect
    Discovery 1.0, section 3), so the first ``#`` splits the two."""
    errors = []
    if not _ISSUER.fullmatch(issuer or ""):
        errors.append(FieldError("issuer", "must be an http(s) URL without query or fragment"))
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        errors.append(FieldError("subject", "must be 1-255 printable ASCII characters"))
    if errors:
        raise InvalidEvidence(errors, hint="the issuer and `sub` claim of the OpenID provider")
    return f"{issuer}#{subject}"


def list_persons(ctx: VaultContext, client: str | None = None) -> list[PersonInfo]:
    with read_session(ctx.engine) as s:
        stmt = select(Person).order_by(Person.handle)
        if client:
            stmt = stmt.where(Person.client_id == client)
        return [_info(p) for p in s.exec(stmt)]


def acting(ctx: VaultContext, handle: str, *roles: str) -> Principal:
    """The principal of a person named at the CLI (``--as HANDLE``): enabled, approved."""
    with read_session(ctx.engine) as s:
        row = s.exec(select(Person).where(Person.handle == handle)).first()
    if row is None:
        raise NotFound(f"no person {handle!r}", hint="list them with `evidence-vault person list`")
    principal = principal_of(row)
    refuse_inactive(row, PermissionDenied)
    if roles:
        principal.require(*roles)
    return principal


def principal_of(row: Person, token_id: str | None = None, campaign: str | None = None):
    return Principal(token_id, row.role, row.client_id, campaign, row.handle, row.id)


def refuse_inactive(row: Person, error: type) -> None:
    """A disabled person, or an admin awaiting approval, cannot act."""
    if row.disabled_at is not None:
        raise error(
            f"person {row.handle} was disabled on {row.disabled_at:%Y-%m-%d}",
            hint="ask an admin for a new account",
        )
    if row.approved_at is None:
        raise PermissionDenied(
            f"person {row.handle} awaits a second admin's approval",
            hint=f"another admin runs `evidence-vault person approve {row.handle}`",
        )


# -- helpers ------------------------------------------------------------------------------


def find_person(ctx: VaultContext, handle: str, by: Principal) -> Person:
    with read_session(ctx.engine) as s:
        return _get(s, handle, by)


def log_of(ctx: VaultContext, client: str | None) -> str:
    """The log where events about a person of ``client`` go (creating the global one)."""
    if client is not None:
        return client
    with read_session(ctx.engine) as s:
        if s.get(Client, GLOBAL_LOG) is not None:
            return GLOBAL_LOG
    try:
        with write_session(ctx.engine) as s:
            if s.get(Client, GLOBAL_LOG) is None:
                s.add(Client(id=GLOBAL_LOG, display_name="vault-wide log", created_at=ctx.clock()))
                s.flush()
                new_log(s, GLOBAL_LOG)
    except IntegrityError:
        pass  # created concurrently: it exists, which is all we need
    return GLOBAL_LOG


def _get(s, handle: str, by: Principal) -> Person:
    row = s.exec(select(Person).where(Person.handle == handle)).first()
    # a person of another tenant looks exactly like a missing one
    if row is None or (row.client_id is not None and not by.sees(row.client_id)):
        raise NotFound(f"no person {handle!r}", hint="list them with `evidence-vault person list`")
    return row


def _identity_taken() -> Conflict:
    return Conflict(
        "this OpenID Connect identity is linked to another person",
        hint="one identity signs in as one person; unlink it there first",
    )


def _taken(handle: str) -> Conflict:
    return Conflict(f"person {handle!r} already exists", hint="choose another handle")


def _check(handle: str, role: str, client: str | None, display_name: str) -> None:
    errors = []
    if not HANDLE.matches(handle):
        errors.append(
            FieldError(
                "handle",
                "must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or "
                "digit (a staff id or initials: it appears in the logs)",
            )
        )
    if role not in ROLES:
        errors.append(FieldError("role", f"must be one of {', '.join(ROLES)}"))
    if client is None and role != "admin":
        errors.append(FieldError("client", f"a {role} needs a client"))
    if client is not None and not SLUG.matches(client):
        errors.append(FieldError("client", "is not a client id"))
    if (
        not isinstance(display_name, str)
        or len(display_name) > 200
        or not _TEXT.fullmatch(display_name)
    ):
        errors.append(FieldError("display_name", "must be one line of at most 200 characters"))
    if errors:
        raise InvalidEvidence(
            errors, hint="see `evidence-vault person add --help`", subject="the person"
        )


def _info(p: Person) -> PersonInfo:
    return PersonInfo(
        p.handle,
        p.display_name,
        p.role,
        p.client_id,
        p.created_by,
        p.created_at,
        p.approved_by,
        p.approved_at,
        p.disabled_at,
    )
