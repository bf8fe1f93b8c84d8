"""Exporting the evidence bundle of one record: a ZIP a lawyer can check without the vault.

The bundle holds the plaintext clip and document, so exporting it is an access like any
other: an ``evidence.accessed`` entry (``what = "bundle"``) naming the principal is
appended *before* anything is decrypted. The layout and the offline checks are in
``vault.bundle``; the byte formats in ``docs/formats.md`` ("Evidence bundle").

The ZIP is written to a temporary file next to the target and renamed into place, so a
crash or a failed decryption never leaves a partial bundle; the clip is streamed into it,
so memory stays bounded whatever the clip's length.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shlex
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785
from sqlmodel import select

from vault import bundle as layout
from vault.db import LogEntry, Record, read_session
from vault.errors import VaultError
from vault.ledger.entry import format_time
from vault.sealing import CommitmentHasher, commitment
from vault.services.checkpoints import InclusionProof, inclusion_for_record, log_verifier_key
from vault.services.context import VaultContext
from vault.services.people import Principal

# the decryption helper of retrieve: it checks AEAD tags and the committed ciphertext hash
from vault.services.retention import refuse_if_shredded
from vault.services.retrieve import _open_object, get_record, record_access
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
) -> Path:
    """Write the evidence bundle of ``record_id`` to ``out`` (a file, or a directory to put
    ``<record_id>.zip`` in) and return its path.

    With ``client``, a record of another client is reported missing, as everywhere.
    """
    rec = get_record(ctx, record_id, client=client)
    refuse_if_shredded(rec)
    target = _target(Path(out), rec.id)
    record_access(ctx, rec, principal, "bundle")
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
        texts[layout.REPORT] = render_report(contents, audio, texts, target.name).encode()
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
    # makes a checkpoint first when none covers the entry yet (e.g. a fresh record)
    proof = inclusion_for_record(ctx, rec.id, rec.client_id)
    opened = json.loads(b"".join(_open_object(ctx, rec, "meta")))
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
        for chunk in _open_object(ctx, c.rec, "clip"):
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
        "scheme": "commitment(salt, role, data) = hex(SHA-256(salt ‖ role ‖ 0x00 ‖ data)); "
        f"role clip: data = {layout.audio_member(c.rec.id, c.rec.media_type)}, "
        f"role meta: data = {layout.EVIDENCE}",
    }


def _proof(p: InclusionProof) -> dict:
    return {
        "log": p.client,
        "record_id": p.record_id,
        "leaf_index": p.seq,
        "leaf_hash": p.leaf_hash,
        "tree_size": p.tree_size,
        "root_hash": p.root_hash,
        "hashes": p.hashes,
        "algorithm": "RFC 9162 §2.1.3, SHA-256; leaf hash = SHA-256(0x00 ‖ entry.json)",
    }


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

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60em; margin: 2em auto;
       padding: 0 1em; color: #111; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em;
     border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .25em .6em .25em 0; }
th { width: 16em; font-weight: 600; }
code, pre, .hash { font-family: ui-monospace, monospace; font-size: .9em;
                   overflow-wrap: anywhere; }
pre { background: #f4f4f4; padding: .6em; white-space: pre-wrap; }
.note { background: #fff8dc; padding: .6em; border-left: 4px solid #d4a017; }
"""


