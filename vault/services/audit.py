"""The checkpoint and plaintext parts of ``verify``.

Checkpoints: every signed note found in the database *or* in object storage must carry a
valid signature by the vault's log key, name this client's log, and match the root of the
tree recomputed from the entries at its size. A note whose size exceeds the log means the
log was rolled back; a root mismatch means the history the note signed is not the one
stored now (a fork). ``--deep`` opens each record: every AEAD tag and the salted
plaintext commitments of the log entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from sqlmodel import select

from vault.db import read_session
from vault.db.models import Checkpoint as CheckpointRow
from vault.db.models import Record
from vault.db.tree import StoredTree
from vault.errors import DecryptionFailed, KeyUnavailable, ObjectMissing
from vault.ledger.audit import CheckedEntry, Finding
from vault.ledger.checkpoint import Checkpoint, NoteError, open_note
from vault.ledger.cosignature import check_witnesses
from vault.ledger.entry import canonical_json
from vault.ledger.merkle import CompactRange, root
from vault.sealing import CommitmentHasher, decrypt_stream, object_aad
from vault.services.checkpoints import log_verifiers, origin
from vault.services.context import VaultContext
from vault.services.keys import record_key
from vault.services.witnessing import is_cosignature_key, vault_policy
from vault.storage import ChunkReader

PREFIX = "_checkpoints/"


class CheckpointAudit:
    """Collects a client's checkpoints and checks each as the chain walk reaches its size."""

    def __init__(self, ctx: VaultContext, client: str) -> None:
        self._client = client
        self._origin = origin(ctx, client)
        self._verifiers = log_verifiers(ctx)
        self.keys: list[str] = []
        self._notes: dict[int, list[tuple[str, bytes]]] = {}
        #: findings not tied to a tree size (a forged cosignature on the published note)
        self.findings: list[Finding] = []
        #: object key -> the version the vault wrote (from the checkpoint rows)
        self.pinned: dict[str, str | None] = {}
        with read_session(ctx.engine) as s:
            for row in s.exec(select(CheckpointRow).where(CheckpointRow.client_id == client)):
                self._add(row.size, f"database checkpoint {row.size}", bytes(row.note))
                if row.object_key:
                    self.pinned[row.object_key] = row.object_version
        # pinned keys too: a delete marker hides a key from the listing, not its version
        for key in sorted({*ctx.store.list(f"{client}/{PREFIX}"), *self.pinned}):
            size = key.rsplit("/", 1)[-1]
            if is_cosignature_key(size):
                continue  # a witness's cosignature beside its checkpoint, not a note
            self.keys.append(key)
            try:
                note = b"".join(ctx.store.get(key, version_id=self.pinned.get(key)))
            except ObjectMissing:
                continue
            self._add(int(size) if size.isdigit() else -1, f"stored checkpoint {key}", note)
        self.count = sum(len(v) for v in self._notes.values())
        self._add_published(ctx, client)  # checked, not counted: a copy of a counted note

    def _add_published(self, ctx: VaultContext, client: str) -> None:
        """The tiled log's public ``checkpoint`` is checked like every other note: a forged
        or rolled-forward one shows here before an auditor finds it."""
        from vault.services.tiles import CHECKPOINT, tiles_prefix

        key = f"{tiles_prefix(client)}/{CHECKPOINT}"
        try:
            note = b"".join(ctx.store.get(key))
        except ObjectMissing:
            return
        try:
            size = Checkpoint.parse_body(note[: note.rfind(b"\n\n") + 1]).size
        except NoteError:
            size = -1
        self._add(size, f"published checkpoint {key}", note)
        policy = vault_policy(ctx)
        for fact in check_witnesses(note, policy).invalid if policy is not None else ():
            self.findings.append(
                Finding(
                    "bad-signature",
                    client,
                    f"published checkpoint {key}: the cosignature by witness "
                    f"{fact.witness}+{fact.key_id} does not verify",
                )
            )

    def _add(self, size: int, where: str, note: bytes) -> None:
        self._notes.setdefault(size, []).append((where, note))

    def sizes(self) -> list[int]:
        """The sizes with checkpoints still to be checked."""
        return list(self._notes)

    def due(self, size: int) -> bool:
        """Whether any checkpoint of this size is still to be checked (a walk asks per entry)."""
        return size in self._notes

    def at(self, tree: CompactRange) -> list[Finding]:
        """Findings for the checkpoints of the tree's current size, against its root."""
        size, out = tree.size, list[Finding]()
        notes = self._notes.pop(size, [])
        tree_root = tree.root() if notes else b""
        for where, note in notes:
            cp = self._open(where, note, out)
            if cp is None:
                continue
            if cp.size != size:
                out.append(
                    Finding("modified", self._client, f"{where} says size {cp.size}", seq=size - 1)
                )
            elif cp.root != tree_root:
                out.append(
                    Finding(
                        "forked",
                        self._client,
                        f"{where} signed a different tree of {size} entries than the log holds",
                        seq=size - 1,
                    )
                )
        return out

    def remaining(self, log_size: int) -> Iterator[Finding]:
        """Checkpoints beyond the end of the log: it was truncated after they were signed."""
        for size, notes in sorted(self._notes.items()):
            for where, note in notes:
                if size == 0:
                    continue
                problems: list[Finding] = []
                cp = self._open(where, note, problems)
                if cp is None or size < 0:
                    yield from problems or [
                        Finding("modified", self._client, f"{where} is not a valid checkpoint")
                    ]
                    continue
                yield Finding(
                    "truncated",
                    self._client,
                    f"{where} covers {size} entries but the log holds only {log_size}",
                    seq=log_size,
                )

    def _open(self, where: str, note: bytes, out: list[Finding]) -> Checkpoint | None:
        try:
            body, _ = open_note(note, self._verifiers)
            cp = Checkpoint.parse_body(body)
        except NoteError as exc:
            out.append(Finding("bad-signature", self._client, f"{where}: {exc.message}"))
            return None
        if cp.origin != self._origin:
            out.append(
                Finding(
                    "bad-signature", self._client, f"{where} is for another log ({cp.origin!r})"
                )
            )
            return None
        return cp


