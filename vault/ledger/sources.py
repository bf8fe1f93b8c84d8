"""Source signatures judged by the log alone: which dialer keys the log registered and
revoked, which campaigns it says require a signature, and whether each ``evidence.sealed``
entry's signature stands (or is missing where the log required one).

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

#: a campaign's requirements are logged too (source signature, Textform documents): the
#: ``campaign`` row is only what ingest and the reports read, which a database writer could
#: change — e.g. clear the signature flag to slip an unsigned clip in
POLICY_TYPE = "campaign.policy"
DIALER_TYPES = ("dialer.registered", "dialer.revoked", POLICY_TYPE)


@dataclass
class DialerHistory:
    """The log's registrations and revocations of one client: key id -> (seq, pub), seq;
    and each campaign's logged policies in log order: name -> [(seq, policy body)]."""

    registered: dict[str, tuple[int, str]] = field(default_factory=dict)
    revoked: dict[str, int] = field(default_factory=dict)
    policies: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)

    def add(self, seq: int, entry: dict[str, Any]) -> None:
        body = entry.get("body") or {}
        if entry.get("type") == POLICY_TYPE:
            campaign = body.get("campaign")
            if isinstance(campaign, str):
                self.policies.setdefault(campaign, []).append((seq, body))
            return
        key = body.get("key")
        if not isinstance(key, str):
            return
        if entry.get("type") == "dialer.registered":
            self.registered.setdefault(key, (seq, str(body.get("pub", ""))))
        elif entry.get("type") == "dialer.revoked":
            self.revoked.setdefault(key, seq)


    def policy(self, campaign: str, name: str, seq: int | None = None) -> tuple[int, Any] | None:
        """The last logged value of requirement ``name`` (a policy body field) of the
        campaign before ``seq`` (``None``: after all entries), with its entry's seq."""
        last = None
        for at, body in self.policies.get(campaign, ()):
            if seq is not None and at >= seq:
                break
            if name in body:
                last = (at, body[name])
        return last

    def required(self, campaign: str, seq: int | None = None) -> tuple[int, bool] | None:
        """Whether the campaign's policy before ``seq`` requires a source signature, with
        the seq of the entry that said so (None: never logged)."""
        got = self.policy(campaign, "source_signature", seq)
        return None if got is None else (got[0], got[1] is True)

    def documents(self, campaign: str) -> tuple[str, ...]:
        """The Textform kinds the campaign's last logged policy requires."""
        got = self.policy(campaign, "documents")
        return tuple(str(k) for k in got[1]) if got and isinstance(got[1], list) else ()


def source_findings(history: DialerHistory, client: str, item: CheckedEntry) -> list[Finding]:
    """What is wrong with a sealed entry's source signature, judged by the log alone."""
    body = item.entry.get("body") or {}
    source = body.get("source")
    if source is None:
        problem = _unsigned_problem(history, item.seq, body.get("campaign"))
    else:
        problem = _source_problem(history, item.seq, source, body.get("recorded_at"))
    if problem is None:
        return []
    return [
        Finding("bad-signature", client, problem, seq=item.seq, record=item.entry.get("record"))
    ]


def _unsigned_problem(history: DialerHistory, seq: int, campaign: Any) -> str | None:
    policy = history.required(campaign, seq) if isinstance(campaign, str) else None
    if policy is None or not policy[1]:
        return None
    return (
        f"the clip carries no source signature, but the log requires one for campaign "
        f"{campaign!r} since seq {policy[0]}: it was accepted with the requirement switched "
        "off outside the vault"
    )


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
