"""Exporting the evidence bundle of one record: a ZIP a lawyer can check without the vault.

The bundle holds the plaintext clip and document, so exporting it is an access like any
other: an ``evidence.accessed`` entry (``what = "bundle"``) naming the principal is
appended *before* anything is decrypted. The layout is :mod:`vault.bundle.layout`, the
offline checks :mod:`vault.bundle.verify`; the byte formats in ``docs/formats.md``
("Evidence bundle").

The ZIP is written to a temporary file next to the target and renamed into place, so a
crash or a failed decryption never leaves a partial bundle; the clip is streamed into it,
so memory stays bounded whatever the clip's length (except with report.pdf, which carries
the clip as an attachment: then the clip is held in memory once, see docs/operations.md).

Format 4 (the dispute report) also carries the record's chain of custody (custody.json)
and report.pdf, and the finished ZIP is checked by the offline verifier, with the vault's
own key pinned, *before* it is renamed into place: the report's "results of the checks"
state what that run found, and a bundle that fails it is never handed out.
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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import rfc8785
from sqlmodel import select

from vault.bundle import layout
from vault.bundle.court import court_facts
from vault.bundle.verify import verify_bundle
from vault.db import Campaign, LogEntry, Record, read_session
from vault.dispute_report import CustodyEvent, DisputeFacts, render_dispute_html
from vault.errors import FieldError, InvalidRequest, VaultError
from vault.ledger.cosignature import WitnessPolicy, listed_cosignatures
from vault.ledger.entry import format_time
from vault.report import ReportFacts, render_report
from vault.sealing import CommitmentHasher, commitment
from vault.sealing.timestamps import TrustRoots
from vault.services.checkpoints import (
    InclusionProof,
    inclusion_at,
    inclusion_for_record,
    log_verifier_key,
    make_checkpoint,
)
from vault.services.context import VaultContext
from vault.services.documents import OpenedDocument, opened_documents, required_of
from vault.services.people import Principal

# the decryption helper of retrieve: it checks AEAD tags and the committed ciphertext hash
from vault.services.retention import refuse_if_shredded
from vault.services.retrieve import get_record, open_object, record_access
from vault.services.timestamps import StoredTimestamp, stamp_checkpoint, timestamps_of
from vault.services.witnessing import configured, cosign_now
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
    custody: list[InclusionProof]  # format 4: accesses and holds, proofs to the same checkpoint
    custody_entries: dict[int, bytes]  # their exact bytes, by position
    #: the RFC 3161 tokens of the proof's checkpoint, one per TSA (format version 4)
    timestamps: list[StoredTimestamp]
    #: the record's Textform documents (format 4), each with its proof to ``proof``'s checkpoint
    documents: list[tuple[OpenedDocument, InclusionProof]]
    required: tuple[str, ...]


@dataclass(frozen=True)
class ReportOptions:
    """How a format 4 report is presented, and whether report.pdf is made."""

    language: str = "de"
    time_zone: str = "Europe/Berlin"  # the client's; the CLI defaults to [web] timezone
    pdf: bool = True


def export_bundle(
    ctx: VaultContext,
    record_id: str,
    out: str | os.PathLike,
    *,
    principal: str | Principal,
    client: str | None = None,
    reason: str | None = None,
    case: str | None = None,
    options: ReportOptions | None = None,
    version: int = layout.VERSION,
) -> Path:
    """Write the evidence bundle of ``record_id`` to ``out`` (a file, or a directory to put
    ``<record_id>.zip`` in) and return its path.

    With ``client``, a record of another client is reported missing, as everywhere.
    ``options`` presents the format 4 report; ``version`` 3 writes a bundle as the vault
    did before format 4 (the tests of older bundles start from one).
    """
    options = options or ReportOptions(time_zone=ctx.settings.web_timezone)
    _check_options(options)
    if version not in (3, layout.VERSION):
        raise ValueError(f"cannot export bundle format version {version}")
    rec = get_record(ctx, record_id, client=client)
    refuse_if_shredded(rec)
    target = _target(Path(out), rec.id)
    record_access(ctx, rec, principal, "bundle", reason=reason, case=case)
    contents = _gather(ctx, rec, version)
    evidence = rfc8785.dumps(contents.document)
    _expect(commitment(contents.salt, "meta", evidence) == contents.body["commitments"]["meta"])
    with atomic_output(target) as fh:
        with zipfile.ZipFile(fh, "w") as zf:
            keep = version >= 4 and options.pdf  # the PDF attaches the clip
            audio, clip = _write_audio(zf, ctx, contents, keep=keep)
            texts = {
                layout.EVIDENCE: evidence,
                layout.ENTRY: contents.entry,
                layout.OPENINGS: _json(_openings(contents)),
                layout.PROOF: _json(_proof(contents.proof, version)),
                layout.CHECKPOINT: contents.proof.checkpoint.encode(),
                layout.VERIFIER_KEY: (contents.verifier_key + "\n").encode(),
            }
            if version >= 4:
                texts |= {layout.timestamp_member(t.tsa): t.token for t in contents.timestamps}
                texts |= _document_texts(contents)
                texts[layout.CUSTODY] = _json(_custody(contents))
                facts = _dispute_facts(contents, audio, texts, options)
                texts[layout.REPORT] = render_dispute_html(facts).encode()
                if options.pdf:
                    pdf = _report_pdf(facts, audio, clip, texts)
                    texts[layout.REPORT_PDF] = _signed(ctx, pdf)
            else:
                texts[layout.REPORT] = _report(contents, audio, texts, version)
            when = contents.created_at
            written = [audio] + [_write_text(zf, n, d, when) for n, d in texts.items()]
            manifest = _manifest(contents, written, version, options)
            _write_text(zf, layout.MANIFEST, _json(manifest), when)
        if version >= 4:
            _check_as_exported(ctx, fh, contents.proof.checkpoint.encode())
    return target


def _check_options(options: ReportOptions) -> None:
    errors = []
    if options.language not in layout.REPORT_LANGUAGES:
        errors.append(
            FieldError("language", f"must be one of {', '.join(layout.REPORT_LANGUAGES)}")
        )
    try:
        ZoneInfo(options.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(
            FieldError(
                "time_zone",
                f"unknown time zone {options.time_zone!r}: give an IANA name such as "
                "Europe/Berlin",
            )
        )
    if errors:
        raise InvalidRequest(errors, subject="the report option", hint="no bundle was written")


def _check_as_exported(ctx: VaultContext, fh: Any, note: bytes) -> None:
    """Run the offline verifier on the finished ZIP, the vault's key pinned: the report's
    "results of the checks" are this run's, and a failing bundle is never renamed into place.

    Time-stamps are checked against the configured TSAs' roots and every cosignature the
    checkpoint carries against its configured witness key, so that "passed" in the report
    means checked. (A witness that did not answer leaves none: that is "not present".)"""
    fh.flush()
    fh.seek(0)
    tsas = ctx.settings.tsas
    verdict = verify_bundle(
        fh,
        key=log_verifier_key(ctx),
        tsa_roots=TrustRoots.from_files([t.roots for t in tsas]) if tsas else None,
        witnesses=_present_witnesses(ctx, note),
    )
    if not verdict.ok:
        failed = ", ".join(c.name for c in verdict.failed)
        raise VaultError(
            f"the bundle failed its own checks ({failed}); no bundle was written",
            hint="run `evidence-vault verify` and report this as a bug",
        )
    fh.seek(0, os.SEEK_END)


def _present_witnesses(ctx: VaultContext, note: bytes) -> WitnessPolicy | None:
    """A policy of the configured witnesses that cosigned ``note``, all of them required."""
    listed = {(c.witness, c.key_id) for c in listed_cosignatures(note)}
    keys = tuple(k for _w, k in configured(ctx) if (k.name, k.key_id.hex()) in listed)
    return WitnessPolicy(keys, len(keys)) if keys else None


def _target(out: Path, record_id: str) -> Path:
    target = out / f"{record_id}.zip" if out.is_dir() else out
    # checked before the access is logged: a typo should not leave a custody entry behind
    if not target.parent.is_dir():
        raise VaultError(
            f"cannot write the bundle: {target.parent} is not a directory",
            hint="give a file path in an existing directory, or a directory",
        )
    return target


def _gather(ctx: VaultContext, rec: Record, version: int) -> _Contents:
    entry = _sealed_entry(ctx, rec)
    custody: list[InclusionProof] = []
    custody_entries: dict[int, bytes] = {}
    if version >= 4:
        # one checkpoint covering this very export's access entry: the custody list ends
        # with it, and the record's entry is proven against the same tree
        # (the witnesses are asked now; one that does not answer leaves it uncosigned)
        cp = cosign_now(ctx, rec.client_id, make_checkpoint(ctx, rec.client_id))
        proof = inclusion_at(ctx, rec.client_id, rec.seq, cp, record_id=rec.id)
        custody = [
            inclusion_at(ctx, rec.client_id, seq, cp, record_id=rec.id)
            for seq in _custody_seqs(ctx, rec, cp.size)
        ]
        custody_entries = _entry_bytes(ctx, rec.client_id, [p.seq for p in custody])
        documents = [
            (d, inclusion_at(ctx, rec.client_id, d.row.seq, cp, record_id=rec.id))
            for d in opened_documents(ctx, rec)
        ]
    else:
        documents = []  # format 4 brought the documents
        # makes a checkpoint first when none covers the entry yet (e.g. a fresh record)
        proof = inclusion_for_record(ctx, rec.id, rec.client_id)
    opened = json.loads(b"".join(open_object(ctx, rec, "meta")))
    # a checkpoint the timer has not stamped yet (a fresh one, or a TSA outage) gets its
    # chance now; a TSA that fails leaves the bundle without its token, never without a bundle
    stamp_checkpoint(ctx, rec.client_id, proof.tree_size)
    with read_session(ctx.engine) as s:
        campaign = s.get(Campaign, rec.campaign_id)
    return _Contents(
        rec=rec,
        entry=entry,
        body=json.loads(entry)["body"],
        salt=bytes.fromhex(opened["salt"]),
        document=opened["document"],
        proof=proof,
        verifier_key=log_verifier_key(ctx),
        created_at=ctx.clock(),
        custody=custody,
        custody_entries=custody_entries,
        timestamps=timestamps_of(ctx, rec.client_id, proof.tree_size),
        documents=documents,
        required=required_of(campaign),
    )


def _custody_seqs(ctx: VaultContext, rec: Record, size: int) -> list[int]:
    """The positions of the record's access and hold entries under a tree of ``size``."""
    with read_session(ctx.engine) as s:
        rows = s.exec(
            select(LogEntry.seq)
            .where(
                LogEntry.client_id == rec.client_id,
                LogEntry.record_id == rec.id,
                LogEntry.type.in_(layout.CUSTODY_TYPES),  # type: ignore[attr-defined]
                LogEntry.seq < size,
            )
            .order_by(LogEntry.seq)  # type: ignore[arg-type]
        ).all()
    return list(rows)


