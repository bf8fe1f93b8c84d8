"""Sealing throughput: the vault's per-byte work at ingest and retrieval vs the bare primitives.

Seal (what ingest does to every clip byte): the clip arrives in 1 MiB chunks; a
``CommitmentHasher`` hashes the plaintext, ``encrypt_stream`` seals it in 64 KiB AES-256-GCM
segments, and a ``Sha256Counter`` hashes the ciphertext. Baseline: ``AESGCM.encrypt`` of
the same 64 KiB segments plus ``hashlib.sha256`` over the plaintext and the ciphertext.

For information, the seal also with the keyed clip fingerprint that ingest computes in a
separate pass over the plaintext before sealing (against the same baseline).

Open: ``decrypt_stream`` reading the sealed object (from memory) vs ``AESGCM.decrypt`` of the
same segments alone; also the retrieval path (ciphertext hashed while it is read, as
``write_audio`` does), for information.

Vault and baseline runs alternate; the figure is the ratio of the median throughputs.

    python bench/sealing.py [--quick]
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator

import _common as c
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.sealing import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    CommitmentHasher,
    Sha256Counter,
    decrypt_stream,
    encrypt_stream,
    keyed_hash,
    new_data_key,
    new_salt,
    object_aad,
)

TARGET = 0.7
READ_CHUNK = 1024 * 1024  # what ingest reads from the clip file at a time
AAD = object_aad("telco-de", "01jbenchbenchbenchbenchben", "clip")


def _tee(chunks: Iterable[bytes], hasher: CommitmentHasher) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def vault_seal(chunks: list[bytes], dek: bytes, keep: list[bytes] | None = None) -> tuple[str, str]:
    """As ingest: commit to the plaintext, seal it, hash the ciphertext (then let it go)."""
    commit = CommitmentHasher(new_salt(), "clip")
    ct_hash = Sha256Counter()
    for piece in encrypt_stream(dek, AAD, _tee(chunks, commit)):
        ct_hash.update(piece)
        if keep is not None:
            keep.append(piece)
    return commit.hexdigest(), ct_hash.hexdigest()


def vault_seal_fingerprinted(chunks: list[bytes], dek: bytes, index_key: bytes) -> None:
    """Ingest's real per-byte work: the keyed clip fingerprint is one more plaintext pass."""
    keyed_hash(index_key, "clip-fingerprint", iter(chunks))
    vault_seal(chunks, dek)


def raw_seal(data: memoryview, aead: AESGCM, ad: bytes) -> tuple[str, str]:
    plain, sealed = hashlib.sha256(), hashlib.sha256()
    prefix = os.urandom(7)
    total = len(data)
    for index, offset in enumerate(range(0, total, SEGMENT_SIZE)):
        segment = data[offset : offset + SEGMENT_SIZE]
        plain.update(segment)
        nonce = prefix + struct.pack(">IB", index, offset + SEGMENT_SIZE >= total)
        sealed.update(aead.encrypt(nonce, segment, ad))
    return plain.hexdigest(), sealed.hexdigest()


def vault_open(ciphertext: bytes, dek: bytes) -> int:
    size = 0
    for piece in decrypt_stream(dek, AAD, io.BytesIO(ciphertext).read):
        size += len(piece)
    return size


def vault_open_retrieve(ct_chunks: list[bytes], dek: bytes, reader_cls) -> int:
    """As retrieve.open_object: the store's 1 MiB chunks, hashed while decrypted."""
    reader = reader_cls(iter(ct_chunks))
    size = 0
    for piece in decrypt_stream(dek, AAD, reader.read):
        size += len(piece)
    reader.hexdigest()
    return size


