"""The per-client append-only log, as pure code: canonical entries, the hash chain's audit,
the RFC 9162 Merkle tree arithmetic, signed checkpoints and the offline audit of an export.

Entries are RFC 8785 canonical JSON. An entry's hash is SHA-256(0x00 ‖ entry), the leaf
hash of RFC 9162, so a Merkle tree can be laid over the very same entries.

Nothing here touches the database (appending and the stored tree are :mod:`vault.db.log`
and :mod:`vault.db.tree`): an auditor's machine runs this package with nothing but an
export or a bundle. ``tests/test_layering.py`` holds it to that.
"""

from vault.ledger.entry import (
    ENTRY_VERSION,
    GENESIS_PREV,
    encode_entry,
    entry_hash,
    make_entry,
    parse_entry,
)

__all__ = [
    "ENTRY_VERSION",
    "GENESIS_PREV",
    "encode_entry",
    "entry_hash",
    "make_entry",
    "parse_entry",
]
