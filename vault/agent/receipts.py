"""Checking what the vault answered, before the local clip may go.

Two steps, both against local facts only:

1. :func:`check_opening` (right after the upload): the receipt's entry is the entry whose
   leaf hash the receipt names, an ``evidence.sealed`` entry of this record, client and
   campaign, and its salted commitments open to *this* clip and *this* metadata document
   (the document the vault seals is rebuilt here with the vault's own rules).
2. :func:`check_inclusion` (once a checkpoint covers the entry): the checkpoint is signed
   by a pinned log key and names this client's log, and the inclusion proof leads from the
   entry's leaf hash to its root.

A failure raises :class:`ReceiptMismatch`; the agent then keeps the clip and raises an
alert. :class:`ReceiptBook` keeps every verified receipt as one JSON line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import rfc8785

from vault.audio import AudioInfo
from vault.errors import SealingError
from vault.evidence import Evidence
from vault.ledger.checkpoint import NoteError, open_checkpoint, parse_verifier_key
from vault.ledger.entry import entry_hash, parse_entry
from vault.ledger.merkle import verify_inclusion
from vault.sealing import CommitmentHasher, commitment

#: the version of the sealed metadata document (vault.services.ingest.META_VERSION)
META_VERSION = 1
_CHUNK = 1 << 20


class ReceiptMismatch(SealingError):
    """The vault's receipt does not prove that it sealed the local clip and metadata."""

    kind = "receipt-mismatch"

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            hint="the local clip is kept; compare it with the vault's record before anything "
            "is deleted, and check the path to the vault",
        )


def sealed_document(evidence: Evidence, info: AudioInfo) -> bytes:
    """The RFC 8785 bytes of the document the vault seals for this clip and evidence."""
    return rfc8785.dumps(
        {"v": META_VERSION, "evidence": evidence.to_document(), "audio": info.to_dict()}
    )


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise ReceiptMismatch(message)


def check_opening(
    receipt: dict,
    clip: Path,
    document: bytes,
    evidence: Evidence,
    *,
    clip_sha256: str | None = None,
    queued: tuple[str, str] | None = None,
) -> dict:
    """Check the upload's receipt against the local clip and document; the parsed entry.

    ``clip_sha256``: the hash the clip was queued with; the clip is checked against it in
    the same read. The two together prove that the vault committed to the queued bytes:
    had they changed before or while they were sent, either the file now differs from the
    queued hash, or the vault's commitment differs from the file now.

    ``queued``: (salt hex, clip commitment hex) taken in the same read as ``clip_sha256``
    when the clip was queued, the salt proposed with the upload. When the entry was
    sealed under that salt and commits to that commitment, the vault committed to the
    queued bytes and the clip is not read again; otherwise (an older vault drew its own
    salt, a repeat kept the record's, or the commitments differ) the clip is read as above,
    which also names what differs.
    """
    opening = receipt.get("opening")
    _need(isinstance(opening, dict), "the receipt carries no opening (entry and salt)")
    text, salt_hex = opening.get("entry"), opening.get("salt")
    _need(isinstance(text, str) and isinstance(salt_hex, str), "the opening is malformed")
    raw = text.encode("utf-8")
    _need(
        hmac.compare_digest(entry_hash(raw), str(receipt.get("entry_hash", ""))),
        "the receipt's entry is not the entry its entry_hash names",
    )
    try:
        entry = parse_entry(raw)
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        raise ReceiptMismatch("the receipt's entry or salt does not parse") from None
    body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
    _need(entry.get("type") == "evidence.sealed", "the entry is not an evidence.sealed entry")
    _need(entry.get("record") == receipt.get("record_id"), "the entry is of another record")
    _need(entry.get("seq") == receipt.get("seq"), "the entry sits at another position")
    _need(entry.get("log") == evidence.client, "the entry is in another client's log")
    _need(body.get("campaign") == evidence.campaign, "the entry names another campaign")
    commitments = body.get("commitments") or {}
    try:
        clip_hasher = CommitmentHasher(salt, "clip")
        meta_commitment = commitment(salt, "meta", document)
    except (ValueError, TypeError):
        raise ReceiptMismatch("the receipt's salt is not a commitment salt") from None
    if not _commits_to_queued(salt_hex, str(commitments.get("clip", "")), queued):
        _check_clip(clip, clip_hasher, str(commitments.get("clip", "")), clip_sha256)
    _need(
        hmac.compare_digest(meta_commitment, str(commitments.get("meta", ""))),
        "the entry does not commit to the local metadata",
    )
    return entry


def _commits_to_queued(salt_hex: str, clip_commitment: str, queued: tuple[str, str] | None) -> bool:
    """The entry commits to the clip as it was read when queued, under the salt proposed."""
    if queued is None:
        return False
    salt_ok = hmac.compare_digest(salt_hex.lower(), queued[0])
    return salt_ok and hmac.compare_digest(clip_commitment, queued[1])


def _check_clip(
    clip: Path, hasher: CommitmentHasher, clip_commitment: str, clip_sha256: str | None
) -> None:
    plain = hashlib.sha256() if clip_sha256 is not None else None
    for chunk in _chunks(clip):  # one read for both hashes
        hasher.update(chunk)
        if plain is not None:
            plain.update(chunk)
    if plain is not None:
        _need(
            hmac.compare_digest(plain.hexdigest(), clip_sha256 or ""),
            "the staged clip changed after it was queued",
        )
    _need(
        hmac.compare_digest(hasher.hexdigest(), clip_commitment),
        "the entry does not commit to the local clip",
    )


def check_inclusion(proof: dict, entry_text: str, client: str, log_keys: Iterable[str]) -> dict:
    """Check an inclusion proof of the entry under a checkpoint signed by a pinned key."""
    verifiers = [parse_verifier_key(k) for k in log_keys]
    _need(bool(verifiers), "no pinned log key to check the checkpoint with")
    try:
        cp, _ = open_checkpoint(str(proof.get("checkpoint", "")).encode(), verifiers)
    except NoteError as exc:
        raise ReceiptMismatch(
            f"the checkpoint is not signed by a pinned key: {exc.message}"
        ) from None
    _need(cp.origin.endswith("/" + client), "the checkpoint is of another client's log")
    raw = entry_text.encode("utf-8")
    seq = json.loads(raw)["seq"]
    hashes = proof.get("hashes")
    _need(isinstance(hashes, list), "the proof holds no hashes")
    try:
        path = [bytes.fromhex(h) for h in hashes]
    except (TypeError, ValueError):
        raise ReceiptMismatch("the proof's hashes are not hex") from None
    leaf = bytes.fromhex(entry_hash(raw))
    _need(
        verify_inclusion(leaf, seq, cp.size, path, cp.root),
        "the inclusion proof does not lead from the entry to the signed root",
    )
    return {"tree_size": cp.size, "root_hash": cp.root.hex(), "origin": cp.origin}


class ReceiptBook:
    """Verified receipts, one JSON object per line, each line on disk before the clip goes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def add(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
