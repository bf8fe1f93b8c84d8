"""The ``Idempotency-Key`` of one upload job.

Derived from the call segment (client, campaign, call id, segment) and the clip's
SHA-256: two calls with byte-identical audio (a recorded announcement) are two jobs, and
every retry of one job, in this process or after a restart, sends the same key. The vault
answers a repeat of a key with the same request with the first receipt (200), and a key
reused for another clip or other metadata with 409 (docs/api.md).

The key is a hash: it names no call id in the vault's idempotency table or in logs.
"""

from __future__ import annotations

import hashlib
import json

#: versioned, so a future derivation can never collide with this one
PREFIX = "eva1-"


def idempotency_key(
    client: str, campaign: str, call_id: str, segment: int, clip_sha256: str
) -> str:
    """``eva1-`` and 64 hex digits: SHA-256 over the JSON array of the five parts."""
    if len(clip_sha256) != 64:
        raise ValueError("clip_sha256 is the clip's hex SHA-256")
    parts = json.dumps(
        [client, campaign, call_id, int(segment), clip_sha256.lower()],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return PREFIX + hashlib.sha256(parts.encode()).hexdigest()
