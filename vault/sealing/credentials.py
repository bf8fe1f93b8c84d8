"""Sign-in credentials of persons: password hashes, TOTP secrets, and the tag binding them.

The database stores each person's credential row, but a database writer must not be able to
sign in as someone by swapping a password hash or TOTP secret (docs/security.md). So:

* the password is hashed with **argon2id** (``argon2-cffi``) at OWASP's recommended cost
  (19 MiB, 2 passes, 1 lane); hashes made at other parameters (the earlier 64 MiB / 3 / 4)
  still verify (the PHC string names its parameters) and are re-hashed at the next
  successful sign-in (:func:`needs_rehash`);
* the TOTP secret is **sealed** (AES-256-GCM) under a key derived from the keyring's
  credential key, with the person's id as associated data, so it is unreadable in the
  database and cannot be moved to another person;
* the whole row is **tagged**: HMAC-SHA256 under a second derived key over
  ``encode_items(domain, person id, handle, password hash, sealed TOTP secret)``. A row
  whose tag does not verify signs nobody in.

Both derived keys come from one 32-byte keyring secret (``credentials``) by HKDF-SHA256
with distinct labels. TOTP itself is RFC 6238 (``pyotp``: SHA-1, 6 digits, 30 s).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from datetime import datetime

import argon2
import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.sealing._encoding import encode_items, require_key, require_text

CREDENTIAL_KEY_SIZE = 32
TAG_DOMAIN = "evidence-vault/v1 credential"
TOTP_DOMAIN = "evidence-vault/v1 totp secret"
SESSION_DOMAIN = "evidence-vault/v1 desk session"
GRANT_DOMAIN = "evidence-vault/v1 desk grant"
THROTTLE_DOMAIN = "evidence-vault/v1 sign-in throttle"
THROTTLE_KEY_DOMAIN = "evidence-vault/v1 sign-in throttle key"
TOKEN_DOMAIN = "evidence-vault/v1 api token"
TOTP_STEP = 30
_NONCE = 12

# argon2id at the OWASP Password Storage Cheat Sheet's first option (m=19 MiB, t=2, p=1):
# ~25 ms per check on this 2-core machine. RFC 9106's second option (64 MiB, t=3, p=4),
# used before, cost ~160 ms idle and over 500 ms under load per sign-in, and its four
# lanes take both cores from every other request. Never go below the OWASP minimum.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_LANES = 1
_hasher = argon2.PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_LANES,
    type=argon2.Type.ID,
)


def hash_password(password: str) -> str:
    """The argon2id PHC string of ``password`` (salted; never the same twice)."""
    return _hasher.hash(require_text("password", password))


def check_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a (verified) hash was made with other parameters than today's."""
    try:
        return _hasher.check_needs_rehash(stored)
    except (argon2.exceptions.InvalidHashError, ValueError):
        return True


def dummy_password_check(password: str) -> None:
    """Spend what a real check spends, so an unknown handle answers as slowly as a known one."""
    check_password(dummy_hash(), password)


@functools.cache
def dummy_hash() -> str:
    """What an unknown handle's password is checked against; made once per process.

    Not at import: an argon2id hash takes its 19 MiB and tens of milliseconds, which every
    process importing the vault paid (each CLI command, the agent, a 1 GiB ingest's peak
    RSS), sign-ins or not. A process that signs people in makes it before its first
    sign-in (:func:`vault.services.credentials.ready_for_sign_in`), so that sign-in is not
    the one slower answer that would tell an unknown handle from a known one.
    """
    return _hasher.hash("evidence-vault: no such person")


def new_totp_secret() -> bytes:
    return os.urandom(20)  # 160 bits, RFC 4226's recommended size


