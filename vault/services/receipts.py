"""Receipts: what an uploader keeps, with the inclusion proof once a checkpoint covers it.

The receipt of a stored record is rebuilt from its row and its ``evidence.sealed`` log
entry, so a retry (same call segment, same ``Idempotency-Key``) or a later ``GET`` gives
the uploader exactly what the first answer gave. The inclusion proof appears once a
signed checkpoint covers the entry: the vault signs one within ``checkpoint_seconds`` of
an append (and on a timer while serving), so a receipt fetched again later carries it.
"""

from __future__ import annotations

import json

from sqlmodel import select

from vault.db import Campaign, LogEntry, Record, read_session
from vault.errors import NotFound
from vault.ledger.entry import entry_hash
from vault.services.checkpoints import covering_checkpoint, inclusion_at
from vault.services.context import VaultContext
from vault.services.ingest import Receipt
from vault.services.people import Principal
from vault.services.retrieve import get_record, open_object


def stored_receipt(ctx: VaultContext, rec: Record, *, duplicate: bool) -> Receipt:
    """The receipt of a sealed record, from its row and its log entry."""
    with read_session(ctx.engine) as s:
        campaign = s.get(Campaign, rec.campaign_id)
        entry = s.exec(
            select(LogEntry).where(LogEntry.client_id == rec.client_id, LogEntry.seq == rec.seq)
        ).first()
    return Receipt(
        record_id=rec.id,
        client=rec.client_id,
        campaign=campaign.name if campaign else "",
        seq=rec.seq,
        entry_hash=entry_hash(bytes(entry.entry)) if entry else "",
        sealed_at=rec.sealed_at,
        duplicate=duplicate,
    )


def earlier_receipt(ctx: VaultContext, record_id: str) -> Receipt:
    """The receipt a repeated upload answers with (``duplicate``)."""
    return stored_receipt(ctx, get_record(ctx, record_id), duplicate=True)


def receipt_for(ctx: VaultContext, record_id: str, principal: Principal) -> Receipt:
    """The receipt of a record in ``principal``'s scope; others look exactly like missing."""
    rec = get_record(ctx, record_id, client=principal.client)
    receipt = stored_receipt(ctx, rec, duplicate=False)
    if principal.campaign is not None and receipt.campaign != principal.campaign:
        # another campaign's record, for a campaign-scoped dialer: the not-found of a
        # record that does not exist (vault.services.binding), word for word
        raise NotFound(f"no record {record_id!r}", hint="search with `evidence-vault find`")
    return receipt


def receipt_document(ctx: VaultContext, receipt: Receipt, *, opening: bool = False) -> dict:
    """The receipt, with the inclusion proof if the latest checkpoint already covers it;
    with ``opening``, also the entry and commitment salt (see :func:`opening_of`)."""
    body = receipt.to_dict()
    body["inclusion_proof"] = None
    if opening:
        body["opening"] = opening_of(ctx, receipt)
    cp = covering_checkpoint(ctx, receipt.client, receipt.seq)
    if cp is not None:
        proof = inclusion_at(ctx, receipt.client, receipt.seq, cp, record_id=receipt.record_id)
        body["inclusion_proof"] = proof.to_dict()
    return body


def opening_of(ctx: VaultContext, receipt: Receipt) -> dict:
    """The entry and the commitment salt, for the uploader who sent this very clip and
    metadata (a repeat only answers when both match the sealed ones): it learns nothing it
    did not hold, and can check the commitments without trusting the vault's word."""
    if receipt.salt is not None and receipt.entry is not None:  # sealed by this very call
        return {"entry": receipt.entry.decode("utf-8"), "salt": receipt.salt.hex()}
    rec = get_record(ctx, receipt.record_id)
    with read_session(ctx.engine) as s:
        entry = s.get(LogEntry, (rec.client_id, rec.seq))
    salt = receipt.salt
    if salt is None:  # a repeat: the salt is inside the sealed metadata object
        sealed = json.loads(b"".join(open_object(ctx, rec, "meta")))
        salt = bytes.fromhex(sealed["salt"])
    return {"entry": bytes(entry.entry).decode("utf-8"), "salt": salt.hex()}
