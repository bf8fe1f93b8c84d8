"""The ``aws-kms`` key provider: data keys generated and wrapped by AWS KMS.

The KEK is a symmetric KMS key that never leaves KMS. Sealing a record asks KMS for a
fresh data key (``GenerateDataKey``, ``AES_256``): the plaintext DEK seals the record's
objects and is forgotten, the KMS ciphertext of it is stored with the record. Opening the
record asks KMS to ``Decrypt`` that ciphertext; re-wrapping (``wrap``) uses ``Encrypt``.

Every call carries the *encryption context* ``{"tenant": …, "vault": "evidence-vault/v1"}``
plus the caller's context (``{"record": record_id}``): KMS binds the ciphertext to it, so a
wrapped key only opens for its own record and tenant, and every use is logged with it in
CloudTrail. The context is not secret (CloudTrail shows it): it must never hold PII.

The record's KEK id is ``aws-kms:{key ARN}`` — the ARN KMS reports for the key it used —
so a record stays readable when its client later points ``key_id`` at another key or an
alias is moved. There are no time buckets and no generations here: KMS rotates the key's
backing material itself and keeps the old material for decryption. Crypto-shredding a
KMS record is deleting its wrapped key; deleting the KMS key (``ScheduleKeyDeletion``,
when a client leaves) shreds every record under it, backups included. The vault never
deletes KMS keys itself (:meth:`AwsKmsProvider.destroy_kek` refuses).

Errors are mapped to the vault's: a ciphertext that does not open with this context (another
record or tenant, or modified) is :class:`DecryptionFailed`; a key that is disabled,
pending deletion, missing or not accessible, or a KMS that cannot be reached, is
:class:`KeyUnavailable` with a hint. Messages name keys and tenants, never key material.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from vault.errors import ConfigError, DecryptionFailed, KeyUnavailable, VaultError
from vault.sealing._encoding import require_key, require_text
from vault.sealing.envelope import DATA_KEY_SIZE
from vault.sealing.keys import WrappedKey, check_name

PROVIDER = "aws-kms"
KEK_PREFIX = PROVIDER + ":"
#: the ``vault`` item of every encryption context (names the format, like the AD labels)
VAULT_CONTEXT = "evidence-vault/v1"
#: context keys the provider sets itself; a caller may not pass them
RESERVED_CONTEXT = ("tenant", "vault")

# KMS error codes, by what they mean for the vault
_MISBOUND = {"InvalidCiphertextException", "IncorrectKeyException"}
_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredTokenException",
    "ExpiredToken",
    "MissingAuthenticationToken",
}
_TRANSIENT = {
    "KeyUnavailableException",
    "DependencyTimeoutException",
    "KMSInternalException",
    "ThrottlingException",
    "LimitExceededException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "RequestTimeout",
}


def kek_id_of(key: str) -> str:
    """The vault's KEK id of a KMS key: ``aws-kms:`` + its id or ARN."""
    return KEK_PREFIX + key


def kms_key_of(kek_id: str) -> str:
    """The KMS key id or ARN in an ``aws-kms:`` KEK id; KeyUnavailable for other ids."""
    if not isinstance(kek_id, str) or not kek_id.startswith(KEK_PREFIX) or kek_id == KEK_PREFIX:
        raise KeyUnavailable(
            f"key id {kek_id!r} is not an AWS KMS key",
            hint="the record was sealed with another key provider",
        )
    return kek_id.removeprefix(KEK_PREFIX)


def encryption_context(tenant: str, context: Mapping[str, str]) -> dict[str, str]:
    """The KMS encryption context: the caller's items plus ``tenant`` and ``vault``."""
    check_name("tenant", tenant)
    out = {"tenant": tenant, "vault": VAULT_CONTEXT}
    for name in sorted(context):
        value = context[name]
        require_text("context key", name)
        if name in RESERVED_CONTEXT:
            raise ValueError(f"context key {name!r} is set by the key provider itself")
        if not isinstance(value, str):
            raise ValueError(f"context value of {name!r} must be a string")
        out[name] = value
    return out


def make_kms_client(*, region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A boto3 KMS client (thread-safe, unlike sessions); credentials from boto3's chain."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    config = Config(
        # "standard" retries throttling, 5xx and connection errors with backoff
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=15,
    )
    try:
        return boto3.session.Session().client(
            "kms", region_name=region, endpoint_url=endpoint_url, config=config
        )
    except NoRegionError:
        raise ConfigError(
            "no AWS region for KMS",
            hint="give the key's ARN as key_id, or set region in [keys.clients.NAME] "
            "(or AWS_DEFAULT_REGION)",
        ) from None
    except ValueError as exc:  # e.g. a malformed endpoint URL
        raise ConfigError(
            f"the KMS client cannot be set up: {exc}",
            hint="check endpoint_url and region in [keys.clients.NAME]",
        ) from None


