"""Envelope encryption: per-record data keys and the associated data that binds each object.

Every record gets a fresh data key (DEK); its clip and its metadata are each sealed as a
stream (``vault.sealing.stream``) under that DEK with the associated data of
:func:`object_aad`; the DEK itself is stored only wrapped by a key provider
(``vault.sealing.keys``).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import DecryptionFailed
from vault.sealing._encoding import encode_items, require_text

DATA_KEY_SIZE = 32
OBJECT_AAD_DOMAIN = "evidence-vault/v1 object"
#: the object roles of a record; the AD names the role so that the clip and the metadata
#: of one record (sealed under the same DEK) cannot be swapped for each other
ROLES = frozenset({"clip", "meta"})


def new_data_key() -> bytes:
    """A fresh random 256-bit data key (one per record)."""
    return os.urandom(DATA_KEY_SIZE)


def data_key_context(record_id: str) -> dict[str, str]:
    """The context a record's data key is wrapped under (and must be unwrapped with).

    Key providers bind it into the wrapping (AAD of the local keyring, encryption context
    of AWS KMS), so a wrapped key copied onto another record's row does not unwrap.
    """
    require_text("record_id", record_id)
    return {"record": record_id}


def object_aad(tenant: str, record_id: str, role: str) -> bytes:
    """The associated data that binds a sealed object to its tenant, record and role.

    Decrypting an object under another tenant's, record's or role's AD fails, so an object
    swapped or copied to another place in storage is detected. Encoding:
    ``len32 ‖ "evidence-vault/v1 object" ‖ len32 ‖ tenant ‖ len32 ‖ record_id ‖ len32 ‖ role``
    (lengths u32 big-endian, text UTF-8).
    """
    require_text("tenant", tenant)
    require_text("record_id", record_id)
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, not {role!r}")
    return encode_items(OBJECT_AAD_DOMAIN, tenant, record_id, role)


# -- Textform documents ---------------------------------------------------------------------

DOCUMENT_AAD_DOMAIN = "evidence-vault/v1 document"
DOCUMENT_KEY_DOMAIN = "evidence-vault/v1 document key"
_WRAP_NONCE = 12


def document_aad(tenant: str, record_id: str, document_id: str) -> bytes:
    """The associated data of a sealed Textform document:
    ``len32 ‖ "evidence-vault/v1 document" ‖ len32 ‖ tenant ‖ len32 ‖ record_id ‖ len32 ‖
    document_id``. A document copied onto another record or document does not decrypt."""
    for name, value in (("tenant", tenant), ("record_id", record_id), ("document_id", document_id)):
        require_text(name, value)
    return encode_items(DOCUMENT_AAD_DOMAIN, tenant, record_id, document_id)


def wrap_document_key(
    record_key: bytes, document_key: bytes, tenant: str, record_id: str, document_id: str
) -> bytes:
    """A document's own data key, wrapped under its record's data key (AES-256-GCM).

    Why under the record's key and not a KEK: the document then lives and dies with its
    record — shredding the record's key shreds the document's too, and re-wrapping the
    record's key (rotation, re-bucketing) needs no second bookkeeping.
    Output: ``nonce (12) ‖ ciphertext (32) ‖ tag (16)``.
    """
    nonce = os.urandom(_WRAP_NONCE)
    aad = encode_items(DOCUMENT_KEY_DOMAIN, tenant, record_id, document_id)
    return nonce + AESGCM(record_key).encrypt(nonce, document_key, aad)


def unwrap_document_key(
    record_key: bytes, wrapped: bytes, tenant: str, record_id: str, document_id: str
) -> bytes:
    """The inverse of :func:`wrap_document_key`; DecryptionFailed if it was changed or moved."""
    aad = encode_items(DOCUMENT_KEY_DOMAIN, tenant, record_id, document_id)
    try:
        key = AESGCM(record_key).decrypt(wrapped[:_WRAP_NONCE], wrapped[_WRAP_NONCE:], aad)
    except (InvalidTag, ValueError):
        raise DecryptionFailed(
            f"the data key of document {document_id} does not unwrap under its record's key",
            hint="run `evidence-vault verify`; the document row was changed or moved",
        ) from None
    if len(key) != DATA_KEY_SIZE:
        raise DecryptionFailed(f"the data key of document {document_id} has the wrong size")
    return key
