"""The ``local`` key provider: a keyring file protected by a master key.

The keyring is one JSON file holding every KEK, every tenant's index key and the log
signing keys, each sealed with AES-256-GCM under a key derived from the master key, with
the entry's id as associated data (so entries cannot be swapped or renamed in the file).
The master key itself is never stored in the keyring; it lives in ``master.key`` or the
``EVIDENCE_VAULT_MASTER_KEY`` environment variable.

Several processes may share one keyring: every change takes an exclusive ``flock`` on a
sidecar lock file, re-reads the file, changes it and replaces it atomically, so a KEK
created by one process is never lost by another. Readers re-read the file whenever it
changed on disk (one ``stat`` per operation), so a KEK destroyed by one process cannot be
used any more by the others.

The file layout is specified in ``docs/formats.md`` ("Data-key wrapping and the local
keyring").
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import ConfigError, DecryptionFailed, KeyUnavailable
from vault.sealing._encoding import encode_items
from vault.sealing.envelope import new_data_key
from vault.sealing.keys import (
    KEK_SIZE,
    WrappedKey,
    check_name,
    unwrap_data_key,
    wrap_data_key,
)
from vault.sealing.signing import LogSigner

KEYRING_FORMAT = "evidence-vault keyring"
KEYRING_VERSION = 1
KEYRING_KEY_INFO = b"evidence-vault/v1 keyring"
ENTRY_AAD_DOMAIN = "evidence-vault/v1 keyring entry"
CHECK_ENTRY = "check"
CHECK_PLAINTEXT = b"evidence-vault keyring check v1"
MASTER_KEY_SIZE = 32
MASTER_KEY_PREFIX = "evmk1-"
PROVIDER = "local"

_MASTER_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")
_NONCE_SIZE = 12

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- master key ---------------------------------------------------------------------------


def generate_master_key() -> bytes:
    """A fresh random 256-bit master key."""
    return os.urandom(MASTER_KEY_SIZE)


def encode_master_key(master_key: bytes) -> str:
    """``"evmk1-"`` + unpadded base64url of the 32 key bytes (49 characters)."""
    raw = _check_master_key(master_key)
    return MASTER_KEY_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_master_key(text: str) -> bytes:
    """The key bytes of an encoded master key; ConfigError if it is malformed.

    The message never repeats the text: it is a secret, and may be one typo away from
    the real key.
    """
    bad = ConfigError(
        f"the master key is malformed: expected {MASTER_KEY_PREFIX!r} followed by 43 "
        "base64url characters",
        hint="copy the whole key from the master.key file or EVIDENCE_VAULT_MASTER_KEY",
    )
    if not isinstance(text, str):
        raise bad
    text = text.strip()
    body = text.removeprefix(MASTER_KEY_PREFIX)
    if body == text or not _MASTER_KEY_TEXT.fullmatch(body):
        raise bad
    raw = base64.urlsafe_b64decode(body + "=")
    # 43 characters carry 258 bits: the 2 spare bits must be zero (one text per key)
    if encode_master_key(raw) != text:
        raise bad
    return raw


def _check_master_key(master_key: bytes) -> bytes:
    if not isinstance(master_key, bytes | bytearray) or len(master_key) != MASTER_KEY_SIZE:
        raise ConfigError(f"the master key must be {MASTER_KEY_SIZE} bytes")
    return bytes(master_key)


# -- the keyring --------------------------------------------------------------------------


@dataclass
class _State:
    """The parsed keyring file; secrets stay sealed until used."""

    keyring_id: str
    check: str
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    destroyed: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        doc = {
            "format": KEYRING_FORMAT,
            "version": KEYRING_VERSION,
            "keyring_id": self.keyring_id,
            "check": self.check,
            "keys": self.keys,
            "destroyed": self.destroyed,
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


class LocalKeyring:
    """KeyProvider ``local``: KEKs, index keys and signing keys in one encrypted keyring file.

    ``LocalKeyring(path, master_key)`` opens an existing keyring (same as :meth:`open`);
    :meth:`create` makes a new one.
    """

    name = PROVIDER

    def __init__(self, path: Path, master_key: bytes, *, clock: Clock = _utc_now) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        self._sealer = AESGCM(_keyring_key(_check_master_key(master_key)))
        self._clock = clock
        self._mutex = threading.RLock()
        self._state: _State | None = None
        self._stat: tuple[int, ...] | None = None
        self._plain: dict[str, tuple[str, bytes]] = {}  # entry id -> (sealed, secret)
        state = self._fresh()
        try:
            opened = self._open_entry(state, CHECK_ENTRY, state.check)
        except DecryptionFailed:
            opened = None
        if opened != CHECK_PLAINTEXT:
            raise ConfigError(
                f"the master key does not match the keyring {self._path}",
                hint="use the master key this vault was created with (master.key or "
                "EVIDENCE_VAULT_MASTER_KEY)",
            )

    @classmethod
    def create(cls, path: Path, master_key: bytes, *, clock: Clock = _utc_now) -> LocalKeyring:
        """Write a new, empty keyring at ``path``; refuses to replace an existing file."""
        path = Path(path)
        sealer = AESGCM(_keyring_key(_check_master_key(master_key)))
        with _exclusive(path.with_name(path.name + ".lock")):
            if path.exists():
                raise ConfigError(
                    f"a keyring already exists at {path}",
                    hint="open it with its master key, or choose another path",
                )
            keyring_id = os.urandom(16).hex()
            check = _seal_entry(sealer, keyring_id, CHECK_ENTRY, CHECK_PLAINTEXT)
            _write_atomically(path, _State(keyring_id, check).to_json())
        return cls(path, master_key, clock=clock)

    @classmethod
    def open(cls, path: Path, master_key: bytes, *, clock: Clock = _utc_now) -> LocalKeyring:
        """Open the keyring at ``path``; ConfigError if it is missing or the key is wrong."""
        return cls(path, master_key, clock=clock)

    @property
    def path(self) -> Path:
        return self._path

    def use_clock(self, clock: Clock) -> None:
        """Date new and destroyed keys with ``clock`` (the vault's injectable clock)."""
        self._clock = clock

    # -- KeyProvider ----------------------------------------------------------------------

    def wrap(self, tenant: str, bucket: str, dek: bytes, context: Mapping[str, str]) -> WrappedKey:
        check_name("tenant", tenant)
        check_name("bucket", bucket)
        kek_id, kek = self._current_kek(tenant, bucket)
        return wrap_data_key(kek, kek_id, tenant, dek, context)

    def generate(
        self, tenant: str, bucket: str, context: Mapping[str, str]
    ) -> tuple[bytes, WrappedKey]:
        """A fresh data key and its wrapping (KMS-style ``GenerateDataKey``)."""
        dek = new_data_key()
        return dek, self.wrap(tenant, bucket, dek, context)

    def unwrap(self, wrapped: WrappedKey, tenant: str, context: Mapping[str, str]) -> bytes:
        owner, _bucket, _generation = _parse_kek_id(wrapped.kek_id)
        if owner != tenant:
            raise DecryptionFailed(
                f"the wrapped data key under {wrapped.kek_id} belongs to tenant {owner!r}, "
                f"not {tenant!r}"
            )
        kek = self._secret(self._fresh(), _kek_entry(wrapped.kek_id), wrapped.kek_id)
        return unwrap_data_key(kek, wrapped, tenant, context)

    def destroy_kek(self, kek_id: str) -> None:
        """Remove the KEK from the keyring for good, noting when; idempotent."""
        _parse_kek_id(kek_id)
        entry = _kek_entry(kek_id)

        def destroy(state: _State) -> bool:
            if kek_id in state.destroyed:
                return False
            if entry not in state.keys:
                raise KeyUnavailable(f"there is no key {kek_id} in the keyring {self._path}")
            del state.keys[entry]
            state.destroyed[kek_id] = _format_time(self._clock())
            return True

        self._modify(destroy)
        with self._mutex:
            self._plain.pop(entry, None)

    def index_key(self, tenant: str) -> bytes:
        check_name("tenant", tenant)
        return self._get_or_create(f"index:{tenant}", lambda: os.urandom(32))

    def log_key(self, tenant: str) -> tuple[bytes, bool]:
        """The tenant's log authentication key, and whether this call created it.

        Created once per tenant, like the index key. ``created`` tells the caller that the
        log existed without a key until now (a vault from before entries were tagged).
        """
        # a leading '_' marks a vault-wide log (e.g. '_vault'), never a client id
        check_name("tenant", tenant.removeprefix("_"))
        entry = f"logauth:{tenant}"
        created: list[bool] = []

        def make() -> bytes:
            created.append(True)
            return os.urandom(32)

        return self._get_or_create(entry, make), bool(created)

    def credential_key(self) -> bytes:
        """The key that tags sign-in credentials and seals TOTP secrets (created once)."""
        return self._get_or_create("credentials", lambda: os.urandom(32))

    def token_key(self) -> tuple[bytes, bool]:
        """The key that tags API token rows, and whether this call created it (then the
        caller adopts the rows from before tokens were tagged, once)."""
        created: list[bool] = []

        def make() -> bytes:
            created.append(True)
            return os.urandom(32)

        return self._get_or_create("api-tokens", make), bool(created)

    # -- beyond the protocol --------------------------------------------------------------

    def signing_key(self, name: str = "log") -> LogSigner:
        """The current (newest) Ed25519 signing key ``name``, created on first use."""
        check_name("signing key name", name)
        generations = _signing_generations(self._fresh(), name)
        entry = _signing_entry(name, max(generations, default=1))
        raw = self._get_or_create(entry, lambda: LogSigner.generate()._private_bytes())
        return LogSigner._from_private_bytes(raw)

    def signing_keys(self, name: str = "log") -> list[tuple[int, bytes, bool]]:
        """Every generation of signing key ``name``: (generation, public key, still signs)."""
        state = self._fresh()
        out = []
        for gen in sorted(_signing_generations(state, name)):
            entry = _signing_entry(name, gen)
            if entry in state.keys:
                signer = LogSigner._from_private_bytes(self._secret(state, entry, entry))
                out.append((gen, signer.public_key_bytes(), True))
            else:
                public = self._secret(state, _public_entry(entry), _public_entry(entry))
                out.append((gen, public, False))
        return out

    def signing_key_generation(self, name: str, generation: int) -> LogSigner:
        """Generation ``generation`` of signing key ``name``; KeyUnavailable once retired."""
        entry = _signing_entry(name, generation)
        return LogSigner._from_private_bytes(self._secret(self._fresh(), entry, entry))

    def rotate_signing_key(self, name: str = "log", *, after: int) -> tuple[int, LogSigner]:
        """Create generation ``after + 1`` of signing key ``name`` (or return it if it exists).

        ``after`` is the generation the caller rotates away from, so a rerun after a crash
        finishes the same hand-over instead of starting another.
        """
        check_name("signing key name", name)
        entry = _signing_entry(name, after + 1)

        def create(state: _State) -> bool:
            if entry in state.keys or _public_entry(entry) in state.keys:
                return False
            if max(_signing_generations(state, name), default=1) != after:
                raise ConfigError(
                    f"signing key {name!r} is not at generation {after}; another rotation ran",
                    hint="check `evidence-vault log keys`",
                )
            self._add_entry(state, entry, LogSigner.generate()._private_bytes())
            return True

        state = self._modify(create)
        raw = self._secret(state, entry, entry)
        return after + 1, LogSigner._from_private_bytes(raw)

    def retire_signing_key(self, name: str, generation: int) -> None:
        """Destroy the private half of an old signing key, keeping its public key; idempotent."""
        entry = _signing_entry(name, generation)

        def retire(state: _State) -> bool:
            if entry not in state.keys:
                return False
            if generation >= max(_signing_generations(state, name)):
                raise ConfigError(f"generation {generation} of {name!r} is the current key")
            private = self._open_entry(state, entry, state.keys[entry]["sealed"])
            public = LogSigner._from_private_bytes(private).public_key_bytes()
            self._add_entry(state, _public_entry(entry), public)
            del state.keys[entry]
            return True

        self._modify(retire)
        with self._mutex:
            self._plain.pop(entry, None)

    def new_kek_generation(self, tenant: str, bucket: str) -> str:
        """Add a new generation of the tenant's KEK for ``bucket``: new wraps use it (rotation)."""
        check_name("tenant", tenant)
        check_name("bucket", bucket)
        made: list[str] = []

        def create(state: _State) -> bool:
            generation = max(_generations(state, tenant, bucket), default=0) + 1
            kek_id = f"{PROVIDER}:{tenant}:{bucket}:{generation}"
            self._add_entry(state, _kek_entry(kek_id), os.urandom(KEK_SIZE))
            made.append(kek_id)
            return True

        self._modify(create)
        return made[0]

    def kek_ids(self, tenant: str | None = None) -> list[str]:
        """The ids of the live (not destroyed) KEKs, optionally of one tenant, sorted."""
        ids = [e.removeprefix("kek:") for e in self._fresh().keys if e.startswith("kek:")]
        if tenant is not None:
            ids = [i for i in ids if _parse_kek_id(i)[0] == tenant]
        return sorted(ids)

    def kek_created_at(self, kek_id: str) -> datetime | None:
        """When a live KEK was created (None if it is not live)."""
        record = self._fresh().keys.get(_kek_entry(kek_id))
        return _parse_time(record["created_at"]) if record else None

    def destroyed_at(self, kek_id: str) -> datetime | None:
        """When ``kek_id`` was destroyed, or None if it was not."""
        when = self._fresh().destroyed.get(kek_id)
        return _parse_time(when) if when else None

    # -- internals ------------------------------------------------------------------------

    def _current_kek(self, tenant: str, bucket: str) -> tuple[str, bytes]:
        state = self._fresh()
        live = _generations(state, tenant, bucket, live_only=True)
        if not live:

            def create(state: _State) -> bool:
                if _generations(state, tenant, bucket, live_only=True):
                    return False  # another process created it while we waited for the lock
                # after a destroy, the bucket gets a new generation; ids are never reused
                generation = max(_generations(state, tenant, bucket), default=0) + 1
                kek_id = f"{PROVIDER}:{tenant}:{bucket}:{generation}"
                self._add_entry(state, _kek_entry(kek_id), os.urandom(KEK_SIZE))
                return True

            state = self._modify(create)
            live = _generations(state, tenant, bucket, live_only=True)
        kek_id = f"{PROVIDER}:{tenant}:{bucket}:{max(live)}"
        return kek_id, self._secret(state, _kek_entry(kek_id), kek_id)

    def _get_or_create(self, entry: str, make: Callable[[], bytes]) -> bytes:
        state = self._fresh()
        if entry not in state.keys:

            def create(state: _State) -> bool:
                if entry in state.keys:
                    return False
                self._add_entry(state, entry, make())
                return True

            state = self._modify(create)
        return self._secret(state, entry, entry)

    def _add_entry(self, state: _State, entry: str, secret: bytes) -> None:
        state.keys[entry] = {
            "created_at": _format_time(self._clock()),
            "sealed": _seal_entry(self._sealer, state.keyring_id, entry, secret),
        }

    def _secret(self, state: _State, entry: str, key_id: str) -> bytes:
        """The plaintext of a live entry; KeyUnavailable if destroyed or missing."""
        if key_id in state.destroyed:
            when = _parse_time(state.destroyed[key_id])
            raise KeyUnavailable(
                f"key {key_id} was destroyed on {when:%Y-%m-%d} (crypto-shredded)",
                hint="evidence sealed under it can no longer be opened by anyone; this is "
                "what retention expiry and erasure do",
            )
        record = state.keys.get(entry)
        if record is None:
            raise KeyUnavailable(
                f"key {key_id} is not in the keyring {self._path}",
                hint="restore the keyring file from a backup, or check the vault's keyring setting",
            )
        sealed = record["sealed"]
        with self._mutex:
            cached = self._plain.get(entry)
            if cached is not None and cached[0] == sealed:
                return cached[1]
        secret = self._open_entry(state, entry, sealed)
        with self._mutex:
            self._plain[entry] = (sealed, secret)
        return secret

    def _open_entry(self, state: _State, entry: str, sealed: str) -> bytes:
        try:
            blob = base64.b64decode(sealed, validate=True)
            return self._sealer.decrypt(
                blob[:_NONCE_SIZE], blob[_NONCE_SIZE:], _entry_aad(state.keyring_id, entry)
            )
        except (binascii.Error, ValueError, InvalidTag):
            raise DecryptionFailed(
                f"keyring entry {entry!r} failed authentication: the keyring file "
                f"{self._path} was modified or damaged",
                hint="restore the keyring file from a backup",
            ) from None

    def _fresh(self) -> _State:
        """The keyring as it is on disk now: re-read only when the file has changed."""
        try:
            stat = _stat_key(os.stat(self._path))
        except FileNotFoundError:
            raise ConfigError(
                f"there is no keyring at {self._path}",
                hint="create the vault with `evidence-vault init`, or restore the keyring "
                "file from a backup",
            ) from None
        with self._mutex:
            if self._state is not None and stat == self._stat:
                return self._state
        state, stat = self._read()
        with self._mutex:
            self._state, self._stat = state, stat
            # forget plaintexts of entries that are gone (destroyed by another process)
            self._plain = {e: v for e, v in self._plain.items() if e in state.keys}
        return state

    def _read(self) -> tuple[_State, tuple[int, ...]]:
        try:
            with open(self._path, "rb") as fh:
                stat = _stat_key(os.fstat(fh.fileno()))
                raw = fh.read()
        except FileNotFoundError:
            raise ConfigError(f"there is no keyring at {self._path}") from None
        return _parse_state(raw, self._path), stat

    def _modify(self, change: Callable[[_State], bool]) -> _State:
        """Apply ``change`` to the current file under the lock; write it if it says so."""
        with self._mutex, _exclusive(self._lock_path):
            state, stat = self._read()  # never trust the cache for a read-modify-write
            if change(state):
                _write_atomically(self._path, state.to_json())
                stat = _stat_key(os.stat(self._path))
            self._state, self._stat = state, stat
            return state

    def __repr__(self) -> str:
        return f"LocalKeyring({str(self._path)!r})"


# -- file format helpers ------------------------------------------------------------------


def _keyring_key(master_key: bytes) -> bytes:
    # a key of its own for the keyring, so the master key could serve other purposes later
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEYRING_KEY_INFO).derive(
        master_key
    )


