"""The :class:`Vault` facade; import it from ``vault``."""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from pathlib import Path

from vault.config import Settings, load_settings, resolve_home
from vault.services import (
    admin,
    checkpoints,
    erasure,
    holds,
    keys,
    logexport,
    people,
    retention,
    retrieve,
    tokens,
)
from vault.services import ingest as _ingest
from vault.services import verify as _verify
from vault.services.checkpoints import ConsistencyProof, InclusionProof, SignedCheckpoint
from vault.services.context import Clock, VaultContext, create_vault, open_vault, utc_now
from vault.services.erasure import ErasureReport
from vault.services.holds import HoldInfo
from vault.services.ingest import Receipt
from vault.services.keys import KeyGeneration, RotationReport
from vault.services.people import PersonInfo, Principal
from vault.services.retention import PlanItem, RunReport
from vault.services.retrieve import Query, RecordSummary
from vault.services.tokens import TokenInfo
from vault.services.verify import Report


def local_principal() -> str:
    """Who is reading, when the reader is an operator at this machine's shell."""
    try:
        user = getpass.getuser()
    except OSError:
        user = "unknown"
    return f"local:{user}"


def _name(principal: str | Principal | None) -> str:
    if isinstance(principal, Principal):
        return principal.name
    return principal or local_principal()


def _scope(principal: str | Principal | None) -> str | None:
    """A person reads only their client's records; the operator reads every client's."""
    return principal.client if isinstance(principal, Principal) else None


