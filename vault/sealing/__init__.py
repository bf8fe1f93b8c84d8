"""Sealing: the only package of the vault that touches cryptographic primitives.

It offers a few safe recipes, so that nothing else needs to choose a cipher, a nonce or
a key size:

* ``stream`` — the sealed-object format (segmented AES-256-GCM stream, random access);
* ``envelope`` — per-record data keys and the associated data binding objects to records;
* ``keys`` / ``local`` — key providers that wrap data keys under per-tenant KEKs, one
  per month in which retention ends (crypto-shredding), and the local keyring file;
* ``kms`` — the ``aws-kms`` provider (data keys from AWS KMS, bound to an encryption
  context); ``providers`` — the router that picks each client's provider;
* ``hashing`` — keyed hashes for lookups and salted commitments for the ledger;
* ``signing`` — Ed25519 for log checkpoints;
* ``source`` — dialer hosts' Ed25519 keys and the source statement they sign per clip;
* ``logauth`` — HMAC tags on log entries and heads (only a keyring holder appends).

Byte layouts and test vectors: ``docs/formats.md``.
"""

from vault.sealing.envelope import (
    DATA_KEY_SIZE,
    ROLES,
    data_key_context,
    document_aad,
    new_data_key,
    object_aad,
    unwrap_document_key,
    wrap_document_key,
)
from vault.sealing.hashing import (
    SALT_SIZE,
    CommitmentHasher,
    KeyedHasher,
    Sha256Counter,
    commitment,
    commitment_salt,
    keyed_hash,
    new_salt,
)
from vault.sealing.keys import KeyProvider, WrappedKey
from vault.sealing.kms import AwsKmsProvider
from vault.sealing.local import (
    LocalKeyring,
    decode_master_key,
    encode_master_key,
    generate_master_key,
)
from vault.sealing.logauth import LogAuthenticator
from vault.sealing.providers import KeyRouter
from vault.sealing.signing import LogSigner, verify_signature
from vault.sealing.source import (
    SourceSigner,
    check_statement,
    decode_public_key,
    encode_public_key,
    key_id_of,
)
from vault.sealing.stream import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    ciphertext_size,
    decrypt_range,
    decrypt_stream,
    encrypt_stream,
    plaintext_size,
)

__all__ = [
    "DATA_KEY_SIZE",
    "HEADER_SIZE",
    "ROLES",
    "SALT_SIZE",
    "SEGMENT_SIZE",
    "TAG_SIZE",
    "AwsKmsProvider",
    "CommitmentHasher",
    "KeyProvider",
    "KeyRouter",
    "KeyedHasher",
    "LocalKeyring",
    "LogAuthenticator",
    "LogSigner",
    "Sha256Counter",
    "SourceSigner",
    "WrappedKey",
    "check_statement",
    "ciphertext_size",
    "commitment",
    "commitment_salt",
    "data_key_context",
    "decode_master_key",
    "decode_public_key",
    "decrypt_range",
    "decrypt_stream",
    "document_aad",
    "encode_master_key",
    "encode_public_key",
    "encrypt_stream",
    "generate_master_key",
    "key_id_of",
    "keyed_hash",
    "new_data_key",
    "new_salt",
    "object_aad",
    "plaintext_size",
    "unwrap_document_key",
    "verify_signature",
    "wrap_document_key",
]
