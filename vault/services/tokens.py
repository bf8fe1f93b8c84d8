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
stop working at once. Every token row is tagged (HMAC under the keyring's token key over
all its columns but the label): a row a database writer inserted with a secret of their
own, re-pointed to another person, role, client or campaign, extended or un-revoked
authenticates nobody. Rows from before tokens were tagged are adopted once, when the vault
first makes the token key (:func:`adopt_untagged`, at opening: trust on first use).
Creating and revoking tokens are log entries naming who did it.
An admin's token is minted only by that admin or by the operator: another admin who could
mint it could act as that admin, and four-eyes would be one pair of eyes again.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import select

from vault.db import Campaign, read_session, write_session
from vault.db.log import EntryDraft, append_entries
from vault.db.models import ApiToken, Person
from vault.errors import FieldError, InvalidEvidence, NotFound, PermissionDenied, Unauthenticated
from vault.identifiers import new_token_id
from vault.ledger.entry import format_time
from vault.results import TokenInfo
from vault.sealing.credentials import TokenSeal
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

_log = logging.getLogger(__name__)

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
    row.tag = token_seal(ctx).tag(*_tagged(row))
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
    sealer = token_seal(ctx)
    with write_session(ctx.engine) as s:
        row = s.get(ApiToken, token_id)
        owner = s.get(Person, row.person_id)
        if row.revoked_at is None:
            row.revoked_at = now
            # re-tagged as revoked even if its tag had failed: revoking only takes away
            row.tag = sealer.tag(*_tagged(row))
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
    sealer = token_seal(ctx)
    with read_session(ctx.engine) as s:
        found = s.exec(_TOKEN_AND_OWNER, params={"hash": hash_token(token)}).first()
    if found is not None and not sealer.check(found[0].tag, *_tagged(found[0])):
        _log.warning("API token %s fails its tag: refused (changed outside the vault)", found[0].id)
        found = None
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


# built once: every API request runs it, and building it took more CPU than running it
_TOKEN_AND_OWNER = (
    select(ApiToken, Person)
    .join(Person, Person.id == ApiToken.person_id)
    .where(ApiToken.secret_hash == bindparam("hash"))
)


def token_seal(ctx: VaultContext) -> TokenSeal:
    """The tagger of token rows; making its key (once per vault) adopts the untagged rows."""
    key, created = ctx.keys.token_key()
    sealer = TokenSeal(key)
    if created:
        adopt_untagged(ctx, sealer)
    return sealer


def adopt_untagged(ctx: VaultContext, sealer: TokenSeal) -> int:
    """Tag the token rows from before tokens were tagged; runs once, when the key is made.

    Trust on first use, like the logs (:func:`vault.services.logauth.adopt_untagged`): a
    tag nulled later is never adopted again, and such a token authenticates nobody.
    """
    with write_session(ctx.engine) as s:
        rows = s.exec(select(ApiToken).where(ApiToken.tag.is_(None))).all()  # type: ignore[union-attr]
        for row in rows:
            row.tag = sealer.tag(*_tagged(row))
            s.add(row)
    if rows:
        _log.info("adopted %d API token(s) from before tokens were tagged", len(rows))
    return len(rows)


def tampered_tokens(ctx: VaultContext) -> list[str]:
    """Ids of token rows whose tag fails (for ``verify``)."""
    sealer = token_seal(ctx)
    with read_session(ctx.engine) as s:
        rows = s.exec(select(ApiToken)).all()
    return sorted(t.id for t in rows if not sealer.check(t.tag, *_tagged(t)))


def _tagged(t: ApiToken) -> tuple[str, ...]:
    def when(ts: datetime | None) -> str:
        return "-" if ts is None else format_time(ts)

    return (
        t.id,
        t.secret_hash,
        t.person_id,
        t.role,
        t.client_id or "-",
        t.campaign or "-",
        when(t.created_at),
        when(t.expires_at),
        when(t.revoked_at),
    )


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
