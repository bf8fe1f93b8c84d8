"""When to try again: exponential backoff with full jitter, and which answers are final.

Transient (retried for ever, the delay capped): the vault cannot be reached, the
connection broke or timed out, 408, 429 (honouring ``Retry-After``), any 5xx, and 401 (a
token problem is the operator's to fix, not a reason to give up the clip). Permanent
(never retried: the job is quarantined with the vault's reason): every other 4xx — invalid
evidence or audio, an unknown campaign, 409 (another clip under this call segment, or this
key used for another request), 413, 415.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TRANSIENT_STATUS = frozenset({401, 408, 429})


@dataclass(frozen=True)
class Backoff:
    """Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
    ``uniform(0, min(cap, base * 2**attempt))``; a server's ``Retry-After`` is a floor."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None, rng=random) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 32)))
        wait = rng.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, max(self.cap, 1.0) * 4))
        return wait


def is_transient(status: int) -> bool:
    return status >= 500 or status in TRANSIENT_STATUS


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
