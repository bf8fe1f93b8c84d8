"""Dialer keys and source signatures: which dialer host produced a clip.

Each dialer host holds its own Ed25519 key (:class:`vault.sealing.SourceSigner`); an admin
registers the public key for a client and can revoke it. Both are entries of the client's
log (``dialer.registered`` with the public key, ``dialer.revoked``), signed into it like
every other entry: the log is the authority. The ``dialer_key`` table is only a cache for
the upload path, and the database is not trusted — ``verify`` checks, from the log alone,
that every signed ``evidence.sealed`` entry names a key registered before it and not
revoked by then, and that the signature verifies over the statement the entry commits to.

At upload, a signature (if sent) is always checked; a campaign with
``require_source_signature`` refuses a clip without one. A signed clip's entry carries
``body.source`` = ``{key, pub, clip, meta, sig}`` (formats in docs/formats.md).
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from vault.db import Campaign, Client, LogEntry, read_session, write_session
from vault.db.log import EntryDraft, append_entries
from vault.db.models import DialerKey
from vault.errors import (
    BadSourceSignature,
    Conflict,
    FieldError,
    InvalidRequest,
    NotFound,
    RevokedDialerKey,
    SourceSignatureRequired,
    UnknownDialerKey,
)
from vault.ledger.audit import Finding
from vault.ledger.entry import parse_entry
from vault.ledger.sources import DIALER_TYPES, DialerHistory, source_findings
from vault.results import DialerKeyInfo
from vault.sealing import check_statement, decode_public_key, encode_public_key, key_id_of
from vault.sealing.source import HEADER, SourceSignature, metadata_digest
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.documents import required_of
from vault.services.people import Principal

__all__ = [
    "HEADER",
    "DialerHistory",
    "DialerKeyInfo",
    "SourceSignature",
    "check_source",
    "list_keys",
    "load_history",
    "metadata_digest",
    "policy_findings",
    "register_key",
    "revoke_key",
    "source_findings",
]

_LABEL_MAX = 200


# -- administration ------------------------------------------------------------------------


def register_key(
    ctx: VaultContext, client: str, public_key: str, *, by: Principal, label: str = ""
) -> DialerKeyInfo:
    """Register a dialer host's public key (base64) for ``client``; logged with the key."""
    by.require_client(client, "admin")
    try:
        raw = decode_public_key(public_key)
    except ValueError as exc:
        raise InvalidRequest(
            [FieldError("public_key", str(exc))],
            hint="pass the public key `evidence-vault dialer keygen` printed",
        ) from None
    key_id, now = key_id_of(raw), ctx.clock()
    body = {"key": key_id, "pub": encode_public_key(raw), "by": by.name}
    if label:
        body["label"] = label[:_LABEL_MAX]
    try:
        with write_session(ctx.engine) as s:
            _require_client(s, client)
            if s.get(DialerKey, (client, key_id)) is not None:
                raise Conflict(
                    f"dialer key {key_id} is already registered for client {client!r}",
                    hint="a revoked key stays revoked: generate a new key for the host",
                )
            [done] = append_entries(
                s, client, [EntryDraft("dialer.registered", None, body)], now, ctx.log_keys(client)
            )
            row = DialerKey(
                client_id=client,
                key_id=key_id,
                public_key=raw,
                label=label[:_LABEL_MAX],
                registered_at=now,
                registered_seq=done.seq,
            )
            s.add(row)
            s.flush()
            info = _info(row)
    except IntegrityError as exc:  # registered concurrently
        raise Conflict(f"dialer key {key_id} is already registered") from exc
    checkpoint_after_commit(ctx, client)
    return info


def revoke_key(ctx: VaultContext, client: str, key_id: str, *, by: Principal) -> DialerKeyInfo:
    """Revoke a dialer key at once (idempotent; logged once): its signatures are refused."""
    by.require_client(client, "admin")
    now = ctx.clock()
    with write_session(ctx.engine) as s:
        row = s.get(DialerKey, (client, key_id))
        if row is None:
            raise NotFound(
                f"no dialer key {key_id!r} for client {client!r}",
                hint="list them with `evidence-vault dialer list`",
            )
        if row.revoked_at is None:
            body = {"key": key_id, "by": by.name}
            [done] = append_entries(
                s, client, [EntryDraft("dialer.revoked", None, body)], now, ctx.log_keys(client)
            )
            row.revoked_at, row.revoked_seq = now, done.seq
            s.add(row)
        info = _info(row)
    checkpoint_after_commit(ctx, client)
    return info


def list_keys(ctx: VaultContext, client: str) -> list[DialerKeyInfo]:
    with read_session(ctx.engine) as s:
        rows = s.exec(
            select(DialerKey)
            .where(DialerKey.client_id == client)
            .order_by(DialerKey.registered_seq)  # type: ignore[arg-type]
        )
        return [_info(r) for r in rows]


# -- at upload -----------------------------------------------------------------------------


