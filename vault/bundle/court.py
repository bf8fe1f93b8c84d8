"""What the format 4 report shows of a bundle's Textform documents, time-stamps and
witness cosignatures: derived from the bundle's members alone.

The exporter renders report.html / report.pdf from these facts and the verifier renders
them again from the members it checked; the two must agree byte for byte. So nothing here
may depend on what a verifier brings (its TSA roots, its witness keys): a time-stamp shows
the TSA's stated time and whether it stamps this checkpoint, a cosignature its witness and
time; whether the TSA or the witness is trusted is the ``timestamp`` and ``witnesses``
checks' verdict, listed under the report's results. A member that does not parse shows
nothing here: its own check fails and says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from vault.bundle.layout import CHECKPOINT, DOCUMENTS_INDEX, TIMESTAMP_MEMBER
from vault.dispute_report import DocumentFact, TimestampFact, WitnessFact, text
from vault.ledger.checkpoint import NoteError
from vault.ledger.cosignature import listed_cosignatures
from vault.ledger.timestamps import INVALID, check_checkpoint_timestamp


@dataclass(frozen=True)
class CourtFacts:
    required_documents: tuple[str, ...] = ()
    documents: tuple[DocumentFact, ...] = ()
    timestamps: tuple[TimestampFact, ...] = ()
    witnesses: tuple[WitnessFact, ...] = ()


def court_facts(members: Mapping[str, bytes], language: str) -> CourtFacts:
    """The report's facts from ``members`` (name → bytes: the checkpoint, the documents
    index and the time-stamp tokens; other members are ignored)."""
    note = members.get(CHECKPOINT, b"")
    required, documents = _documents(members.get(DOCUMENTS_INDEX), language)
    return CourtFacts(
        required_documents=required,
        documents=documents,
        timestamps=_timestamps(members, note, language),
        witnesses=_witnesses(note, language),
    )


def _documents(
    index: bytes | None, language: str
) -> tuple[tuple[str, ...], tuple[DocumentFact, ...]]:
    try:
        parsed = json.loads(index) if index is not None else {}
        required = tuple(k for k in parsed.get("required", []) if isinstance(k, str))
        facts = []
        for statement in parsed.get("documents", []):
            entry = json.loads(statement["entry"])
            body = entry["body"]
            facts.append(
                DocumentFact(
                    str(body["kind"]),
                    str(body["media_type"]),
                    str(entry["time"]),
                    text(language, "doc_in_log"),
                )
            )
    except (ValueError, TypeError, KeyError, AttributeError):
        return (), ()
    return required, tuple(facts)


def _timestamps(
    members: Mapping[str, bytes], note: bytes, language: str
) -> tuple[TimestampFact, ...]:
    facts = []
    for name in sorted(members):
        match = TIMESTAMP_MEMBER.fullmatch(name)
        if match is None:
            continue
        # no roots: the imprint is checked and genTime read, the signature is not
        result = check_checkpoint_timestamp(match.group(1), members[name], note, None)
        if result.status == INVALID and not result.gen_time:
            facts.append(TimestampFact(result.tsa, "—", text(language, "ts_unreadable")))
        else:
            facts.append(TimestampFact(result.tsa, result.gen_time, text(language, "ts_imprint")))
    return tuple(facts)


def _witnesses(note: bytes, language: str) -> tuple[WitnessFact, ...]:
    try:
        listed = listed_cosignatures(note)
    except NoteError:  # a note that does not parse fails its own check
        return ()
    return tuple(
        WitnessFact(
            f"{c.witness}+{c.key_id}",
            _utc(c.timestamp),
            text(language, "witness_listed"),
        )
        for c in listed
    )


def _utc(posix: int | None) -> str:
    if posix is None:
        return "—"
    return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
