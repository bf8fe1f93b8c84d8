"""Auditing a client's hash chain from its stored entries. Pure: rows in, findings out.

What this catches on its own: an edited entry (the next entry's ``prev`` or the head
no longer matches), a deleted entry (a gap in ``seq``), entries swapped between rows
(the ``seq`` inside the hashed JSON disagrees with the row), a truncated log (the head
says more entries exist than are stored), and entries that are not canonical JSON.
Checks against the stored objects and record rows are made by the verify service.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from vault.ledger.entry import (
    ENTRY_TYPES,
    GENESIS_PREV,
    entry_hash,
    parse_canonical,
    parse_entry,
)

#: the kinds of problem a finding can name
KINDS = (
    "modified",
    "missing",
    "reordered",
    "truncated",
    "forked",
    "bad-signature",
    "orphan",
    "unauthenticated",
    "shadowed",
    "lock",
)


@dataclass(frozen=True)
class Finding:
    kind: str
    client: str
    detail: str
    seq: int | None = None
    record: str | None = None
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = []
        if self.record:
            where.append(f"record {self.record}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.key:
            where.append(f"object {self.key}")
        return f"[{self.kind}] {', '.join(where) or self.client}: {self.detail}"


@dataclass(frozen=True)
class CheckedEntry:
    """An entry that parsed, with its position and hash, for the object checks."""

    seq: int
    hash: str
    entry: dict[str, Any]


def audit_chain(
    client: str, rows: Iterable[tuple[int, bytes]], head_size: int, head_hash: str | None
) -> Iterator[Finding | CheckedEntry]:
    """Walk ``(seq, entry bytes)`` rows in seq order; yield findings and the entries that parsed.

    ``head_hash`` None: the caller has no trusted head hash (an export checked offline,
    where signed checkpoints take that role).

    Streams: memory stays constant however long the log is.
    """
    walk = ChainWalk(client)
    for row_seq, raw in rows:
        yield from walk.step(row_seq, raw, entry_hash(raw))
    yield from walk.finish(head_size, head_hash)


class ChainWalk:
    """The state of :func:`audit_chain` between rows, for callers that feed it row by row.

    :meth:`step` is the whole audit of one row. :meth:`clean` and :meth:`advance` are its
    fast path for a verifier: ``clean`` returns the entry only when ``step`` would yield
    nothing but its :class:`CheckedEntry`, and changes nothing; ``advance`` then moves the
    walk past it exactly as ``step`` would have.
    """

    __slots__ = ("client", "expected_seq", "prev_hash", "prev_record")

    def __init__(self, client: str) -> None:
        self.client = client
        self.expected_seq, self.prev_hash = 0, GENESIS_PREV
        self.prev_record: str | None = None

    def step(self, row_seq: int, raw: bytes, this_hash: str) -> list[Finding | CheckedEntry]:
        """Findings for the row (``this_hash`` is its leaf hash, hex), then its entry."""
        client, expected_seq = self.client, self.expected_seq
        out: list[Finding | CheckedEntry] = []
        if row_seq != expected_seq:
            out.append(
                Finding(
                    "missing",
                    client,
                    f"entries {expected_seq}..{row_seq - 1} are missing",
                    seq=expected_seq,
                )
            )
        try:
            entry = parse_entry(raw)
        except ValueError as exc:
            out.append(
                Finding("modified", client, f"entry is not a valid entry: {exc}", seq=row_seq)
            )
            self.expected_seq, self.prev_hash, self.prev_record = row_seq + 1, this_hash, None
            return out
        out += _entry_findings(
            client, row_seq, entry, self.prev_hash, expected_seq, self.prev_record
        )
        out.append(CheckedEntry(seq=row_seq, hash=this_hash, entry=entry))
        self.advance(row_seq, this_hash, entry)
        return out

    def clean(self, row_seq: int, raw: bytes, this_hash: str) -> dict[str, Any] | None:
        """The entry if the row passes every check of :meth:`step`; None: ask ``step``."""
        if row_seq != self.expected_seq:
            return None
        entry = parse_canonical(raw)
        if (
            entry is None
            or entry.get("log") != self.client
            or entry.get("type") not in ENTRY_TYPES
            or entry.get("seq") != row_seq
            or entry.get("prev") != self.prev_hash
        ):
            return None
        return entry

    def advance(self, row_seq: int, this_hash: str, entry: dict[str, Any]) -> None:
        self.expected_seq, self.prev_hash = row_seq + 1, this_hash
        self.prev_record = entry.get("record")

    def finish(self, head_size: int, head_hash: str | None) -> Iterator[Finding]:
        """Findings about the end of the log against its head."""
        return _head_findings(self.client, self.expected_seq, self.prev_hash, head_size, head_hash)


def _entry_findings(
    client: str,
    row_seq: int,
    entry: dict[str, Any],
    prev_hash: str,
    expected_seq: int,
    prev_record: str | None,
) -> Iterator[Finding]:
    record = entry.get("record")
    if entry.get("log") != client:
        yield Finding("modified", client, "entry names another log", seq=row_seq, record=record)
    if entry.get("type") not in ENTRY_TYPES:
        yield Finding("modified", client, "entry has an unknown type", seq=row_seq, record=record)
    if entry.get("seq") != row_seq:
        yield Finding(
            "reordered",
            client,
            f"entry stored at position {row_seq} says it is entry {entry.get('seq')}",
            seq=row_seq,
            record=record,
        )
    elif entry.get("prev") != prev_hash and row_seq == expected_seq:
        # the previous entry's bytes changed after this one was chained to them
        yield Finding(
            "modified",
            client,
            f"entry {row_seq - 1} does not hash to the value entry {row_seq} chained to",
            seq=row_seq - 1,
            record=prev_record,
        )


def _head_findings(
    client: str, stored: int, last_hash: str, head_size: int, head_hash: str | None
) -> Iterator[Finding]:
    if stored < head_size:
        yield Finding(
            "truncated",
            client,
            f"the log head counts {head_size} entries but only {stored} are stored",
            seq=stored,
        )
    elif stored > head_size:
        yield Finding(
            "forked",
            client,
            f"{stored - head_size} entries are stored beyond the log head ({head_size})",
            seq=head_size,
        )
    elif head_hash is not None and last_hash != head_hash:
        yield Finding(
            "modified",
            client,
            "the last entry does not hash to the recorded log head",
            seq=stored - 1 if stored else None,
        )
