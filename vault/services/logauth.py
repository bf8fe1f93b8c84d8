"""Keeping the log honest against a database writer: entry tags, head anchors, adoption.

Three defences, each stated with its window in ``docs/security.md``:

* **Entry tags.** Every entry row carries an HMAC tag under the client's log key, which
  lives in the keyring, not the database (:mod:`vault.sealing.logauth`). ``verify`` checks
  every tag; the checkpoint signer checks the tags of every entry it has not signed yet
  (:func:`checked_root`) and refuses to sign a tree with an entry the vault did not append.
* **Head anchors.** After each commit the new head (size, hash, tag) is written to
  ``<vault>/anchors/<client>.head`` — outside the database. Cutting entries off the end of
  the log (and moving ``log_head`` back) leaves the anchor ahead of the log: ``verify``
  reports ``truncated``.
* **Signed checkpoints on a timer** (``serve``) in object storage under Object Lock bound
  what an attacker who can also roll the anchor file back can cut unnoticed.

Logs from before entries were tagged are *adopted* once: when the vault first makes a
client's log key, it tags the entries already there (trust on first use, see the docs).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from vault.db import LogEntry
from vault.db.log import log_head
from vault.db.models import Checkpoint as CheckpointRow
from vault.db.tree import StoredTree
from vault.errors import TamperDetected
from vault.ledger.checkpoint import NoteError, Verifier, open_checkpoint
from vault.ledger.entry import GENESIS_PREV, entry_hash, parse_entry
from vault.ledger.merkle import CompactRange, MissingNodesError
from vault.ledger.merkle import root as stored_root
from vault.sealing import LogAuthenticator

ANCHOR_DIR = "anchors"
_ANCHOR = re.compile(r"evidence-vault head v1 (\S+) (\d+) ([0-9a-f]{64}) ([0-9a-f]{64})\n")
PAGE = 1000


@dataclass(frozen=True)
class Anchor:
    client: str
    size: int
    head_hash: str
    tag: bytes


class LogKeys:
    """A client's :class:`~vault.db.log.LogWriter`: tags entries, anchors heads."""

    def __init__(self, auth: LogAuthenticator, anchor_dir: Path) -> None:
        self.auth = auth
        self._dir = anchor_dir

    @property
    def client(self) -> str:
        return self.auth.client

    def entry_tag(self, seq: int, entry_hash: bytes) -> bytes:
        return self.auth.entry_tag(seq, entry_hash)

    def check_entry(self, seq: int, raw: bytes, tag: bytes | None) -> bool:
        return self.auth.check_entry(seq, bytes.fromhex(entry_hash(raw)), tag)

    def entry_checker(self) -> Callable[[int, bytes, bytes | None], bool]:
        """``check(seq, leaf_hash, tag)``: :meth:`check_entry` for a walk that has the
        entry's 32-byte leaf hash already (so the entry is hashed once, not twice)."""
        return self.auth.entry_checker()

    def entry_kernel(self, plain_kinds: frozenset[str]) -> Any | None:
        """verify's compiled walk for entries of ``plain_kinds``; None if it is not built."""
        return self.auth.entry_kernel(plain_kinds)

    def anchor(self, size: int, head_hash: str) -> None:
        """Record ``(size, head_hash)`` unless a larger head is recorded already.

        Never raises: the commit has happened; a missed anchor only narrows detection
        until the next commit writes a newer one.
        """
        with contextlib.suppress(OSError):
            write_anchor(self._dir, self.auth, size, head_hash)

    def read_anchor(self) -> Anchor | None:
        """The anchored head; None when there is none. TamperDetected if it is forged."""
        path = anchor_path(self._dir, self.client)
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise TamperDetected(f"the head anchor {path.name} is unreadable") from exc
        m = _ANCHOR.fullmatch(text)
        if not m or m.group(1) != self.client:
            raise TamperDetected(f"the head anchor {path.name} is malformed")
        anchor = Anchor(self.client, int(m.group(2)), m.group(3), bytes.fromhex(m.group(4)))
        if not self.auth.check_head(anchor.size, bytes.fromhex(anchor.head_hash), anchor.tag):
            raise TamperDetected(f"the head anchor {path.name} has an invalid tag")
        return anchor


def anchor_path(directory: Path, client: str) -> Path:
    return directory / f"{client}.head"


def write_anchor(directory: Path, auth: LogAuthenticator, size: int, head_hash: str) -> None:
    directory.mkdir(mode=0o700, exist_ok=True)
    path = anchor_path(directory, auth.client)
    with _locked(directory / f".{auth.client}.lock"):
        current = _anchored_size(path)
        if current is not None and current >= size:
            return  # another process of this vault anchored a newer head already
        tag = auth.head_tag(size, bytes.fromhex(head_hash)).hex()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(
            f"evidence-vault head v1 {auth.client} {size} {head_hash} {tag}\n", encoding="ascii"
        )
        os.replace(tmp, path)


def _anchored_size(path: Path) -> int | None:
    try:
        m = _ANCHOR.fullmatch(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError):
        return None
    return int(m.group(2)) if m else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- adoption of logs written before entries were tagged -----------------------------------


