"""The key router: which key provider seals and opens each client's data keys.

Each client uses the provider configured for it (``[keys.clients.NAME]`` in
``vault.toml``), ``local`` when it has none. :class:`KeyRouter` offers the services the
same methods as :class:`~vault.sealing.local.LocalKeyring`:

* ``generate`` / ``wrap`` go to the tenant's *configured* provider (new data keys, and
  re-wrapping, follow the configuration of today);
* ``unwrap`` goes by the wrapped key's KEK id prefix (``local:`` / ``aws-kms:``), so
  records sealed before a client switched providers stay readable;
* index keys and log signing keys always stay in the local keyring, and so do the KEK
  lifecycle methods of local KEKs (``kek_ids``, ``destroyed_at``, ``kek_created_at``,
  ``new_kek_generation``, ``destroy_kek``).

KMS keys have no time buckets and no generations (KMS rotates their backing material), and
the vault never deletes them: ``kek_ids(tenant)`` lists a KMS client's configured key as
``aws-kms:{key_id}`` (next to any local KEKs still holding its older records),
``new_kek_generation`` refuses for a KMS client, and ``destroy_kek`` of an ``aws-kms:`` id
refuses with a ConfigError saying how to delete the key in KMS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from vault.config import ClientKeySettings, kms_arn_region
from vault.errors import ConfigError, KeyUnavailable
from vault.sealing.keys import WrappedKey
from vault.sealing.kms import KEK_PREFIX as KMS_PREFIX
from vault.sealing.kms import PROVIDER as KMS
from vault.sealing.kms import AwsKmsProvider, kms_key_of, make_kms_client
from vault.sealing.local import PROVIDER as LOCAL
from vault.sealing.local import LocalKeyring
from vault.sealing.signing import LogSigner

LOCAL_PREFIX = LOCAL + ":"

ClientFactory = Callable[..., Any]


def provider_of_kek(kek_id: str) -> str:
    """``local`` or ``aws-kms``: the provider a KEK id belongs to; KeyUnavailable if neither."""
    if isinstance(kek_id, str):
        if kek_id.startswith(LOCAL_PREFIX):
            return LOCAL
        if kek_id.startswith(KMS_PREFIX):
            return KMS
    raise KeyUnavailable(
        f"key id {kek_id!r} names no key provider this vault knows",
        hint="KEK ids start with 'local:' or 'aws-kms:'; the record's key id was modified, "
        "or it comes from a newer version of evidence-vault",
    )


class KeyRouter:
    """Routes key operations per tenant (sealing) and per KEK id (opening).

    ``clients`` maps client ids to their key settings (``Settings.key_clients``).
    One boto3 KMS client is made per KMS endpoint (region, endpoint URL), on first use,
    and shared by every thread and every client that uses that endpoint.
    """

    name = "router"

    def __init__(
        self,
        local: LocalKeyring,
        clients: Mapping[str, ClientKeySettings] | None = None,
        *,
        kms_client_factory: ClientFactory = make_kms_client,
    ) -> None:
        self._local = local
        self._clients = dict(clients or {})
        for name, cfg in self._clients.items():
            if not isinstance(cfg, ClientKeySettings) or cfg.client != name:
                raise ConfigError(f"the key settings of client {name!r} are not for that client")
        self._make_client = kms_client_factory
        self._lock = threading.Lock()
        self._kms_clients: dict[tuple[str | None, str | None], Any] = {}
        self._sealers: dict[str, AwsKmsProvider] = {}  # by tenant
        self._openers: dict[tuple[str | None, str | None], AwsKmsProvider] = {}  # by endpoint

    # -- which provider -------------------------------------------------------------------

    @property
    def local(self) -> LocalKeyring:
        """The local keyring (KEKs of ``local`` clients, index keys, signing keys)."""
        return self._local

    @property
    def path(self) -> Path:
        return self._local.path

    def provider_name(self, tenant: str) -> str:
        """The provider new data keys of ``tenant`` are made by: ``local`` or ``aws-kms``."""
        cfg = self._clients.get(tenant)
        return cfg.provider if cfg else LOCAL

    def provider_for(self, tenant: str) -> LocalKeyring | AwsKmsProvider:
        """The provider that seals ``tenant``'s new data keys."""
        cfg = self._clients.get(tenant)
        if cfg is None or cfg.provider == LOCAL:
            return self._local
        with self._lock:
            sealer = self._sealers.get(tenant)
            if sealer is None:
                region = cfg.resolved_region
                sealer = AwsKmsProvider(
                    cfg.key_id or "",
                    region=region,
                    endpoint_url=cfg.endpoint_url,
                    client=self._kms_client(region, cfg.endpoint_url),
                )
                self._sealers[tenant] = sealer
            return sealer

    def configured_kek_id(self, tenant: str) -> str | None:
        """``aws-kms:{key_id}`` for a KMS client, None for a local one."""
        cfg = self._clients.get(tenant)
        if cfg is None or cfg.provider != KMS:
            return None
        return KMS_PREFIX + (cfg.key_id or "")

    # -- KeyProvider ----------------------------------------------------------------------

    def generate(
        self, tenant: str, bucket: str, context: Mapping[str, str]
    ) -> tuple[bytes, WrappedKey]:
        return self.provider_for(tenant).generate(tenant, bucket, context)

    def wrap(self, tenant: str, bucket: str, dek: bytes, context: Mapping[str, str]) -> WrappedKey:
        return self.provider_for(tenant).wrap(tenant, bucket, dek, context)

    def unwrap(self, wrapped: WrappedKey, tenant: str, context: Mapping[str, str]) -> bytes:
        if provider_of_kek(wrapped.kek_id) == LOCAL:
            return self._local.unwrap(wrapped, tenant, context)
        return self._opener(tenant, wrapped.kek_id).unwrap(wrapped, tenant, context)

    def destroy_kek(self, kek_id: str) -> None:
        if isinstance(kek_id, str) and kek_id.startswith(KMS_PREFIX):
            # raises ConfigError: the vault does not delete KMS keys
            AwsKmsProvider(kms_key_of(kek_id)).destroy_kek(kek_id)
        self._local.destroy_kek(kek_id)

    def index_key(self, tenant: str) -> bytes:
        return self._local.index_key(tenant)

    def log_key(self, tenant: str) -> tuple[bytes, bool]:
        """The tenant's log authentication key (always local) and whether it was just made."""
        return self._local.log_key(tenant)

    def credential_key(self) -> bytes:
        """The key of persons' sign-in credentials (always local, like the log keys)."""
        return self._local.credential_key()

    def token_key(self) -> tuple[bytes, bool]:
        """The key of API token row tags (always local), and whether it was just made."""
        return self._local.token_key()

    # -- KEK lifecycle (local KEKs; KMS keys have none in the vault) ----------------------

    def kek_ids(self, tenant: str | None = None) -> list[str]:
        """Live local KEK ids, plus ``aws-kms:{key_id}`` of KMS clients; sorted."""
        ids = set(self._local.kek_ids(tenant))
        tenants = [tenant] if tenant is not None else list(self._clients)
        for t in tenants:
            kek = self.configured_kek_id(t)
            if kek:
                ids.add(kek)
        return sorted(ids)

    def kek_created_at(self, kek_id: str) -> datetime | None:
        if isinstance(kek_id, str) and kek_id.startswith(KMS_PREFIX):
            return None  # created in KMS, not by the vault
        return self._local.kek_created_at(kek_id)

    def destroyed_at(self, kek_id: str) -> datetime | None:
        if isinstance(kek_id, str) and kek_id.startswith(KMS_PREFIX):
            return None  # the vault never destroys KMS keys
        return self._local.destroyed_at(kek_id)

    def new_kek_generation(self, tenant: str, bucket: str) -> str:
        if self.provider_name(tenant) == KMS:
            raise ConfigError(
                f"client {tenant!r} seals with AWS KMS: its key has no generations in the vault",
                hint="KMS rotates the key's backing material itself (aws kms "
                "enable-key-rotation); to move to another KMS key, change key_id in "
                f"[keys.clients.{tenant}]",
            )
        return self._local.new_kek_generation(tenant, bucket)

    # -- always local ---------------------------------------------------------------------

    def use_clock(self, clock: Callable[[], datetime]) -> None:
        self._local.use_clock(clock)

    def signing_key(self, name: str = "log") -> LogSigner:
        return self._local.signing_key(name)

    def signing_keys(self, name: str = "log") -> list[tuple[int, bytes, bool]]:
        return self._local.signing_keys(name)

    def signing_key_generation(self, name: str, generation: int) -> LogSigner:
        return self._local.signing_key_generation(name, generation)

    def rotate_signing_key(self, name: str = "log", *, after: int) -> tuple[int, LogSigner]:
        return self._local.rotate_signing_key(name, after=after)

    def retire_signing_key(self, name: str, generation: int) -> None:
        self._local.retire_signing_key(name, generation)

    # -- internals ------------------------------------------------------------------------

    def _opener(self, tenant: str, kek_id: str) -> AwsKmsProvider:
        """A KMS provider that can open data keys under ``kek_id``: the endpoint of the key's
        region (from its ARN) and of the tenant's settings (kept when it went back to local)."""
        key = kms_key_of(kek_id)
        cfg = self._clients.get(tenant)
        region = kms_arn_region(key) or (cfg.resolved_region if cfg else None)
        endpoint = cfg.endpoint_url if cfg else None
        if cfg is not None and cfg.provider == KMS:
            sealer = self.provider_for(tenant)
            assert isinstance(sealer, AwsKmsProvider)
            if (sealer.region, sealer.endpoint_url) == (region, endpoint):
                return sealer
        with self._lock:
            opener = self._openers.get((region, endpoint))
            if opener is None:
                opener = AwsKmsProvider(
                    key,
                    region=region,
                    endpoint_url=endpoint,
                    client=self._kms_client(region, endpoint),
                )
                self._openers[(region, endpoint)] = opener
            return opener

    def _kms_client(self, region: str | None, endpoint: str | None) -> Any:
        """The shared boto3 client of an endpoint; call with ``self._lock`` held."""
        client = self._kms_clients.get((region, endpoint))
        if client is None:
            client = self._make_client(region=region, endpoint_url=endpoint)
            self._kms_clients[(region, endpoint)] = client
        return client

    def __repr__(self) -> str:
        kms = sorted(t for t, c in self._clients.items() if c.provider == KMS)
        return f"KeyRouter(local={self._local!r}, aws_kms_clients={kms!r})"
