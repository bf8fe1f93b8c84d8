"""Exporting the evidence bundle of one record: a ZIP a lawyer can check without the vault.

The bundle holds the plaintext clip and document, so exporting it is an access like any
other: an ``evidence.accessed`` entry (``what = "bundle"``) naming the principal is
appended *before* anything is decrypted. The layout is :mod:`vault.bundle.layout`, the
offline checks :mod:`vault.bundle.verify`; the byte formats in ``docs/formats.md``
("Evidence bundle").

The ZIP is written to a temporary file next to the target and renamed into place, so a
crash or a failed decryption never leaves a partial bundle; the clip is streamed into it,
so memory stays bounded whatever the clip's length.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785
from sqlmodel import select

from vault.bundle import layout
from vault.db import LogEntry, Record, read_session
from vault.errors import VaultError
from vault.ledger.entry import format_time
from vault.report import ReportFacts, render_report
from vault.sealing import CommitmentHasher, commitment
from vault.services.checkpoints import InclusionProof, inclusion_at, log_verifier_key
from vault.services.context import VaultContext
from vault.services.people import Principal

# the decryption helper of retrieve: it checks AEAD tags and the committed ciphertext hash
from vault.services.retention import refuse_if_shredded
from vault.services.retrieve import get_record, open_object, record_access
from vault.services.witnessing import witnessed_checkpoint_covering
from vault.storage.files import atomic_output


@dataclass(frozen=True)
class _Written:
    """A member written to the ZIP: where, its SHA-256 and size."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class _Contents:
    """Everything the bundle states about a record, gathered before the ZIP is written."""

    rec: Record
    entry: bytes
    body: dict
    salt: bytes
    document: dict
    proof: InclusionProof
    verifier_key: str
    created_at: datetime


def export_bundle(
    ctx: VaultContext,
    record_id: str,
    out: str | os.PathLike,
    *,
    principal: str | Principal,
    client: str | None = None,
    reason: str | None = None,
    case: str | None = None,
) -> Path:
    """Write the evidence bundle of ``record_id`` to ``out`` (a file, or a directory to put
    ``<record_id>.zip`` in) and return its path.

    With ``client``, a record of another client is reported missing, as everywhere.
    """
    rec = get_record(ctx, record_id, client=client)
    refuse_if_shredded(rec)
    target = _target(Path(out), rec.id)
    record_access(ctx, rec, principal, "bundle", reason=reason, case=case)
    contents = _gather(ctx, rec)
    evidence = rfc8785.dumps(contents.document)
    _expect(commitment(contents.salt, "meta", evidence) == contents.body["commitments"]["meta"])
    with atomic_output(target) as fh, zipfile.ZipFile(fh, "w") as zf:
        audio = _write_audio(zf, ctx, contents)
        texts = {
            layout.EVIDENCE: evidence,
            layout.ENTRY: contents.entry,
            layout.OPENINGS: _json(_openings(contents)),
            layout.PROOF: _json(_proof(contents.proof)),
            layout.CHECKPOINT: contents.proof.checkpoint.encode(),
            layout.VERIFIER_KEY: (contents.verifier_key + "\n").encode(),
        }
        texts[layout.REPORT] = _report(contents, audio, texts)
        written = [audio] + [_write_text(zf, n, d, contents.created_at) for n, d in texts.items()]
        _write_text(zf, layout.MANIFEST, _json(_manifest(contents, written)), contents.created_at)
    return target


def _target(out: Path, record_id: str) -> Path:
    target = out / f"{record_id}.zip" if out.is_dir() else out
    # checked before the access is logged: a typo should not leave a custody entry behind
    if not target.parent.is_dir():
        raise VaultError(
            f"cannot write the bundle: {target.parent} is not a directory",
            hint="give a file path in an existing directory, or a directory",
        )
    return target


def _gather(ctx: VaultContext, rec: Record) -> _Contents:
    entry = _sealed_entry(ctx, rec)
    # the latest checkpoint covering the entry that the witnesses cosigned (with their
    # cosignature lines); made first when none covers the entry yet (e.g. a fresh record)
    cp = witnessed_checkpoint_covering(ctx, rec.client_id, rec.seq)
    proof = inclusion_at(ctx, rec.client_id, rec.seq, cp, record_id=rec.id)
    opened = json.loads(b"".join(open_object(ctx, rec, "meta")))
    return _Contents(
        rec=rec,
        entry=entry,
        body=json.loads(entry)["body"],
        salt=bytes.fromhex(opened["salt"]),
        document=opened["document"],
        proof=proof,
        verifier_key=log_verifier_key(ctx),
        created_at=ctx.clock(),
    )


