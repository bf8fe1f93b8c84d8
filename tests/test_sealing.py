"""Tests of vault.sealing: the sealed-object stream, AD, keyed hashes, keyring and signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import multiprocessing
import os
import random
import stat
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import ConfigError, DecryptionFailed, KeyUnavailable, SealingError
from vault.sealing import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    CommitmentHasher,
    KeyProvider,
    LocalKeyring,
    LogSigner,
    Sha256Counter,
    WrappedKey,
    ciphertext_size,
    commitment,
    decode_master_key,
    decrypt_range,
    decrypt_stream,
    encode_master_key,
    encrypt_stream,
    generate_master_key,
    keyed_hash,
    new_data_key,
    new_salt,
    object_aad,
    plaintext_size,
    verify_signature,
)
from vault.sealing import stream as stream_module
from vault.sealing.keys import unwrap_data_key, wrap_aad, wrap_data_key

VECTORS = json.loads((Path(__file__).parent / "vectors" / "sealing.json").read_text())
SEALED = SEGMENT_SIZE + TAG_SIZE
DEK = bytes(range(32))
AAD = object_aad("telco-de", "rec-1", "clip")
FIXED_NOW = datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)


def seal(plaintext: bytes, dek: bytes = DEK, aad: bytes = AAD) -> bytes:
    return b"".join(encrypt_stream(dek, aad, [plaintext]))


def unseal(ciphertext: bytes, dek: bytes = DEK, aad: bytes = AAD) -> bytes:
    return b"".join(decrypt_stream(dek, aad, io.BytesIO(ciphertext).read))


def segment(ciphertext: bytes, index: int) -> bytes:
    start = HEADER_SIZE + index * SEALED
    return ciphertext[start : start + SEALED]


def flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


# -- round trips and sizes ---------------------------------------------------------------


SIZES = [0, 1, 15, 16, 17, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE]


@pytest.mark.parametrize("size", SIZES + random.Random(7).sample(range(4 * SEGMENT_SIZE), 6))
def test_round_trip(size: int) -> None:
    plaintext = os.urandom(size)
    ciphertext = seal(plaintext)
    assert len(ciphertext) == ciphertext_size(size)
    assert plaintext_size(len(ciphertext)) == size
    assert unseal(ciphertext) == plaintext


def test_segment_counts_and_last_flag_layout() -> None:
    # empty -> exactly one empty final segment; k full segments -> no extra empty segment
    assert ciphertext_size(0) == HEADER_SIZE + TAG_SIZE
    assert ciphertext_size(SEGMENT_SIZE) == HEADER_SIZE + SEALED
    assert ciphertext_size(SEGMENT_SIZE + 1) == HEADER_SIZE + SEALED + 1 + TAG_SIZE
    parts = list(encrypt_stream(DEK, AAD, [b"x" * (2 * SEGMENT_SIZE)]))
    assert [len(p) for p in parts] == [HEADER_SIZE, SEALED, SEALED]
    assert [len(p) for p in encrypt_stream(DEK, AAD, [])] == [HEADER_SIZE, TAG_SIZE]


@pytest.mark.parametrize(
    "size",
    [
        -1,
        0,
        HEADER_SIZE,
        HEADER_SIZE + TAG_SIZE - 1,
        HEADER_SIZE + SEALED + 1,  # a second segment shorter than a tag
        HEADER_SIZE + SEALED + TAG_SIZE,  # an empty final segment after a full one
    ],
)
def test_plaintext_size_rejects_impossible_sizes(size: int) -> None:
    with pytest.raises(DecryptionFailed):
        plaintext_size(size)


def test_ciphertext_size_rejects_negative() -> None:
    with pytest.raises(ValueError):
        ciphertext_size(-1)


def test_every_object_gets_a_fresh_salt_and_nonce_prefix() -> None:
    first, second = seal(b"same"), seal(b"same")
    assert first[:4] == second[:4] == b"EVS1"
    assert first[9:HEADER_SIZE] != second[9:HEADER_SIZE]
    assert first[HEADER_SIZE:] != second[HEADER_SIZE:]


def test_arbitrary_input_chunking() -> None:
    rng = random.Random(11)
    plaintext = rng.randbytes(3 * SEGMENT_SIZE + 4321)
    expected = seal(plaintext)
    for _ in range(5):
        chunks, pos = [], 0
        while pos < len(plaintext):
            n = rng.choice([0, 1, 7, 1000, SEGMENT_SIZE - 1, SEGMENT_SIZE, 2 * SEGMENT_SIZE + 3])
            chunks.append(plaintext[pos : pos + n])
            pos += n
        kinds = [bytes, bytearray, memoryview]
        chunks = [rng.choice(kinds)(c) for c in chunks]
        header = expected[:HEADER_SIZE]
        salt, prefix = header[9:41], header[41:48]
        sealed = b"".join(encrypt_stream(DEK, AAD, chunks, _salt=salt, _nonce_prefix=prefix))
        assert sealed == expected


def test_encrypt_stream_is_lazy_and_bounded() -> None:
    consumed = 0
    chunk = 1000

    def source() -> Iterator[bytes]:
        nonlocal consumed
        for _ in range(20 * SEGMENT_SIZE // chunk):
            consumed += chunk
            yield b"a" * chunk

    out = encrypt_stream(DEK, AAD, source())
    assert consumed == 0  # nothing read before the caller asks
    assert len(next(out)) == HEADER_SIZE
    assert consumed == 0  # the header needs no input
    assert len(next(out)) == SEALED
    # one segment plus the one-byte lookahead, rounded up to the input chunk
    assert SEGMENT_SIZE < consumed <= SEGMENT_SIZE + chunk
    for _ in range(5):
        next(out)
        assert consumed <= 6 * SEGMENT_SIZE + chunk


def test_decrypt_stream_is_lazy_and_bounded() -> None:
    ciphertext = seal(os.urandom(10 * SEGMENT_SIZE))
    source = io.BytesIO(ciphertext)
    out = decrypt_stream(DEK, AAD, source.read)
    assert source.tell() == 0
    assert len(next(out)) == SEGMENT_SIZE
    # header, the segment and one segment of lookahead
    assert source.tell() <= HEADER_SIZE + 2 * SEALED


def test_decrypt_stream_retries_short_reads() -> None:
    plaintext = os.urandom(2 * SEGMENT_SIZE + 5)
    source = io.BytesIO(seal(plaintext))

    def dribble(n: int) -> bytes:
        return source.read(min(n, 777))

    assert b"".join(decrypt_stream(DEK, AAD, dribble)) == plaintext


def test_data_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encrypt_stream(b"short", AAD, [b""])
    with pytest.raises(ValueError, match="32 bytes"):
        decrypt_stream(DEK[:16], AAD, io.BytesIO(b"").read)


# -- tampering ---------------------------------------------------------------------------

PLAIN = os.urandom(2 * SEGMENT_SIZE + 1000)  # three segments: full, full, short
CIPHER = seal(PLAIN)


@pytest.mark.parametrize(
    ("position", "message"),
    [
        (0, "magic"),
        (3, "magic"),
        (4, "version"),
        (6, "segment size"),
        (8, "segment size"),
        (9, "segment 0 failed authentication"),  # salt
        (40, "segment 0 failed authentication"),  # salt
        (41, "segment 0 failed authentication"),  # nonce prefix
        (47, "segment 0 failed authentication"),  # nonce prefix
    ],
)
def test_header_tampering_is_detected(position: int, message: str) -> None:
    with pytest.raises(DecryptionFailed, match=message):
        unseal(flip(CIPHER, position))


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("where", ["first", "middle", "tag"])
def test_segment_tampering_names_the_segment(index: int, where: str) -> None:
    start = HEADER_SIZE + index * SEALED
    end = min(start + SEALED, len(CIPHER))
    position = {"first": start, "middle": (start + end) // 2, "tag": end - 1}[where]
    with pytest.raises(DecryptionFailed, match=f"segment {index} failed authentication") as err:
        unseal(flip(CIPHER, position))
    assert "modified, truncated or reordered" in str(err.value)


def test_segment_tampering_in_an_empty_object() -> None:
    with pytest.raises(DecryptionFailed, match="segment 0"):
        unseal(flip(seal(b""), HEADER_SIZE + 3))


def test_dropping_the_last_segment_is_truncation() -> None:
    with pytest.raises(DecryptionFailed, match=r"ends after segment 1.*truncated"):
        unseal(CIPHER[: HEADER_SIZE + 2 * SEALED])
    exact = seal(os.urandom(3 * SEGMENT_SIZE))
    with pytest.raises(DecryptionFailed, match=r"ends after segment 1.*truncated"):
        unseal(exact[: HEADER_SIZE + 2 * SEALED])


def test_cutting_inside_a_segment_is_detected() -> None:
    for cut in [1, TAG_SIZE, 500, 1000 + TAG_SIZE - 1]:
        with pytest.raises(DecryptionFailed):
            unseal(CIPHER[:-cut])


def test_header_only_and_short_header_are_truncations() -> None:
    with pytest.raises(DecryptionFailed, match=r"ends inside segment 0.*truncated"):
        unseal(CIPHER[:HEADER_SIZE])
    with pytest.raises(DecryptionFailed, match="too short"):
        unseal(CIPHER[: HEADER_SIZE - 1])
    with pytest.raises(DecryptionFailed, match="too short"):
        unseal(b"")


def test_appending_after_the_last_segment_is_detected() -> None:
    exact = seal(os.urandom(2 * SEGMENT_SIZE))  # final segment is full-size
    with pytest.raises(DecryptionFailed, match=r"segment 1 is the object's final segment.*append"):
        unseal(exact + segment(exact, 0))
    with pytest.raises(DecryptionFailed, match="append"):
        unseal(exact + b"\x00")
    with pytest.raises(DecryptionFailed, match="segment 2"):
        unseal(CIPHER + b"\x00")  # final segment is short: the junk merges into it
    with pytest.raises(DecryptionFailed):
        unseal(CIPHER + segment(CIPHER, 1))


def test_reordered_and_duplicated_segments_are_detected() -> None:
    header, s0, s1, s2 = CIPHER[:HEADER_SIZE], *(segment(CIPHER, i) for i in range(3))
    with pytest.raises(DecryptionFailed, match="segment 0 failed"):
        unseal(header + s1 + s0 + s2)
    with pytest.raises(DecryptionFailed, match="segment 1 failed"):
        unseal(header + s0 + s0 + s2)
    with pytest.raises(DecryptionFailed, match="segment 0 failed"):
        unseal(header + s1 + s2)  # first segment dropped


def test_segments_of_another_object_do_not_fit() -> None:
    other = seal(PLAIN)  # same DEK and AD, other salt: other object key
    spliced = CIPHER[: HEADER_SIZE + SEALED] + segment(other, 1) + segment(CIPHER, 2)
    with pytest.raises(DecryptionFailed, match="segment 1 failed"):
        unseal(spliced)
    with pytest.raises(DecryptionFailed, match="segment 0 failed"):
        unseal(other[:HEADER_SIZE] + CIPHER[HEADER_SIZE:])


@pytest.mark.parametrize(
    "aad",
    [
        object_aad("energy-at", "rec-1", "clip"),
        object_aad("telco-de", "rec-2", "clip"),
        object_aad("telco-de", "rec-1", "meta"),
        b"",
    ],
)
def test_wrong_associated_data_fails(aad: bytes) -> None:
    with pytest.raises(DecryptionFailed, match="segment 0 failed authentication"):
        unseal(CIPHER, aad=aad)


def test_wrong_data_key_fails() -> None:
    with pytest.raises(DecryptionFailed, match="segment 0 failed authentication"):
        unseal(CIPHER, dek=new_data_key())


def test_non_canonical_empty_final_segment_is_rejected() -> None:
    # build, with the private helpers, what encrypt_stream never writes: a full segment
    # followed by an empty final one
    salt, prefix = os.urandom(32), os.urandom(7)
    ciphertext = b"".join(
        encrypt_stream(DEK, AAD, [b"z" * SEGMENT_SIZE], _salt=salt, _nonce_prefix=prefix)
    )
    header = ciphertext[:HEADER_SIZE]
    aead = stream_module._stream_cipher(DEK, salt, AAD)
    first = aead.encrypt(stream_module._nonce(prefix, 0, False), b"z" * SEGMENT_SIZE, header + AAD)
    empty_last = aead.encrypt(stream_module._nonce(prefix, 1, True), b"", header + AAD)
    with pytest.raises(DecryptionFailed, match="canonical"):
        unseal(header + first + empty_last)


def test_counter_overflow_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SealingError, match="too large"):
        ciphertext_size(2**32 * SEGMENT_SIZE + 1)
    with pytest.raises(SealingError, match="overflow"):
        stream_module._nonce(b"\x00" * 7, 2**32, False)
    ciphertext = seal(os.urandom(3 * SEGMENT_SIZE))
    monkeypatch.setattr(stream_module, "_MAX_SEGMENTS", 2)
    with pytest.raises(SealingError, match="overflow"):
        seal(os.urandom(3 * SEGMENT_SIZE))
    with pytest.raises(DecryptionFailed, match="more than 2 segments"):
        unseal(ciphertext)


# -- random access -----------------------------------------------------------------------


class CountingReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[tuple[int, int]] = []

    def __call__(self, start: int, n: int) -> bytes:
        self.calls.append((start, n))
        return self.data[start : start + n]


def _needed_segments(offset: int, length: int) -> range:
    return range(offset // SEGMENT_SIZE, (offset + length - 1) // SEGMENT_SIZE + 1)


@pytest.mark.parametrize("size", [1, SEGMENT_SIZE, 4 * SEGMENT_SIZE, 4 * SEGMENT_SIZE + 777])
def test_decrypt_range_matches_slice_and_reads_only_needed_segments(size: int) -> None:
    rng = random.Random(size)
    plaintext = rng.randbytes(size)
    ciphertext = seal(plaintext)
    pairs = [(0, size), (size - 1, 1), (0, 1), (size, 0), (0, 0)]
    pairs += (
        [(SEGMENT_SIZE - 1, 2), (SEGMENT_SIZE, size - SEGMENT_SIZE)] if size > SEGMENT_SIZE else []
    )
    for _ in range(150):
        offset = rng.randrange(size + 1)
        pairs.append((offset, rng.randrange(size - offset + 1)))
    for offset, length in pairs:
        reader = CountingReader(ciphertext)
        got = decrypt_range(DEK, AAD, reader, len(ciphertext), offset, length)
        assert got == plaintext[offset : offset + length], (offset, length)
        assert reader.calls[0] == (0, HEADER_SIZE)
        if length == 0:
            assert len(reader.calls) == 1
            continue
        assert len(reader.calls) == 2
        needed = _needed_segments(offset, length)
        start, n = reader.calls[1]
        assert start == HEADER_SIZE + needed.start * SEALED
        assert start + n == min(HEADER_SIZE + needed.stop * SEALED, len(ciphertext))


def test_decrypt_range_of_an_empty_object() -> None:
    ciphertext = seal(b"")
    assert decrypt_range(DEK, AAD, CountingReader(ciphertext), len(ciphertext), 0, 0) == b""
    with pytest.raises(SealingError, match="outside"):
        decrypt_range(DEK, AAD, CountingReader(ciphertext), len(ciphertext), 0, 1)


@pytest.mark.parametrize(
    ("offset", "length"), [(-1, 1), (0, -1), (len(PLAIN), 1), (10, len(PLAIN))]
)
def test_decrypt_range_outside_the_object(offset: int, length: int) -> None:
    with pytest.raises(SealingError, match="outside"):
        decrypt_range(DEK, AAD, CountingReader(CIPHER), len(CIPHER), offset, length)


def test_decrypt_range_checks_the_last_flag() -> None:
    # Storage lost the final segment, and the caller believes the truncated size: the
    # segment that is now the end of the object was not sealed as the last one.
    truncated = CIPHER[: HEADER_SIZE + 2 * SEALED]
    with pytest.raises(DecryptionFailed, match=r"ends after segment 1.*truncated"):
        decrypt_range(DEK, AAD, CountingReader(truncated), len(truncated), SEGMENT_SIZE, 10)
    # The caller knows the sealed size but storage returns less.
    with pytest.raises(DecryptionFailed, match="truncated"):
        decrypt_range(DEK, AAD, CountingReader(truncated), len(CIPHER), 2 * SEGMENT_SIZE, 10)
    # Appended data: the caller's size says the old final segment is not the last.
    exact = seal(os.urandom(2 * SEGMENT_SIZE))
    grown = exact + segment(exact, 0)
    with pytest.raises(DecryptionFailed, match="final segment but more data follows"):
        decrypt_range(DEK, AAD, CountingReader(grown), len(grown), SEGMENT_SIZE, 10)


def test_decrypt_range_detects_tampering_and_binding() -> None:
    tampered = flip(CIPHER, HEADER_SIZE + SEALED + 5)
    with pytest.raises(DecryptionFailed, match="segment 1 failed"):
        decrypt_range(DEK, AAD, CountingReader(tampered), len(CIPHER), SEGMENT_SIZE - 2, 4)
    with pytest.raises(DecryptionFailed, match="segment 0 failed"):
        decrypt_range(DEK, AAD, CountingReader(flip(CIPHER, 20)), len(CIPHER), 0, 4)
    with pytest.raises(DecryptionFailed, match="magic"):
        decrypt_range(DEK, AAD, CountingReader(flip(CIPHER, 0)), len(CIPHER), 0, 4)
    other = object_aad("telco-de", "rec-1", "meta")
    with pytest.raises(DecryptionFailed, match="segment 2 failed"):
        decrypt_range(DEK, other, CountingReader(CIPHER), len(CIPHER), len(PLAIN) - 3, 3)
    with pytest.raises(DecryptionFailed, match="not a possible"):
        decrypt_range(DEK, AAD, CountingReader(CIPHER), HEADER_SIZE + 3 * SEALED + 5, 0, 1)


# -- associated data and data keys -------------------------------------------------------


def test_object_aad_is_unambiguous() -> None:
    assert object_aad("ab", "c", "clip") != object_aad("a", "bc", "clip")
    assert object_aad("t", "r", "clip") != object_aad("t", "r", "meta")
    assert object_aad("t", "r", "clip") == object_aad("t", "r", "clip")
    assert object_aad("t", "r", "clip").startswith(b"\x00\x00\x00\x18evidence-vault/v1 object")


@pytest.mark.parametrize(
    ("tenant", "record_id", "role"),
    [("", "r", "clip"), ("t", "", "clip"), ("t", "r", "audio"), ("t", "r", ""), (1, "r", "clip")],
)
def test_object_aad_rejects_bad_fields(tenant, record_id, role) -> None:
    with pytest.raises(ValueError):
        object_aad(tenant, record_id, role)


def test_new_data_key_and_salt_are_fresh_32_bytes() -> None:
    assert len(new_data_key()) == 32 and new_data_key() != new_data_key()
    assert len(new_salt()) == 32 and new_salt() != new_salt()


# -- keyed hashes and commitments --------------------------------------------------------

INDEX_KEY = bytes(range(0x80, 0xA0))


def test_keyed_hash_separates_domains_and_keys() -> None:
    base = keyed_hash(INDEX_KEY, "phone", b"+4915112345678")
    assert len(base) == 64 and int(base, 16) >= 0
    assert keyed_hash(INDEX_KEY, "phone", b"+4915112345678") == base
    assert keyed_hash(INDEX_KEY, "clip-fingerprint", b"+4915112345678") != base
    assert keyed_hash(bytes(32), "phone", b"+4915112345678") != base
    # the domain's length prefix: ("ab", "c...") and ("a", "bc...") differ
    assert keyed_hash(INDEX_KEY, "ab", b"c") != keyed_hash(INDEX_KEY, "a", b"bc")


def test_keyed_hash_streams_chunks() -> None:
    data = os.urandom(100_000)
    chunks = (data[i : i + 999] for i in range(0, len(data), 999))
    assert keyed_hash(INDEX_KEY, "clip-fingerprint", chunks) == keyed_hash(
        INDEX_KEY, "clip-fingerprint", data
    )


def test_keyed_hash_rejects_misuse() -> None:
    with pytest.raises(TypeError, match="str"):
        keyed_hash(INDEX_KEY, "phone", "+4915112345678")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        keyed_hash(b"short", "phone", b"x")
    with pytest.raises(ValueError, match="domain"):
        keyed_hash(INDEX_KEY, "", b"x")


def test_commitment_formula_and_streaming() -> None:
    salt = new_salt()
    data = os.urandom(70_000)
    expected = hashlib.sha256(salt + b"clip\x00" + data).hexdigest()
    assert commitment(salt, "clip", data) == expected
    assert commitment(salt, "clip", [data[:5], b"", data[5:]]) == expected
    hasher = CommitmentHasher(salt, "clip")
    for i in range(0, len(data), 4096):
        hasher.update(data[i : i + 4096])
    assert hasher.hexdigest() == expected and hasher.size == len(data)
    assert commitment(salt, "meta", data) != expected
    assert commitment(new_salt(), "clip", data) != expected


def test_commitment_rejects_misuse() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        commitment(b"salt", "clip", b"")
    with pytest.raises(ValueError, match="NUL"):
        commitment(new_salt(), "cl\x00ip", b"")
    with pytest.raises(TypeError):
        commitment(new_salt(), "clip", "text")  # type: ignore[arg-type]


def test_sha256_counter() -> None:
    counter = Sha256Counter()
    assert counter.size == 0 and counter.hexdigest() == hashlib.sha256().hexdigest()
    for part in [b"abc", bytearray(b"def"), memoryview(b"ghij"), b""]:
        counter.update(part)
    assert counter.size == 10
    assert counter.hexdigest() == hashlib.sha256(b"abcdefghij").hexdigest()
    assert counter.digest() == hashlib.sha256(b"abcdefghij").digest()


# -- test vectors ------------------------------------------------------------------------


def _vector_plaintext(spec: dict) -> bytes:
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    assert spec["pattern"] == "byte i = i mod 251"
    return bytes(i % 251 for i in range(spec["size"]))


def _reference_seal(dek: bytes, salt: bytes, prefix: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """docs/formats.md, implemented again from the text with bare primitives."""
    header = b"EVS1" + bytes([1]) + struct.pack(">I", 65536) + salt + prefix
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=b"evidence-vault/v1 stream key" + aad
    ).derive(dek)
    pieces = [plaintext[i : i + 65536] for i in range(0, len(plaintext), 65536)] or [b""]
    out = header
    for index, piece in enumerate(pieces):
        nonce = prefix + struct.pack(">IB", index, index == len(pieces) - 1)
        out += AESGCM(key).encrypt(nonce, piece, header + aad)
    return out


@pytest.mark.parametrize("case", VECTORS["stream"]["cases"], ids=lambda c: c["name"])
def test_stream_vectors(case: dict) -> None:
    v = VECTORS["stream"]
    dek, salt = bytes.fromhex(v["dek"]), bytes.fromhex(v["salt"])
    prefix, aad = bytes.fromhex(v["nonce_prefix"]), bytes.fromhex(v["aad"])
    plaintext = _vector_plaintext(case["plaintext"])
    ciphertext = b"".join(encrypt_stream(dek, aad, [plaintext], _salt=salt, _nonce_prefix=prefix))
    assert ciphertext == _reference_seal(dek, salt, prefix, aad, plaintext)
    assert len(ciphertext) == case["ciphertext_size"]
    assert hashlib.sha256(ciphertext).hexdigest() == case["ciphertext_sha256"]
    assert ciphertext[:HEADER_SIZE].hex() == case["header"]
    if "ciphertext" in case:
        assert ciphertext.hex() == case["ciphertext"]
    for seg in case["segments"]:
        body = segment(ciphertext, seg["index"])
        assert len(body) == seg["plaintext_size"] + TAG_SIZE
        assert body[-TAG_SIZE:].hex() == seg["tag"]
        assert body.hex().startswith(seg["ciphertext_head"])
    assert stream_module._stream_cipher is not None
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=stream_module.STREAM_KEY_INFO + aad
    ).derive(dek)
    assert key.hex() == v["object_key"]
    assert unseal(ciphertext, dek=dek, aad=aad) == plaintext


def test_object_aad_vector() -> None:
    v = VECTORS["object_aad"]
    assert object_aad(v["tenant"], v["record_id"], v["role"]).hex() == v["aad"]
    assert VECTORS["stream"]["aad"] == v["aad"]


def test_keyed_hash_and_commitment_vectors() -> None:
    k = VECTORS["keyed_hash"]
    key, data = bytes.fromhex(k["key"]), bytes.fromhex(k["data"])
    assert keyed_hash(key, k["domain"], data) == k["hash"]
    domain = k["domain"].encode()
    message = struct.pack(">I", len(domain)) + domain + data
    assert hmac.new(key, message, hashlib.sha256).hexdigest() == k["hash"]
    c = VECTORS["commitment"]
    salt, data = bytes.fromhex(c["salt"]), bytes.fromhex(c["data"])
    assert commitment(salt, c["role"], data) == c["commitment"]
    assert hashlib.sha256(salt + c["role"].encode() + b"\x00" + data).hexdigest() == c["commitment"]


def test_wrapped_key_vector() -> None:
    w = VECTORS["wrapped_key"]
    kek, dek, nonce = bytes.fromhex(w["kek"]), bytes.fromhex(w["dek"]), bytes.fromhex(w["nonce"])
    assert wrap_aad(w["tenant"], w["kek_id"], w["context"]).hex() == w["aad"]
    wrapped = wrap_data_key(kek, w["kek_id"], w["tenant"], dek, w["context"], _nonce=nonce)
    assert wrapped.blob.hex() == w["blob"]
    blob = bytes.fromhex(w["blob"])
    assert blob[0] == 1 and blob[1:13] == nonce
    assert AESGCM(kek).decrypt(nonce, blob[13:], bytes.fromhex(w["aad"])) == dek
    assert unwrap_data_key(kek, WrappedKey(w["kek_id"], blob), w["tenant"], w["context"]) == dek


# -- master key --------------------------------------------------------------------------


def test_master_key_encoding_round_trip() -> None:
    key = generate_master_key()
    text = encode_master_key(key)
    assert text.startswith("evmk1-") and len(text) == 49
    assert decode_master_key(text) == key
    assert decode_master_key(f"  {text}\n") == key
    assert encode_master_key(bytes(32)) == "evmk1-" + "A" * 43


@pytest.mark.parametrize(
    "text",
    [
        "",
        "evmk1-",
        "A" * 43,
        "evmk2-" + "A" * 43,
        "evmk1-" + "A" * 42,
        "evmk1-" + "A" * 44,
        "evmk1-" + "A" * 42 + "=",
        "evmk1-" + "A" * 42 + "+",
        "evmk1-" + "A" * 42 + "B",  # non-canonical: the spare bits are not zero
        "evmk1-" + "A" * 21 + " " + "A" * 21,
    ],
)
def test_malformed_master_keys_are_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="master key is malformed") as err:
        decode_master_key(text)
    assert "AAAA" not in str(err.value)  # the secret is never echoed


def test_master_key_must_be_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        encode_master_key(b"short")
    with pytest.raises(ConfigError, match="32 bytes"):
        LocalKeyring.create(tmp_path / "keyring.json", b"short")


# -- keyring -----------------------------------------------------------------------------


@pytest.fixture
def master() -> bytes:
    return generate_master_key()


@pytest.fixture
def ring(tmp_path: Path, master: bytes) -> LocalKeyring:
    return LocalKeyring.create(tmp_path / "keyring.json", master, clock=lambda: FIXED_NOW)


def test_keyring_create_and_open(tmp_path: Path, master: bytes, ring: LocalKeyring) -> None:
    path = tmp_path / "keyring.json"
    assert isinstance(ring, KeyProvider) and ring.name == "local"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["format"] == "evidence-vault keyring" and doc["version"] == 1
    assert LocalKeyring.open(path, master).index_key("t") == ring.index_key("t")
    assert LocalKeyring(path, master).kek_ids() == []


def test_keyring_create_refuses_to_overwrite(
    tmp_path: Path, master: bytes, ring: LocalKeyring
) -> None:
    before = (tmp_path / "keyring.json").read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        LocalKeyring.create(tmp_path / "keyring.json", master)
    assert (tmp_path / "keyring.json").read_bytes() == before


def test_keyring_wrong_master_key(tmp_path: Path, ring: LocalKeyring) -> None:
    with pytest.raises(ConfigError, match="master key does not match the keyring"):
        LocalKeyring.open(tmp_path / "keyring.json", generate_master_key())


def test_keyring_missing_or_corrupt(tmp_path: Path, master: bytes) -> None:
    with pytest.raises(ConfigError, match="no keyring"):
        LocalKeyring.open(tmp_path / "absent.json", master)
    bad = tmp_path / "bad.json"
    for text in ["not json", "{}", '{"format": "evidence-vault keyring", "version": 1}', "[]"]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match="not a readable"):
            LocalKeyring.open(bad, master)
    bad.write_text(json.dumps({"format": "evidence-vault keyring", "version": 9}))
    with pytest.raises(ConfigError, match="version 9"):
        LocalKeyring.open(bad, master)


def test_wrap_and_unwrap(ring: LocalKeyring) -> None:
    dek = new_data_key()
    wrapped = ring.wrap("telco-de", "2026-11", dek, {"record": "rec-1"})
    assert wrapped.kek_id == "local:telco-de:2026-11:1"
    assert len(wrapped.blob) == 61 and wrapped.blob[0] == 1
    assert ring.unwrap(wrapped, "telco-de", {"record": "rec-1"}) == dek
    # one KEK per tenant and bucket
    assert ring.wrap("telco-de", "2026-11", new_data_key(), {}).kek_id == wrapped.kek_id
    assert ring.wrap("telco-de", "2026-12", dek, {}).kek_id == "local:telco-de:2026-12:1"
    assert ring.wrap("energy-at", "2026-11", dek, {}).kek_id == "local:energy-at:2026-11:1"
    assert ring.kek_ids("telco-de") == ["local:telco-de:2026-11:1", "local:telco-de:2026-12:1"]
    assert len(ring.kek_ids()) == 3


def test_unwrap_with_wrong_binding_fails(ring: LocalKeyring) -> None:
    wrapped = ring.wrap("telco-de", "2026-11", new_data_key(), {"record": "rec-1"})
    for context in [{"record": "rec-2"}, {}, {"record": "rec-1", "extra": "x"}]:
        with pytest.raises(DecryptionFailed, match="does not open"):
            ring.unwrap(wrapped, "telco-de", context)
    with pytest.raises(DecryptionFailed, match="belongs to tenant 'telco-de'"):
        ring.unwrap(wrapped, "energy-at", {"record": "rec-1"})
    other = ring.wrap("telco-de", "2026-12", new_data_key(), {"record": "rec-1"})
    with pytest.raises(DecryptionFailed, match="does not open"):
        ring.unwrap(WrappedKey(other.kek_id, wrapped.blob), "telco-de", {"record": "rec-1"})
    with pytest.raises(DecryptionFailed, match="does not open"):
        ring.unwrap(
            WrappedKey(wrapped.kek_id, flip(wrapped.blob, 30)), "telco-de", {"record": "rec-1"}
        )
    with pytest.raises(DecryptionFailed, match="malformed"):
        ring.unwrap(WrappedKey(wrapped.kek_id, wrapped.blob[:-1]), "telco-de", {"record": "rec-1"})
    with pytest.raises(KeyUnavailable, match="not a key of the local keyring"):
        ring.unwrap(WrappedKey("aws-kms:arn:x", wrapped.blob), "telco-de", {})
    with pytest.raises(KeyUnavailable, match="not in the keyring"):
        ring.unwrap(WrappedKey("local:telco-de:2030-01:1", wrapped.blob), "telco-de", {})


def test_bad_names_are_rejected(ring: LocalKeyring) -> None:
    for tenant, bucket in [("", "2026-11"), ("a:b", "2026-11"), ("t", "2026 11"), ("t", "")]:
        with pytest.raises(ValueError):
            ring.wrap(tenant, bucket, new_data_key(), {})
    with pytest.raises(ValueError, match="32 bytes"):
        ring.wrap("t", "2026-11", b"short", {})
    with pytest.raises(ValueError):
        ring.wrap("t", "2026-11", new_data_key(), {"record": 5})  # type: ignore[dict-item]


def test_destroy_kek_crypto_shreds(tmp_path: Path, master: bytes, ring: LocalKeyring) -> None:
    path = tmp_path / "keyring.json"
    other_process = LocalKeyring.open(path, master)  # opened (and cached) before the destroy
    kept = ring.wrap("telco-de", "2026-12", new_data_key(), {})
    wrapped = ring.wrap("telco-de", "2026-11", dek := new_data_key(), {"record": "r"})
    assert other_process.unwrap(wrapped, "telco-de", {"record": "r"}) == dek
    ring.destroy_kek(wrapped.kek_id)
    ring.destroy_kek(wrapped.kek_id)  # idempotent
    message = f"key {wrapped.kek_id} was destroyed on 2026-11-22 (crypto-shredded)"
    for keyring in [ring, other_process, LocalKeyring.open(path, master)]:
        with pytest.raises(KeyUnavailable) as err:
            keyring.unwrap(wrapped, "telco-de", {"record": "r"})
        assert err.value.message == message
    assert ring.destroyed_at(wrapped.kek_id) == FIXED_NOW
    assert ring.destroyed_at(kept.kek_id) is None
    assert ring.unwrap(kept, "telco-de", {}) is not None
    doc = json.loads(path.read_text())
    assert doc["destroyed"] == {wrapped.kek_id: "2026-11-22T09:14:03Z"}
    assert f"kek:{wrapped.kek_id}" not in doc["keys"]
    # the bucket gets a new generation; the destroyed id is never reused
    assert ring.wrap("telco-de", "2026-11", new_data_key(), {}).kek_id == "local:telco-de:2026-11:2"
    with pytest.raises(KeyUnavailable, match="no key"):
        ring.destroy_kek("local:telco-de:1999-01:1")
    with pytest.raises(KeyUnavailable, match="not a key of the local keyring"):
        ring.destroy_kek("index:telco-de")


def test_index_and_signing_keys_are_stable(
    tmp_path: Path, master: bytes, ring: LocalKeyring
) -> None:
    index = ring.index_key("telco-de")
    assert len(index) == 32
    assert ring.index_key("telco-de") == index != ring.index_key("energy-at")
    signer = ring.signing_key()
    reopened = LocalKeyring.open(tmp_path / "keyring.json", master)
    assert reopened.index_key("telco-de") == index
    assert reopened.signing_key().public_key_bytes() == signer.public_key_bytes()
    assert reopened.signing_key("other").public_key_bytes() != signer.public_key_bytes()
    # index keys are not KEKs: shredding a month never touches them
    ring.wrap("telco-de", "2026-11", new_data_key(), {})
    ring.destroy_kek("local:telco-de:2026-11:1")
    assert ring.index_key("telco-de") == index


def _encodings(secret: bytes) -> list[bytes]:
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
        base64.b32encode(secret),
    ]


def test_keyring_file_holds_no_raw_key_bytes(
    tmp_path: Path, master: bytes, ring: LocalKeyring
) -> None:
    dek = new_data_key()
    wrapped = ring.wrap("telco-de", "2026-11", dek, {})
    secrets = [
        dek,
        ring.index_key("telco-de"),
        ring._secret(ring._fresh(), f"kek:{wrapped.kek_id}", wrapped.kek_id),
        ring.signing_key()._private_bytes(),
        master,
    ]
    content = (tmp_path / "keyring.json").read_bytes()
    for secret in secrets:
        for encoded in _encodings(secret):
            assert encoded not in content
    assert encode_master_key(master).encode() not in content


def test_tampered_keyring_entries_are_detected(
    tmp_path: Path, master: bytes, ring: LocalKeyring
) -> None:
    path = tmp_path / "keyring.json"
    a = ring.wrap("telco-de", "2026-11", new_data_key(), {})
    b = ring.wrap("telco-de", "2026-12", new_data_key(), {})
    doc = json.loads(path.read_text())
    keys = doc["keys"]
    # swap the sealed KEKs: each is bound to its entry id, so neither opens
    keys[f"kek:{a.kek_id}"], keys[f"kek:{b.kek_id}"] = (
        keys[f"kek:{b.kek_id}"],
        keys[f"kek:{a.kek_id}"],
    )
    path.write_text(json.dumps(doc))
    fresh = LocalKeyring.open(path, master)
    with pytest.raises(DecryptionFailed, match="keyring entry"):
        fresh.unwrap(a, "telco-de", {})


def _create_keks(path: str, master: bytes, tenant: str, count: int, start: Callable) -> None:
    start.wait()
    keyring = LocalKeyring.open(Path(path), master)
    for month in range(1, count + 1):
        keyring.wrap(tenant, f"2026-{month:02d}", new_data_key(), {})
        keyring.index_key(tenant)


def test_concurrent_processes_never_lose_a_kek(
    tmp_path: Path, master: bytes, ring: LocalKeyring
) -> None:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    tenants = ["telco-de", "energy-at", "insure-fr"]
    workers = [
        ctx.Process(target=_create_keks, args=(str(ring.path), master, t, 12, start))
        for t in tenants
    ]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    reopened = LocalKeyring.open(ring.path, master)
    assert len(reopened.kek_ids()) == 12 * len(tenants)
    for tenant in tenants:
        assert reopened.kek_ids(tenant) == [f"local:{tenant}:2026-{m:02d}:1" for m in range(1, 13)]
        assert len(reopened.index_key(tenant)) == 32
    assert stat.S_IMODE(ring.path.stat().st_mode) == 0o600
    leftovers = [p.name for p in ring.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


# -- signing -----------------------------------------------------------------------------


def test_ed25519_sign_and_verify() -> None:
    signer = LogSigner.generate()
    public = signer.public_key_bytes()
    signature = signer.sign(b"checkpoint\n42\n")
    assert len(public) == 32 and len(signature) == 64
    assert verify_signature(public, b"checkpoint\n42\n", signature)
    assert not verify_signature(public, b"checkpoint\n43\n", signature)
    assert not verify_signature(public, b"checkpoint\n42\n", flip(signature, 0))
    assert not verify_signature(
        LogSigner.generate().public_key_bytes(), b"checkpoint\n42\n", signature
    )
    assert not verify_signature(public[:31], b"checkpoint\n42\n", signature)
    assert not verify_signature(public, b"checkpoint\n42\n", signature[:63])
    assert public.hex() in repr(signer)
