"""The per-client append-only log: canonical entries, the hash chain and its audit.

Entries are RFC 8785 canonical JSON. An entry's hash is SHA-256(0x00 ‖ entry), the leaf
hash of RFC 9162, so a Merkle tree can be laid over the very same entries.
"""

from vault.ledger.chain import Appended, EntryDraft, append_entries, log_head
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
    "Appended",
    "EntryDraft",
    "append_entries",
    "encode_entry",
    "entry_hash",
    "log_head",
    "make_entry",
    "parse_entry",
]
