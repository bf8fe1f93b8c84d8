"""Clients (tenants) and their campaigns."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from vault.db import Campaign, Client, read_session, write_session
from vault.errors import Conflict, FieldError, InvalidEvidence, NotFound
from vault.evidence import is_slug
from vault.ledger.chain import new_log
from vault.services.context import VaultContext

MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class CampaignInfo:
    client: str
    name: str
    retention_days: int

    def to_dict(self) -> dict:
        return {"client": self.client, "name": self.name, "retention_days": self.retention_days}


def add_client(ctx: VaultContext, client_id: str, display_name: str | None = None) -> None:
    _check_slug("client", client_id)
    with write_session(ctx.engine) as s:
        if s.get(Client, client_id) is not None:
            raise Conflict(f"client {client_id!r} already exists")
        s.add(Client(id=client_id, display_name=display_name or client_id, created_at=ctx.clock()))
        s.flush()
        new_log(s, client_id)


def list_clients(ctx: VaultContext) -> list[Client]:
    with read_session(ctx.engine) as s:
        return list(s.exec(select(Client).order_by(Client.id)))


def add_campaign(ctx: VaultContext, client_id: str, name: str, retention_days: int) -> CampaignInfo:
    _check_slug("campaign", name)
    if not 1 <= retention_days <= MAX_RETENTION_DAYS:
        raise InvalidEvidence(
            [FieldError("retention_days", f"must be between 1 and {MAX_RETENTION_DAYS}")],
            hint="give the retention period in days",
        )
    try:
        with write_session(ctx.engine) as s:
            if s.get(Client, client_id) is None:
                raise _unknown_client(client_id)
            s.add(
                Campaign(
                    client_id=client_id,
                    name=name,
                    retention_days=retention_days,
                    created_at=ctx.clock(),
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"campaign {name!r} already exists for client {client_id!r}") from exc
    return CampaignInfo(client_id, name, retention_days)


def list_campaigns(ctx: VaultContext, client_id: str | None = None) -> list[CampaignInfo]:
    with read_session(ctx.engine) as s:
        stmt = select(Campaign).order_by(Campaign.client_id, Campaign.name)
        if client_id:
            stmt = stmt.where(Campaign.client_id == client_id)
        return [CampaignInfo(c.client_id, c.name, c.retention_days) for c in s.exec(stmt)]


def _check_slug(what: str, value: str) -> None:
    if not is_slug(value):
        raise InvalidEvidence(
            [
                FieldError(
                    what,
                    "must be 1-64 characters of a-z, 0-9, '.', '_' or '-', "
                    "starting with a letter or digit",
                )
            ],
            hint=f"choose another {what} name",
        )


def _unknown_client(client_id: str) -> NotFound:
    return NotFound(
        f"client {client_id!r} does not exist", hint="create it with `evidence-vault client add`"
    )
