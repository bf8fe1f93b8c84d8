"""tests/vectors/documents.json, recomputed: independently (standard library) where the
format allows, and through the vault's own functions."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.bundle.layout import document_member
from vault.ledger.entry import encode_entry, entry_hash, parse_entry
from vault.sealing import commitment, document_aad, unwrap_document_key, wrap_document_key

V = json.loads((Path(__file__).parent / "vectors" / "documents.json").read_text("utf-8"))


def items(*values: str) -> bytes:
    return b"".join(struct.pack(">I", len(v.encode())) + v.encode() for v in values)


def test_document_aad():
    a = V["document_aad"]
    want = items("evidence-vault/v1 document", a["tenant"], a["record_id"], a["document_id"])
    assert want.hex() == a["aad"]
    assert document_aad(a["tenant"], a["record_id"], a["document_id"]).hex() == a["aad"]


def test_document_key_wrap():
    k = V["key_wrap"]
    record_key, nonce = bytes.fromhex(k["record_key"]), bytes.fromhex(k["nonce"])
    ad = items("evidence-vault/v1 document key", k["tenant"], k["record_id"], k["document_id"])
    independent = nonce + AESGCM(record_key).encrypt(nonce, bytes.fromhex(k["document_key"]), ad)
    assert independent.hex() == k["wrapped"]
    ids = (k["tenant"], k["record_id"], k["document_id"])
    assert (
        unwrap_document_key(record_key, bytes.fromhex(k["wrapped"]), *ids).hex()
        == (k["document_key"])
    )
    fresh = wrap_document_key(record_key, bytes.fromhex(k["document_key"]), *ids)
    assert len(fresh) == 12 + 32 + 16 and fresh != independent  # a random nonce each time
    assert unwrap_document_key(record_key, fresh, *ids).hex() == k["document_key"]


def test_document_commitment():
    c = V["commitment"]
    salt, data = bytes.fromhex(c["salt"]), c["data_utf8"].encode()
    want = hashlib.sha256(salt + b"document\x00" + data).hexdigest()
    assert want == c["commitment"] == commitment(salt, "document", data)


def test_document_sealed_entry():
    e = V["entry"]
    raw = e["canonical"].encode()
    assert rfc8785.dumps(e["object"]) == raw == encode_entry(e["object"])
    assert hashlib.sha256(b"\x00" + raw).hexdigest() == e["leaf_hash"] == entry_hash(raw)
    entry = parse_entry(raw)
    assert entry["type"] == "document.sealed"
    assert entry["body"]["commitments"]["document"] == V["commitment"]["commitment"]
    assert entry["body"]["size"] == len(V["commitment"]["data_utf8"].encode())


def test_bundle_member_name():
    m = V["bundle_member"]
    assert document_member(m["seq"], m["kind"], m["media_type"]) == m["member"]