def raw_open(
    sealed: list[tuple[bytes, memoryview]], aead: AESGCM, ad: bytes, hashed: bool = False
) -> int:
    digest = hashlib.sha256()
    size = 0
    for nonce, segment in sealed:
        if hashed:
            digest.update(segment)
        size += len(aead.decrypt(nonce, segment, ad))
    return size


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    quick = args.quick
    total, reps = (16 * c.MIB, 3) if quick else (64 * c.MIB, 7)
    c.header("sealing throughput vs AES-GCM + SHA-256 primitives", quick)
    from vault.storage import ChunkReader as reader_cls

    data = os.urandom(total)
    chunks = [data[i : i + READ_CHUNK] for i in range(0, total, READ_CHUNK)]
    view = memoryview(data)
    dek = new_data_key()
    index_key = os.urandom(32)
    aead = AESGCM(os.urandom(32))
    ad = os.urandom(HEADER_SIZE) + AAD

    # the vault's ciphertext for the open runs, and the same segments for the baseline
    pieces: list[bytes] = []
    vault_seal(chunks, dek, pieces)
    ciphertext = b"".join(pieces)
    del pieces
    # what the object store hands to retrieval: 1 MiB chunks of the stored object
    ct_chunks = [ciphertext[i : i + READ_CHUNK] for i in range(0, len(ciphertext), READ_CHUNK)]
    assert vault_open(ciphertext, dek) == total
    raw_pieces = []
    prefix = os.urandom(7)
    for index, offset in enumerate(range(0, total, SEGMENT_SIZE)):
        nonce = prefix + struct.pack(">IB", index, offset + SEGMENT_SIZE >= total)
        raw_pieces.append((nonce, aead.encrypt(nonce, view[offset : offset + SEGMENT_SIZE], ad)))
    raw_sealed = [(n, memoryview(s)) for n, s in raw_pieces]
    assert len(ciphertext) == HEADER_SIZE + total + len(raw_sealed) * TAG_SIZE

    runs: dict[str, list[float]] = {
        k: []
        for k in (
            "seal_vault",
            "seal_raw",
            "open_vault",
            "open_raw",
            "open_retrieve",
            "open_raw_hashed",
            "seal_fp",
        )
    }
    # warm-up, then alternate the order of vault and baseline on every repetition
    vault_seal(chunks[:4], dek)
    raw_seal(view[: 4 * READ_CHUNK], aead, ad)
    for rep in range(reps):
        # (vault, baseline) pairs; every other repetition runs the baseline first
        pairs = [
            (
                ("seal_vault", lambda: vault_seal(chunks, dek)),
                ("seal_raw", lambda: raw_seal(view, aead, ad)),
            ),
            (
                ("open_vault", lambda: vault_open(ciphertext, dek)),
                ("open_raw", lambda: raw_open(raw_sealed, aead, ad)),
            ),
        ]
        runs["seal_fp"].append(timed(lambda: vault_seal_fingerprinted(chunks, dek, index_key)))
        if reader_cls is not None:
            pairs.append(
                (
                    ("open_retrieve", lambda: vault_open_retrieve(ct_chunks, dek, reader_cls)),
                    ("open_raw_hashed", lambda: raw_open(raw_sealed, aead, ad, hashed=True)),
                )
            )
        for pair in pairs:
            for name, fn in reversed(pair) if rep % 2 else pair:
                runs[name].append(timed(fn))

    mib = total / c.MIB
    tput = {k: mib / c.median(v) for k, v in runs.items() if v}
    seal_ratio = tput["seal_vault"] / tput["seal_raw"]
    open_ratio = tput["open_vault"] / tput["open_raw"]
    print(f"{mib:.0f} MiB of plaintext, {reps} repetitions, median throughput")
    rows = [
        ("seal: AESGCM.encrypt + 2x sha256 (baseline)", tput["seal_raw"], None),
        ("seal: CommitmentHasher+encrypt_stream+Sha256Counter", tput["seal_vault"], seal_ratio),
        (
            "seal + keyed_hash fingerprint (all ingest does)",
            tput["seal_fp"],
            tput["seal_fp"] / tput["seal_raw"],
        ),
        ("open: AESGCM.decrypt (baseline)", tput["open_raw"], None),
        ("open: decrypt_stream", tput["open_vault"], open_ratio),
    ]
    retrieve_ratio = None
    if "open_retrieve" in tput:
        retrieve_ratio = tput["open_retrieve"] / tput["open_raw_hashed"]
        rows += [
            ("open: AESGCM.decrypt + sha256(ct) (baseline)", tput["open_raw_hashed"], None),
            (
                "open: retrieve path (ChunkReader+decrypt_stream)",
                tput["open_retrieve"],
                retrieve_ratio,
            ),
        ]
    c.table(["", "MiB/s", "ratio"], rows)
    c.emit(
        "sealing",
        quick,
        seal_ratio,
        TARGET,
        "ratio>=",
        bytes=total,
        reps=reps,
        mib_s={k: round(v, 1) for k, v in tput.items()},
        decrypt_ratio=round(open_ratio, 4),
        with_fingerprint_ratio=round(tput["seal_fp"] / tput["seal_raw"], 4),
        retrieve_path_ratio=None if retrieve_ratio is None else round(retrieve_ratio, 4),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