def _entry_bytes(ctx: VaultContext, client: str, seqs: list[int]) -> dict[int, bytes]:
    with read_session(ctx.engine) as s:
        rows = s.exec(
            select(LogEntry).where(
                LogEntry.client_id == client,
                LogEntry.seq.in_(seqs),  # type: ignore[attr-defined]
            )
        ).all()
    return {row.seq: bytes(row.entry) for row in rows}


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


def _write_audio(
    zf: zipfile.ZipFile, ctx: VaultContext, c: _Contents, *, keep: bool = False
) -> tuple[_Written, bytes | None]:
    """Stream the decrypted clip in, stored (audio does not compress), checking its
    commitment; with ``keep``, also return its bytes (for the PDF's attachment)."""
    name = layout.audio_member(c.rec.id, c.rec.media_type)
    info = _zip_info(name, c.created_at, zipfile.ZIP_STORED)
    info.file_size = c.rec.clip_size  # lets zipfile choose ZIP64 up front for a huge clip
    digest, commit = hashlib.sha256(), CommitmentHasher(c.salt, "clip")
    kept = bytearray() if keep else None
    with zf.open(info, "w") as dst:
        for chunk in open_object(ctx, c.rec, "clip"):
            digest.update(chunk)
            commit.update(chunk)
            dst.write(chunk)
            if kept is not None:
                kept += chunk
    _expect(commit.hexdigest() == c.body["commitments"]["clip"])
    return _Written(name, digest.hexdigest(), commit.size), None if kept is None else bytes(kept)


