"""The human-readable report of an evidence bundle (``report.html``): pure and deterministic.

The exporter renders it, and the offline verifier (``vault.bundle.verify``) renders it again
from the members it has checked and requires the bundle's copy to be byte-identical: so
what a person reads in the report is what the cryptography proves, or the bundle is
INVALID. Rendering therefore depends on :class:`ReportFacts` only, and any change to the
output needs a new bundle format version, the old versions rendering exactly as before
(bundles already handed out must keep verifying).

Pure code only (no database, no storage): it runs on an auditor's machine.
"""

from __future__ import annotations

import html
import json
import shlex
from dataclasses import dataclass
from typing import Any

#: what the "How to verify" section lists in format version 1 bundles, frozen: those
#: reports are re-rendered with exactly this text
V1_CHECKS = {
    "archive": "the ZIP is readable and holds exactly the files of its manifest, "
    "each with the listed SHA-256 and size",
    "entry": "entry.json is a canonical (RFC 8785) evidence.sealed log entry of this "
    "record and client",
    "clip-commitment": "the audio file is the clip the vault sealed: its salted "
    "commitment equals the entry's commitments.clip",
    "meta-commitment": "evidence.json is the document the vault sealed: its salted "
    "commitment equals the entry's commitments.meta",
    "audio": "the audio is what the entry describes: media type, duration and size",
    "inclusion": "the entry is in the client's log: its Merkle inclusion proof leads to "
    "the checkpoint's root at the checkpoint's tree size",
    "checkpoint-signature": "the checkpoint is signed by the vault's log key",
    "checkpoint-origin": "the checkpoint is of this client's log",
}

#: the bundle's file name in the verify command of a version 2+ report: the report must
#: not depend on what the file is called (it is renamed freely)
BUNDLE_PLACEHOLDER = "BUNDLE.zip"


@dataclass(frozen=True)
class ReportFacts:
    """Everything a report shows, each taken from a member the verifier checks."""

    version: int  # the bundle format version (manifest.json)
    record_id: str
    document: Any  # evidence.json, parsed
    entry: bytes  # entry.json, exact bytes
    salt: str  # hex, openings.json
    audio_name: str
    audio_sha256: str
    audio_size: int
    evidence_sha256: str
    log: str
    seq: int
    tree_size: int
    root_hash: str
    leaf_hash: str
    checkpoint: str  # checkpoint.txt, the signed note
    verifier_key: str  # verifier-key.txt without its final newline, as shipped
    created_at: str  # manifest.json: the exporter's statement, not sealed
    checks: dict[str, str]  # the checks the "How to verify" section lists
    bundle_name: str = BUNDLE_PLACEHOLDER  # version 1 reports name the exported file


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

_NOTE_V1 = (
    "This report is a readable copy of the evidence in this bundle. It is not itself "
    "signed: what proves the evidence are the other files, checked as described under "
    "<a href='#verify'>How to verify</a>. The bundle contains personal data; handle it "
    "accordingly."
)
_NOTE = (
    "This report is a readable copy of the evidence in this bundle. It is not itself "
    "signed: what proves the evidence are the other files, checked as described under "
    "<a href='#verify'>How to verify</a>, and the check renders this report again from "
    "them and fails if a single byte of it differs. The bundle contains personal data; "
    "handle it accordingly."
)


def render_report(f: ReportFacts) -> str:
    """A self-contained HTML page: no scripts, no external resources, every value escaped."""
    doc = f.document if isinstance(f.document, dict) else {}
    ev, facts = _dict(doc.get("evidence")), _dict(doc.get("audio"))
    entry = json.loads(f.entry)
    body = _dict(entry.get("body"))
    sections = [
        ("Who was called", _called(ev)),
        ("When", _when(ev, entry, body, f)),
        ("Campaign and order", _order(ev)),
        ("Consent", _consent(ev)),
        ("Identity confirmation", _identity(ev)),
        ("Declaration of intent", _intent(ev)),
        ("Withdrawal notice", [("Span in the clip", _span(ev.get("withdrawal_notice_span_ms")))]),
        ("Audio", _audio(facts, f)),
        ("Hashes and commitments", _hashes(body, f)),
        ("Position in the log", _position(f)),
    ]
    if isinstance(body.get("source"), dict):  # only signed clips: other reports are unchanged
        sections.insert(-2, ("Dialer host that signed the clip", _source(body["source"])))
    sections_html = "".join(f"<h2>{_e(title)}</h2>{_table(rows)}" for title, rows in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        # even if a value slipped through unescaped, nothing could load or run
        "<meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Evidence bundle {_e(f.record_id)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Evidence of record <code>{_e(f.record_id)}</code></h1>"
        f"<p class='note'>{_NOTE_V1 if f.version == 1 else _NOTE}</p>"
        f"{sections_html}{_checkpoint(f)}{_how_to_verify(f)}</body></html>\n"
    )


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


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


