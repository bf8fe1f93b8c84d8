"""API tokens and the principals they stand for.

A token is ``evt1_`` followed by 43 characters of base64url (256 random bits). It is shown
once, at creation; the database keeps only its SHA-256 (a hash of a high-entropy secret
needs no salt or slow KDF: there is nothing to guess). A token carries one role, scoped
to one client (and, for a dialer, optionally one campaign):

========  ==========================================================================
dialer    upload evidence into its client's campaigns (or its one campaign)
client    search, read and export its client's evidence; open disputes
auditor   its client's log: entries, checkpoints, proofs, export — no plaintext, no PII
admin     manage clients, campaigns, tokens, holds; ``client=None`` = every client
========  ==========================================================================
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from vault.db import Campaign, Client, read_session, write_session
from vault.db.models import ApiToken
from vault.errors import FieldError, InvalidEvidence, NotFound, PermissionDenied, Unauthenticated
from vault.ledger.entry import format_time
from vault.services.context import VaultContext

ROLES = ("dialer", "client", "auditor", "admin")
PREFIX = "evt1_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's role and scope. ``name`` is what the log records."""

    token_id: str
    role: str
    client: str | None
    campaign: str | None = None

    @property
    def name(self) -> str:
        return f"{self.role}:{self.token_id}"

    def sees(self, client: str) -> bool:
        """Whether this principal's scope covers ``client`` at all."""
        return self.client is None or self.client == client

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise PermissionDenied(
                f"a {self.role} token cannot do this",
                hint=f"use a token with role {' or '.join(roles)}",
            )

    def require_client(self, client: str, *roles: str) -> None:
        """Role check, then scope: another tenant looks exactly like a missing one."""
        if not self.sees(client):
            raise NotFound(f"client {client!r} does not exist")
        self.require(*roles)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    role: str
    client: str | None
    campaign: str | None
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "role": self.role,
            "client": self.client,
            "campaign": self.campaign,
            "label": self.label,
            "created_at": format_time(self.created_at),
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
            "revoked_at": format_time(self.revoked_at) if self.revoked_at else None,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    ctx: VaultContext,
    *,
    role: str,
    client: str | None,
    campaign: str | None = None,
    expires_at: datetime | None = None,
    label: str = "",
) -> tuple[TokenInfo, str]:
    """A new token: its info, and the secret text (shown once, never stored)."""
    _check(ctx, role, client, campaign, expires_at)
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id="tk" + secrets.token_hex(8),
        secret_hash=hash_token(secret),
        role=role,
        client_id=client,
        campaign=campaign,
        label=label[:200],
        created_at=ctx.clock(),
        expires_at=expires_at,
    )
    with write_session(ctx.engine) as s:
        s.add(row)
    return _info(row), secret


def list_tokens(ctx: VaultContext, client: str | None = None) -> list[TokenInfo]:
    with read_session(ctx.engine) as s:
        stmt = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
        if client:
            stmt = stmt.where(ApiToken.client_id == client)
        return [_info(t) for t in s.exec(stmt)]


def revoke_token(ctx: VaultContext, token_id: str, *, client: str | None = None) -> TokenInfo:
    """Revoke a token at once (idempotent); ``client`` scopes a tenant admin's reach."""
    with write_session(ctx.engine) as s:
        row = s.get(ApiToken, token_id)
        if row is None or (client is not None and row.client_id != client):
            raise NotFound(
                f"no token {token_id!r}", hint="list them with `evidence-vault token list`"
            )
        if row.revoked_at is None:
            row.revoked_at = ctx.clock()
            s.add(row)
        return _info(row)


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
        row = s.exec(select(ApiToken).where(ApiToken.secret_hash == hash_token(token))).first()
    if row is None:
        raise Unauthenticated("the token is not valid", hint="ask an admin for a new token")
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
    return Principal(row.id, row.role, row.client_id, row.campaign)


def _check(ctx, role, client, campaign, expires_at) -> None:
    errors = []
    if role not in ROLES:
        errors.append(FieldError("role", f"must be one of {', '.join(ROLES)}"))
    if client is None and role != "admin":
        errors.append(FieldError("client", f"a {role} token needs a client"))
    if campaign is not None and role != "dialer":
        errors.append(FieldError("campaign", "only dialer tokens are scoped to a campaign"))
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= ctx.clock()):
        errors.append(FieldError("expires_at", "must be a future time with a time zone"))
    if errors:
        raise InvalidEvidence(errors, hint="see `evidence-vault token create --help`")
    with read_session(ctx.engine) as s:
        if client is not None and s.get(Client, client) is None:
            raise NotFound(f"client {client!r} does not exist")
        if (
            campaign is not None
            and s.exec(
                select(Campaign).where(Campaign.client_id == client, Campaign.name == campaign)
            ).first()
            is None
        ):
            raise NotFound(f"campaign {campaign!r} does not exist for client {client!r}")


def _info(t: ApiToken) -> TokenInfo:
    return TokenInfo(
        t.id, t.role, t.client_id, t.campaign, t.label, t.created_at, t.expires_at, t.revoked_at
    )
