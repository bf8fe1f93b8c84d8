"""HTTP routes: clients, campaigns, persons and API tokens, for admins.

A global admin (a person without a client) manages every client; a tenant admin (a person
of one client) manages only its client's campaigns, persons and tokens: it cannot create
clients, reach another client (404, exactly like a missing one) or create a global person
(403). An admin made over HTTP is pending until a second admin approves it, and an admin's
token is minted only by that admin (or the operator on the vault host).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel, Field, field_validator

from vault.errors import InvalidEvidence, NotFound, PermissionDenied
from vault.http.deps import HANDLE, SLUG, TOKEN_ID, Caller, ClientId, Ctx
from vault.http.problems import openapi_responses
from vault.services import admin as _admin
from vault.services import dialers as _dialers
from vault.services import people as _people
from vault.services import tokens as _tokens
from vault.services.admin import CampaignInfo, ClientInfo
from vault.services.context import VaultContext
from vault.services.dialers import DialerKeyInfo
from vault.services.retention import MAX_RETENTION_DAYS
from vault.services.tokens import Principal, TokenInfo

#: free text: one line, no control characters (PostgreSQL refuses NUL in text)
TEXT = r"^[^\x00-\x1f\x7f]*$"
#: the latest expiry accepted: far enough, and still a datetime in every time zone
LATEST_EXPIRY = datetime(9000, 1, 1, tzinfo=UTC)

Days = Annotated[int, Field(ge=1, le=MAX_RETENTION_DAYS, strict=True)]


# -- models -------------------------------------------------------------------------------


class ClientOut(BaseModel):
    id: str
    display_name: str
    retention_days: int | None = Field(description="Default retention of its campaigns, days")
    created_at: str


class NewClient(BaseModel):
    id: str = Field(pattern=SLUG, max_length=64, description="The client id (a slug)")
    display_name: str | None = Field(default=None, max_length=200, pattern=TEXT)
    retention_days: Days | None = Field(
        default=None, description="Default retention of campaigns without their own"
    )


class CampaignOut(BaseModel):
    client: str
    name: str
    retention_days: int | None = Field(description="Effective period: its own or the default")
    retention_basis: str
    client_default: bool = Field(description="True if the client's default period applies")
    require_source_signature: bool = Field(
        default=False, description="Uploads must carry a registered dialer key's signature"
    )


class NewCampaign(BaseModel):
    name: str = Field(pattern=SLUG, max_length=64)
    retention_days: Days | None = Field(
        default=None, description="Omit to use the client's default"
    )
    retention_basis: Literal["recorded", "consent-use"] = "recorded"
    require_source_signature: bool = False


class SignaturesRequired(BaseModel):
    required: bool = Field(description="true: refuse uploads without a valid source signature")


class DialerKeyOut(BaseModel):
    key_id: str = Field(description="`dk-` and 32 hex digits, derived from the public key")
    client: str
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    label: str
    registered_at: str
    revoked_at: str | None


class NewDialerKey(BaseModel):
    public_key: str = Field(
        max_length=64, description="base64 of the raw 32-byte Ed25519 public key"
    )
    label: str = Field(
        default="", max_length=200, pattern=TEXT, description="e.g. the dialer host's name"
    )


class PersonOut(BaseModel):
    handle: str
    display_name: str
    role: str
    client: str | None = Field(description="null: every client (admins only)")
    status: Literal["active", "pending", "disabled"] = Field(
        description="pending: an admin awaiting a second admin's approval"
    )
    created_by: str
    created_at: str
    approved_by: str | None
    approved_at: str | None
    disabled_at: str | None


class NewPerson(BaseModel):
    handle: str = Field(
        pattern=HANDLE,
        max_length=64,
        description="The name the logs use (a staff id or initials, not a full name)",
    )
    display_name: str | None = Field(default=None, max_length=200, pattern=TEXT)
    role: Literal["dialer", "client", "auditor", "admin"] = Field(
        description="A dialer is a machine account; its creator answers for it"
    )
    client: str | None = Field(
        default=None, pattern=SLUG, max_length=64, description="Required but for a global admin"
    )


class TokenOut(BaseModel):
    id: str
    person: str = Field(description="The handle of the person the token belongs to")
    role: str
    client: str | None = Field(description="null: every client (admin tokens only)")
    campaign: str | None
    label: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class CreatedToken(TokenOut):
    token: str = Field(description="The secret: shown in this answer only, never again")


class NewToken(BaseModel):
    person: str = Field(
        pattern=HANDLE,
        max_length=64,
        description="Whose token: it carries that person's role and client",
    )
    campaign: str | None = Field(
        default=None, pattern=SLUG, max_length=64, description="Dialer tokens only"
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="A future time, with a time zone"
    )
    label: str | None = Field(default=None, max_length=200, pattern=TEXT)

    @field_validator("expires_at")
    @classmethod
    def _not_too_late(cls, value: datetime | None) -> datetime | None:
        if value is not None and value >= LATEST_EXPIRY:
            raise ValueError("must be before the year 9000")
        return value


router = APIRouter(tags=["admin"])


# -- clients ------------------------------------------------------------------------------


@router.get(
    "/v1/clients",
    response_model=list[ClientOut],
    responses=openapi_responses(401, 403),
    summary="Clients (a tenant admin sees its own)",
)
def list_clients(ctx: Ctx, caller: Caller) -> list[ClientOut]:
    caller.require("admin")
    clients = [ClientInfo.of(c) for c in _admin.list_clients(ctx)]
    return [_client_out(c) for c in clients if caller.client in (None, c.id)]


@router.post(
    "/v1/clients",
    status_code=201,
    response_model=ClientOut,
    responses=openapi_responses(400, 401, 403, 409),
    summary="Create a client (global admin)",
)
def create_client(body: NewClient, ctx: Ctx, caller: Caller) -> ClientOut:
    _global_admin(caller, "create clients")
    with _request_errors():
        _admin.add_client(ctx, body.id, body.display_name, body.retention_days)
    return _client_out(_admin.find_client(ctx, body.id))  # type: ignore[arg-type]  # just added


# -- campaigns ----------------------------------------------------------------------------


@router.get(
    "/v1/clients/{client}/campaigns",
    response_model=list[CampaignOut],
    responses=openapi_responses(401, 403, 404),
    summary="A client's campaigns and their retention rules",
)
def list_campaigns(client: ClientId, ctx: Ctx, caller: Caller) -> list[CampaignOut]:
    caller.require_client(client, "admin")
    _client_exists(ctx, client)
    return [_campaign_out(c) for c in _admin.list_campaigns(ctx, client)]


@router.post(
    "/v1/clients/{client}/campaigns",
    status_code=201,
    response_model=CampaignOut,
    responses=openapi_responses(400, 401, 403, 404, 409),
    summary="Create a campaign with its retention rule",
)
def create_campaign(client: ClientId, body: NewCampaign, ctx: Ctx, caller: Caller) -> CampaignOut:
    caller.require_client(client, "admin")
    with _request_errors():
        info = _admin.add_campaign(
            ctx,
            client,
            body.name,
            body.retention_days,
            body.retention_basis,
            require_source_signature=body.require_source_signature,
        )
    return _campaign_out(info)


@router.put(
    "/v1/clients/{client}/campaigns/{campaign}/require-source-signature",
    response_model=CampaignOut,
    responses=openapi_responses(401, 403, 404, 422),
    summary="Require (or stop requiring) a dialer key's source signature on uploads",
)
def set_campaign_signatures(
    client: ClientId,
    campaign: Annotated[str, Path(pattern=SLUG, max_length=64)],
    body: SignaturesRequired,
    ctx: Ctx,
    caller: Caller,
) -> CampaignOut:
    caller.require_client(client, "admin")
    info = _admin.set_campaign_signatures(ctx, client, campaign, required=body.required)
    return _campaign_out(info)


# -- dialer keys (source signatures) ------------------------------------------------------


@router.get(
    "/v1/clients/{client}/dialer-keys",
    response_model=list[DialerKeyOut],
    responses=openapi_responses(401, 403, 404),
    summary="A client's registered dialer keys, revoked ones included",
)
def list_dialer_keys(client: ClientId, ctx: Ctx, caller: Caller) -> list[DialerKeyOut]:
    caller.require_client(client, "admin")
    _client_exists(ctx, client)
    return [_dialer_key_out(k) for k in _dialers.list_keys(ctx, client)]


@router.post(
    "/v1/clients/{client}/dialer-keys",
    status_code=201,
    response_model=DialerKeyOut,
    responses=openapi_responses(401, 403, 404, 409, 422),
    summary="Register a dialer host's public key (logged as dialer.registered)",
)
def register_dialer_key(
    client: ClientId, body: NewDialerKey, ctx: Ctx, caller: Caller
) -> DialerKeyOut:
    info = _dialers.register_key(ctx, client, body.public_key, by=caller, label=body.label)
    return _dialer_key_out(info)


@router.delete(
    "/v1/clients/{client}/dialer-keys/{key_id}",
    response_model=DialerKeyOut,
    responses=openapi_responses(401, 403, 404),
    summary="Revoke a dialer key at once (idempotent; logged as dialer.revoked)",
)
def revoke_dialer_key(
    client: ClientId,
    key_id: Annotated[str, Path(pattern=r"^dk-[0-9a-f]{32}$", max_length=40)],
    ctx: Ctx,
    caller: Caller,
) -> DialerKeyOut:
    return _dialer_key_out(_dialers.revoke_key(ctx, client, key_id, by=caller))


# -- tokens -------------------------------------------------------------------------------


@router.get(
    "/v1/tokens",
    response_model=list[TokenOut],
    responses=openapi_responses(401, 403, 404),
    summary="Tokens, never their secrets (a tenant admin sees its client's)",
)
def list_tokens(
    ctx: Ctx,
    caller: Caller,
    client: Annotated[
        str | None, Query(pattern=SLUG, max_length=64, description="Only this client's tokens")
    ] = None,
) -> list[TokenOut]:
    client = _admin_scope(caller, client)
    return [_token_out(t) for t in _tokens.list_tokens(ctx, client)]


@router.post(
    "/v1/tokens",
    status_code=201,
    response_model=CreatedToken,
    responses=openapi_responses(400, 401, 403, 404),
    summary="Create a token; the answer holds its secret, once",
)
def create_token(body: NewToken, ctx: Ctx, caller: Caller) -> CreatedToken:
    caller.require("admin")
    with _request_errors():
        info, secret = _tokens.create_token(
            ctx,
            person=body.person,
            by=caller,
            campaign=body.campaign,
            expires_at=body.expires_at,
            label=body.label or "",
        )
    return CreatedToken(**info.to_dict(), token=secret)


@router.delete(
    "/v1/tokens/{token_id}",
    response_model=TokenOut,
    responses=openapi_responses(401, 403, 404),
    summary="Revoke a token at once (idempotent)",
)
def revoke_token(
    token_id: Annotated[
        str, Path(pattern=TOKEN_ID, max_length=40, description="The token id (`tk...`)")
    ],
    ctx: Ctx,
    caller: Caller,
) -> TokenOut:
    caller.require("admin")
    return _token_out(_tokens.revoke_token(ctx, token_id, by=caller, client=caller.client))


# -- persons ------------------------------------------------------------------------------

Handle = Annotated[str, Path(pattern=HANDLE, max_length=64, description="The person's handle")]


@router.get(
    "/v1/persons",
    response_model=list[PersonOut],
    responses=openapi_responses(401, 403, 404),
    summary="Persons (a tenant admin sees its client's)",
)
def list_persons(
    ctx: Ctx,
    caller: Caller,
    client: Annotated[
        str | None, Query(pattern=SLUG, max_length=64, description="Only this client's persons")
    ] = None,
) -> list[PersonOut]:
    client = _admin_scope(caller, client)
    return [PersonOut(**p.to_dict()) for p in _people.list_persons(ctx, client)]


@router.post(
    "/v1/persons",
    status_code=201,
    response_model=PersonOut,
    responses=openapi_responses(400, 401, 403, 404, 409),
    summary="Create a person (logged); a new admin is pending until a second admin approves",
)
def create_person(body: NewPerson, ctx: Ctx, caller: Caller) -> PersonOut:
    caller.require("admin")
    with _request_errors():
        info = _people.add_person(
            ctx,
            body.handle,
            role=body.role,
            client=body.client,
            display_name=body.display_name or "",
            by=caller,
        )
    return PersonOut(**info.to_dict())


@router.post(
    "/v1/persons/{handle}/approve",
    response_model=PersonOut,
    responses=openapi_responses(401, 403, 404, 409),
    summary="Approve a pending admin (a second admin: not its creator, not itself)",
)
def approve_person(handle: Handle, ctx: Ctx, caller: Caller) -> PersonOut:
    return PersonOut(**_people.approve_person(ctx, handle, by=caller).to_dict())


@router.post(
    "/v1/persons/{handle}/disable",
    response_model=PersonOut,
    responses=openapi_responses(401, 403, 404),
    summary="Disable a person at once: all their tokens stop working (idempotent)",
)
def disable_person(handle: Handle, ctx: Ctx, caller: Caller) -> PersonOut:
    return PersonOut(**_people.disable_person(ctx, handle, by=caller).to_dict())


# -- helpers ------------------------------------------------------------------------------


def _admin_scope(caller: Principal, client: str | None) -> str | None:
    """The client an admin's listing covers: a tenant admin only ever its own (another
    client's name looks unknown), a global admin the one asked for, or all (None)."""
    caller.require("admin")
    if caller.client is None:
        return client
    if client is not None and client != caller.client:
        raise _missing(client)
    return caller.client


