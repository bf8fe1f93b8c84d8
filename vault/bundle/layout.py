"""The evidence bundle's format: member names, versions, the checks, and the statements
the exporter writes and the verifier expects (``docs/formats.md``, "Evidence bundle").

Pure constants and functions: the exporter (``vault.services.export``) and the offline
verifier (:mod:`vault.bundle.verify`) both build on them, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from vault.report import V1_CHECKS

FORMAT = "evidence-vault bundle"
#: 2: report.html is checked (re-rendered from the checked members, byte for byte);
#: 3: proof.json names the entry's position ``seq``, as the CLI and the API do;
#: 4: court-ready evidence (time-stamps, witness cosignatures, documents, PDF report)
VERSION = 4
#: versions the verifier reads; a version 1 report is re-rendered the version 1 way
SUPPORTED_VERSIONS = (1, 2, 3, 4)

MANIFEST = "manifest.json"
EVIDENCE = "evidence.json"
ENTRY = "entry.json"
OPENINGS = "openings.json"
PROOF = "proof.json"
CHECKPOINT = "checkpoint.txt"
VERIFIER_KEY = "verifier-key.txt"
REPORT = "report.html"
AUDIO_DIR = "audio/"
#: every member but the manifest and the audio, in the order the exporter writes them
TEXT_MEMBERS = (EVIDENCE, ENTRY, OPENINGS, PROOF, CHECKPOINT, VERIFIER_KEY, REPORT)
#: the fields of manifest.json, none other
MANIFEST_FIELDS = frozenset({"format", "version", "record_id", "client", "created_at", "files"})

# Format version 4 (court-ready evidence) adds optional members, each checked when present.
# Their names are fixed here first so the parts built in parallel agree:
#: RFC 3161 time-stamp tokens of the bundle's checkpoint, one per TSA: ``timestamps/<tsa>.tsr``
TIMESTAMPS_DIR = "timestamps/"
#: the Textform documents sealed with the record: ``documents/<seq>-<kind><ext>``
DOCUMENTS_DIR = "documents/"
#: the dispute report as PDF/A-3b, the bundle's other members attached
REPORT_PDF = "report.pdf"
# Witness cosignatures (C2SP tlog-cosignature) are extra signature lines of checkpoint.txt.

#: file extension of the audio member, by the canonical media type of the clip
AUDIO_EXTENSIONS = {
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
}

#: the checks of a verdict, in order, and what each one establishes. Version 2 and 3
#: reports list exactly this text, so changing it needs a new bundle format VERSION.
CHECKS = {
    "archive": "the ZIP holds exactly the files of its manifest, under safe names, each "
    "with the listed SHA-256 and size (sizes checked before anything is inflated)",
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
    "statements": "every field of openings.json and proof.json is what the checked members say",
    "report": "report.html is exactly the report rendered from the checked members",
}

#: the check list a report of each format version shows ("How to verify")
REPORT_CHECKS = {1: V1_CHECKS, 2: CHECKS, 3: CHECKS}

# --- format 4: witness cosignatures (C2SP tlog-cosignature) ------------------------------
#: checkpoint.txt of a version 4 bundle carries the witnesses' cosignature lines after the
#: vault's signature; the verifier applies the N-of-M witness policy its user gives
#: (``docs/formats.md``, "Witness cosignatures"). Versions 1-3 get this check only when a
#: policy is given.
WITNESS_CHECKS = {
    "witnesses": "the checkpoint is cosigned by at least the number of witnesses the "
    "verifier requires, of the witness keys it names (C2SP tlog-cosignature/v1), and no "
    "cosignature by those witnesses fails to verify: independent witnesses saw this "
    "history of the log and no other one; without a witness policy the cosignatures are "
    "not checked",
}
CHECKS_V4 = {**CHECKS, **WITNESS_CHECKS}
REPORT_CHECKS[4] = CHECKS_V4

#: proof.json's statement of its algorithm
PROOF_ALGORITHM = "RFC 9162 §2.1.3, SHA-256; leaf hash = SHA-256(0x00 ‖ entry.json)"


def audio_member(record_id: str, media_type: str) -> str:
    """``audio/<record_id><ext>``; ``.bin`` for a media type without a known extension."""
    return f"{AUDIO_DIR}{record_id}{AUDIO_EXTENSIONS.get(media_type, '.bin')}"


def openings_scheme(audio: str) -> str:
    """openings.json's ``scheme``: how the commitments are computed, naming the members."""
    return (
        "commitment(salt, role, data) = hex(SHA-256(salt ‖ role ‖ 0x00 ‖ data)); "
        f"role clip: data = {audio}, role meta: data = {EVIDENCE}"
    )


def proof_position_field(version: int) -> str:
    """proof.json's name for the entry's position in the log: ``seq`` from version 3 on.

    Versions 1 and 2 called it ``leaf_index`` (RFC 9162's word); bundles already handed
    out keep that name and keep verifying.
    """
    return "leaf_index" if version < 3 else "seq"


def proof_statement(
    version: int,
    *,
    log: Any,
    record_id: Any,
    seq: Any,
    leaf_hash: str,
    tree_size: int,
    root_hash: str,
    hashes: Any,
) -> dict:
    """proof.json of a bundle of format ``version``: every field, none other.

    The verifier passes what the bundle's members say, whatever their type.
    """
    return {
        "log": log,
        "record_id": record_id,
        proof_position_field(version): seq,
        "leaf_hash": leaf_hash,
        "tree_size": tree_size,
        "root_hash": root_hash,
        "hashes": hashes,
        "algorithm": PROOF_ALGORITHM,
    }