def _when(ev: dict, entry: dict, body: dict, f: ReportFacts) -> list[tuple[str, Any]]:
    made = "Bundle made at (UTC)"
    if f.version > 1:
        made += ", as stated by whoever made it (not sealed)"
    return [
        ("Recorded at (UTC)", ev.get("recorded_at", "—")),
        ("Sealed in the vault at (UTC)", entry["time"]),
        ("Kept until (UTC)", body.get("retain_until", "—")),
        (made, f.created_at),
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


def _audio(facts: dict, f: ReportFacts) -> list[tuple[str, Any]]:
    return [
        ("File in this bundle", f.audio_name),
        ("Media type / codec", f"{facts.get('media_type', '—')} / {facts.get('codec', '—')}"),
        ("Duration", _seconds(facts.get("duration_ms"))),
        ("Sample rate / channels", f"{facts.get('sample_rate', '—')} Hz / {facts.get('channels')}"),
        ("Size", f"{f.audio_size} bytes"),
    ]


def _hashes(body: dict, f: ReportFacts) -> list[tuple[str, Any]]:
    commitments = body["commitments"]
    return [
        ("SHA-256 of the audio file", f.audio_sha256),
        ("SHA-256 of evidence.json", f.evidence_sha256),
        ("Commitment to the audio (in the log)", commitments["clip"]),
        ("Commitment to the evidence (in the log)", commitments["meta"]),
        ("Commitment salt", f.salt),
        ("Log entry hash (Merkle leaf)", f.leaf_hash),
    ]


def _source(source: dict) -> list[tuple[str, Any]]:
    return [
        ("Dialer key id", source.get("key", "—")),
        ("Dialer public key (Ed25519)", source.get("pub", "—")),
        ("SHA-256 of the clip it signed", source.get("clip", "—")),
        ("Checked by", "verify-bundle (source-signature); its registration: the client's log"),
    ]


def _position(f: ReportFacts) -> list[tuple[str, Any]]:
    return [
        ("Log (client)", f.log),
        ("Entry number (seq)", f.seq),
        ("Checkpoint tree size", f.tree_size),
        ("Checkpoint root hash", f.root_hash),
        ("Vault's verifier key (as shipped)", f.verifier_key),
    ]


def _checkpoint(f: ReportFacts) -> str:
    return f"<h2>Signed checkpoint</h2><pre>{_e(f.checkpoint)}</pre>"


def _how_to_verify(f: ReportFacts) -> str:
    command = f'evidence-vault verify-bundle {shlex.quote(f.bundle_name)} --key "$VAULT_KEY"'
    checks = "".join(
        f"<li><code>{_e(name)}</code>: {_e(meaning)}</li>" for name, meaning in f.checks.items()
    )
    where = "" if f.version == 1 else f" (<code>{BUNDLE_PLACEHOLDER}</code> being this bundle)"
    return (
        "<h2 id='verify'>How to verify</h2>"
        "<p>Obtain the vault's verifier key from the vault operator through a channel you "
        "trust (they print it with <code>evidence-vault log key</code>), put it in "
        "<code>VAULT_KEY</code>, and run, on any machine, without access to the vault"
        f"{where}:</p>"
        f"<pre>{_e(command)}</pre>"
        "<p>Compare the key you obtained with the one shipped in this bundle "
        f"(<code>{_e(f.verifier_key)}</code>): do not just copy it from here — whoever "
        "handed you the bundle could have replaced both. Without <code>--key</code> the "
        "check uses the shipped key and says so.</p>"
        f"<p>Every check must pass:</p><ul>{checks}</ul>"
        "<p>Each check can also be redone with standard tools: the formats are in the "
        "vault's <code>docs/formats.md</code> (sections “Commitment”, “Log entries”, "
        "“Merkle tree”, “Checkpoints” and “Evidence bundle”).</p>"
    )
