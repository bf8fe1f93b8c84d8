"""Opening and creating a vault: settings, database, object store and key provider together."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import select

from vault.config import CONFIG_FILE, Settings, database_password, load_settings, resolve_home
from vault.db import LogHead, migrate, open_engine, read_session, write_session
from vault.errors import ConfigError
from vault.sealing import (
    KeyRouter,
    LocalKeyring,
    LogAuthenticator,
    decode_master_key,
    encode_master_key,
    generate_master_key,
)
from vault.services.logauth import ANCHOR_DIR, LogKeys, adopt_untagged
from vault.spool import Spool
from vault.storage import LocalStore, ObjectStore

log = logging.getLogger("vault")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class VaultContext:
    settings: Settings
    engine: Engine
    store: ObjectStore
    #: the key router: each client's configured provider (local keyring or AWS KMS) for
    #: data keys; index and signing keys always in the local keyring
    keys: KeyRouter
    clock: Clock = field(default=utc_now)

    def __post_init__(self) -> None:
        if isinstance(self.keys, LocalKeyring):  # a bare keyring: every client local
            self.keys = KeyRouter(self.keys)
        # the keyring dates KEKs and their destruction with the vault's (injectable) clock
        self.keys.use_clock(lambda: self.clock())
        self._log_keys: dict[str, LogKeys] = {}
        #: per client, the size and signing time of the newest checkpoint this process
        #: signed or read: after each commit it tells, without a query, that none is due
        self.checkpoints_seen: dict[str, tuple[int, datetime]] = {}

    @property
    def anchor_dir(self) -> Path:
        return self.settings.home / ANCHOR_DIR

    def log_keys(self, client: str) -> LogKeys:
        """The client's log writer: entry tags and head anchors (key from the keyring)."""
        keys = self._log_keys.get(client)
        if keys is None:
            keys, _ = self._make_log_keys(client)
        return keys

    def adopt_logs(self) -> None:
        """Make the log key of every client that has none yet, tagging what its log holds.

        Runs when the vault opens, so a log from before entries were tagged is adopted
        exactly once — when its key is made — and never inside another transaction.
        """
        with read_session(self.engine) as s:
            clients = list(s.exec(select(LogHead.client_id)))
        for client in clients:
            keys, created = self._make_log_keys(client)
            if created:
                with write_session(self.engine) as s:
                    adopt_untagged(s, keys)

    def _make_log_keys(self, client: str) -> tuple[LogKeys, bool]:
        secret, created = self.keys.log_key(client)
        keys = LogKeys(LogAuthenticator(secret, client), self.anchor_dir)
        self._log_keys[client] = keys
        return keys, created

    def spool(self) -> Spool:
        """Where uploads and bundle downloads wait in clear: inside the vault (vault.spool)."""
        return Spool(self.settings.home)

    def close(self) -> None:
        self.engine.dispose()


def create_vault(settings: Settings) -> VaultContext:
    """Create a new vault in ``settings.home``; refuses to touch an existing one."""
    home = settings.home
    if (home / CONFIG_FILE).exists() or settings.resolved_keyring_file.exists():
        raise ConfigError(
            f"a vault already exists in {home}",
            hint="open it, or choose another directory with --vault",
        )
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    _owner_only(home, 0o700)  # it may have existed (empty) before
    master = _new_master_key(settings)
    _write_database_password(settings)
    LocalKeyring.create(settings.resolved_keyring_file, master)
    (home / CONFIG_FILE).write_text(settings.to_toml(), encoding="utf-8")
    if settings.storage == "local":
        settings.resolved_objects_dir.mkdir(parents=True, exist_ok=True)
    elif settings.s3:
        from vault.storage.s3 import S3Store

        S3Store.ensure_bucket(**_s3_kwargs(settings), object_lock=settings.s3.object_lock)
    return open_vault(settings)