def adopt_untagged(session: Session, keys: LogKeys) -> int:
    """Tag the client's untagged entries; called once, when its log key is made.

    Trust on first use: whatever the database holds at that moment becomes the log the
    vault vouches for. The chain is walked first, so a log that is already broken is not
    adopted silently (``verify`` will name the break).
    """
    head = log_head(session, keys.client, lock=True)
    rows = session.exec(
        select(LogEntry.seq, LogEntry.entry)
        .where(LogEntry.client_id == keys.client, LogEntry.tag.is_(None))  # type: ignore[union-attr]
        .order_by(LogEntry.seq)
    ).all()
    for seq, raw in rows:
        session.execute(
            update(LogEntry)
            .where(LogEntry.client_id == keys.client, LogEntry.seq == seq)
            .values(tag=keys.entry_tag(seq, bytes.fromhex(entry_hash(bytes(raw)))))
        )
    if rows and head.size:
        keys.anchor(head.size, head.head_hash)
    return len(rows)


# --- the signer's check: never sign an entry the vault did not append ---------------------


def checked_root(
    session: Session,
    keys: LogKeys,
    size: int,
    head_hash: str,
    verifiers: list[Verifier],
    origin: str,
) -> bytes:
    """The Merkle root at ``size``, computed from entries whose tags all verify.

    Starts from the newest stored checkpoint whose signature verifies and whose root the
    stored tree reproduces (or from the empty log), re-checks every later entry — tag,
    position, chain link — and extends the compact range with their leaf hashes. The
    result must equal the stored tree's root and the head's hash; anything else raises
    :class:`TamperDetected` and nothing is signed.
    """
    client = keys.client
    tree = StoredTree(session, client)
    start, compact = _trusted_start(session, client, size, tree, verifiers, origin)
    prev = GENESIS_PREV
    if start:
        prev_row = session.get(LogEntry, (client, start - 1))
        if prev_row is None or not keys.check_entry(start - 1, bytes(prev_row.entry), prev_row.tag):
            raise TamperDetected(
                f"log {client}: entry {start - 1} is missing or not authenticated",
                hint="run `evidence-vault verify`; no checkpoint is signed until it is clean",
            )
        prev = entry_hash(bytes(prev_row.entry))
    for seq, raw, tag in _entries(session, client, start, size):
        bad = _entry_problem(keys, seq, raw, tag, prev)
        if bad:
            raise TamperDetected(
                f"log {client}: entry {seq} {bad}; refusing to sign a checkpoint over it",
                hint="run `evidence-vault verify` and restore the log from a backup",
            )
        prev = entry_hash(raw)
        compact.append(bytes.fromhex(prev))
    if compact.size != size or prev != head_hash:
        raise TamperDetected(
            f"log {client}: the stored entries do not reach the log head ({size})",
            hint="run `evidence-vault verify`",
        )
    root = compact.root()
    if size and stored_root(tree, size) != root:
        raise TamperDetected(
            f"log {client}: the stored Merkle tree disagrees with the entries",
            hint="run `evidence-vault verify`; proofs served from the stored tree would fail",
        )
    return root


def _entry_problem(keys: LogKeys, seq: int, raw: bytes, tag: bytes | None, prev: str) -> str | None:
    if not keys.check_entry(seq, raw, tag):
        return "was not appended by the vault (its tag is missing or wrong)"
    try:
        entry = parse_entry(raw)
    except ValueError:
        return "is not a valid entry"
    if entry.get("seq") != seq or entry.get("log") != keys.client:
        return "is out of place"
    if entry.get("prev") != prev:
        return "does not chain to the entry before it"
    return None


def _trusted_start(
    session: Session,
    client: str,
    size: int,
    tree: StoredTree,
    verifiers: list[Verifier],
    origin: str,
) -> tuple[int, CompactRange]:
    rows = session.exec(
        select(CheckpointRow)
        .where(CheckpointRow.client_id == client, CheckpointRow.size <= size)
        .order_by(CheckpointRow.size.desc())  # type: ignore[attr-defined]
        .limit(8)
    )
    for row in rows:
        try:
            cp, _ = open_checkpoint(bytes(row.note), verifiers, origin=origin)
        except NoteError:
            continue  # not ours: verify reports it; start from an older one
        if cp.size != row.size or cp.size == 0:
            continue
        try:
            compact = CompactRange.from_source(tree, cp.size)
        except MissingNodesError:
            continue
        if compact.root() == cp.root:
            return cp.size, compact
    return 0, CompactRange()


def _entries(session: Session, client: str, start: int, end: int):
    after = start - 1
    while after + 1 < end:
        page = session.exec(
            select(LogEntry.seq, LogEntry.entry, LogEntry.tag)
            .where(LogEntry.client_id == client, LogEntry.seq > after, LogEntry.seq < end)
            .order_by(LogEntry.seq)
            .limit(PAGE)
        ).all()
        if not page:
            return
        for seq, raw, tag in page:
            if seq != after + 1:
                raise TamperDetected(
                    f"log {client}: entry {after + 1} is missing",
                    hint="run `evidence-vault verify`",
                )
            yield seq, bytes(raw), (bytes(tag) if tag is not None else None)
            after = seq
