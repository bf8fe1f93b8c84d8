"""Key providers: who wraps the per-record data keys (DEKs) under key-encryption keys (KEKs).

A provider holds one KEK per tenant per time bucket. The vault names a record's bucket
after the month (UTC) its retention *ends*, e.g. ``"exp-2028-11"``
(:func:`vault.services.keys.expiry_bucket`), so a bucket's records fall due together;
vaults from before schema 0003 also hold buckets ``"YYYY-MM"`` named after the month of
recording. Destroying a bucket's KEK makes every DEK wrapped under it — and so every
object sealed with those DEKs — unreadable in storage and in database backups alike,
which hold only wrapped DEKs: crypto-shredding (copies of the keyring file taken before
the destroy still hold the KEK). A KMS-backed provider has no buckets (KMS rotates its
key). A provider also keeps one index key per tenant for keyed hashes; index keys are
never shredded with records (they protect lookups, not evidence).

:func:`wrap_data_key` / :func:`unwrap_data_key` are the wrapping recipe shared by providers
that hold KEK bytes themselves (``local``); a KMS-backed provider uses the KMS's own
wrapping with the same context.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import DecryptionFailed
from vault.identifiers import KEY_NAME
from vault.sealing._encoding import encode_items, require_key, require_text
from vault.sealing.envelope import DATA_KEY_SIZE

KEK_SIZE = 32
WRAP_VERSION = 1
WRAP_NONCE_SIZE = 12
WRAP_AAD_DOMAIN = "evidence-vault/v1 wrapped data key"
#: version(1) ‖ nonce(12) ‖ AES-GCM(DEK)(32) ‖ tag(16)
WRAPPED_SIZE = 1 + WRAP_NONCE_SIZE + DATA_KEY_SIZE + 16


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped under a KEK; safe to store next to the record (no secrets)."""

    kek_id: str  # identifies the KEK, e.g. "local:telco-de:exp-2028-11:1"
    blob: bytes  # the wrapped DEK (format depends on the provider)


@runtime_checkable
class KeyProvider(Protocol):
    """Where KEKs and index keys live. ``local`` is the keyring file; others may be KMSs."""

    name: str

    def wrap(self, tenant: str, bucket: str, dek: bytes, context: Mapping[str, str]) -> WrappedKey:
        """Wrap ``dek`` under the tenant's KEK for ``bucket``, creating the KEK if needed."""
        ...

    def generate(
        self, tenant: str, bucket: str, context: Mapping[str, str]
    ) -> tuple[bytes, WrappedKey]:
        """A fresh data key and its wrapping, as KMS ``GenerateDataKey`` returns them."""
        ...

    def unwrap(self, wrapped: WrappedKey, tenant: str, context: Mapping[str, str]) -> bytes:
        """The DEK. KeyUnavailable if the KEK is gone; DecryptionFailed if misbound."""
        ...

    def destroy_kek(self, kek_id: str) -> None:
        """Crypto-shred: destroy the KEK and so every DEK wrapped under it."""
        ...

    def index_key(self, tenant: str) -> bytes:
        """The tenant's stable 32-byte key for keyed hashes, created on first use."""
        ...


def check_name(what: str, value: str) -> str:
    """A tenant or bucket name usable inside a key id (:data:`vault.identifiers.KEY_NAME`)."""
    if not KEY_NAME.matches(value):
        raise ValueError(
            f"{what} must be 1-128 characters of letters, digits, '.', '_', '/' or '-', "
            "starting with a letter or digit"
        )
    return value


def wrap_aad(tenant: str, kek_id: str, context: Mapping[str, str]) -> bytes:
    """AD of a wrapped DEK: binds it to the tenant, the KEK and the caller's context."""
    items: list[str] = [WRAP_AAD_DOMAIN, require_text("tenant", tenant), kek_id]
    for name in sorted(context):
        items += [require_text("context key", name), _context_value(name, context[name])]
    return encode_items(*items)


def wrap_data_key(
    kek: bytes,
    kek_id: str,
    tenant: str,
    dek: bytes,
    context: Mapping[str, str],
    *,
    _nonce: bytes | None = None,
) -> WrappedKey:
    """AES-256-GCM-wrap ``dek`` under ``kek`` (``_nonce`` is for test vectors only)."""
    kek = require_key("key-encryption key", kek, KEK_SIZE)
    dek = require_key("data key", dek, DATA_KEY_SIZE)
    nonce = (
        os.urandom(WRAP_NONCE_SIZE)
        if _nonce is None
        else require_key("nonce", _nonce, WRAP_NONCE_SIZE)
    )
    sealed = AESGCM(kek).encrypt(nonce, dek, wrap_aad(tenant, kek_id, context))
    return WrappedKey(kek_id, bytes([WRAP_VERSION]) + nonce + sealed)


def unwrap_data_key(
    kek: bytes, wrapped: WrappedKey, tenant: str, context: Mapping[str, str]
) -> bytes:
    blob = bytes(wrapped.blob)
    if len(blob) != WRAPPED_SIZE or blob[0] != WRAP_VERSION:
        raise DecryptionFailed(
            f"the wrapped data key under {wrapped.kek_id} is malformed "
            f"({len(blob)} bytes, expected {WRAPPED_SIZE} starting with version {WRAP_VERSION})"
        )
    nonce, sealed = blob[1 : 1 + WRAP_NONCE_SIZE], blob[1 + WRAP_NONCE_SIZE :]
    try:
        return AESGCM(kek).decrypt(nonce, sealed, wrap_aad(tenant, wrapped.kek_id, context))
    except InvalidTag:
        names = ", ".join(sorted(context)) or "none"
        raise DecryptionFailed(
            f"the wrapped data key under {wrapped.kek_id} does not open for tenant "
            f"{tenant!r} with this context (fields: {names}): it belongs to another record "
            "or tenant, or it was modified",
        ) from None


def _context_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"context value of {name!r} must be a string")
    return value