def open_vault(settings: Settings, *, clock: Clock = utc_now) -> VaultContext:
    if not (settings.home / CONFIG_FILE).exists():
        raise ConfigError(
            f"no vault in {settings.home}",
            hint="create one with `evidence-vault init`, or point --vault / "
            "EVIDENCE_VAULT_HOME at an existing vault",
        )
    _owner_only(settings.home, 0o700)
    engine = open_engine(settings.resolved_database_url)
    migrate(engine)
    _sweep_spool(settings.home)
    local = LocalKeyring.open(settings.resolved_keyring_file, _master_key(settings), clock=clock)
    keys = KeyRouter(local, settings.key_clients)
    ctx = VaultContext(settings, engine, _open_store(settings), keys, clock)
    ctx.adopt_logs()
    from vault.services.tokens import token_seal

    token_seal(ctx)  # makes the token key once, adopting the tokens from before their tags
    return ctx


def _owner_only(path: Path, mode: int) -> None:
    """Tighten ``path`` to ``mode`` if others may read it: say so, never fail over it."""
    try:
        current = path.stat().st_mode & 0o777
        if current & 0o077:
            os.chmod(path, mode)
            log.warning(
                "tightened %s from %o to %o: the vault is its owner's only", path, current, mode
            )
    except OSError as exc:  # not ours to change: warn, the vault still opens
        log.warning("cannot tighten %s to %o (%s): others may read it", path, mode, exc.strerror)


def _sweep_spool(home: Path) -> None:
    """Remove the spool files of uploads whose process died (vault.spool)."""
    try:
        Spool(home).prepare()
    except OSError as exc:  # a read-only vault directory: nothing could be spooled there
        log.warning("cannot prepare the upload spool in %s: %s", home, exc.strerror)


def open_home(home: Path, *, clock: Clock = utc_now) -> VaultContext:
    return open_vault(load_settings(home), clock=clock)


def ready_checks(ctx: VaultContext) -> dict[str, str]:
    """Whether the metadata database and the object store answer: "ok" or the failure's
    type (never its message: a database's may quote a value)."""
    checks = {}
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"
        checks["database"] = type(exc).__name__
    try:
        next(iter(ctx.store.list("_readyz/")), None)
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = type(exc).__name__
    return checks


def open_from_environment(*, clock: Clock = utc_now) -> VaultContext:
    """The vault ``EVIDENCE_VAULT_HOME`` names (or the default home), as ``serve`` opens it."""
    return open_home(resolve_home(None), clock=clock)


def _open_store(settings: Settings) -> ObjectStore:
    if settings.storage == "s3":
        from vault.storage.s3 import S3Store

        return S3Store(**_s3_kwargs(settings))
    root = settings.resolved_objects_dir
    if not root.is_dir():
        raise ConfigError(f"object directory {root} is missing", hint="restore it from backup")
    return LocalStore(root)


def _s3_kwargs(settings: Settings) -> dict:
    s3 = settings.s3
    assert s3 is not None  # load_settings guarantees it for the s3 backend
    return {
        "bucket": s3.bucket,
        "endpoint_url": s3.endpoint_url,
        "region_name": s3.region,
        "aws_access_key_id": s3.access_key_id,
        "aws_secret_access_key": s3.secret_access_key,
        "prefix": s3.prefix,
    }


def _new_master_key(settings: Settings) -> bytes:
    if settings.master_key:
        return decode_master_key(settings.master_key)
    master = generate_master_key()
    path = settings.resolved_master_key_file
    # 0600 from the first byte: never a moment where others could read it
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(encode_master_key(master) + "\n")
    return master


def _write_database_password(settings: Settings) -> None:
    """The password of a URL given to ``init``, into its 0600 file (never vault.toml)."""
    password = database_password(settings.database_url)
    path = settings.database_password_file
    if password is None or path is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")


def _master_key(settings: Settings) -> bytes:
    if settings.master_key:
        return decode_master_key(settings.master_key)
    path = settings.resolved_master_key_file
    if not path.exists():
        raise ConfigError(
            "the keyring's master key is not available",
            hint=f"set EVIDENCE_VAULT_MASTER_KEY or restore {path}",
        )
    return decode_master_key(path.read_text(encoding="ascii").strip())