class AwsKmsProvider:
    """KeyProvider ``aws-kms``: one KMS key wraps the data keys of one or more tenants.

    ``key_id`` is the key new data keys are made under (ARN recommended). :meth:`unwrap`
    opens a data key under whatever KMS key its KEK id names, so one provider per KMS
    endpoint can read everything sealed there. The boto3 client is made once, on first
    use (or passed in as ``client``), and shared by all threads.
    """

    name = PROVIDER

    def __init__(
        self,
        key_id: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        if not isinstance(key_id, str) or not key_id:
            raise ConfigError("the aws-kms key provider needs a key id")
        self.key_id = key_id
        self.region = region
        self.endpoint_url = endpoint_url
        self._client = client
        self._lock = threading.Lock()

    @property
    def kek_id(self) -> str:
        """The KEK id of the configured key (records name the ARN KMS reports)."""
        return kek_id_of(self.key_id)

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_kms_client(
                        region=self.region, endpoint_url=self.endpoint_url
                    )
        return self._client

    # -- KeyProvider ----------------------------------------------------------------------

    def generate(
        self, tenant: str, bucket: str, context: Mapping[str, str]
    ) -> tuple[bytes, WrappedKey]:
        """``GenerateDataKey`` (AES_256) under the configured key; ``bucket`` is unused."""
        check_name("bucket", bucket)
        ec = encryption_context(tenant, context)
        resp = self._call(
            "GenerateDataKey",
            self.key_id,
            tenant,
            KeyId=self.key_id,
            KeySpec="AES_256",
            EncryptionContext=ec,
        )
        dek = bytes(resp["Plaintext"])
        if len(dek) != DATA_KEY_SIZE:
            raise KeyUnavailable(
                f"KMS key {self.key_id} returned a {len(dek)}-byte data key, not {DATA_KEY_SIZE}"
            )
        return dek, WrappedKey(kek_id_of(resp.get("KeyId") or self.key_id), resp["CiphertextBlob"])

    def wrap(self, tenant: str, bucket: str, dek: bytes, context: Mapping[str, str]) -> WrappedKey:
        """``Encrypt`` ``dek`` under the configured key (re-wrapping); ``bucket`` is unused."""
        check_name("bucket", bucket)
        dek = require_key("data key", dek, DATA_KEY_SIZE)
        ec = encryption_context(tenant, context)
        resp = self._call(
            "Encrypt", self.key_id, tenant, KeyId=self.key_id, Plaintext=dek, EncryptionContext=ec
        )
        return WrappedKey(kek_id_of(resp.get("KeyId") or self.key_id), resp["CiphertextBlob"])

    def unwrap(self, wrapped: WrappedKey, tenant: str, context: Mapping[str, str]) -> bytes:
        """``Decrypt`` with the same context, naming the key the KEK id names."""
        key = kms_key_of(wrapped.kek_id)
        ec = encryption_context(tenant, context)
        blob = bytes(wrapped.blob)
        if not blob:
            raise DecryptionFailed(
                f"the wrapped data key under {wrapped.kek_id} is empty (the record was shredded)"
            )
        resp = self._call(
            "Decrypt",
            key,
            tenant,
            KeyId=key,
            CiphertextBlob=blob,
            EncryptionContext=ec,
            names=sorted(context),
        )
        dek = bytes(resp["Plaintext"])
        if len(dek) != DATA_KEY_SIZE:
            raise DecryptionFailed(
                f"the wrapped data key under {wrapped.kek_id} holds {len(dek)} bytes, not a "
                f"{DATA_KEY_SIZE}-byte data key: it was not made by this vault"
            )
        return dek

    def destroy_kek(self, kek_id: str) -> None:
        """Refused: deleting a KMS key shreds every record under it, of every client using it."""
        key = kms_key_of(kek_id)
        raise ConfigError(
            f"{kek_id} is a key in AWS KMS; the vault does not delete KMS keys",
            hint="records of a KMS client are shredded one by one (retention, erasure); when "
            f"the client leaves, schedule the key's deletion in KMS: aws kms "
            f"schedule-key-deletion --key-id {key} --pending-window-in-days 7..30",
        )

    def index_key(self, tenant: str) -> bytes:
        raise ConfigError(
            "index keys are kept in the local keyring, not in KMS",
            hint="use the key router (vault.sealing.providers.KeyRouter)",
        )

    # -- internals ------------------------------------------------------------------------

    def _call(
        self, op: str, key: str, tenant: str, *, names: list[str] | None = None, **params: Any
    ) -> dict[str, Any]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        method = {"GenerateDataKey": "generate_data_key", "Encrypt": "encrypt"}.get(op, "decrypt")
        try:
            answer: dict[str, Any] = getattr(self.client, method)(**params)
            return answer
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise self._client_error(op, code, key, tenant, names) from exc
        except NoCredentialsError:
            raise ConfigError(
                f"no AWS credentials for kms:{op} on key {key}",
                hint="give the vault an AWS identity: environment, profile or instance role",
            ) from None
        except (
            EndpointConnectionError,
            ConnectTimeoutError,
            ReadTimeoutError,
            ConnectionClosedError,
        ) as exc:
            raise KeyUnavailable(
                f"the KMS endpoint {self._endpoint()} could not be reached for kms:{op} "
                f"({type(exc).__name__})",
                hint="check the network and the region / endpoint_url in [keys.clients.NAME]; "
                "retry once KMS answers",
            ) from exc
        except BotoCoreError as exc:
            raise KeyUnavailable(
                f"kms:{op} on key {key} failed ({type(exc).__name__})",
                hint="check the region / endpoint_url in [keys.clients.NAME]",
            ) from exc

    def _client_error(
        self, op: str, code: str, key: str, tenant: str, names: list[str] | None
    ) -> VaultError:
        if code in _MISBOUND:
            fields = ", ".join(names or []) or "none"
            if code == "IncorrectKeyException":
                return DecryptionFailed(
                    f"the wrapped data key was not made under KMS key {key}: the record's key "
                    "id or wrapped key was modified"
                )
            return DecryptionFailed(
                f"the wrapped data key under {kek_id_of(key)} does not open for tenant "
                f"{tenant!r} with this context (fields: {fields}): it belongs to another "
                "record or tenant, or it was modified"
            )
        if code == "DisabledException":
            return KeyUnavailable(
                f"KMS key {key} is disabled",
                hint="evidence under it can neither be sealed nor opened until it is enabled "
                "again (aws kms enable-key)",
            )
        if code == "KMSInvalidStateException":
            return KeyUnavailable(
                f"KMS key {key} cannot be used in its current state (pending deletion, "
                "pending import or unavailable)",
                hint="see `aws kms describe-key`; a deletion scheduled by mistake can be "
                "cancelled (aws kms cancel-key-deletion) and the key enabled again",
            )
        if code == "NotFoundException":
            return KeyUnavailable(
                f"KMS key {key} does not exist in {self._where()}",
                hint="check key_id, region and endpoint_url in [keys.clients.NAME]; a KMS key "
                "that was deleted cannot be recovered (its records are shredded)",
            )
        if code in {"AccessDeniedException", "AccessDenied"}:
            return KeyUnavailable(
                f"access to KMS key {key} was denied (kms:{op})",
                hint="allow the vault's AWS identity kms:GenerateDataKey, kms:Encrypt and "
                "kms:Decrypt on the key (key policy or IAM), including any encryption "
                "context conditions",
            )
        if code in _CREDENTIALS:
            return KeyUnavailable(
                f"KMS did not accept the vault's AWS credentials ({code})",
                hint="renew or correct the credentials (environment, profile or role)",
            )
        if code == "InvalidKeyUsageException":
            return KeyUnavailable(
                f"KMS key {key} cannot encrypt data keys (InvalidKeyUsageException)",
                hint="use a symmetric ENCRYPT_DECRYPT key (key spec SYMMETRIC_DEFAULT)",
            )
        if code in _TRANSIENT:
            return KeyUnavailable(
                f"KMS could not serve kms:{op} on key {key} right now ({code})",
                hint="retry later",
            )
        return KeyUnavailable(
            f"KMS refused kms:{op} on key {key} ({code or 'no error code'})",
            hint="check key_id, region and endpoint_url in [keys.clients.NAME]",
        )

    def _endpoint(self) -> str:
        return self.endpoint_url or f"of {self._where()}"

    def _where(self) -> str:
        if self.endpoint_url:
            return self.endpoint_url
        region = self.region or getattr(getattr(self._client, "meta", None), "region_name", None)
        return f"region {region or '(default)'}"

    def __repr__(self) -> str:
        return f"AwsKmsProvider(key_id={self.key_id!r}, region={self.region!r})"