class Vault:
    """An open vault. Use :meth:`open` or :meth:`create`; close it (or use ``with``)."""

    def __init__(self, ctx: VaultContext) -> None:
        self._ctx = ctx

    # -- opening ---------------------------------------------------------------
    @classmethod
    def open(cls, home: str | os.PathLike | None = None, *, clock: Clock = utc_now) -> Vault:
        return cls(open_vault(load_settings(resolve_home(home)), clock=clock))

    @classmethod
    def create(cls, home: str | os.PathLike | None = None, **overrides) -> Vault:
        settings = load_settings(resolve_home(home))
        if overrides:
            from dataclasses import replace

            settings = replace(settings, **overrides)
        return cls(create_vault(settings))

    @property
    def settings(self) -> Settings:
        return self._ctx.settings

    @property
    def context(self) -> VaultContext:
        return self._ctx

    def close(self) -> None:
        self._ctx.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- administration --------------------------------------------------------
    def add_client(
        self, client_id: str, display_name: str | None = None, *, retention_days: int | None = None
    ) -> None:
        """Add a tenant; ``retention_days`` is the default of campaigns without their own."""
        admin.add_client(self._ctx, client_id, display_name, retention_days)

    def add_campaign(
        self,
        client_id: str,
        name: str,
        retention_days: int | None = None,
        *,
        retention_basis: str = "recorded",
    ):
        """Add a campaign; ``retention_basis`` is "recorded" or "consent-use" (UWG §7a)."""
        return admin.add_campaign(self._ctx, client_id, name, retention_days, retention_basis)

    def set_client_retention(self, client_id: str, days: int) -> None:
        admin.set_client_retention(self._ctx, client_id, days)

    def set_campaign_retention(
        self, client_id: str, name: str, days: int | None, *, basis: str | None = None
    ):
        return admin.set_campaign_retention(self._ctx, client_id, name, days, basis)

    def campaigns(self, client_id: str | None = None):
        return admin.list_campaigns(self._ctx, client_id)

    def clients(self):
        return admin.list_clients(self._ctx)

    # -- people and tokens -----------------------------------------------------
    def operator(self) -> Principal:
        """The operator at this shell: a global admin whose admins need no approval."""
        return people.operator(local_principal())

    def person(self, handle: str, *roles: str) -> Principal:
        """The principal of person ``handle`` (enabled, approved, of one of ``roles``)."""
        return people.acting(self._ctx, handle, *roles)

    def _by(self, by: str | Principal | None) -> Principal:
        if by is None:
            return self.operator()
        return by if isinstance(by, Principal) else self.person(by, "admin")

    def add_person(
        self,
        handle: str,
        *,
        role: str,
        client: str | None = None,
        display_name: str = "",
        by: str | Principal | None = None,
    ) -> PersonInfo:
        """Create a person; ``by`` (a handle) is the acting admin, else the operator."""
        return people.add_person(
            self._ctx,
            handle,
            role=role,
            client=client,
            display_name=display_name,
            by=self._by(by),
        )

    def approve_person(self, handle: str, *, by: str | Principal | None = None) -> PersonInfo:
        return people.approve_person(self._ctx, handle, by=self._by(by))

    def disable_person(self, handle: str, *, by: str | Principal | None = None) -> PersonInfo:
        return people.disable_person(self._ctx, handle, by=self._by(by))

    def link_oidc(
        self, handle: str, *, issuer: str, subject: str, by: str | Principal | None = None
    ) -> PersonInfo:
        """Let ``handle`` sign in at the desk as ``subject`` of OpenID provider ``issuer``."""
        return people.link_oidc(self._ctx, handle, issuer, subject, by=self._by(by))

    def persons(self, client: str | None = None) -> list[PersonInfo]:
        return people.list_persons(self._ctx, client)

    def create_token(
        self,
        person: str,
        *,
        by: str | Principal | None = None,
        campaign: str | None = None,
        expires_at: datetime | None = None,
        label: str = "",
    ) -> tuple[TokenInfo, str]:
        """A token of ``person``: its info and its secret (shown once)."""
        return tokens.create_token(
            self._ctx,
            person=person,
            by=self._by(by),
            campaign=campaign,
            expires_at=expires_at,
            label=label,
        )

    def revoke_token(self, token_id: str, *, by: str | Principal | None = None) -> TokenInfo:
        return tokens.revoke_token(self._ctx, token_id, by=self._by(by))

    # -- evidence --------------------------------------------------------------
    def ingest(
        self, clip: str | os.PathLike, meta: bytes | str | dict, *, media_type: str | None = None
    ) -> Receipt:
        return _ingest.ingest(self._ctx, clip, meta, media_type=media_type)

    def find(
        self,
        *,
        client: str | None = None,
        campaign: str | None = None,
        order_ref: str | None = None,
        phone: str | None = None,
        agent: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[RecordSummary]:
        q = Query(client, campaign, order_ref, phone, agent, since, until, limit)
        return retrieve.find(self._ctx, q)

    def show(self, record_id: str, *, principal: str | Principal | None = None) -> dict:
        return retrieve.show(
            self._ctx, record_id, principal=principal or local_principal(), client=_scope(principal)
        )

    def write_audio(
        self, record_id: str, out: str | os.PathLike, *, principal: str | Principal | None = None
    ) -> Path:
        return retrieve.write_audio(
            self._ctx,
            record_id,
            out,
            principal=principal or local_principal(),
            client=_scope(principal),
        )

    def verify(self, client: str | None = None, progress=None, *, deep: bool = False) -> Report:
        return _verify.verify(self._ctx, client, progress, deep=deep)

    # -- retention, disputes and erasure ----------------------------------------
    def record_consent_use(
        self, client: str, phone: str, used_at: datetime | None = None
    ) -> list[str]:
        """A use of the callee's advertising consent: extends consent-based retention."""
        return retention.record_consent_use(self._ctx, client, phone, used_at)

    def open_dispute(
        self,
        record_id: str,
        *,
        case_ref: str,
        reason: str,
        principal: str | Principal | None = None,
    ) -> HoldInfo:
        """A client disputes a record: a hold is placed and logged."""
        return holds.place_hold(
            self._ctx,
            record_id,
            kind="dispute",
            case_ref=case_ref,
            reason=reason,
            principal=_name(principal),
            client=_scope(principal),
        )

    def place_hold(
        self,
        record_id: str,
        *,
        case_ref: str,
        reason: str,
        principal: str | Principal | None = None,
    ) -> HoldInfo:
        """An admin's legal hold on a record."""
        return holds.place_hold(
            self._ctx,
            record_id,
            kind="legal",
            case_ref=case_ref,
            reason=reason,
            principal=_name(principal),
            client=_scope(principal),
        )

    def release_hold(self, hold_id: str, *, admin: str | Principal) -> HoldInfo:
        """Four-eyes: one admin person requests, a second, different person releases.

        ``admin`` is a person's handle (an enabled, approved admin) or a principal.
        """
        if isinstance(admin, str):
            admin = people.acting(self._ctx, admin, "admin")
        return holds.release_hold(self._ctx, hold_id, admin=admin)

    def holds(
        self,
        *,
        client: str | None = None,
        record_id: str | None = None,
        include_released: bool = False,
    ) -> list[HoldInfo]:
        return holds.list_holds(
            self._ctx, client=client, record_id=record_id, include_released=include_released
        )

    def retention_plan(self, client: str | None = None) -> list[PlanItem]:
        return retention.plan(self._ctx, client)

    def run_retention(self, client: str | None = None, *, progress=None) -> RunReport:
        return retention.run(self._ctx, client, progress=progress)

    def erase(
        self,
        *,
        phone: str | None = None,
        record_id: str | None = None,
        client: str | None = None,
        request_ref: str = "art17",
    ) -> ErasureReport:
        """GDPR Art. 17: shred the matching records unless a hold keeps them."""
        return erasure.erase(
            self._ctx, phone=phone, record_id=record_id, client=client, request_ref=request_ref
        )

    # -- keys -------------------------------------------------------------------
    def rotate_kek(self, client: str, kek_id: str | None = None) -> RotationReport:
        return keys.rotate_kek(self._ctx, client, kek_id)

    def destroy_kek(self, kek_id: str) -> None:
        keys.destroy_kek(self._ctx, kek_id)

    def key_status(self, client: str) -> list[dict]:
        return keys.key_status(self._ctx, client)

    def rotate_log_key(self) -> dict:
        """Hand every client's log over to a new signing key (co-signed checkpoint)."""
        return keys.rotate_log_key(self._ctx)

    def log_keys(self) -> list[KeyGeneration]:
        return keys.log_keys(self._ctx)

    # -- the verifiable ledger -------------------------------------------------
    def checkpoint(self, client: str) -> SignedCheckpoint:
        """Sign the client's current tree head now (idempotent for an unchanged log)."""
        return checkpoints.make_checkpoint(self._ctx, client)

    def latest_checkpoint(self, client: str) -> SignedCheckpoint:
        return checkpoints.latest_checkpoint(self._ctx, client)

    def log_key(self) -> str:
        """The C2SP verifier key of the vault's log signing key, for auditors to pin."""
        return checkpoints.log_verifier_key(self._ctx)

    def inclusion_proof(self, record_id: str) -> InclusionProof:
        return checkpoints.inclusion_for_record(self._ctx, record_id)

    def consistency_proof(self, client: str, old: int, new: int | None = None) -> ConsistencyProof:
        return checkpoints.consistency(self._ctx, client, old, new)

    def export_log(self, client: str, out: str | os.PathLike) -> Path:
        """Entries and checkpoints as JSON Lines for an offline audit: no PII, no keys."""
        return logexport.export_log(self._ctx, client, out)

    def export_bundle(
        self, record_id: str, out: str | os.PathLike, *, principal: str | Principal | None = None
    ) -> Path:
        from vault.services.bundle import export_bundle

        return export_bundle(
            self._ctx,
            record_id,
            out,
            principal=principal or local_principal(),
            client=_scope(principal),
        )
