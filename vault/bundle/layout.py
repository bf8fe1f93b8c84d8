"""The evidence bundle's format: member names, versions, the checks, and the statements
the exporter writes and the verifier expects (``docs/formats.md``, "Evidence bundle").

Pure constants and functions: the exporter (``vault.services.export``) and the offline
verifier (:mod:`vault.bundle.verify`) both build on them, so they cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Any

from vault.report import V1_CHECKS

FORMAT = "evidence-vault bundle"
#: 2: report.html is checked (re-rendered from the checked members, byte for byte);
#: 3: proof.json names the entry's position ``seq``, as the CLI and the API do;
#: 4: the dispute report (German by default, custody.json, report.pdf), Textform
#:    documents, time-stamps, witness cosignatures; see the version 4 blocks below
VERSION = 4
#: versions the verifier reads; each version's report is re-rendered that version's way
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
#: version 4 adds how the report is presented: its language and the client's time zone
#: (choices of whoever exported, not facts: the facts shown are the sealed ones)
MANIFEST_FIELDS_V4 = MANIFEST_FIELDS | {"language", "time_zone"}
#: the languages of a version 4 report
REPORT_LANGUAGES = ("de", "en")

# Format version 4 (court-ready evidence) adds optional members, each checked when present.
# Their names are fixed here first so the parts built in parallel agree:
#: RFC 3161 time-stamp tokens of the bundle's checkpoint, one per TSA: ``timestamps/<tsa>.tsr``
TIMESTAMPS_DIR = "timestamps/"
#: the Textform documents sealed with the record: ``documents/<seq>-<kind><ext>``
DOCUMENTS_DIR = "documents/"
#: the dispute report as PDF/A-3b, the bundle's other members attached (optional: an
#: export may leave it out, ``--no-pdf``)
REPORT_PDF = "report.pdf"
#: the record's chain of custody: its evidence.accessed and hold.* log entries, exact
#: bytes, each with an inclusion proof to the bundle's checkpoint (required in version 4)
CUSTODY = "custody.json"
#: the log entry types custody.json holds
CUSTODY_TYPES = ("evidence.accessed", "hold.placed", "hold.release_requested", "hold.released")
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

#: version 4 adds two checks; the dispute report states every check in German or English
#: (``vault.dispute_report``), the English text being this one
CHECKS_V4 = {
    **CHECKS,
    "custody": "every entry of custody.json is a canonical log entry about this record "
    "(an access or a hold) and is in the client's log: its inclusion proof leads to the "
    "checkpoint's root",
    "report-pdf": "report.pdf, when present, carries exactly the bundle's other files as "
    "attachments and shows exactly the text of the report rendered from the checked members",
}



def text_members(version: int) -> tuple[str, ...]:
    """The members every bundle of ``version`` holds, besides the manifest and the audio."""
    return (*TEXT_MEMBERS, CUSTODY) if version >= 4 else TEXT_MEMBERS


def manifest_fields(version: Any) -> frozenset[str]:
    return MANIFEST_FIELDS_V4 if version == 4 else MANIFEST_FIELDS


def pdf_attachments(names: Any) -> list[str]:
    """The members report.pdf carries, by the bundle's member names: all but the manifest
    (it lists the PDF's own hash) and the PDF itself, sorted."""
    return sorted(str(n) for n in names if n not in (MANIFEST, REPORT_PDF))

# --- format version 4: checkpoint time-stamps (RFC 3161) ---------------------------------
#: ``timestamps/<tsa>.tsr``: one TSA's DER TimeStampResp over SHA-256 of the text of
#: checkpoint.txt (the note without its signature lines); the TSA's name as configured
TIMESTAMP_MEMBER = re.compile(r"timestamps/([A-Za-z0-9][A-Za-z0-9_-]{0,63})\.tsr", re.ASCII)
TIMESTAMP_CHECK = {
    "timestamp": "each time-stamp in timestamps/ is an RFC 3161 token over the SHA-256 of "
    "checkpoint.txt's text, signed by a Time-Stamping Authority whose certificate (critical "
    "extended key usage id-kp-timeStamping) chains to a TSA root you trust: the checkpoint, "
    "and every entry under it, existed at the token's time"
}
CHECKS_V4 |= TIMESTAMP_CHECK


def timestamp_member(tsa: str) -> str:
    return f"{TIMESTAMPS_DIR}{tsa}.tsr"


# --- end of the time-stamp block ---------------------------------------------------------


#: the check list a report of each format version shows ("How to verify")
REPORT_CHECKS = {1: V1_CHECKS, 2: CHECKS, 3: CHECKS, 4: CHECKS_V4}

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


# -- Textform documents (format 4) ------------------------------------------------------------
# One block, kept apart: the time-stamp, witness and report parts edit this file too.

#: what the bundle says about its documents: for each, its member, log entry, commitment
#: salt and inclusion proof (to the bundle's checkpoint); and the kinds the campaign
#: requires and which of them are missing ("pending Textform")
DOCUMENTS_INDEX = DOCUMENTS_DIR + "index.json"
#: the fields of documents/index.json, and of each of its documents, none other
DOCUMENTS_INDEX_FIELDS = frozenset({"record_id", "required", "missing", "documents"})
DOCUMENT_FIELDS = frozenset({"member", "seq", "entry", "salt", "hashes"})
#: file extension of a document member, by its media type
DOCUMENT_EXTENSIONS = {"message/rfc822": ".eml", "application/pdf": ".pdf", "text/plain": ".txt"}
#: the check format 4 adds, and what it establishes
DOCUMENTS_CHECK = {
    "documents": "each file under documents/ is a Textform document the vault sealed with "
    "this record: its salted commitment equals the commitments.document of its "
    "document.sealed entry, that entry is of this record and client, and its Merkle "
    "inclusion proof leads to the checkpoint's root; documents/index.json says which "
    "required kinds are missing (pending Textform)",
}
#: the checks of a format 4 verdict, in order (the report part may extend it)
CHECKS_V4 |= DOCUMENTS_CHECK
CHECKS_V4 |= WITNESS_CHECKS  # last: the verifier runs it last


def has_documents(version: int) -> bool:
    """Whether bundles of this format carry documents/ (and the ``documents`` check)."""
    return version >= 4


def document_member(seq: int, kind: str, media_type: str) -> str:
    """``documents/<seq>-<kind><ext>``; ``.bin`` for a media type without an extension."""
    return f"{DOCUMENTS_DIR}{seq}-{kind}{DOCUMENT_EXTENSIONS.get(media_type, '.bin')}"