def _entry_aad(keyring_id: str, entry: str) -> bytes:
    return encode_items(ENTRY_AAD_DOMAIN, keyring_id, entry)


def _seal_entry(sealer: AESGCM, keyring_id: str, entry: str, secret: bytes) -> str:
    nonce = os.urandom(_NONCE_SIZE)
    sealed = sealer.encrypt(nonce, secret, _entry_aad(keyring_id, entry))
    return base64.b64encode(nonce + sealed).decode("ascii")


def _kek_entry(kek_id: str) -> str:
    return f"kek:{kek_id}"


def _signing_entry(name: str, generation: int) -> str:
    # generation 1 keeps the name vaults were created with, so existing keyrings read as-is
    return f"signing:{name}" if generation == 1 else f"signing:{name}.{generation}"


def _public_entry(signing_entry: str) -> str:
    return "public:" + signing_entry


def _signing_generations(state: _State, name: str) -> list[int]:
    gens = []
    for entry in state.keys:
        base = entry.removeprefix("public:")
        if base == f"signing:{name}":
            gens.append(1)
        elif base.startswith(f"signing:{name}.") and base.rsplit(".", 1)[1].isdigit():
            gens.append(int(base.rsplit(".", 1)[1]))
    return sorted(set(gens))


def parse_kek_id(kek_id: str) -> tuple[str, str, int]:
    """``local:{tenant}:{bucket}:{generation}`` → (tenant, bucket, generation)."""
    return _parse_kek_id(kek_id)


