"""Errors raised by the vault.

Every error carries a message that names the problem and, where there is one, a
``hint`` telling the user what to do. Messages never contain PII (phone numbers,
names, dates of birth, confirmed identity values): they name fields, not values.

Each class states what it means to the outside, in one place: ``kind`` (the problem type
``/problems/{kind}`` of the HTTP API and the ``kind`` of ``--json`` errors),
``http_status`` (the API's answer, :mod:`vault.http.problems`) and ``exit_code`` (the
``evidence-vault`` command's, documented in :mod:`cli.main`). :mod:`vault.client` maps a
problem back to the class of its kind; ``stands_for_status``, set on a class itself (not
inherited), marks the class an answer of that status is when its kind is unknown (a
proxy's page, a newer server's kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

# exit codes of the ``evidence-vault`` command (the table in cli/main.py)
EXIT_INVALID = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_CONFIG = 6
EXIT_FAILURE = 7
EXIT_REFUSED = 9
EXIT_UNAVAILABLE = 10


class VaultError(Exception):
    """Base class of every error the vault raises on purpose."""

    #: short machine-readable kind, used in ``--json`` output and HTTP problem types
    kind: str = "vault-error"
    http_status: int = 500
    exit_code: int = EXIT_FAILURE
    stands_for_status: ClassVar[bool] = False

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
    http_status = 422
    exit_code = EXIT_INVALID

    def __init__(
        self,
        errors: list[FieldError],
        *,
        hint: str | None = None,
        subject: str = "evidence metadata",
    ) -> None:
        # ``subject`` names what was refused when it is not evidence (e.g. "the token")
        self.errors = list(errors)
        lines = "; ".join(str(e) for e in self.errors)
        super().__init__(
            f"{subject} is invalid: {lines}",
            hint=hint or "correct the listed fields and upload again",
        )

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        return out


class InvalidRequest(InvalidEvidence):
    """A malformed field of an API request: a 422 problem with field errors."""

    kind = "invalid-request"


class InvalidAudio(VaultError):
    """The clip is not acceptable audio: empty, truncated, unsupported, or not what it claims."""

    kind = "invalid-audio"
    http_status = 422
    exit_code = EXIT_INVALID


class UnsupportedMediaType(InvalidAudio):
    """An upload not sent as one of the accepted audio media types (HTTP 415)."""

    kind = "unsupported-media-type"
    http_status = 415


class InvalidDocument(VaultError):
    """A Textform document that is not what it claims: an e-mail that does not parse as
    RFC 5322, a PDF without its header or end marker, an SMS text that is not UTF-8."""

    kind = "invalid-document"
    http_status = 422
    exit_code = EXIT_INVALID


class NotFound(VaultError):
    kind = "not-found"
    http_status = 404
    exit_code = EXIT_NOT_FOUND
    stands_for_status = True


class Shredded(NotFound):
    """The record existed but was crypto-shredded (retention expiry or erasure)."""

    kind = "shredded"
    http_status = 410
    stands_for_status = True


class Conflict(VaultError):
    """The request clashes with what is stored (e.g. a different clip under an existing key)."""

    kind = "conflict"
    http_status = 409
    exit_code = EXIT_CONFLICT
    stands_for_status = True


class PermissionDenied(VaultError):
    kind = "permission-denied"
    http_status = 403
    exit_code = EXIT_REFUSED
    stands_for_status = True


class SourceSignatureRequired(PermissionDenied):
    """The campaign takes only clips signed by a registered dialer key; none was sent."""

    kind = "source-signature-required"


class UnknownDialerKey(PermissionDenied):
    """The clip is signed by a key the vault has no registration of for this client."""

    kind = "unknown-dialer-key"


class RevokedDialerKey(PermissionDenied):
    """The clip is signed by a dialer key that an admin revoked."""

    kind = "revoked-dialer-key"


class BadSourceSignature(VaultError):
    """The source signature does not verify over this clip, metadata and recording time."""

    kind = "bad-source-signature"
    http_status = 422
    exit_code = EXIT_INVALID


class Unauthenticated(VaultError):
    """No token, or one that is unknown, expired or revoked (HTTP 401)."""

    kind = "unauthenticated"
    http_status = 401
    stands_for_status = True


class ConfigError(VaultError):
    kind = "config-error"
    http_status = 503
    exit_code = EXIT_CONFIG


class SealingError(VaultError):
    """Encryption, decryption or key handling failed."""

    kind = "sealing-error"
    stands_for_status = True  # a 500 of the API: integrity or key failure


class DecryptionFailed(SealingError):
    """A ciphertext failed authentication: it was modified, truncated, reordered or misbound."""

    kind = "decryption-failed"


class KeyUnavailable(SealingError):
    """The key needed to open a record no longer exists (shredded) or cannot be reached."""

    kind = "key-unavailable"


class StorageError(VaultError):
    kind = "storage-error"
    http_status = 503  # unavailable: retry later
    stands_for_status = True


class ObjectExists(StorageError):
    """A put would overwrite an existing object; the vault never overwrites."""

    kind = "object-exists"


class ObjectMissing(StorageError):
    kind = "object-missing"


class ObjectLocked(StorageError):
    """The object store refused a delete or change because of Object Lock or a legal hold."""

    kind = "object-locked"


class BackendUnavailable(StorageError):
    """The database or the object store is down, restarting, throttling or timing out.

    Transient: the same request later may well succeed, so the API answers 503 with
    ``Retry-After`` (``retry_after`` seconds). The message names the backend, never its
    address, the statement or its values.
    """

    kind = "backend-unavailable"
    exit_code = EXIT_UNAVAILABLE
    #: seconds a client should wait before it retries (the ``Retry-After`` header)
    retry_after: int = 2

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        backend: str = "backend",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(
            message, hint=hint or f"retry later; the vault answers again once the {backend} is back"
        )
        #: "database" or "object store": what went away (the operator's log names it)
        self.backend = backend
        if retry_after is not None:
            self.retry_after = retry_after


class OutcomeUnknown(BackendUnavailable):
    """An upload hit an outage after it may have been sealed: whether it was is unknown.

    Retrying the same upload is safe: a sealed call segment (or the same
    ``Idempotency-Key``) answers with the stored receipt, never a second record.
    """

    kind = "outcome-unknown"


class TamperDetected(VaultError):
    """Stored state disagrees with what the vault's keys or its log say it wrote.

    Raised before anything is read, changed or deleted: the action is refused whole.
    """

    kind = "tamper-detected"
    # the stored row disagrees with the log: refused, nothing done (not a server crash)
    http_status = 409


def error_classes() -> list[type[VaultError]]:
    """VaultError and every subclass defined here, parents before their children."""
    found: list[type[VaultError]] = []
    todo: list[type[VaultError]] = [VaultError]
    while todo:
        cls = todo.pop(0)
        if cls.__module__ == __name__ and cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return found
