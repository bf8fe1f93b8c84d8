"""Errors raised by the vault.

Every error carries a message that names the problem and, where there is one, a
``hint`` telling the user what to do. Messages never contain PII (phone numbers,
names, dates of birth, confirmed identity values): they name fields, not values.
"""

from __future__ import annotations

from dataclasses import dataclass


class VaultError(Exception):
    """Base class of every error the vault raises on purpose."""

    #: short machine-readable kind, used in ``--json`` output and HTTP problem types
    kind = "vault-error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict:
        out: dict = {"kind": self.kind, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass(frozen=True)
class FieldError:
    """One rule broken by one field of the evidence record (dotted path, e.g. ``callee.phone``)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidEvidence(VaultError):
    """The evidence metadata breaks one or more rules; ``errors`` lists each one by field."""

    kind = "invalid-evidence"

    def __init__(self, errors: list[FieldError], *, hint: str | None = None) -> None:
        self.errors = list(errors)
        lines = "; ".join(str(e) for e in self.errors)
        super().__init__(
            f"evidence metadata is invalid: {lines}",
            hint=hint or "correct the listed fields and upload again",
        )

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return out


class InvalidAudio(VaultError):
    """The clip is not acceptable audio: empty, truncated, unsupported, or not what it claims."""

    kind = "invalid-audio"


class NotFound(VaultError):
    kind = "not-found"


class Shredded(NotFound):
    """The record existed but was crypto-shredded (retention expiry or erasure)."""

    kind = "shredded"


class Conflict(VaultError):
    """The request clashes with what is stored (e.g. a different clip under an existing key)."""

    kind = "conflict"


class PermissionDenied(VaultError):
    kind = "permission-denied"


class Unauthenticated(VaultError):
    """No token, or one that is unknown, expired or revoked (HTTP 401)."""

    kind = "unauthenticated"


class ConfigError(VaultError):
    kind = "config-error"


class SealingError(VaultError):
    """Encryption, decryption or key handling failed."""

    kind = "sealing-error"


class DecryptionFailed(SealingError):
    """A ciphertext failed authentication: it was modified, truncated, reordered or misbound."""

    kind = "decryption-failed"


class KeyUnavailable(SealingError):
    """The key needed to open a record no longer exists (shredded) or cannot be reached."""

    kind = "key-unavailable"


class StorageError(VaultError):
    kind = "storage-error"


class ObjectExists(StorageError):
    """A put would overwrite an existing object; the vault never overwrites."""

    kind = "object-exists"


class ObjectMissing(StorageError):
    kind = "object-missing"


class ObjectLocked(StorageError):
    """The object store refused a delete or change because of Object Lock or a legal hold."""

    kind = "object-locked"


class TamperDetected(VaultError):
    """Stored state disagrees with what the vault's keys or its log say it wrote.

    Raised before anything is read, changed or deleted: the action is refused whole.
    """

    kind = "tamper-detected"