def totp_uri(secret: bytes, *, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app enrols from (shown once)."""
    return pyotp.TOTP(_b32(secret)).provisioning_uri(name=account, issuer_name=issuer)


def totp_code(secret: bytes, at: datetime) -> str:
    return pyotp.TOTP(_b32(secret)).at(at)


def totp_step_of(secret: bytes, code: str, at: datetime, *, window: int = 1) -> int | None:
    """The time step whose code ``code`` is (``at`` ± ``window`` steps), or None.

    The caller refuses a step at or below the last one used (no replay).
    """
    if not (isinstance(code, str) and len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(_b32(secret))
    now = int(at.timestamp()) // TOTP_STEP
    for step in range(now - window, now + window + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _b32(secret: bytes) -> str:
    import base64

    return base64.b32encode(secret).decode("ascii").rstrip("=")


class CredentialSeal:
    """Tags credential rows and seals TOTP secrets under the keyring's credential key."""

    def __init__(self, key: bytes) -> None:
        root = require_key("credential key", key, CREDENTIAL_KEY_SIZE)
        self._mac_key = _derive(root, b"evidence-vault/v1 credential tag")
        self._aead = AESGCM(_derive(root, b"evidence-vault/v1 totp seal"))

    def tag(
        self, person_id: str, handle: str, password_hash: str | None, totp_sealed: bytes | None
    ) -> bytes:
        msg = encode_items(
            TAG_DOMAIN,
            require_text("person id", person_id),
            require_text("handle", handle),
            "-" if password_hash is None else "p" + password_hash,
            b"-" if totp_sealed is None else b"t" + totp_sealed,
        )
        return hmac.digest(self._mac_key, msg, hashlib.sha256)

    def check(
        self,
        person_id: str,
        handle: str,
        password_hash: str | None,
        totp_sealed: bytes | None,
        tag: bytes | None,
    ) -> bool:
        if not tag:
            return False
        want = self.tag(person_id, handle, password_hash, totp_sealed)
        return hmac.compare_digest(want, bytes(tag))

    def row_tag(self, domain: str, *items: str) -> bytes:
        """A tag over a desk row's fields (sessions, grants, throttle counters): only the
        vault can make one."""
        if domain not in (SESSION_DOMAIN, GRANT_DOMAIN, THROTTLE_DOMAIN):
            raise ValueError("unknown row domain")
        return hmac.digest(self._mac_key, encode_items(domain, *items), hashlib.sha256)

    def check_row(self, tag: bytes | None, domain: str, *items: str) -> bool:
        if not tag:
            return False
        return hmac.compare_digest(self.row_tag(domain, *items), bytes(tag))

    def throttle_key(self, kind: str, value: str) -> str:
        """The name of a throttle counter: keyed, so a database reader cannot test which
        handle or address is being counted (a plain SHA-256 of a handle is guessable)."""
        msg = encode_items(THROTTLE_KEY_DOMAIN, require_text("kind", kind), value)
        return hmac.digest(self._mac_key, msg, hashlib.sha256).hex()

    def seal_totp(self, person_id: str, secret: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret, encode_items(TOTP_DOMAIN, person_id))

    def open_totp(self, person_id: str, sealed: bytes) -> bytes | None:
        """The TOTP secret, or None if it was not sealed for this person by this vault."""
        sealed = bytes(sealed)
        try:
            return self._aead.decrypt(
                sealed[:_NONCE], sealed[_NONCE:], encode_items(TOTP_DOMAIN, person_id)
            )
        except (InvalidTag, ValueError):
            return None

    def __repr__(self) -> str:  # never the key
        return "CredentialSeal()"


class TokenSeal:
    """Tags API token rows under the keyring's token key (made once; its making adopts the
    rows from before tokens were tagged: :func:`vault.services.tokens.adopt_untagged`)."""

    def __init__(self, key: bytes) -> None:
        root = require_key("token key", key, CREDENTIAL_KEY_SIZE)
        self._mac_key = _derive(root, b"evidence-vault/v1 api token tag")

    def tag(self, *items: str) -> bytes:
        return hmac.digest(self._mac_key, encode_items(TOKEN_DOMAIN, *items), hashlib.sha256)

    def check(self, tag: bytes | None, *items: str) -> bool:
        return bool(tag) and hmac.compare_digest(self.tag(*items), bytes(tag or b""))

    def __repr__(self) -> str:  # never the key
        return "TokenSeal()"


def _derive(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


def session_digest(session_id: str) -> str:
    """What the database keeps of a web session id: its SHA-256 (like API tokens)."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def new_session_secret() -> str:
    return os.urandom(32).hex()