def _sealed_entry(ctx: VaultContext, rec: Record) -> bytes:
    """The record's ``evidence.sealed`` entry, exactly the bytes the log hashed."""
    with read_session(ctx.engine) as s:
        row = s.exec(
            select(LogEntry).where(LogEntry.client_id == rec.client_id, LogEntry.seq == rec.seq)
        ).first()
    if row is None or row.type != "evidence.sealed" or row.record_id != rec.id:
        raise VaultError(
            f"the log entry of record {rec.id} is missing or is not its evidence.sealed entry",
            hint="run `evidence-vault verify`; no bundle was written",
        )
    return bytes(row.entry)


def _expect(holds: bool) -> None:
    # the vault must never hand out a bundle that its own verifier would reject
    if not holds:
        raise VaultError(
            "the decrypted evidence does not match the commitments in its log entry",
            hint="run `evidence-vault verify`; no bundle was written",
        )


# --- writing the ZIP ---------------------------------------------------------------------


def _zip_info(name: str, when: datetime, method: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = method
    info.external_attr = 0o644 << 16
    return info


def _write_audio(zf: zipfile.ZipFile, ctx: VaultContext, c: _Contents) -> _Written:
    """Stream the decrypted clip in, stored (audio does not compress), checking its commitment."""
    name = layout.audio_member(c.rec.id, c.rec.media_type)
    info = _zip_info(name, c.created_at, zipfile.ZIP_STORED)
    info.file_size = c.rec.clip_size  # lets zipfile choose ZIP64 up front for a huge clip
    digest, commit = hashlib.sha256(), CommitmentHasher(c.salt, "clip")
    with zf.open(info, "w") as dst:
        for chunk in open_object(ctx, c.rec, "clip"):
            digest.update(chunk)
            commit.update(chunk)
            dst.write(chunk)
    _expect(commit.hexdigest() == c.body["commitments"]["clip"])
    return _Written(name, digest.hexdigest(), commit.size)


def _write_text(zf: zipfile.ZipFile, name: str, data: bytes, when: datetime) -> _Written:
    zf.writestr(_zip_info(name, when, zipfile.ZIP_DEFLATED), data)
    return _Written(name, hashlib.sha256(data).hexdigest(), len(data))


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _openings(c: _Contents) -> dict:
    return {
        "record_id": c.rec.id,
        "salt": c.salt.hex(),
        "commitments": c.body["commitments"],
        "scheme": layout.openings_scheme(layout.audio_member(c.rec.id, c.rec.media_type)),
    }


def _proof(p: InclusionProof) -> dict:
    return layout.proof_statement(
        layout.VERSION,
        log=p.client,
        record_id=p.record_id,
        seq=p.seq,
        leaf_hash=p.leaf_hash,
        tree_size=p.tree_size,
        root_hash=p.root_hash,
        hashes=p.hashes,
    )


def _manifest(c: _Contents, written: list[_Written]) -> dict:
    return {
        "format": layout.FORMAT,
        "version": layout.VERSION,
        "record_id": c.rec.id,
        "client": c.rec.client_id,
        "created_at": format_time(c.created_at),
        "files": {w.name: {"sha256": w.sha256, "size": w.size} for w in written},
    }


# --- the human-readable report -----------------------------------------------------------


def _report(c: _Contents, audio: _Written, texts: dict[str, bytes]) -> bytes:
    """report.html, from exactly the facts the offline verifier renders it from again."""
    facts = ReportFacts(
        version=layout.VERSION,
        record_id=c.rec.id,
        document=c.document,
        entry=c.entry,
        salt=c.salt.hex(),
        audio_name=audio.name,
        audio_sha256=audio.sha256,
        audio_size=audio.size,
        evidence_sha256=hashlib.sha256(texts[layout.EVIDENCE]).hexdigest(),
        log=c.proof.client,
        seq=c.proof.seq,
        tree_size=c.proof.tree_size,
        root_hash=c.proof.root_hash,
        leaf_hash=c.proof.leaf_hash,
        checkpoint=c.proof.checkpoint,
        verifier_key=c.verifier_key,
        created_at=format_time(c.created_at),
        checks=layout.REPORT_CHECKS[layout.VERSION],
    )
    return render_report(facts).encode()