def render_report(c: _Contents, audio: _Written, texts: dict[str, bytes], bundle: str) -> str:
    """A self-contained HTML page: no scripts, no external resources, every value escaped."""
    ev, facts = c.document.get("evidence", {}), c.document.get("audio", {})
    sections = [
        ("Who was called", _called(ev)),
        ("When", _when(ev, c)),
        ("Campaign and order", _order(ev)),
        ("Consent", _consent(ev)),
        ("Identity confirmation", _identity(ev)),
        ("Declaration of intent", _intent(ev)),
        ("Withdrawal notice", [("Span in the clip", _span(ev.get("withdrawal_notice_span_ms")))]),
        ("Audio", _audio(facts, audio)),
        ("Hashes and commitments", _hashes(c, audio, texts)),
        ("Position in the log", _position(c)),
    ]
    body = "".join(f"<h2>{_e(title)}</h2>{_table(rows)}" for title, rows in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        # even if a value slipped through unescaped, nothing could load or run
        "<meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Evidence bundle {_e(c.rec.id)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Evidence of record <code>{_e(c.rec.id)}</code></h1>"
        "<p class='note'>This report is a readable copy of the evidence in this bundle. It "
        "is not itself signed: what proves the evidence are the other files, checked as "
        "described under <a href='#verify'>How to verify</a>. The bundle contains personal "
        "data; handle it accordingly.</p>"
        f"{body}{_checkpoint(c)}{_how_to_verify(c, bundle)}</body></html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _seconds(ms: Any) -> str:
    return f"{ms / 1000:.3f} s" if isinstance(ms, int) else "—"


def _span(span: Any) -> str:
    if not (isinstance(span, list) and len(span) == 2):
        return "not marked"
    start, end = span
    return f"{_seconds(start)} to {_seconds(end)} into the clip ({_seconds(end - start)})"


def _called(ev: dict) -> list[tuple[str, Any]]:
    confirmed = ev.get("identity", {}).get("confirmed", {})
    rows: list[tuple[str, Any]] = [("Phone number", ev.get("callee", {}).get("phone", "—"))]
    rows += [(f"Confirmed {k.replace('_', ' ')}", v) for k, v in sorted(confirmed.items())]
    return rows


def _when(ev: dict, c: _Contents) -> list[tuple[str, Any]]:
    return [
        ("Recorded at (UTC)", ev.get("recorded_at", "—")),
        ("Sealed in the vault at (UTC)", json.loads(c.entry)["time"]),
        ("Kept until (UTC)", c.body.get("retain_until", "—")),
        ("Bundle made at (UTC)", format_time(c.created_at)),
    ]


def _order(ev: dict) -> list[tuple[str, Any]]:
    return [
        ("Client", ev.get("client", "—")),
        ("Campaign", ev.get("campaign", "—")),
        ("Order reference", ev.get("order_ref", "—")),
        ("Call id / segment", f"{ev.get('call_id', '—')} / {ev.get('segment', '—')}"),
        ("Agent", ev.get("agent_id", "—")),
    ]


def _consent(ev: dict) -> list[tuple[str, Any]]:
    consent = ev.get("consent", {})
    rows: list[tuple[str, Any]] = [
        ("Consent to recording at", f"{_seconds(consent.get('recording_at_ms'))} into the clip")
    ]
    advertising = consent.get("advertising")
    if advertising:
        rows += [
            ("Advertising consent: source", advertising.get("source", "—")),
            ("Advertising consent: obtained at", advertising.get("obtained_at", "—")),
            ("Advertising consent: reference", advertising.get("reference", "—")),
        ]
    return rows


def _identity(ev: dict) -> list[tuple[str, Any]]:
    identity = ev.get("identity", {})
    return [
        ("Method", identity.get("method", "—")),
        ("Confirmed", ", ".join(sorted(identity.get("confirmed", {}))) or "—"),
        ("Span in the clip", _span(identity.get("span_ms"))),
    ]


def _intent(ev: dict) -> list[tuple[str, Any]]:
    intent = ev.get("intent", {})
    return [
        ("Product", intent.get("product", "—")),
        ("Price", intent.get("price", "—")),
        ("Term", intent.get("term", "—")),
        ("Statement", intent.get("statement", "—")),
        ("Span in the clip", _span(intent.get("span_ms"))),
    ]


def _audio(facts: dict, audio: _Written) -> list[tuple[str, Any]]:
    return [
        ("File in this bundle", audio.name),
        ("Media type / codec", f"{facts.get('media_type', '—')} / {facts.get('codec', '—')}"),
        ("Duration", _seconds(facts.get("duration_ms"))),
        ("Sample rate / channels", f"{facts.get('sample_rate', '—')} Hz / {facts.get('channels')}"),
        ("Size", f"{audio.size} bytes"),
    ]


def _hashes(c: _Contents, audio: _Written, texts: dict[str, bytes]) -> list[tuple[str, Any]]:
    commitments = c.body["commitments"]
    return [
        ("SHA-256 of the audio file", audio.sha256),
        (f"SHA-256 of {layout.EVIDENCE}", hashlib.sha256(texts[layout.EVIDENCE]).hexdigest()),
        ("Commitment to the audio (in the log)", commitments["clip"]),
        ("Commitment to the evidence (in the log)", commitments["meta"]),
        ("Commitment salt", c.salt.hex()),
        ("Log entry hash (Merkle leaf)", c.proof.leaf_hash),
    ]


def _position(c: _Contents) -> list[tuple[str, Any]]:
    return [
        ("Log (client)", c.proof.client),
        ("Entry number (seq)", c.proof.seq),
        ("Checkpoint tree size", c.proof.tree_size),
        ("Checkpoint root hash", c.proof.root_hash),
        ("Vault's verifier key (as shipped)", c.verifier_key),
    ]


def _checkpoint(c: _Contents) -> str:
    return f"<h2>Signed checkpoint</h2><pre>{_e(c.proof.checkpoint)}</pre>"


def _how_to_verify(c: _Contents, bundle: str) -> str:
    command = f'evidence-vault verify-bundle {shlex.quote(bundle)} --key "$VAULT_KEY"'
    checks = "".join(
        f"<li><code>{_e(name)}</code>: {_e(meaning)}</li>"
        for name, meaning in layout.CHECKS.items()
    )
    return (
        "<h2 id='verify'>How to verify</h2>"
        "<p>Obtain the vault's verifier key from the vault operator through a channel you "
        "trust (they print it with <code>evidence-vault log key</code>), put it in "
        "<code>VAULT_KEY</code>, and run, on any machine, without access to the vault:</p>"
        f"<pre>{_e(command)}</pre>"
        "<p>Compare the key you obtained with the one shipped in this bundle "
        f"(<code>{_e(c.verifier_key)}</code>): do not just copy it from here — whoever "
        "handed you the bundle could have replaced both. Without <code>--key</code> the "
        "check uses the shipped key and says so.</p>"
        f"<p>Every check must pass:</p><ul>{checks}</ul>"
        "<p>Each check can also be redone with standard tools: the formats are in the "
        "vault's <code>docs/formats.md</code> (sections “Commitment”, “Log entries”, "
        "“Merkle tree”, “Checkpoints” and “Evidence bundle”).</p>"
    )
