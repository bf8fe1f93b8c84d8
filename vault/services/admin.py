"""Clients (tenants) and their campaigns."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from vault.db import Campaign, Client, read_session, write_session
from vault.db.log import EntryDraft, append_entries, new_log
from vault.errors import Conflict, FieldError, InvalidEvidence, NotFound
from vault.identifiers import SLUG
from vault.ledger.sources import POLICY_TYPE
from vault.results import CampaignInfo, ClientInfo
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.documents import parse_required, required_of
from vault.services.retention import check_basis, check_days


def add_client(
    ctx: VaultContext,
    client_id: str,
    display_name: str | None = None,
    retention_days: int | None = None,
) -> ClientInfo:
    _check_slug("client", client_id)
    check_days(retention_days)
    with write_session(ctx.engine) as s:
        if s.get(Client, client_id) is not None:
            raise Conflict(f"client {client_id!r} already exists")
        row = Client(
            id=client_id,
            display_name=display_name or client_id,
            retention_days=retention_days,
            created_at=ctx.clock(),
        )
        s.add(row)
        s.flush()
        new_log(s, client_id)
        return ClientInfo.of(row)


def list_clients(ctx: VaultContext) -> list[Client]:
    """The tenants (not the vault-wide log's row, whose id is no slug)."""
    with read_session(ctx.engine) as s:
        return [c for c in s.exec(select(Client).order_by(Client.id)) if SLUG.matches(c.id)]


def find_client(ctx: VaultContext, client_id: str) -> ClientInfo | None:
    with read_session(ctx.engine) as s:
        row = s.get(Client, client_id)
    return ClientInfo.of(row) if row is not None else None


def add_campaign(
    ctx: VaultContext,
    client_id: str,
    name: str,
    retention_days: int | None = None,
    retention_basis: str = "recorded",
    required_documents: str | list[str] | tuple[str, ...] | None = None,
    *,
    require_source_signature: bool = False,
) -> CampaignInfo:
    """A campaign keeps evidence ``retention_days`` (else its client's default) days;
    ``required_documents`` are the Textform kinds (or a preset, ``tkg-54``) each record
    needs; ``require_source_signature`` refuses clips no registered dialer key signed."""
    _check_slug("campaign", name)
    check_days(retention_days)
    check_basis(retention_basis)
    required = parse_required(required_documents)
    try:
        with write_session(ctx.engine) as s:
            client = s.get(Client, client_id)
            if client is None or not SLUG.matches(client_id):  # the vault-wide log is no tenant
                raise _unknown_client(client_id)
            if retention_days is None and client.retention_days is None:
                raise _no_rule(client_id)
            campaign = Campaign(
                client_id=client_id,
                name=name,
                retention_days=retention_days,
                retention_basis=retention_basis,
                created_at=ctx.clock(),
                required_documents=",".join(required),
                require_source_signature=require_source_signature,
            )
            s.add(campaign)
            s.flush()
            logged = require_source_signature or bool(required)
            if logged:  # a campaign that requires nothing is what no policy entry means
                _log_policy(ctx, s, campaign, signature=True, documents=True)
            info = _info(campaign, client)
    except IntegrityError as exc:
        raise Conflict(f"campaign {name!r} already exists for client {client_id!r}") from exc
    if logged:
        checkpoint_after_commit(ctx, client_id)
    return info


def set_client_retention(ctx: VaultContext, client_id: str, days: int) -> None:
    """The default period of the client's campaigns without their own (future ingests)."""
    check_days(days)
    with write_session(ctx.engine) as s:
        client = s.get(Client, client_id)
        if client is None:
            raise _unknown_client(client_id)
        client.retention_days = days
        s.add(client)


def set_campaign_retention(
    ctx: VaultContext,
    client_id: str,
    name: str,
    days: int | None,
    basis: str | None = None,
) -> CampaignInfo:
    """Change a campaign's rule; applies to evidence sealed from now on.

    ``days=None`` falls back to the client default. Evidence already sealed keeps the
    retain-until date it was sealed with (it is in the log and in the store's lock).
    """
    check_days(days)
    if basis is not None:
        check_basis(basis)
    with write_session(ctx.engine) as s:
        client = s.get(Client, client_id)
        if client is None:
            raise _unknown_client(client_id)
        campaign = s.exec(
            select(Campaign).where(Campaign.client_id == client_id, Campaign.name == name)
        ).first()
        if campaign is None:
            raise NotFound(f"campaign {name!r} does not exist for client {client_id!r}")
        if days is None and client.retention_days is None:
            raise _no_rule(client_id)
        campaign.retention_days = days
        if basis is not None:
            campaign.retention_basis = basis
        s.add(campaign)
        return _info(campaign, client)


def set_campaign_documents(
    ctx: VaultContext,
    client_id: str,
    name: str,
    required: str | list[str] | tuple[str, ...] | None,
) -> CampaignInfo:
    """The Textform document kinds each record of the campaign needs (none: ``()``).

    Applies to the campaign's records at once, sealed or not: "pending Textform" is a
    state of the documents, not of the seal.
    """
    kinds = parse_required(required)
    with write_session(ctx.engine) as s:
        client = s.get(Client, client_id)
        if client is None:
            raise _unknown_client(client_id)
        campaign = s.exec(
            select(Campaign).where(Campaign.client_id == client_id, Campaign.name == name)
        ).first()
        if campaign is None:
            raise NotFound(f"campaign {name!r} does not exist for client {client_id!r}")
        campaign.required_documents = ",".join(kinds)
        s.add(campaign)
        # logged each time, even when the row already agrees: the row may be the one that lies
        _log_policy(ctx, s, campaign, documents=True)
        info = _info(campaign, client)
    checkpoint_after_commit(ctx, client_id)
    return info


def list_campaigns(ctx: VaultContext, client_id: str | None = None) -> list[CampaignInfo]:
    with read_session(ctx.engine) as s:
        stmt = select(Campaign, Client).join(Client, Client.id == Campaign.client_id)
        stmt = stmt.order_by(Campaign.client_id, Campaign.name)
        if client_id:
            stmt = stmt.where(Campaign.client_id == client_id)
        return [_info(c, client) for c, client in s.exec(stmt)]


def _info(c: Campaign, client: Client) -> CampaignInfo:
    own = c.retention_days is not None
    days = c.retention_days if own else client.retention_days
    return CampaignInfo(
        c.client_id,
        c.name,
        days,
        c.retention_basis,
        not own,
        required_of(c),
        bool(c.require_source_signature),
    )


def set_campaign_signatures(
    ctx: VaultContext, client_id: str, name: str, *, required: bool
) -> CampaignInfo:
    """Require (or stop requiring) a source signature on the campaign's future uploads
    (logged as ``campaign.policy``)."""
    with write_session(ctx.engine) as s:
        client = s.get(Client, client_id)
        if client is None:
            raise _unknown_client(client_id)
        campaign = s.exec(
            select(Campaign).where(Campaign.client_id == client_id, Campaign.name == name)
        ).first()
        if campaign is None:
            raise NotFound(f"campaign {name!r} does not exist for client {client_id!r}")
        campaign.require_source_signature = required
        s.add(campaign)
        _log_policy(ctx, s, campaign, signature=True)  # each time, as for the documents
        info = _info(campaign, client)
    checkpoint_after_commit(ctx, client_id)
    return info


def _log_policy(
    ctx: VaultContext,
    s: Session,
    campaign: Campaign,
    *,
    signature: bool = False,
    documents: bool = False,
) -> None:
    """The requirement(s) just set go into the client's log, in the same transaction as the
    row: the row is what ingest and the reports read, the entry what ``verify`` trusts (a
    row changed behind the vault shows). Only what was set is logged: a field changed
    behind the vault is never carried into the log by setting the other one."""
    body: dict = {"campaign": campaign.name}
    if signature:
        body["source_signature"] = bool(campaign.require_source_signature)
    if documents:
        body["documents"] = list(required_of(campaign))
    append_entries(
        s,
        campaign.client_id,
        [EntryDraft(POLICY_TYPE, None, body)],
        ctx.clock(),
        ctx.log_keys(campaign.client_id),
    )


def _no_rule(client_id: str) -> InvalidEvidence:
    return InvalidEvidence(
        [FieldError("retention_days", "is required: the client has no default retention")],
        hint=f"give --retention-days, or set a default with `evidence-vault client retention "
        f"{client_id} DAYS`",
    )


def _check_slug(what: str, value: str) -> None:
    if not SLUG.matches(value):
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