def stored_tree_findings(ctx: VaultContext, client: str, tree: CompactRange) -> list[Finding]:
    """The stored Merkle nodes (used to answer proofs) must give the recomputed root."""
    if tree.size == 0:
        return []
    try:
        with read_session(ctx.engine) as s:
            stored = root(StoredTree(s, client), tree.size)
    except LookupError as exc:
        return [Finding("missing", client, f"stored Merkle tree: {exc}")]
    if stored != tree.root():
        return [
            Finding(
                "modified",
                client,
                "the stored Merkle tree nodes do not match the log entries; proofs "
                "served from them would fail",
            )
        ]
    return []


def deep_check(ctx: VaultContext, rec: Record, item: CheckedEntry) -> list[Finding]:
    """Open both objects in one pass each: ciphertext hash, every AEAD tag, commitments.

    Replaces the ciphertext-only object check for records that can be opened, so
    ``--deep`` reads every stored byte once, not twice.
    """
    client, body = rec.client_id, item.entry["body"]
    objects, commitments = body.get("objects", {}), body.get("commitments", {})

    def finding(kind: str, detail: str, key: str | None = None) -> Finding:
        return Finding(kind, client, detail, seq=item.seq, record=rec.id, key=key)

    try:
        dek = record_key(ctx, rec)
    except (KeyUnavailable, DecryptionFailed) as exc:
        return [finding("modified", f"cannot open the record: {exc.message}")]
    out: list[Finding] = []
    meta_plain = bytearray()
    opened: dict[str, bytes] = {}
    for role in ("meta", "clip"):
        obj = objects.get(role, {})
        key = obj.get("key", "")
        hasher = None
        if role == "clip" and "salt" in opened:
            hasher = CommitmentHasher(opened["salt"], "clip")
        try:
            reader = ChunkReader(ctx.store.get(key, version_id=obj.get("version")))
            for chunk in decrypt_stream(dek, object_aad(client, rec.id, role), reader.read):
                if hasher is not None:
                    hasher.update(chunk)
                else:
                    meta_plain += chunk
        except ObjectMissing:
            out.append(finding("missing", f"{role} object is missing from object storage", key))
            continue
        except DecryptionFailed as exc:
            out.append(finding("modified", f"{role} object does not decrypt: {exc.message}", key))
            continue
        if reader.hexdigest() != obj.get("sha256"):
            out.append(
                finding("modified", f"{role} object does not match its committed SHA-256", key)
            )
        if role == "meta":
            meta = json.loads(meta_plain)
            opened["salt"] = bytes.fromhex(meta["salt"])
            meta_commit = CommitmentHasher(opened["salt"], "meta")
            meta_commit.update(canonical_json(meta["document"]))
            if meta_commit.hexdigest() != commitments.get("meta"):
                out.append(
                    finding(
                        "modified", "decrypted metadata does not match the log's commitment", key
                    )
                )
        elif hasher is not None and hasher.hexdigest() != commitments.get("clip"):
            out.append(
                finding("modified", "decrypted clip does not match the log's commitment", key)
            )
    return out


