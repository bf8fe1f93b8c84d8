"""Source signatures: each dialer host's Ed25519 key, and the statement it signs per clip.

A dialer host signs, for every clip it hands over, the *source statement*::

    encode_items("evidence-vault/v1 source statement",
                 key_id, sha256(clip), sha256(rfc8785(metadata)), recorded_at)

``key_id`` names the host's key (:func:`key_id_of`), the two hashes are raw 32-byte
SHA-256 digests (of the clip's bytes, and of the RFC 8785 form of the evidence JSON as
sent), ``recorded_at`` is the evidence's recording time in the log's spelling
(``YYYY-MM-DDTHH:MM:SS.mmmZ``). The length-prefixed items (:mod:`._encoding`) leave no
ambiguity, and the domain label keeps the signature from meaning anything else.

The private key lives in a PEM (PKCS #8) file on the dialer host, readable by its owner
only; the vault learns the public key (raw 32 bytes, written as base64) when an admin
registers it. Layout and a test vector: ``docs/formats.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from vault.errors import FieldError, InvalidRequest
from vault.sealing._encoding import encode_items, require_text
from vault.sealing.signing import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, verify_signature

STATEMENT_DOMAIN = "evidence-vault/v1 source statement"
KEY_ID_DOMAIN = b"evidence-vault/v1 dialer key\x00"
KEY_ID_PREFIX = "dk-"
DIGEST_SIZE = 32
#: the upload's header: ``key=<key id>; sig=<base64url signature>``
HEADER = "Evidence-Signature"


def key_id_of(public_key: bytes) -> str:
    """``dk-`` and 32 hex digits: the first 16 bytes of SHA-256(domain ‖ raw public key)."""
    raw = _public_key(public_key)
    return KEY_ID_PREFIX + hashlib.sha256(KEY_ID_DOMAIN + raw).digest()[:16].hex()


def decode_public_key(text: str) -> bytes:
    """The raw 32-byte key of its base64 text (standard or url alphabet, padding optional)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the public key is not base64") from None
    return _public_key(raw)


def encode_public_key(public_key: bytes) -> str:
    return base64.b64encode(_public_key(public_key)).decode()


def statement(key_id: str, clip_sha256: bytes, meta_sha256: bytes, recorded_at: str) -> bytes:
    """The bytes a dialer host signs for one clip (see the module's docstring)."""
    for name, digest in (("clip hash", clip_sha256), ("metadata hash", meta_sha256)):
        if len(digest) != DIGEST_SIZE:
            raise ValueError(f"the {name} must be a {DIGEST_SIZE}-byte SHA-256 digest")
    return encode_items(
        STATEMENT_DOMAIN,
        require_text("key id", key_id),
        bytes(clip_sha256),
        bytes(meta_sha256),
        require_text("recorded_at", recorded_at),
    )


def check_statement(
    public_key: bytes,
    signature: bytes,
    clip_sha256: bytes,
    meta_sha256: bytes,
    recorded_at: str,
) -> bool:
    """Whether ``signature`` is the key's signature of the statement of these values."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    message = statement(key_id_of(public_key), clip_sha256, meta_sha256, recorded_at)
    return verify_signature(public_key, message, signature)


@dataclass(frozen=True)
class SourceSigner:
    """A dialer host's private key: signs source statements, tells its public key."""

    _key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SourceSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def _from_seed(cls, seed: bytes) -> SourceSigner:
        """A fixed key from its 32-byte seed: for test vectors only."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SourceSigner:
        """The key in a PEM file that :meth:`save` wrote (or ``openssl genpkey -algorithm
        ed25519``)."""
        try:
            key = load_pem_private_key(Path(path).read_bytes(), password=None)
        except (ValueError, TypeError):
            raise ValueError(
                f"{path} is not an unencrypted PEM private key; make one with "
                "`evidence-vault dialer keygen`"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} holds a key of another kind; a dialer key is Ed25519")
        return cls(key)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key as PEM, readable by its owner only (0600); never overwrite a file."""
        pem = self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())

    @property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, clip_sha256: bytes, meta_sha256: bytes, recorded_at: str) -> bytes:
        """The 64-byte signature of the statement of one clip."""
        return self._key.sign(statement(self.key_id, clip_sha256, meta_sha256, recorded_at))

    def __repr__(self) -> str:
        return f"SourceSigner(key_id={self.key_id})"


@dataclass(frozen=True)
class SourceSignature:
    """What a dialer host sent with a clip: its key id and the statement's signature."""

    key_id: str
    signature: bytes

    @classmethod
    def parse(cls, text: str) -> SourceSignature:
        """Read ``key=<key id>; sig=<base64url>`` (the header's value)."""
        parts: dict[str, str] = {}
        for item in text.split(";"):
            name, sep, value = item.strip().partition("=")
            if sep:
                parts[name.strip().lower()] = value.strip()
        key, sig = parts.get("key", ""), parts.get("sig", "")
        try:
            raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if not key or len(raw) != 64:
            raise InvalidRequest(
                [FieldError(f"header.{HEADER}", "must be 'key=<key id>; sig=<base64url>'")],
                hint="send the signature `evidence-vault upload --key` or the agent makes",
            )
        return cls(key, raw)

    def header(self) -> str:
        sig = base64.urlsafe_b64encode(self.signature).rstrip(b"=").decode()
        return f"key={self.key_id}; sig={sig}"


def metadata_digest(meta: bytes | str | dict[str, Any]) -> bytes:
    """SHA-256 of the RFC 8785 form of the evidence JSON, as the source statement has it."""
    value: Any = json.loads(meta) if isinstance(meta, bytes | str) else meta
    return hashlib.sha256(rfc8785.dumps(value)).digest()


def _public_key(raw: bytes) -> bytes:
    if len(raw) != PUBLIC_KEY_SIZE:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes, not {len(raw)}")
    return bytes(raw)
