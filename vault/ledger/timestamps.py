"""Checkpoint time-stamps (RFC 3161): what a token over a checkpoint proves, as a verdict.

The token's message imprint is SHA-256 of the checkpoint's *note text* (origin, tree size,
root hash and extension lines, each ending in a newline), not of the whole signed note:
witnesses append cosignature lines to a note after it was signed and stamped, and the text
is what every one of those signatures covers. A token over the text proves that this
tree head, and so every entry under it, existed no later than the token's genTime.

Pure: used by the offline bundle verifier, the offline log audit and the vault's own
``verify``. The token check itself is :func:`vault.sealing.timestamps.check_timestamp`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vault.ledger.checkpoint import Checkpoint, NoteError
from vault.sealing.timestamps import TimestampError, TrustRoots, check_timestamp

VALID, UNCHECKED, INVALID = "valid", "unchecked", "invalid"


@dataclass(frozen=True)
class TimestampResult:
    """The verdict on one TSA's token over one checkpoint, for a report or a CLI.

    ``status`` is ``valid`` (imprint, signature, chain to a given root and EKU hold),
    ``unchecked`` (imprint holds; no trust roots were given, so the signature was not
    checked) or ``invalid`` (``reason`` names the failed check, ``detail`` says why).
    ``gen_time`` and ``serial`` are what the token states (empty when unreadable).
    """

    tsa: str
    size: int | None
    status: str
    gen_time: str = ""
    serial: str = ""
    signer: str = ""
    reason: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != INVALID

    def to_dict(self) -> dict[str, Any]:
        return {
            "tsa": self.tsa,
            "size": self.size,
            "status": self.status,
            "gen_time": self.gen_time,
            "serial": self.serial,
            "signer": self.signer,
            "reason": self.reason,
            "detail": self.detail,
        }

    def __str__(self) -> str:
        if self.status == INVALID:
            return f"time-stamp by {self.tsa}: INVALID ({self.reason}): {self.detail}"
        what = f"time-stamp by {self.tsa}: genTime {self.gen_time}, serial {self.serial}"
        if self.status == UNCHECKED:
            return f"{what}; imprint matches, signature NOT checked (no TSA trust roots given)"
        return f"{what}, signed by {self.signer}"


def check_checkpoint_timestamp(
    tsa: str, token: bytes, note: bytes, roots: TrustRoots | None, *, nonce: int | None = None
) -> TimestampResult:
    """Check ``token`` against the text of the checkpoint ``note`` and the trust roots."""
    try:
        text = note_text(note)
        size = Checkpoint.parse_body(text).size
    except NoteError as exc:
        detail = f"the checkpoint it should stamp is not readable: {exc.message}"
        return TimestampResult(tsa, None, INVALID, reason="imprint", detail=detail)
    try:
        facts = check_timestamp(token, text, roots, nonce=nonce)
    except TimestampError as exc:
        return TimestampResult(tsa, size, INVALID, reason=exc.reason, detail=exc.message)
    return TimestampResult(
        tsa,
        size,
        VALID if roots is not None else UNCHECKED,
        gen_time=utc_text(facts.gen_time),
        serial=facts.serial_hex,
        signer=facts.signer,
    )


def note_text(note: bytes) -> bytes:
    """The text of a signed note: everything before the blank line that ends it (the part
    every signature, the vault's and the witnesses', covers)."""
    split = bytes(note).rfind(b"\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    return bytes(note)[: split + 1]


def utc_text(ts: datetime) -> str:
    """A genTime as ISO 8601 UTC: seconds, and the fraction only when the TSA gave one."""
    ts = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)
    fraction = f".{ts.microsecond:06d}".rstrip("0") if ts.microsecond else ""
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