def _parse_kek_id(kek_id: str) -> tuple[str, str, int]:
    """``local:{tenant}:{bucket}:{generation}`` → (tenant, bucket, generation)."""
    parts = kek_id.split(":") if isinstance(kek_id, str) else []
    if len(parts) != 4 or parts[0] != PROVIDER or not parts[3].isdigit():
        raise KeyUnavailable(
            f"key id {kek_id!r} is not a key of the local keyring",
            hint="the record was sealed with another key provider; configure that provider",
        )
    return parts[1], parts[2], int(parts[3])


def _generations(state: _State, tenant: str, bucket: str, *, live_only: bool = False) -> list[int]:
    prefix = f"{PROVIDER}:{tenant}:{bucket}:"
    ids = [e.removeprefix("kek:") for e in state.keys if e.startswith("kek:")]
    if not live_only:
        ids += list(state.destroyed)
    return [int(i.removeprefix(prefix)) for i in ids if i.startswith(prefix)]


def _parse_state(raw: bytes, path: Path) -> _State:
    try:
        doc = json.loads(raw)
        if doc.get("format") != KEYRING_FORMAT:
            raise ValueError("not a keyring")
        if doc.get("version") != KEYRING_VERSION:
            raise ConfigError(
                f"keyring {path} has version {doc.get('version')}, this vault reads "
                f"version {KEYRING_VERSION}",
                hint="upgrade evidence-vault",
            )
        state = _State(
            keyring_id=str(doc["keyring_id"]),
            check=str(doc["check"]),
            keys={
                str(k): {"created_at": str(v["created_at"]), "sealed": str(v["sealed"])}
                for k, v in doc["keys"].items()
            },
            destroyed={str(k): str(v) for k, v in doc["destroyed"].items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            f"{path} is not a readable evidence-vault keyring",
            hint="check the keyring path, or restore the file from a backup",
        ) from None
    return state


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a mix."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp makes it 0600
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # the rename itself is durable only once the directory is synced
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # a sidecar file, because the keyring itself is replaced (a lock on it would be lost)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    # os.replace gives the file a new inode; size and times catch the rest
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _format_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