def _write_text(zf: zipfile.ZipFile, name: str, data: bytes, when: datetime) -> _Written:
    zf.writestr(_zip_info(name, when, zipfile.ZIP_DEFLATED), data)
    return _Written(name, hashlib.sha256(data).hexdigest(), len(data))


def _document_texts(c: _Contents) -> dict[str, bytes]:
    """documents/<seq>-<kind><ext> for each document, and documents/index.json."""
    texts: dict[str, bytes] = {}
    statements = []
    for doc, proof in c.documents:
        row = doc.row
        name = layout.document_member(row.seq, row.kind, row.media_type)
        texts[name] = doc.data
        statements.append(
            {
                "member": name,
                "seq": row.seq,
                "entry": doc.entry.decode("utf-8"),
                "salt": doc.salt.hex(),
                "hashes": proof.hashes,
            }
        )
    have = {doc.row.kind for doc, _ in c.documents}
    index = {
        "record_id": c.rec.id,
        "required": list(c.required),
        "missing": [k for k in c.required if k not in have],
        "documents": statements,
    }
    texts[layout.DOCUMENTS_INDEX] = _json(index)
    return texts


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _openings(c: _Contents) -> dict:
    return {
        "record_id": c.rec.id,
        "salt": c.salt.hex(),
        "commitments": c.body["commitments"],
        "scheme": layout.openings_scheme(layout.audio_member(c.rec.id, c.rec.media_type)),
    }


