"""The :class:`Vault` facade; import it from ``vault``."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.config import Settings, load_settings, resolve_home
from vault.results import (
    CampaignInfo,
    ClientInfo,
    ConsistencyProof,
    DialerKeyInfo,
    DocumentInfo,
    HoldInfo,
    InclusionProof,
    IssuedToken,
    KeyGeneration,
    PersonInfo,
    Receipt,
    RecordSummary,
    SignedCheckpoint,
    TextformFacts,
    TokenInfo,
)
from vault.services import (
    admin,
    checkpoints,
    dialers,
    documents,
    erasure,
    holds,
    keys,
    logexport,
    people,
    retention,
    retrieve,
    tiles,
    timestamps,
    tokens,
)
from vault.services import ingest as _ingest
from vault.services import verify as _verify
from vault.services.context import Clock, VaultContext, create_vault, open_vault, utc_now
from vault.services.dialers import SourceSignature
from vault.services.documents import PendingTextform
from vault.services.erasure import ErasureReport
from vault.services.keys import RotationReport
from vault.services.people import Principal
from vault.services.retention import PlanItem, RunReport
from vault.services.retrieve import Query
from vault.services.tiles import Published
from vault.services.verify import Report

__all__ = [
    "CampaignInfo",
    "ClientInfo",
    "ConsistencyProof",
    "ErasureReport",
    "HoldInfo",
    "InclusionProof",
    "IssuedToken",
    "KeyGeneration",
    "PersonInfo",
    "PlanItem",
    "Principal",
    "Query",
    "Receipt",
    "RecordSummary",
    "Report",
    "RotationReport",
    "RunReport",
    "SignedCheckpoint",
    "TokenInfo",
    "Vault",
    "local_principal",
]

#: what :meth:`Vault.verify` reports its progress to: entries checked since the last call
Progress = Callable[[int], None]


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
    def open(cls, home: str | os.PathLike[str] | None = None, *, clock: Clock = utc_now) -> Vault:
        return cls(open_vault(load_settings(resolve_home(home)), clock=clock))

    @classmethod
    def create(cls, home: str | os.PathLike[str] | None = None, **overrides: Any) -> Vault:
        settings = load_settings(resolve_home(home))
        if overrides:
            from dataclasses import replace

            settings = replace(settings, **overrides)
        return cls.create_with(settings)

    @classmethod
    def create_with(cls, settings: Settings) -> Vault:
        """Create a vault from complete settings (e.g. ``load_settings`` with changes)."""
        return cls(create_vault(settings))

    @property
    def settings(self) -> Settings:
        return self._ctx.settings

    @property
    def context(self) -> VaultContext:
        return self._ctx

    def now(self) -> datetime:
        """The vault's clock: the time it stamps on log entries, tokens and retention."""
        return self._ctx.clock()

    def close(self) -> None:
        self._ctx.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- administration --------------------------------------------------------
    def add_client(
        self, client_id: str, display_name: str | None = None, *, retention_days: int | None = None
    ) -> ClientInfo:
        """Add a tenant; ``retention_days`` is the default of campaigns without their own."""
        return admin.add_client(self._ctx, client_id, display_name, retention_days)

    def add_campaign(
        self,
        client_id: str,
        name: str,
        retention_days: int | None = None,
        *,
        retention_basis: str = "recorded",
        required_documents: str | list[str] | tuple[str, ...] | None = None,
        require_source_signature: bool = False,
    ) -> CampaignInfo:
        """Add a campaign; ``retention_basis`` is "recorded" or "consent-use" (UWG §7a);
        ``required_documents`` the Textform kinds (or a preset: ``tkg-54``, ``enwg-41b``);
        ``require_source_signature`` refuses clips no registered dialer key signed."""
        return admin.add_campaign(
            self._ctx,
            client_id,
            name,
            retention_days,
            retention_basis,
            required_documents,
            require_source_signature=require_source_signature,
        )

    def set_campaign_documents(
        self, client_id: str, name: str, required: str | list[str] | tuple[str, ...] | None
    ) -> CampaignInfo:
        """The Textform document kinds each record of the campaign needs."""
        return admin.set_campaign_documents(self._ctx, client_id, name, required)

    def set_client_retention(self, client_id: str, days: int) -> None:
        admin.set_client_retention(self._ctx, client_id, days)

    def set_campaign_retention(
        self, client_id: str, name: str, days: int | None, *, basis: str | None = None
    ) -> CampaignInfo:
        return admin.set_campaign_retention(self._ctx, client_id, name, days, basis)

    def campaigns(self, client_id: str | None = None) -> list[CampaignInfo]:
        return admin.list_campaigns(self._ctx, client_id)

    def clients(self) -> list[ClientInfo]:
        return [ClientInfo.of(row) for row in admin.list_clients(self._ctx)]

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

    def set_password(
        self, handle: str, password: str, *, by: str | Principal | None = None
    ) -> None:
        """Set the desk password of ``handle`` (argon2id); ends their desk sessions."""
        from vault.services import credentials

        credentials.set_password(self._ctx, handle, password, by=self._by(by))

    def enrol_totp(self, handle: str, *, by: str | Principal | None = None) -> str:
        """Give ``handle`` a new TOTP secret; the ``otpauth://`` URI, shown once."""
        from vault.services import credentials

        return str(credentials.enrol_totp(self._ctx, handle, by=self._by(by)))

    def reset_factor(self, handle: str, *, by: str | Principal | None = None) -> None:
        """Remove ``handle``'s TOTP (they enrol again) and end their desk sessions."""
        from vault.services import credentials

        credentials.reset_factor(self._ctx, handle, by=self._by(by))

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
    ) -> IssuedToken:
        """A token of ``person``: its info and its secret (shown once); it unpacks as
        ``info, secret``."""
        return IssuedToken(
            *tokens.create_token(
                self._ctx,
                person=person,
                by=self._by(by),
                campaign=campaign,
                expires_at=expires_at,
                label=label,
            )
        )

    def revoke_token(self, token_id: str, *, by: str | Principal | None = None) -> TokenInfo:
        return tokens.revoke_token(self._ctx, token_id, by=self._by(by))

    def tokens(self, client: str | None = None) -> list[TokenInfo]:
        """Tokens (of one client), never their secrets."""
        return tokens.list_tokens(self._ctx, client)

    # -- evidence --------------------------------------------------------------
    def ingest(
        self,
        clip: str | os.PathLike[str],
        meta: bytes | str | dict[str, Any],
        *,
        media_type: str | None = None,
        signature: SourceSignature | None = None,
    ) -> Receipt:
        """Seal a clip; ``signature`` is its dialer host's source signature, if any."""
        return _ingest.ingest(self._ctx, clip, meta, media_type=media_type, signature=signature)

    # -- dialer keys (source signatures) -----------------------------------------------------

    def register_dialer_key(
        self, client: str, public_key: str, *, label: str = "", by: str | Principal | None = None
    ) -> DialerKeyInfo:
        """Register a dialer host's public key (base64) for ``client``; logged."""
        return dialers.register_key(self._ctx, client, public_key, by=self._by(by), label=label)

    def revoke_dialer_key(
        self, client: str, key_id: str, *, by: str | Principal | None = None
    ) -> DialerKeyInfo:
        return dialers.revoke_key(self._ctx, client, key_id, by=self._by(by))

    def dialer_keys(self, client: str) -> list[DialerKeyInfo]:
        return dialers.list_keys(self._ctx, client)

    def require_source_signature(
        self, client_id: str, campaign: str, required: bool = True
    ) -> CampaignInfo:
        """Refuse (or stop refusing) the campaign's uploads without a source signature."""
        return admin.set_campaign_signatures(self._ctx, client_id, campaign, required=required)

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

    def show(self, record_id: str, *, principal: str | Principal | None = None) -> dict[str, Any]:
        """The decrypted evidence document of a record (a logged read)."""
        return retrieve.show(
            self._ctx, record_id, principal=principal or local_principal(), client=_scope(principal)
        )

    def write_audio(
        self,
        record_id: str,
        out: str | os.PathLike[str],
        *,
        principal: str | Principal | None = None,
    ) -> Path:
        return retrieve.write_audio(
            self._ctx,
            record_id,
            out,
            principal=principal or local_principal(),
            client=_scope(principal),
        )

    # -- Textform documents -----------------------------------------------------
    def attach(
        self,
        record_id: str,
        path: str | os.PathLike[str],
        *,
        kind: str,
        media_type: str | None = None,
        principal: str | Principal | None = None,
    ) -> DocumentInfo:
        """Seal a Textform document (e-mail, PDF, SMS text) with a record."""
        return documents.attach(
            self._ctx, record_id, path, kind=kind, media_type=media_type, client=_scope(principal)
        )

    def documents(
        self, record_id: str, *, principal: str | Principal | None = None
    ) -> list[DocumentInfo]:
        """The record's sealed documents (no content; not an access)."""
        return documents.list_documents(self._ctx, record_id, client=_scope(principal))

    def read_document(
        self,
        record_id: str,
        document_id: str,
        *,
        principal: str | Principal | None = None,
        reason: str | None = None,
        case: str | None = None,
    ) -> tuple[DocumentInfo, bytes]:
        """A document's bytes, exactly as attached (a logged read)."""
        return documents.open_document(
            self._ctx,
            record_id,
            document_id,
            principal=principal or local_principal(),
            client=_scope(principal),
            reason=reason,
            case=case,
        )

    def textform(
        self, record_id: str, *, principal: str | Principal | None = None
    ) -> TextformFacts:
        """The record's Textform state: documents, their checks, required kinds missing."""
        return documents.textform_facts(self._ctx, record_id, client=_scope(principal))

    def pending_textform(self, days: int, client: str | None = None) -> list[PendingTextform]:
        """Live records still missing required documents ``days`` days after recording."""
        return documents.pending_after(self._ctx, days, client)

    def verify(
        self, client: str | None = None, progress: Progress | None = None, *, deep: bool = False
    ) -> Report:
        return _verify.verify(self._ctx, client, progress, deep=deep)

    def count_entries(self, client: str | None = None) -> int:
        """How many log entries (of one client) :meth:`verify` walks: its progress total."""
        return _verify.count_entries(self._ctx, client)

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

    def retention_plan(
        self, client: str | None = None, *, at: datetime | None = None
    ) -> list[PlanItem]:
        """What :meth:`run_retention` would do now, or on the day ``at`` (a dry look ahead)."""
        return retention.plan(self._ctx, client, at=at)

    def run_retention(
        self, client: str | None = None, *, progress: Callable[[PlanItem], None] | None = None
    ) -> RunReport:
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

    def key_status(self, client: str) -> list[dict[str, Any]]:
        return keys.key_status(self._ctx, client)

    def rotate_log_key(self) -> dict[str, Any]:
        """Hand every client's log over to a new signing key (co-signed checkpoint)."""
        return keys.rotate_log_key(self._ctx)

    def log_keys(self) -> list[KeyGeneration]:
        return keys.log_keys(self._ctx)

    # -- the verifiable ledger -------------------------------------------------
    def checkpoint(self, client: str) -> SignedCheckpoint:
        """Sign the client's current tree head now (idempotent for an unchanged log), and
        publish it with the log's tiles (a failure there is logged, the timer catches up)."""
        signed = checkpoints.make_checkpoint(self._ctx, client)
        tiles.publish_after_checkpoint(self._ctx, client)
        return signed

    def publish_tiles(self, client: str | None = None) -> list[Published]:
        """Bring the tiled logs (C2SP tlog-tiles, under ``_tlog/``) up to their latest
        checkpoints: one client's, or every client's."""
        return [
            tiles.publish(self._ctx, c)
            for c in ([client] if client else tiles.log_names(self._ctx))
        ]

    def latest_checkpoint(self, client: str) -> SignedCheckpoint:
        return checkpoints.latest_checkpoint(self._ctx, client)

    def timestamp_checkpoint(self, client: str, size: int) -> timestamps.StampReport:
        """Time-stamp one checkpoint now with every configured TSA lacking a token for it."""
        return timestamps.stamp_checkpoint(self._ctx, client, size)

    def timestamp_pending(self, client: str | None = None) -> timestamps.StampReport:
        """Catch up: time-stamp every checkpoint still lacking a token from some TSA."""
        return timestamps.stamp_pending(self._ctx, client)

    def checkpoint_timestamps(self, client: str, size: int) -> list[timestamps.StoredTimestamp]:
        """The RFC 3161 tokens held for a checkpoint."""
        return timestamps.timestamps_of(self._ctx, client, size)

    def log_key(self) -> str:
        """The C2SP verifier key of the vault's log signing key, for auditors to pin."""
        return checkpoints.log_verifier_key(self._ctx)

    def inclusion_proof(self, record_id: str) -> InclusionProof:
        return checkpoints.inclusion_for_record(self._ctx, record_id)

    def consistency_proof(self, client: str, old: int, new: int | None = None) -> ConsistencyProof:
        return checkpoints.consistency(self._ctx, client, old, new)

    def export_log(self, client: str, out: str | os.PathLike[str]) -> Path:
        """Entries and checkpoints as JSON Lines for an offline audit: no PII, no keys."""
        return logexport.export_log(self._ctx, client, out)

    def export_bundle(
        self,
        record_id: str,
        out: str | os.PathLike[str],
        *,
        principal: str | Principal | None = None,
        language: str = "de",
        time_zone: str | None = None,
        pdf: bool = True,
        version: int | None = None,
    ) -> Path:
        """``time_zone`` defaults to the vault's ``[web] timezone`` (the client's);
        ``version`` 3 writes a bundle as before format 4 (tests of older bundles)."""
        from vault.bundle.layout import VERSION
        from vault.services.export import ReportOptions, export_bundle

        options = ReportOptions(language, time_zone or self._ctx.settings.web_timezone, pdf)
        return export_bundle(
            self._ctx,
            record_id,
            out,
            principal=principal or local_principal(),
            client=_scope(principal),
            options=options,
            version=version or VERSION,
        )