#: threads that open records ahead of the walk (``--deep``); one more walks the chain
OPEN_THREADS = 4


class RecordOpener:
    """``--deep``'s record openings, run on threads ahead of the walk that reports them.

    Opening a record is reading both objects, AES-GCM over every segment and SHA-256 over
    ciphertext and plaintext: work that releases the GIL (or, on S3, waits for a GET). So
    the walk names the entries a page will reach (:meth:`ahead`), threads open their
    records meanwhile, and the walk takes each result where it would have opened the
    record itself (:meth:`open`): the findings and their order are those of opening in
    turn. A result is used only for the very entry the walk reached; anything else is
    opened again there.
    """

    def __init__(
        self, ctx: VaultContext, threads: int, records: dict[str, Record], shredded: set[str]
    ) -> None:
        self._ctx, self._threads = ctx, threads
        self._records, self._shredded = records, shredded
        self._pending: dict[int, tuple[dict, Future[list[Finding]]]] = {}

    def _openable(self, entry: dict) -> Record | None:
        """The record of a sealed-evidence entry, if it is known and not shredded."""
        if entry.get("type") != "evidence.sealed":
            return None
        rec = self._records.get(entry.get("record") or "")
        return None if rec is None or rec.id in self._shredded else rec

    @contextmanager
    def ahead(self, entries: Iterable[tuple[int, dict | None]]) -> Iterator[None]:
        """Open the records of these ``(seq, entry)`` on threads while the block walks them."""
        if self._threads < 2:
            yield
            return
        pool = ThreadPoolExecutor(self._threads, thread_name_prefix="verify-open")
        try:
            for seq, entry in entries:
                if entry is not None and (rec := self._openable(entry)) is not None:
                    item = CheckedEntry(seq=seq, hash="", entry=entry)
                    self._pending[seq] = (entry, pool.submit(deep_check, self._ctx, rec, item))
            yield
        finally:
            self._pending.clear()
            pool.shutdown(cancel_futures=True)

    def open(self, rec: Record, item: CheckedEntry) -> list[Finding]:
        # the record follows from the entry (its "record" field), so the same entry
        # means the same record
        pending = self._pending.pop(item.seq, None)
        if pending is not None and pending[0] == item.entry:
            return pending[1].result()
        return deep_check(self._ctx, rec, item)


def open_threads() -> int:
    """Threads for :class:`RecordOpener`: one per CPU this process may use, at most four."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cpus or 1, OPEN_THREADS)
