"""Authentication tags for log entries and log heads: only a keyring holder can append.

The database holds the log, but not the key that authenticates it. Every entry carries a
tag, HMAC-SHA256 under its client's *log key* (a keyring secret, 32 random bytes) of::

    encode_items("evidence-vault/v1 log entry", client, u64(seq), entry_hash)

where ``entry_hash`` is the entry's 32-byte RFC 9162 leaf hash. Whoever can write the
database but not read the keyring cannot make a tag, so an entry they add, or one they
edit, fails the check that ``verify`` and the checkpoint signer make. The *head anchor*
(the newest head the vault wrote, kept outside the database) carries a tag of its own
under a second domain, so it cannot be forged either.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Any

from vault.sealing._encoding import encode_items, require_key, require_text

LOG_KEY_SIZE = 32
TAG_SIZE = 32
ENTRY_DOMAIN = "evidence-vault/v1 log entry"
HEAD_DOMAIN = "evidence-vault/v1 log head"
_BLOCK = 64  # SHA-256's block size, for the HMAC pads
#: the rest of an entry tag's message after domain and client: len32(u64 seq), seq, len32(hash)
_SEQ_AND_HASH = struct.Struct(">IQI")


class LogAuthenticator:
    """Makes and checks the tags of one client's log."""

    def __init__(self, key: bytes, client: str) -> None:
        self._key = require_key("log key", key, LOG_KEY_SIZE)
        self._client = require_text("client", client)

    @property
    def client(self) -> str:
        return self._client

    def entry_tag(self, seq: int, entry_hash: bytes) -> bytes:
        return self._mac(ENTRY_DOMAIN, seq, entry_hash)

    def check_entry(self, seq: int, entry_hash: bytes, tag: bytes | None) -> bool:
        return tag is not None and hmac.compare_digest(self.entry_tag(seq, entry_hash), tag)

    def entry_checker(self) -> Callable[[int, bytes, bytes | None], bool]:
        """``check(seq, entry_hash, tag)``, equal to :meth:`check_entry`, for walking a log.

        The same HMAC (RFC 2104), with its key pads and the fixed start of the message
        (domain and client) hashed once: per entry only the seq and hash are hashed, and
        the two SHA-256 states copied. ``tests/test_logauth.py`` checks it against
        :meth:`check_entry`, tags and non-tags alike.
        """
        if len(self._key) > _BLOCK:  # the log key is 32 bytes; a long key is hashed first
            return self.check_entry
        key = self._key.ljust(_BLOCK, b"\0")
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        inner.update(encode_items(ENTRY_DOMAIN, self._client))
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        pack, compare = _SEQ_AND_HASH.pack, hmac.compare_digest

        def check(seq: int, entry_hash: bytes, tag: bytes | None) -> bool:
            if tag is None:
                return False
            if seq < 0 or len(entry_hash) != 32:
                return self.check_entry(seq, entry_hash, tag)  # raises, as it does
            i = inner.copy()
            i.update(pack(8, seq, 32) + entry_hash)
            o = outer.copy()
            o.update(i.digest())
            return compare(o.digest(), tag)

        return check

    def entry_kernel(self, plain_kinds: frozenset[str]) -> Any | None:
        """verify's compiled chain walk (``vault/ledger/_walk.c``) checking this log's tags,
        for entries of ``plain_kinds``; None where the extension is not built.

        The kernel gets the key itself (it hashes the pads once, as :meth:`entry_checker`
        does), so the key stays inside this process's objects as before.
        """
        try:
            from vault.ledger._walk import Kernel
        except ImportError:
            return None
        if len(self._key) > _BLOCK:
            return None
        prefix = encode_items(ENTRY_DOMAIN, self._client)
        return Kernel(self._client, self._key, prefix, plain_kinds)

    def head_tag(self, size: int, head_hash: bytes) -> bytes:
        return self._mac(HEAD_DOMAIN, size, head_hash)

    def check_head(self, size: int, head_hash: bytes, tag: bytes | None) -> bool:
        return tag is not None and hmac.compare_digest(self.head_tag(size, head_hash), tag)

    def _mac(self, domain: str, number: int, digest: bytes) -> bytes:
        if number < 0 or len(digest) != 32:
            raise ValueError("a log position is a non-negative integer and a 32-byte hash")
        msg = encode_items(domain, self._client, struct.pack(">Q", number), digest)
        return hmac.digest(self._key, msg, hashlib.sha256)

    def __repr__(self) -> str:  # never the key
        return f"LogAuthenticator(client={self._client!r})"
