"""The dialer's CDR against the vault: calls without sealed evidence, evidence without a call.

The CDR export is CSV with a header row naming (in any order, any case) ``call_id`` and
optionally ``segment`` (default 1) and ``order_ref``; other columns are ignored. Calls and
records are matched on (call id, segment) within one client, optionally one campaign and a
window of recording times. Nothing here reads a clip or decrypts a document: the report
names ids, order references and times only (no PII).

``verify`` checks the record rows this report reads against the sealed log entries.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

from vault.db import Campaign, Client, Record, read_session
from vault.errors import FieldError, InvalidRequest, NotFound
from vault.ledger.entry import format_time
from vault.services.context import VaultContext

#: header spellings of the columns (lower case, spaces and dashes as underscores)
_ALIASES = {
    "call_id": ("call_id", "callid", "call", "uniqueid", "uuid"),
    "segment": ("segment", "seg"),
    "order_ref": ("order_ref", "orderref", "order", "order_reference"),
}
MAX_ERRORS = 20


@dataclass(frozen=True)
class Call:
    call_id: str
    segment: int
    order_ref: str | None
    line: int


@dataclass
class Reconciliation:
    client: str
    calls: int = 0
    records: int = 0
    #: calls of the CDR without a sealed record
    missing: list[dict[str, Any]] = field(default_factory=list)
    #: a record exists but its evidence was crypto-shredded
    shredded: list[dict[str, Any]] = field(default_factory=list)
    #: call and record match, the order references differ
    order_ref_mismatch: list[dict[str, Any]] = field(default_factory=list)
    #: sealed records (in the scope) without a call in the CDR; shredded ones are left out
    unmatched: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.shredded or self.order_ref_mismatch or self.unmatched)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "calls": self.calls,
            "records": self.records,
            "clean": self.clean,
            "missing": self.missing,
            "shredded": self.shredded,
            "order_ref_mismatch": self.order_ref_mismatch,
            "unmatched": self.unmatched,
        }


def read_calls(path: Path) -> list[Call]:
    """The calls of a CDR CSV file; InvalidRequest naming each bad line (never a value)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            [FieldError("calls", f"cannot be read as UTF-8 text ({type(exc).__name__})")]
        ) from None
    return parse_calls(io.StringIO(text))


def parse_calls(lines: Iterable[str]) -> list[Call]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise InvalidRequest([FieldError("calls", "is empty")], hint=_HINT)
    columns = _columns(header)
    calls, errors = [], []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        try:
            calls.append(_call(row, columns, line))
        except ValueError as exc:
            errors.append(FieldError(f"calls line {line}", str(exc)))
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise InvalidRequest(errors, hint=_HINT)
    return calls


_HINT = "a header row with call_id (and segment, order_ref), then one call per line"


def _columns(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower().replace(" ", "_").replace("-", "_") for h in header]
    columns = {}
    for column, aliases in _ALIASES.items():
        for i, name in enumerate(names):
            if name in aliases:
                columns[column] = i
                break
    if "call_id" not in columns:
        raise InvalidRequest([FieldError("calls line 1", "has no call_id column")], hint=_HINT)
    return columns


def _call(row: list[str], columns: dict[str, int], line: int) -> Call:
    def cell(name: str) -> str:
        i = columns.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    call_id = cell("call_id")
    if not call_id:
        raise ValueError("call_id is empty")
    raw_segment = cell("segment") or "1"
    if not raw_segment.isascii() or not raw_segment.isdigit() or int(raw_segment) < 1:
        raise ValueError("segment is not a positive whole number")
    return Call(call_id, int(raw_segment), cell("order_ref") or None, line)


def reconcile(
    ctx: VaultContext,
    client: str,
    calls: Iterable[Call],
    *,
    campaign: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Reconciliation:
    """Match the CDR's calls with the client's records (in ``campaign``, recorded in
    [since, until) when given)."""
    wanted: dict[tuple[str, int], Call] = {}
    for c in calls:
        wanted.setdefault((c.call_id, c.segment), c)
    out = Reconciliation(client, calls=len(wanted))
    seen: set[tuple[str, int]] = set()
    for rec, campaign_name in _records(ctx, client, campaign, since, until):
        out.records += 1
        key = (rec.call_id, rec.segment)
        call = wanted.get(key)
        if call is None:
            if rec.shredded_at is None:  # shredded by its rule or an erasure: not evidence
                out.unmatched.append(_record(rec, campaign_name))
            continue
        seen.add(key)
        if rec.shredded_at is not None:
            out.shredded.append(_record(rec, campaign_name) | {"line": call.line})
        elif call.order_ref is not None and call.order_ref != rec.order_ref:
            out.order_ref_mismatch.append(
                _record(rec, campaign_name) | {"cdr_order_ref": call.order_ref, "line": call.line}
            )
    for key, c in wanted.items():
        if key not in seen:
            out.missing.append(
                {"call_id": c.call_id, "segment": c.segment, "order_ref": c.order_ref}
                | {"line": c.line}
            )
    return out


def _records(
    ctx: VaultContext,
    client: str,
    campaign: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Iterator[tuple[Record, str]]:
    with read_session(ctx.engine) as s:
        if s.get(Client, client) is None:
            raise NotFound(
                "no such client",
                hint="check --client, or list them with `evidence-vault client list`",
            )
        stmt = (
            select(Record, Campaign.name)
            .join(Campaign, Campaign.id == Record.campaign_id)
            .where(Record.client_id == client)
        )
        if campaign is not None:
            stmt = stmt.where(Campaign.name == campaign)
        if since is not None:
            stmt = stmt.where(Record.recorded_at >= since)
        if until is not None:
            stmt = stmt.where(Record.recorded_at < until)
        yield from s.exec(stmt.order_by(Record.recorded_at, Record.id)).all()


def _record(rec: Record, campaign: str) -> dict[str, Any]:
    return {
        "record_id": rec.id,
        "campaign": campaign,
        "call_id": rec.call_id,
        "segment": rec.segment,
        "order_ref": rec.order_ref,
        "recorded_at": format_time(rec.recorded_at),
    }
