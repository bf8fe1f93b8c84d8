"""The auditor's offline check of an exported log: needs the file and the verifier key only.

Export format (JSON Lines, one object per line; no PII, no keys):

* ``{"kind": "log", "origin": ..., "size": N, "verifier_key": ...}`` — first line;
* ``{"kind": "entry", "seq": i, "entry": "<canonical entry JSON text>"}`` — in seq order;
* ``{"kind": "checkpoint", "note": "<signed note text>"}`` — every checkpoint the vault
  signed for the log;
* ``{"kind": "timestamp", "size": N, "tsa": "<name>", "token": "<base64 DER>"}`` — each
  RFC 3161 time-stamp token the vault holds for the checkpoint of size N (none in exports
  made before time-stamping, which audit as before).

The audit recomputes the hash chain and the Merkle tree from the entries, checks every
checkpoint's signature and root, and — the point of an auditor keeping checkpoints —
that a *trusted* checkpoint saved earlier is part of the exported history: a history
rewritten or rolled back since then cannot match it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vault.ledger.audit import Finding, audit_chain
from vault.ledger.checkpoint import (
    Checkpoint,
    NoteError,
    Verifier,
    open_note,
    parse_verifier_key,
)
from vault.ledger.cosignature import WitnessPolicy, check_witnesses
from vault.ledger.entry import parse_entry
from vault.ledger.merkle import CompactRange
from vault.ledger.sources import DIALER_TYPES, DialerHistory, source_findings
from vault.ledger.timestamps import INVALID, TimestampResult, check_checkpoint_timestamp
from vault.sealing.timestamps import TrustRoots


@dataclass
class OfflineReport:
    origin: str = ""
    entries: int = 0
    checkpoints: int = 0
    trusted: int = 0
    #: the verifier keys accepted: the pinned one, then each one it handed over to
    keys: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: the verdict on each time-stamp token in the export
    timestamps: list[TimestampResult] = field(default_factory=list)
    #: with a witness policy: the largest checkpoint size that meets it (0: none does)
    witnessed_size: int | None = None

    @property
    def clean(self) -> bool:
        return not self.findings and self.entries > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "origin": self.origin,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "trusted_checkpoints": self.trusted,
            "keys": self.keys,
            "findings": [f.to_dict() for f in self.findings],
            "timestamps": [t.to_dict() for t in self.timestamps],
            **({"witnessed_size": self.witnessed_size} if self.witnessed_size is not None else {}),
        }


def export_lines(
    origin: str,
    size: int,
    verifier_key: str,
    entries: Iterable[tuple[int, bytes]],
    notes: Iterable[bytes],
    timestamps: Iterable[tuple[int, str, bytes]] = (),
) -> Iterator[str]:
    yield json.dumps({"kind": "log", "origin": origin, "size": size, "verifier_key": verifier_key})
    for seq, raw in entries:
        yield json.dumps({"kind": "entry", "seq": seq, "entry": raw.decode()}, ensure_ascii=False)
    for note in notes:
        yield json.dumps({"kind": "checkpoint", "note": note.decode()}, ensure_ascii=False)
    for cp_size, tsa, token in timestamps:
        token64 = base64.b64encode(token).decode()
        yield json.dumps({"kind": "timestamp", "size": cp_size, "tsa": tsa, "token": token64})


def audit_export(
    lines: Iterable[str],
    verifier: Verifier,
    trusted: Iterable[bytes] = (),
    tsa_roots: TrustRoots | None = None,
    witnesses: WitnessPolicy | None = None,
) -> OfflineReport:
    """Audit an export read line by line; ``trusted`` are checkpoint notes the auditor kept,
    ``tsa_roots`` the TSA roots the auditor trusts (without them a time-stamp's signature
    is not checked: its verdict says ``unchecked``).

    With ``witnesses``, a checkpoint counts as witnessed only if it meets that N-of-M
    policy; an invalid cosignature by a policy witness is a finding, and so is an export
    none of whose checkpoints is witnessed. Witnesses cosign the latest checkpoint when
    they are asked, so older checkpoints may lack cosignatures: the largest witnessed one
    vouches for every entry up to its size (``witnessed_size``), the tree being checked.
    """
    report = OfflineReport()
    stamps: list[tuple[Any, Any, Any]] = []
    header, rows, notes = _read(lines, report, stamps)
    if header is None:
        return report
    report.origin = header.get("origin", "")
    log_name = report.origin.rsplit("/", 1)[-1]
    verifiers = key_chain(rows, notes, verifier)
    report.keys = [v.key_string() for v in verifiers]
    _check_timestamps(report, stamps, notes, verifiers, tsa_roots)
    wanted: dict[int, list[tuple[str, Checkpoint]]] = {}
    for where, note in [
        *(("exported checkpoint", n) for n in notes),
        *(("trusted checkpoint", n) for n in trusted),
    ]:
        cp = _open(where, note, verifiers, report)
        if cp is not None:
            wanted.setdefault(cp.size, []).append((where, cp))
            report.trusted += where.startswith("trusted")
            report.checkpoints += where.startswith("exported")
            if witnesses is not None:
                check_witnessed(where, note, cp, witnesses, report)
    if witnesses is not None and not report.witnessed_size:
        report.findings.append(
            Finding(
                "unwitnessed",
                report.origin,
                f"no checkpoint is cosigned by {witnesses.describe()} of the witness policy: "
                "nothing shows that independent witnesses saw this history",
            )
        )
    tree = CompactRange()
    head_size = int(header.get("size", len(rows)))
    dialers = DialerHistory()  # the log's dialer keys, as far as the walk has come
    for item in audit_chain(log_name, rows, head_size, None):
        if isinstance(item, Finding):
            report.findings.append(item)
            continue
        kind = item.entry.get("type")
        if kind in DIALER_TYPES:
            dialers.add(item.seq, item.entry)
        elif kind == "evidence.sealed":
            report.findings += source_findings(dialers, log_name, item)
        report.entries += 1
        tree.append(bytes.fromhex(item.hash))
        report.findings += _match(wanted.pop(tree.size, []), tree, log_name)
    for size, cps in sorted(wanted.items()):
        for where, _cp in cps:
            if size == 0:
                continue
            kind = "truncated" if where.startswith("trusted") else "modified"
            report.findings.append(
                Finding(
                    kind,
                    log_name,
                    f"{where} covers {size} entries but the export holds only {tree.size}: "
                    "the log was rolled back or the export is incomplete",
                    seq=tree.size,
                )
            )
    return report


def _read(
    lines: Iterable[str], report: OfflineReport, stamps: list[tuple[Any, Any, Any]]
) -> tuple[dict[str, Any] | None, list[tuple[int, bytes]], list[bytes]]:
    header: dict[str, Any] | None = None
    rows: list[tuple[int, bytes]] = []
    notes: list[bytes] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            kind = obj["kind"]
            if kind == "log":
                header = obj
            elif kind == "entry":
                rows.append((int(obj["seq"]), obj["entry"].encode()))
            elif kind == "checkpoint":
                notes.append(obj["note"].encode())
            elif kind == "timestamp":
                stamps.append((obj["size"], obj["tsa"], obj["token"]))
            else:
                raise KeyError(kind)
        except (ValueError, KeyError, TypeError, AttributeError):
            report.findings.append(Finding("modified", "", f"line {n} is not a valid export line"))
    if header is None:
        report.findings.append(Finding("missing", "", "the export has no 'log' header line"))
    return header, rows, notes


def _check_timestamps(
    report: OfflineReport,
    stamps: list[tuple[Any, Any, Any]],
    notes: list[bytes],
    verifiers: list[Verifier],
    roots: TrustRoots | None,
) -> None:
    """Each token must stamp the text of an exported, validly signed checkpoint of its size."""
    by_size: dict[int, bytes] = {}
    for note in notes:
        try:
            body, _ = open_note(note, verifiers)
            by_size.setdefault(Checkpoint.parse_body(body).size, note)
        except NoteError:
            continue  # reported by the checkpoint checks
    for size, tsa, token64 in stamps:
        name = str(tsa)
        try:
            token = base64.b64decode(str(token64), validate=True)
        except (binascii.Error, ValueError):
            token = b""
        stamped = by_size.get(size) if isinstance(size, int) else None
        if stamped is None:
            result = TimestampResult(
                name, None, INVALID, reason="imprint",
                detail=f"no validly signed checkpoint of size {size!r} in the export",
            )  # fmt: skip
        else:
            result = check_checkpoint_timestamp(name, token, stamped, roots)
        report.timestamps.append(result)
        if not result.ok:
            report.findings.append(
                Finding("bad-timestamp", report.origin, str(result), seq=result.size)
            )


def key_chain(
    rows: Iterable[tuple[int, bytes]], notes: Iterable[bytes], pinned: Verifier
) -> list[Verifier]:
    """The pinned key, plus every key a trusted key handed the log over to.

    A hand-over is a ``log.key_rotated`` entry naming an already trusted ``old`` key and a
    ``new`` one, together with a checkpoint covering that entry signed by *both*. The
    checkpoint's root is checked against the entries like every other, so a forged
    hand-over shows up as a fork.
    """
    chain = [pinned]
    notes = list(notes)
    for seq, raw in rows:
        try:
            entry = parse_entry(raw)
            if entry.get("type") != "log.key_rotated":
                continue
            old = parse_verifier_key(entry["body"]["old"])
            new = parse_verifier_key(entry["body"]["new"])
        except (NoteError, ValueError, KeyError, TypeError, AttributeError):
            continue
        trusted = any(v.public_key == old.public_key for v in chain)
        if trusted and _handed_over(notes, seq, old, new):
            chain.append(new)
    return chain


def _handed_over(notes: list[bytes], seq: int, old: Verifier, new: Verifier) -> bool:
    for note in notes:
        try:
            body, signed = open_note(note, [old, new])
            if Checkpoint.parse_body(body).size > seq and len(signed) == 2:
                return True
        except NoteError:
            continue
    return False


def _open(
    where: str, note: bytes, verifiers: list[Verifier], report: OfflineReport
) -> Checkpoint | None:
    try:
        body, _ = open_note(note, verifiers)
        cp = Checkpoint.parse_body(body)
    except NoteError as exc:
        report.findings.append(Finding("bad-signature", report.origin, f"{where}: {exc.message}"))
        return None
    if cp.origin != report.origin:
        report.findings.append(
            Finding("bad-signature", report.origin, f"{where} is for another log ({cp.origin!r})")
        )
        return None
    return cp


def check_witnessed(
    where: str, note: bytes, cp: Checkpoint, policy: WitnessPolicy, report: OfflineReport
) -> None:
    """Judge ``note``'s cosignatures by the policy: a bad one is a finding; a met policy
    raises ``report.witnessed_size`` to the checkpoint's size."""
    verdict = check_witnesses(note, policy)
    for fact in verdict.invalid:
        report.findings.append(
            Finding(
                "bad-signature",
                report.origin,
                f"{where} of size {cp.size}: the cosignature by witness "
                f"{fact.witness}+{fact.key_id} does not verify",
                seq=cp.size - 1 if cp.size else None,
            )
        )
    if verdict.ok:
        report.witnessed_size = max(report.witnessed_size or 0, cp.size)
    elif report.witnessed_size is None:
        report.witnessed_size = 0


def _match(cps: list[tuple[str, Checkpoint]], tree: CompactRange, log: str) -> list[Finding]:
    out = []
    for where, cp in cps:
        if cp.root != tree.root():
            out.append(
                Finding(
                    "forked",
                    log,
                    f"{where} of size {cp.size} signed a different history than the export holds",
                    seq=cp.size - 1,
                )
            )
    return out