class InvalidRequest(InvalidEvidence):
    """A rule of the request body the schema cannot state (a 422 with field errors)."""

    kind = "invalid-request"

    def __init__(self, errors, *, hint: str | None = None) -> None:
        super().__init__(errors, hint=hint)
        self.message = "the request is invalid: " + "; ".join(str(e) for e in self.errors)


@contextmanager
def _request_errors() -> Iterator[None]:
    """The services speak of evidence metadata; here it is the request body that is wrong."""
    try:
        yield
    except InvalidEvidence as exc:
        if type(exc) is not InvalidEvidence:
            raise
        raise InvalidRequest(exc.errors, hint=exc.hint) from None


def _global_admin(caller: Principal, what: str) -> None:
    caller.require("admin")
    if caller.client is not None:
        raise PermissionDenied(
            f"a tenant admin cannot {what}", hint="use an admin token without a client"
        )


def _missing(client: str) -> NotFound:
    # the very error Principal.require_client raises for another tenant: same body
    return NotFound(f"client {client!r} does not exist")


def _client_exists(ctx: VaultContext, client: str) -> None:
    if _admin.find_client(ctx, client) is None:
        raise _missing(client)


def _client_out(c: ClientInfo) -> ClientOut:
    return ClientOut(**c.to_dict())


def _campaign_out(c: CampaignInfo) -> CampaignOut:
    return CampaignOut(**c.to_dict())


def _dialer_key_out(k: DialerKeyInfo) -> DialerKeyOut:
    return DialerKeyOut(**k.to_dict())


def _token_out(t: TokenInfo) -> TokenOut:
    return TokenOut(**t.to_dict())