def _proof(p: InclusionProof, version: int) -> dict:
    return layout.proof_statement(
        version,
        log=p.client,
        record_id=p.record_id,
        seq=p.seq,
        leaf_hash=p.leaf_hash,
        tree_size=p.tree_size,
        root_hash=p.root_hash,
        hashes=p.hashes,
    )


def _manifest(c: _Contents, written: list[_Written], version: int, o: ReportOptions) -> dict:
    manifest = {
        "format": layout.FORMAT,
        "version": version,
        "record_id": c.rec.id,
        "client": c.rec.client_id,
        "created_at": format_time(c.created_at),
        "files": {w.name: {"sha256": w.sha256, "size": w.size} for w in written},
    }
    if version >= 4:
        manifest |= {"language": o.language, "time_zone": o.time_zone}
    return manifest


def _custody(c: _Contents) -> dict:
    """custody.json: each entry as its exact (canonical, so JSON-safe) text, with its proof."""
    entries = c.custody_entries
    return {
        "record_id": c.rec.id,
        "tree_size": c.proof.tree_size,
        "entries": [
            {"seq": p.seq, "entry": entries[p.seq].decode("utf-8"), "hashes": p.hashes}
            for p in c.custody
        ],
    }


# --- the human-readable report -----------------------------------------------------------


def _report(c: _Contents, audio: _Written, texts: dict[str, bytes], version: int) -> bytes:
    """report.html of format 3, from exactly the facts the verifier renders it from again."""
    return render_report(_report_facts(c, audio, texts, version)).encode()


def _report_facts(
    c: _Contents, audio: _Written, texts: dict[str, bytes], version: int
) -> ReportFacts:
    return ReportFacts(
        version=version,
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
        checks=layout.REPORT_CHECKS[version],
    )


def _dispute_facts(
    c: _Contents, audio: _Written, texts: dict[str, bytes], o: ReportOptions
) -> DisputeFacts:
    """The format 4 report's facts: exactly what the verifier derives from the members."""
    custody = json.loads(texts[layout.CUSTODY])["entries"]
    events = []
    for item in custody:
        entry = json.loads(item["entry"])
        events.append(CustodyEvent(entry["seq"], entry["time"], entry["type"], entry["body"]))
    names = [audio.name, *texts, layout.REPORT, layout.REPORT_PDF] if o.pdf else []
    court = court_facts(texts, o.language)
    return DisputeFacts(
        base=_report_facts(c, audio, texts, layout.VERSION),
        language=o.language,
        time_zone=o.time_zone,
        custody=tuple(events),
        required_documents=court.required_documents,
        documents=court.documents,
        timestamps=court.timestamps,
        witnesses=court.witnesses,
        attachments=tuple(layout.pdf_attachments(names)),
    )


def _signed(ctx: VaultContext, pdf: bytes) -> bytes:
    """report.pdf signed (PAdES) when ``[report]`` names a key, else as it is."""
    settings = ctx.settings
    if settings.report_sign_key is None or settings.report_sign_cert is None:
        return pdf
    from vault.sealing.pdf_signature import PdfSigning, sign_pdf

    signing = PdfSigning(
        settings.report_sign_key,
        settings.report_sign_cert,
        settings.report_sign_chain,
        settings.report_tsa_url,
    )
    try:
        return sign_pdf(pdf, signing)
    except Exception as exc:  # a TSA outage, an unreadable key: no unsigned surprise
        raise VaultError(
            f"report.pdf could not be signed ({type(exc).__name__}); no bundle was written",
            hint="check [report] sign_key, sign_cert and tsa_url, or export with --no-pdf",
        ) from None


def _report_pdf(
    facts: DisputeFacts, audio: _Written, clip: bytes | None, texts: dict[str, bytes]
) -> bytes:
    from vault.dispute_pdf import render_report_pdf  # WeasyPrint: only when a PDF is made

    files = {audio.name: clip or b"", **texts}
    return render_report_pdf(facts, {n: files[n] for n in facts.attachments})
