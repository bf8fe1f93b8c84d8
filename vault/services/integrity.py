"""One record's integrity, as named checks a person can read (the desk's integrity panel).

Each check passes or fails on its own and says why; none needs the plaintext:

* ``row`` — the record's row agrees with its authenticated log entries (tags, row digest);
* ``objects`` — the stored clip and evidence objects (the pinned versions) hash to the
  SHA-256 values committed in the sealed entry;
* ``inclusion`` — the sealed entry is in the latest signed checkpoint (RFC 9162 proof
  checked against the checkpoint's root);
* ``signature`` — that checkpoint's signature verifies with the vault's published log key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from vault.db import LogEntry, Record, read_session
from vault.errors import NotFound, ObjectMissing, TamperDetected, VaultError
from vault.ledger.checkpoint import Checkpoint, NoteError, open_note
from vault.ledger.entry import parse_entry
from vault.ledger.merkle import verify_inclusion
from vault.services.binding import check_record
from vault.services.checkpoints import (
    inclusion_at,
    latest_checkpoint_covering,
    log_verifier_key,
    log_verifiers,
)
from vault.services.context import VaultContext
from vault.storage import ChunkReader

CHECKS = ("row", "objects", "inclusion", "signature")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Integrity:
    checks: list[Check]
    tree_size: int | None
    root_hash: str | None
    verifier_key: str

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def check_integrity(ctx: VaultContext, rec: Record) -> Integrity:
    """Run the four checks on a record the caller may see (found by id and tenant)."""
    checks: list[Check] = []
    with read_session(ctx.engine) as s:
        try:
            check_record(s, ctx.log_keys(rec.client_id), rec)
            checks.append(Check("row", True, "the record agrees with its log entries"))
        except TamperDetected as exc:
            checks.append(Check("row", False, exc.message))
        sealed = s.exec(
            select(LogEntry).where(LogEntry.client_id == rec.client_id, LogEntry.seq == rec.seq)
        ).first()
    entry = parse_entry(bytes(sealed.entry)) if sealed is not None else {"body": {}}
    checks.append(_objects(ctx, rec, entry["body"].get("objects", {})))
    size = root = None
    try:
        cp = latest_checkpoint_covering(ctx, rec.client_id, rec.seq)
        proof = inclusion_at(ctx, rec.client_id, rec.seq, cp, record_id=rec.id)
        size, root = cp.size, cp.root_hash
        included = verify_inclusion(
            bytes.fromhex(proof.leaf_hash),
            proof.seq,
            proof.tree_size,
            [bytes.fromhex(h) for h in proof.hashes],
            bytes.fromhex(proof.root_hash),
        )
        checks.append(
            Check(
                "inclusion",
                included,
                f"entry {rec.seq} is in the checkpoint of {cp.size} entries"
                if included
                else "the inclusion proof does not lead to the checkpoint's root",
            )
        )
        checks.append(_signature(ctx, cp.note, cp.root_hash))
    except (VaultError, LookupError, ValueError) as exc:
        why = getattr(exc, "message", type(exc).__name__)
        checks.append(Check("inclusion", False, why))
        checks.append(Check("signature", False, why))
    return Integrity(checks, size, root, log_verifier_key(ctx))


def _objects(ctx: VaultContext, rec: Record, objects: dict) -> Check:
    if rec.shredded_at is not None and rec.purged_at is not None:
        return Check("objects", True, "the objects were deleted after crypto-shredding")
    for role in ("clip", "meta"):
        obj = objects.get(role, {})
        try:
            reader = ChunkReader(ctx.store.get(obj.get("key", ""), version_id=obj.get("version")))
            for _ in iter(lambda r=reader: r.read(1 << 20), b""):
                pass
        except (ObjectMissing, NotFound):
            return Check("objects", False, f"the stored {role} object is missing")
        if reader.hexdigest() != obj.get("sha256"):
            return Check("objects", False, f"the stored {role} object differs from the sealed one")
    return Check("objects", True, "clip and evidence objects match their sealed SHA-256")


def _signature(ctx: VaultContext, note: str, root_hash: str) -> Check:
    try:
        body, _ = open_note(note.encode(), log_verifiers(ctx))
        cp = Checkpoint.parse_body(body)
    except NoteError as exc:
        return Check("signature", False, exc.message)
    if cp.root.hex() != root_hash:
        return Check("signature", False, "the signed root is not the checkpoint's root")
    return Check("signature", True, "signed with the vault's published log key")
