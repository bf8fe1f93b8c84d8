"""Vault settings: ``vault.toml`` in the vault's home directory, overridden by environment.

The embedded default needs no server: SQLite (WAL) in ``HOME/vault.db``, objects under
``HOME/objects``, a local keyring in ``HOME/keyring.json`` protected by a master key.
An S3 endpoint and a PostgreSQL URL replace the embedded parts by configuration alone.

Environment variables (each overrides the file):

=================================  ==========================================
``EVIDENCE_VAULT_HOME``            the vault directory (``--vault`` on the CLI)
``EVIDENCE_VAULT_DATABASE_URL``    SQLAlchemy URL, e.g. ``postgresql+psycopg://u@h/db``
``EVIDENCE_VAULT_STORAGE``         ``local`` or ``s3``
``EVIDENCE_VAULT_S3_ENDPOINT``     S3 endpoint URL (omit for AWS)
``EVIDENCE_VAULT_S3_BUCKET``       bucket name
``EVIDENCE_VAULT_S3_REGION``       region name
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``  S3 credentials (boto3's usual chain)
``EVIDENCE_VAULT_MASTER_KEY``      the keyring master key (else ``HOME/master.key``)
``EVIDENCE_VAULT_NAME``            the vault's name in log origins
=================================  ==========================================
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from vault.errors import ConfigError

CONFIG_FILE = "vault.toml"
HOME_ENV = "EVIDENCE_VAULT_HOME"


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    prefix: str = ""
    #: create the bucket with Object Lock on ``init`` when it does not exist
    object_lock: bool = True


@dataclass(frozen=True)
class Settings:
    home: Path
    name: str = "evidence-vault"
    database_url: str = ""
    storage: str = "local"
    objects_dir: Path | None = None
    s3: S3Settings | None = None
    key_provider: str = "local"
    keyring_file: Path | None = None
    master_key_file: Path | None = None
    master_key: str | None = field(default=None, repr=False)
    #: sign a checkpoint after this many new entries ...
    checkpoint_every: int = 100
    #: ... or on the first append this many seconds after the last checkpoint
    checkpoint_seconds: int = 300

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'vault.db'}"

    @property
    def resolved_objects_dir(self) -> Path:
        return self.objects_dir or self.home / "objects"

    @property
    def resolved_keyring_file(self) -> Path:
        return self.keyring_file or self.home / "keyring.json"

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.home / "master.key"

    def to_toml(self) -> str:
        """The file ``init`` writes; secrets are never written into it."""
        lines = [
            "# evidence-vault configuration; environment variables override it (see docs)",
            f'name = "{self.name}"',
            "",
            "[metadata]",
            f'url = "{self.database_url}"  # empty: SQLite in this directory',
            "",
            "[storage]",
            f'backend = "{self.storage}"',
        ]
        if self.s3:
            lines += [
                "",
                "[storage.s3]",
                f'bucket = "{self.s3.bucket}"',
                f'endpoint_url = "{self.s3.endpoint_url or ""}"',
                f'region = "{self.s3.region or ""}"',
                f'prefix = "{self.s3.prefix}"',
                f"object_lock = {'true' if self.s3.object_lock else 'false'}",
            ]
        lines += [
            "",
            "[ledger]",
            f"checkpoint_every = {self.checkpoint_every}  # entries between signed checkpoints",
            f"checkpoint_seconds = {self.checkpoint_seconds}  # or seconds, on the next append",
            "",
            "[keys]",
            f'provider = "{self.key_provider}"',
            "",
        ]
        return "\n".join(lines)


def resolve_home(explicit: str | os.PathLike | None = None) -> Path:
    """The vault directory: ``--vault``, else ``$EVIDENCE_VAULT_HOME``, else ``.evidence-vault``."""
    raw = explicit or os.environ.get(HOME_ENV) or ".evidence-vault"
    return Path(raw).expanduser().resolve()


def load_settings(home: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``home/vault.toml`` (if present) and apply environment overrides."""
    env = os.environ if env is None else env
    data: dict = {}
    path = home / CONFIG_FILE
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid TOML: {exc}", hint="fix the file or run init again"
            ) from exc
    settings = _from_file(home, data)
    return apply_env(settings, env)


def _from_file(home: Path, data: dict) -> Settings:
    storage = data.get("storage", {})
    s3_table = storage.get("s3")
    s3 = None
    if s3_table:
        s3 = S3Settings(
            bucket=_required(s3_table, "bucket", "storage.s3"),
            endpoint_url=s3_table.get("endpoint_url") or None,
            region=s3_table.get("region") or None,
            prefix=s3_table.get("prefix", ""),
            object_lock=bool(s3_table.get("object_lock", True)),
        )
    keys = data.get("keys", {})
    return Settings(
        home=home,
        name=data.get("name", "evidence-vault"),
        database_url=data.get("metadata", {}).get("url", ""),
        storage=storage.get("backend", "local"),
        objects_dir=_path(home, storage.get("path")),
        s3=s3,
        key_provider=keys.get("provider", "local"),
        keyring_file=_path(home, keys.get("keyring")),
        master_key_file=_path(home, keys.get("master_key_file")),
        checkpoint_every=int(data.get("ledger", {}).get("checkpoint_every", 100)),
        checkpoint_seconds=int(data.get("ledger", {}).get("checkpoint_seconds", 300)),
    )


def apply_env(s: Settings, env: Mapping[str, str]) -> Settings:
    s = replace(
        s,
        name=env.get("EVIDENCE_VAULT_NAME", s.name),
        database_url=env.get("EVIDENCE_VAULT_DATABASE_URL", s.database_url),
        storage=env.get("EVIDENCE_VAULT_STORAGE", s.storage),
        master_key=env.get("EVIDENCE_VAULT_MASTER_KEY") or None,
    )
    bucket = env.get("EVIDENCE_VAULT_S3_BUCKET") or (s.s3.bucket if s.s3 else None)
    if s.storage == "s3":
        if not bucket:
            raise ConfigError(
                "storage backend is s3 but no bucket is configured",
                hint="set [storage.s3] bucket in vault.toml or EVIDENCE_VAULT_S3_BUCKET",
            )
        base = s.s3 or S3Settings(bucket=bucket)
        s = replace(
            s,
            s3=replace(
                base,
                bucket=bucket,
                endpoint_url=env.get("EVIDENCE_VAULT_S3_ENDPOINT", base.endpoint_url),
                region=env.get("EVIDENCE_VAULT_S3_REGION", base.region),
                access_key_id=env.get("AWS_ACCESS_KEY_ID", base.access_key_id),
                secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", base.secret_access_key),
            ),
        )
    elif s.storage != "local":
        raise ConfigError(f"unknown storage backend {s.storage!r}", hint="use 'local' or 's3'")
    if s.key_provider != "local":
        raise ConfigError(
            f"unknown key provider {s.key_provider!r}",
            hint="this version supports the 'local' keyring",
        )
    return s


def _required(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not value:
        raise ConfigError(f"[{where}] needs '{key}'", hint=f'add {key} = "..." to vault.toml')
    return str(value)


def _path(home: Path, raw: str | None) -> Path | None:
    if not raw:
        return None
    p = Path(raw).expanduser()
    return p if p.is_absolute() else home / p
