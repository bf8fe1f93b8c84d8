"""Source signatures judged by the log alone: which dialer keys the log registered and
revoked, and whether each signed ``evidence.sealed`` entry's signature stands.

Pure (no database): ``verify`` feeds it the client's ``dialer.*`` entries from the
database, the offline audit of a log export the entries as it walks them. Format:
docs/formats.md, "Source signatures".
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from vault.ledger.audit import CheckedEntry, Finding
from vault.sealing.source import check_statement

DIALER_TYPES = ("dialer.registered", "dialer.revoked")


@dataclass
class DialerHistory:
    """The log's registrations and revocations of one client: key id -> (seq, pub), seq."""

    registered: dict[str, tuple[int, str]] = field(default_factory=dict)
    revoked: dict[str, int] = field(default_factory=dict)

    def add(self, seq: int, entry: dict[str, Any]) -> None:
        body = entry.get("body") or {}
        key = body.get("key")
        if not isinstance(key, str):
            return
        if entry.get("type") == "dialer.registered":
            self.registered.setdefault(key, (seq, str(body.get("pub", ""))))
        elif entry.get("type") == "dialer.revoked":
            self.revoked.setdefault(key, seq)


def source_findings(history: DialerHistory, client: str, item: CheckedEntry) -> list[Finding]:
    """What is wrong with a sealed entry's source signature, judged by the log alone."""
    body = item.entry.get("body") or {}
    source = body.get("source")
    if source is None:
        return []
    problem = _source_problem(history, item.seq, source, body.get("recorded_at"))
    if problem is None:
        return []
    return [
        Finding("bad-signature", client, problem, seq=item.seq, record=item.entry.get("record"))
    ]


def _source_problem(history: DialerHistory, seq: int, source: Any, recorded_at: Any) -> str | None:
    if not isinstance(source, dict) or not isinstance(recorded_at, str):
        return "the entry's source signature is malformed"
    key = source.get("key")
    registered = history.registered.get(key) if isinstance(key, str) else None
    if registered is None or registered[0] >= seq:
        return f"the source signature names dialer key {key!r}, not registered in the log before"
    revoked = history.revoked.get(key)  # type: ignore[arg-type]
    if revoked is not None and revoked < seq:
        return f"the source signature is by dialer key {key}, revoked at seq {revoked}"
    if source.get("pub") != registered[1]:
        return f"the entry's public key differs from the one registered as {key}"
    try:
        pub = base64.b64decode(registered[1], validate=True)
        sig = base64.b64decode(str(source.get("sig")), validate=True)
        clip, meta = bytes.fromhex(str(source.get("clip"))), bytes.fromhex(str(source.get("meta")))
        ok = check_statement(pub, sig, clip, meta, recorded_at)
    except ValueError:
        ok = False
    if not ok:
        return (
            f"the source signature of dialer key {key} does not verify over the entry's statement"
        )
    return None
