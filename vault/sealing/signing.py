"""Ed25519 signatures for the vault's log checkpoints.

Only the primitive lives here; the signed-note / checkpoint text format is built by the
ledger on top of :meth:`LogSigner.sign` and :func:`verify_signature`.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


class LogSigner:
    """An Ed25519 private key that can sign and tell its public key, and nothing else.

    Obtain one from a keyring (``LocalKeyring.signing_key``), which keeps the private key
    encrypted at rest; the private bytes are never handed out.
    """

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def generate(cls) -> LogSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def _from_private_bytes(cls, raw: bytes) -> LogSigner:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def _private_bytes(self) -> bytes:
        # for the keyring only, which stores it encrypted
        return self._key.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    def public_key_bytes(self) -> bytes:
        """The 32-byte raw Ed25519 public key."""
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def __repr__(self) -> str:
        return f"LogSigner(public_key={self.public_key_bytes().hex()})"


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` under ``public_key``.

    A malformed key or signature is simply not valid (False): the inputs usually come from
    a bundle or checkpoint that an auditor is checking, not from our own code.
    """
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(
            bytes(signature), bytes(message)
        )
    except (InvalidSignature, ValueError):
        return False
    return True
