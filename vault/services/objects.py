"""What ``verify`` checks in object storage beyond the bytes: versions, locks, orphans.

On a versioned bucket anyone allowed to ``PutObject`` can stack a new version on a sealed
key, and a plain ``DELETE`` stacks a delete marker. The vault reads, holds, extends and
deletes the version it wrote (pinned in the sealed entry and the row), so neither changes
the evidence — but a plain ``GET`` by anyone else would see the junk, so both are findings
of their own (``shadowed``), with the remedy. Each sealed version of a live record must
also still be locked as the vault locked it (``lock``): mode COMPLIANCE, retain-until not
before the record's, legal hold on exactly while the log says the record is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from vault.db import Record
from vault.errors import StorageError
from vault.ledger.audit import Finding
from vault.services.binding import LogFacts
from vault.services.context import VaultContext
from vault.storage import ObjectVersion

SHADOW_REMEDY = (
    "the vault still reads the sealed version by its id; remove the stacked version or "
    "delete marker by version id (docs/operations.md, 'What verify reports')"
)


@dataclass(frozen=True)
class SealedObject:
    """An object the log commits to, with the version the vault wrote (None: unknown)."""

    key: str
    version: str | None
    record: str | None
    seq: int
    role: str


def storage_findings(
    ctx: VaultContext,
    client: str,
    sealed: list[SealedObject],
    checkpoints: dict[str, str | None],
    records: dict[str, Record],
    facts: LogFacts,
    acknowledged: frozenset[tuple[str, str | None]] | set[tuple[str, str | None]] = frozenset(),
) -> list[Finding]:
    """Orphans, stacked versions and delete markers, and lock state, for one client.

    An orphan ``gc`` recorded in the log (``object.orphaned``: locked, deleted once its
    lock runs out) is known, not a finding; any other version under its key still is.
    """
    by_key: dict[str, list[ObjectVersion]] = {}
    for v in ctx.store.versions(client + "/"):
        by_key.setdefault(v.key, []).append(v)
    pinned: dict[str, SealedObject] = {o.key: o for o in sealed}
    for key, version in checkpoints.items():
        pinned.setdefault(key, SealedObject(key, version, None, -1, "checkpoint"))
    out: list[Finding] = []
    for key, versions in sorted(by_key.items()):
        obj = pinned.get(key)
        if obj is None:
            if key.startswith(f"{client}/_checkpoints/"):
                continue  # a note without its row (a crash between): checked as a note
            if key.startswith(f"{client}/_timestamps/"):
                continue  # a time-stamp token: checked against its row by `verify`
            if all(v.is_delete_marker or (key, v.version_id) in acknowledged for v in versions):
                continue  # nothing stored under it, or only orphans the log records
            out.append(
                Finding("orphan", client, "object is not committed to by any log entry", key=key)
            )
            continue
        shadow = _shadow(obj, versions)
        if shadow:
            out.append(_finding(client, obj, "shadowed", f"{shadow}; {SHADOW_REMEDY}"))
    if ctx.store.supports_object_lock:
        out += _lock_findings(ctx, client, sealed, records, facts)
    return out


def _shadow(obj: SealedObject, versions: list[ObjectVersion]) -> str | None:
    markers = sum(v.is_delete_marker for v in versions)
    if obj.version is None:  # no pinned version (local store, or sealed before pinning)
        data = [v for v in versions if not v.is_delete_marker]
        extra = max(0, len(data) - 1)
    else:
        extra = sum(not v.is_delete_marker and v.version_id != obj.version for v in versions)
    if not (extra or markers):
        return None
    parts = []
    if extra:
        parts.append(f"{extra} other version{'s' if extra > 1 else ''} stacked on the key")
    if markers:
        parts.append(f"{markers} delete marker{'s' if markers > 1 else ''} hiding it")
    return f"{obj.role} object: " + " and ".join(parts)


def _lock_findings(
    ctx: VaultContext,
    client: str,
    sealed: list[SealedObject],
    records: dict[str, Record],
    facts: LogFacts,
) -> list[Finding]:
    out: list[Finding] = []
    for obj in sealed:
        rec = records.get(obj.record or "")
        if rec is None or obj.record in facts.shredded:
            continue  # a shredded record's objects are deleted when the store allows
        try:
            lock = ctx.store.lock_state(obj.key, version_id=obj.version)
        except StorageError:
            continue  # missing: reported by the object check
        problems = []
        if lock.mode != "COMPLIANCE":
            problems.append(f"its lock mode is {lock.mode or 'none'}, not COMPLIANCE")
        if lock.retain_until is None or lock.retain_until < _whole_second(rec.retain_until):
            problems.append("its lock ends before the record's retention")
        held = facts.held(rec.id)
        if lock.legal_hold != held:
            problems.append(
                "it has a legal hold the log does not"
                if lock.legal_hold
                else "it has no legal hold although the record is held"
            )
        if problems:
            out.append(
                _finding(client, obj, "lock", f"{obj.role} object version: " + "; ".join(problems))
            )
    return out


def _whole_second(ts: datetime) -> datetime:
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.replace(microsecond=0)


def _finding(client: str, obj: SealedObject, kind: str, detail: str) -> Finding:
    return Finding(
        kind, client, detail, seq=obj.seq if obj.seq >= 0 else None, record=obj.record, key=obj.key
    )
