"""Erasure requests (GDPR Art. 17): shred a data subject's evidence unless a hold keeps it.

Art. 17(3)(e) lets a controller keep data needed for legal claims: a record under an
active hold (an open dispute or a legal hold) is kept, and the report says which hold.
Everything else matching the request is crypto-shredded at once, before its retention
date; where the store's Object Lock still runs, the ciphertext objects stay until the
lock lapses and a retention run deletes them (they cannot be opened by anyone meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import select

from vault.db import Client, Record, read_session
from vault.errors import FieldError, InvalidEvidence, NotFound
from vault.evidence import normalise_phone
from vault.identifiers import REQUEST_REF, SLUG
from vault.sealing import keyed_hash
from vault.services.binding import LogTail
from vault.services.checkpoints import checkpoint_after_commit
from vault.services.context import VaultContext
from vault.services.retention import active_holds, purge_objects, shred_record


@dataclass
class ErasureReport:
    erased: list[str] = field(default_factory=list)
    kept: list[dict] = field(default_factory=list)
    already_shredded: list[str] = field(default_factory=list)
    objects_pending: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def erase(
    ctx: VaultContext,
    *,
    phone: str | None = None,
    record_id: str | None = None,
    client: str | None = None,
    request_ref: str = "art17",
) -> ErasureReport:
    """Shred every record of ``phone`` (optionally of one client) or the one ``record_id``."""
    if (phone is None) == (record_id is None):
        raise InvalidEvidence(
            [FieldError("request", "give exactly one of phone or record")],
            hint="erase by the data subject's phone number, or one record id",
        )
    if not REQUEST_REF.matches(request_ref):
        raise InvalidEvidence(
            [FieldError("request_ref", "must be 1-64 characters of letters, digits, . _ / : # -")]
        )
    records = _by_phone(ctx, phone, client) if phone else [_by_id(ctx, record_id, client)]
    report = ErasureReport()
    rule = f"GDPR Art. 17 request {request_ref}"
    tail = LogTail()
    for rec in records:
        if rec.shredded_at is not None:
            report.already_shredded.append(rec.id)
            continue
        if shred_record(ctx, rec.id, reason="erasure", rule=rule, tail=tail):
            report.erased.append(rec.id)
            if not purge_objects(ctx, rec.id):
                report.objects_pending.append(rec.id)
            continue
        with read_session(ctx.engine) as s:
            holds = active_holds(s, rec.id)
        report.kept.append(
            {
                "record_id": rec.id,
                "why": "kept for legal claims (Art. 17(3)(e)): "
                + "; ".join(f"hold {h.id} ({h.kind}, case {h.case_ref})" for h in holds),
            }
        )
    for c in sorted({r.client_id for r in records}):
        checkpoint_after_commit(ctx, c)
    return report


def _by_phone(ctx: VaultContext, phone: str, client: str | None) -> list[Record]:
    number = normalise_phone(phone).encode()
    with read_session(ctx.engine) as s:
        known = [c for c in s.exec(select(Client.id)) if SLUG.matches(c)]  # not the vault-wide log
        # only existing clients: an unknown name must not create an index key
        clients = [c for c in known if c == client] if client else known
        out: list[Record] = []
        for c in clients:
            digest = keyed_hash(ctx.keys.index_key(c), "phone", number)
            out += s.exec(
                select(Record)
                .where(Record.client_id == c, Record.phone_hash == digest)
                .order_by(Record.seq)
            )
    return out


def _by_id(ctx: VaultContext, record_id: str, client: str | None) -> Record:
    with read_session(ctx.engine) as s:
        rec = s.get(Record, record_id)
    if rec is None or (client is not None and rec.client_id != client):
        raise NotFound(f"no record {record_id!r}", hint="search with `evidence-vault find`")
    return rec
