"""API tokens: credentials of persons.

A token is ``evt1_`` followed by 43 characters of base64url (256 random bits). It is shown
once, at creation; the database keeps only its SHA-256 (a hash of a high-entropy secret
needs no salt or slow KDF: there is nothing to guess). A token belongs to one person
(:mod:`vault.services.people`) and carries that person's role and client (a dialer's
token may be narrowed to one campaign):

========  ==========================================================================
dialer    upload evidence into its client's campaigns (or its one campaign)
client    search, read and export its client's evidence; open disputes
auditor   its client's log: entries, checkpoints, proofs, export — no plaintext, no PII
admin     manage clients, campaigns, persons, tokens, holds; ``client=None`` = every client
========  ==========================================================================

Every use checks the person too: a disabled person's tokens, and a pending admin's,
stop working at once. Creating and revoking tokens are log entries naming who did it.
An admin's token is minted only by that admin or by the operator: another admin who could
mint it could act as that admin, and four-eyes would be one pair of eyes again.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlmodel import select

from vault.db import Campaign, read_session, write_session
from vault.db.log import EntryDraft, append_entries
from vault.db.models import ApiToken, Person
from vault.errors import FieldError, InvalidEvidence, NotFound, PermissionDenied, Unauthenticated
from vault.identifiers import new_token_id
from vault.ledger.entry import format_time
from vault.results import TokenInfo
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.people import (
    ROLES,
    Principal,
    find_person,
    log_of,
    principal_of,
    refuse_inactive,
)

__all__ = ["PREFIX", "ROLES", "Principal", "TokenInfo", "authenticate", "create_token"]

PREFIX = "evt1_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    ctx: VaultContext,
    *,
    person: str,
    by: Principal,
    campaign: str | None = None,
    expires_at: datetime | None = None,
    label: str = "",
) -> tuple[TokenInfo, str]:
    """A new token of ``person``: its info, and the secret text (shown once, never stored).

    ``by`` must be an admin whose scope covers the person; an admin's token only the admin
    itself or the operator may mint. The creation is logged (never the secret or label).
    """
    by.require("admin")
    owner = find_person(ctx, person, by)
    if owner.role == "admin" and by.person != owner.handle and not by.is_operator:
        raise PermissionDenied(
            f"only {owner.handle} or the vault's operator can mint a token of admin {owner.handle}",
            hint="the admin creates their own token, or the operator does on the vault host",
        )
    if owner.disabled_at is not None:
        refuse_inactive(owner, PermissionDenied)
    _check(ctx, owner, campaign, expires_at)
    secret = PREFIX + secrets.token_urlsafe(32)
    now = ctx.clock()
    row = ApiToken(
        id=new_token_id(),
        secret_hash=hash_token(secret),
        person_id=owner.id,
        role=owner.role,
        client_id=owner.client_id,
        campaign=campaign,
        label=label[:200],
        created_at=now,
        expires_at=expires_at,
    )
    log = log_of(ctx, owner.client_id)
    body: dict = {"token": row.id, "person": owner.handle, "role": owner.role, "by": by.name}
    if campaign:
        body["campaign"] = campaign
    if expires_at:
        body["expires"] = format_time(expires_at)
    with write_session(ctx.engine) as s:
        s.add(row)
        s.flush()
        append_entries(s, log, [EntryDraft("token.created", None, body)], now, ctx.log_keys(log))
    checkpoint_after_commit(ctx, log)
    return _info(row, owner.handle), secret


def list_tokens(ctx: VaultContext, client: str | None = None) -> list[TokenInfo]:
    with read_session(ctx.engine) as s:
        stmt = (
            select(ApiToken, Person.handle)
            .join(Person, Person.id == ApiToken.person_id)
            .order_by(ApiToken.created_at, ApiToken.id)
        )
        if client:
            stmt = stmt.where(ApiToken.client_id == client)
        return [_info(t, handle) for t, handle in s.exec(stmt)]


def revoke_token(
    ctx: VaultContext, token_id: str, *, by: Principal, client: str | None = None
) -> TokenInfo:
    """Revoke a token at once (idempotent; logged once); ``client`` scopes a tenant admin."""
    by.require("admin")
    with read_session(ctx.engine) as s:
        row = s.get(ApiToken, token_id)
    if row is None or (client is not None and row.client_id != client):
        raise NotFound(f"no token {token_id!r}", hint="list them with `evidence-vault token list`")
    log = log_of(ctx, row.client_id)
    now = ctx.clock()
    with write_session(ctx.engine) as s:
        row = s.get(ApiToken, token_id)
        owner = s.get(Person, row.person_id)
        if row.revoked_at is None:
            row.revoked_at = now
            s.add(row)
            body = {"token": row.id, "person": owner.handle, "by": by.name}
            append_entries(
                s, log, [EntryDraft("token.revoked", None, body)], now, ctx.log_keys(log)
            )
        info = _info(row, owner.handle)
    checkpoint_after_commit(ctx, log)
    return info


def authenticate(ctx: VaultContext, token: str | None) -> Principal:
    """The principal of a bearer token; Unauthenticated for a missing or dead one.

    The message never says which of unknown / expired / revoked unless the token is
    known: a guesser learns nothing.
    """
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        raise Unauthenticated(
            "a bearer token is required", hint="send 'Authorization: Bearer evt1_...'"
        )
    with read_session(ctx.engine) as s:
        found = s.exec(
            select(ApiToken, Person)
            .join(Person, Person.id == ApiToken.person_id)
            .where(ApiToken.secret_hash == hash_token(token))
        ).first()
    if found is None:
        raise Unauthenticated("the token is not valid", hint="ask an admin for a new token")
    row, owner = found
    if row.revoked_at is not None:
        raise Unauthenticated(
            f"token {row.id} was revoked on {row.revoked_at:%Y-%m-%d}",
            hint="ask an admin for a new token",
        )
    if row.expires_at is not None and row.expires_at <= ctx.clock():
        raise Unauthenticated(
            f"token {row.id} expired on {row.expires_at:%Y-%m-%d}",
            hint="ask an admin for a new token",
        )
    refuse_inactive(owner, Unauthenticated)
    return principal_of(owner, row.id, row.campaign)


def _check(ctx, owner: Person, campaign, expires_at) -> None:
    errors = []
    if campaign is not None and owner.role != "dialer":
        errors.append(FieldError("campaign", "only dialer tokens are scoped to a campaign"))
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= ctx.clock()):
        errors.append(FieldError("expires_at", "must be a future time with a time zone"))
    if errors:
        raise InvalidEvidence(
            errors, hint="see `evidence-vault token create --help`", subject="the token"
        )
    if campaign is not None:
        with read_session(ctx.engine) as s:
            known = s.exec(
                select(Campaign).where(
                    Campaign.client_id == owner.client_id, Campaign.name == campaign
                )
            ).first()
        if known is None:
            raise NotFound(f"campaign {campaign!r} does not exist for client {owner.client_id!r}")


def _info(t: ApiToken, handle: str) -> TokenInfo:
    return TokenInfo(
        t.id,
        handle,
        t.role,
        t.client_id,
        t.campaign,
        t.label,
        t.created_at,
        t.expires_at,
        t.revoked_at,
    )