def check_source(
    ctx: VaultContext,
    client: str,
    *,
    required: bool,
    signature: SourceSignature | None,
    clip_sha256: bytes,
    meta_sha256: bytes,
    recorded_at: str,
) -> dict[str, Any] | None:
    """The ``source`` of the entry body for a signed clip; None for an unsigned one.

    Refuses (before anything is stored) a missing signature where the campaign requires
    one, a key not registered for the client, a revoked key, and a signature that does not
    verify over this clip, metadata and recording time.
    """
    if signature is None:
        if required:
            raise SourceSignatureRequired(
                "the campaign takes only clips signed by a registered dialer key",
                hint="upload with the dialer host's key (`evidence-vault upload --key`, or "
                "the agent's `signing_key`)",
            )
        return None
    with read_session(ctx.engine) as s:
        row = s.get(DialerKey, (client, signature.key_id))
    if row is None:
        raise UnknownDialerKey(
            f"dialer key {signature.key_id} is not registered for this client",
            hint="an admin registers the host's public key with `evidence-vault dialer register`",
        )
    if row.revoked_at is not None:
        raise RevokedDialerKey(
            f"dialer key {signature.key_id} was revoked on {row.revoked_at:%Y-%m-%d}",
            hint="generate a new key on the dialer host (`evidence-vault dialer keygen`) "
            "and have an admin register it",
        )
    if not check_statement(
        bytes(row.public_key), signature.signature, clip_sha256, meta_sha256, recorded_at
    ):
        raise BadSourceSignature(
            f"the signature of dialer key {signature.key_id} does not verify over this clip, "
            "its metadata and recording time",
            hint="sign the statement of exactly the clip and metadata you upload "
            "(docs/formats.md, source statement)",
        )
    return {
        "key": signature.key_id,
        "pub": encode_public_key(bytes(row.public_key)),
        "clip": clip_sha256.hex(),
        "meta": meta_sha256.hex(),
        "sig": base64.b64encode(signature.signature).decode(),
    }


# -- verify --------------------------------------------------------------------------------


def load_history(ctx: VaultContext, client: str) -> DialerHistory:
    """Selected by the ``type`` column; the walk checks every row's column against its
    entry, so a lying column is itself a finding."""
    history = DialerHistory()
    with read_session(ctx.engine) as s:
        # sorted here: ORDER BY seq makes SQLite walk the whole log in seq order instead of
        # taking these few rows from the (client_id, type) index
        rows = s.exec(
            select(LogEntry.seq, LogEntry.entry).where(
                LogEntry.client_id == client,
                LogEntry.type.in_(DIALER_TYPES),  # type: ignore[attr-defined]
            )
        )
        for seq, raw in sorted(rows):
            try:
                history.add(seq, parse_entry(bytes(raw)))
            except ValueError:
                continue  # the walk reports the entry itself
    return history


def policy_findings(ctx: VaultContext, client: str, history: DialerHistory) -> list[Finding]:
    """Campaign rows whose requirements are not the ones the log last set: the row is what
    ingest and the reports obey, so a cleared signature flag would let unsigned clips in
    (each is then a finding too), a changed document list misstate "pending Textform"."""
    with read_session(ctx.engine) as s:
        rows = s.exec(select(Campaign).where(Campaign.client_id == client)).all()
    out = []
    for campaign in rows:
        out += _signature_policy(client, campaign, history)
        out += _documents_policy(client, campaign, history)
    return out


def _signature_policy(client: str, campaign: Campaign, history: DialerHistory) -> list[Finding]:
    policy = history.required(campaign.name)
    logged = policy[1] if policy is not None else False
    if bool(campaign.require_source_signature) == logged:
        return []
    row = "required" if campaign.require_source_signature else "optional"
    return [
        Finding(
            "modified",
            client,
            f"campaign {campaign.name!r} says source signatures are {row}, its log says "
            f"{'required' if logged else 'optional'}: {_CHANGED}; set the intended one with "
            f"`evidence-vault campaign signatures {campaign.name} --client {client} "
            "--required|--optional`",
        )
    ]


def _documents_policy(client: str, campaign: Campaign, history: DialerHistory) -> list[Finding]:
    logged = history.documents(campaign.name)
    row = required_of(campaign)
    if sorted(row) == sorted(logged):
        return []
    return [
        Finding(
            "modified",
            client,
            f"campaign {campaign.name!r} requires the Textform documents "
            f"{', '.join(row) or 'none'}, its log says {', '.join(logged) or 'none'}: "
            f"{_CHANGED}; set the intended ones with `evidence-vault campaign documents "
            f"{campaign.name} --client {client} --require KINDS|--none`",
        )
    ]


#: a campaign row that differs from its log: tampering, or set before policies were logged
_CHANGED = "the row was changed outside the vault, or set before the vault logged it"


def _require_client(s: Any, client: str) -> None:
    if s.get(Client, client) is None:
        raise NotFound(
            f"client {client!r} does not exist",
            hint="create it with `evidence-vault client add`",
        )


def _info(row: DialerKey) -> DialerKeyInfo:
    return DialerKeyInfo(
        key_id=row.key_id,
        client=row.client_id,
        public_key=encode_public_key(bytes(row.public_key)),
        label=row.label,
        registered_at=row.registered_at,
        revoked_at=row.revoked_at,
    )
