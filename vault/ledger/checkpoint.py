"""Checkpoints (C2SP tlog-checkpoint) in signed notes (C2SP signed-note), Ed25519. Pure.

A checkpoint is the text of a tree head::

    evidence-vault.example/telco-de      <- origin: the vault's name / the client (log) id
    2                                    <- tree size, decimal, no leading zeros
    D0p5AJLQe4os2bvxIxjWi1t7WaluMK8tL4ACkcktnig=   <- base64 of the RFC 9162 root hash
    (optional extension lines)

A signed note is that text, a blank line, and one line per signature::

    — <key name> base64(4-byte key id ‖ 64-byte Ed25519 signature of the text)

This is the format of golang.org/x/mod/sumdb/note, Trillian, Tessera and sigstore, so
auditors can check our checkpoints with existing tools and the vault's key stays one
short string (:func:`verifier_key`). Only Ed25519 (signature type 0x01) is supported.

The Ed25519 primitive itself is ``vault.sealing`` (:class:`~vault.sealing.LogSigner`,
:func:`~vault.sealing.verify_signature`); this module only formats and parses text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from vault.errors import VaultError
from vault.sealing import verify_signature

#: signature type byte of Ed25519 in C2SP signed-note (and the key id hash input)
ALG_ED25519 = 0x01
ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
KEY_ID_SIZE = 4
ROOT_SIZE = 32
#: the spec demands accepting at least 16; golang.org/x/mod/sumdb/note stops at 100
MAX_SIGNATURES = 100
#: tree sizes are stored as signed 64-bit integers
MAX_TREE_SIZE = 2**63 - 1

SIG_PREFIX = "— "  # U+2014 EM DASH, U+0020 SPACE
_SIG_PREFIX_BYTES = SIG_PREFIX.encode()

_SIZE_RE = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_KEY_ID_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)
_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", re.ASCII)
# ASCII control characters other than newline; a note must not contain any
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(VaultError):
    """A signed note, checkpoint or verifier key is malformed, or its signatures don't hold."""

    kind = "bad-note"


class NoteSigner(Protocol):
    """What signs a note: :class:`vault.sealing.LogSigner` (Ed25519)."""

    def sign(self, message: bytes) -> bytes: ...

    def public_key_bytes(self) -> bytes: ...


# --- small strict helpers --------------------------------------------------------------


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Standard padded base64 (RFC 4648 §4), canonical only, else None.

    Canonical means re-encoding gives the same text (no stray bits in the last
    character): one byte string has one spelling, so a note cannot be re-encoded into
    a different text that still verifies.
    """
    if not _B64_RE.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == text else None


def _is_valid_name(name: str) -> bool:
    """C2SP key names: non-empty, no Unicode spaces, no '+' (and no control characters)."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(ch.isspace() for ch in name)
        and not _CONTROL_RE.search(name)
    )


def _check_name(name: str) -> None:
    if not _is_valid_name(name):
        raise NoteError(
            f"invalid key name {name!r}",
            hint="a key name is non-empty and has no spaces, '+' or control characters",
        )


def _decode_text(raw: bytes, what: str) -> str:
    """UTF-8 without control characters other than newline, as the note spec requires."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise NoteError(f"{what} must be bytes, not {type(raw).__name__}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError(f"malformed {what}: not valid UTF-8") from None
    if _CONTROL_RE.search(text):
        raise NoteError(f"malformed {what}: control character other than newline")
    return text


# --- keys ------------------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ Ed25519 public key)[:4].

    It names the key in signature lines (C2SP signed-note, "Ed25519 signatures"); it is
    an identifier, not a security measure — verifiers always hold the full key.
    """
    _check_name(name)
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise NoteError(f"an Ed25519 public key is {ED25519_PUBLIC_KEY_SIZE} bytes")
    data = name.encode() + b"\n" + bytes([ALG_ED25519]) + bytes(public_key)
    return hashlib.sha256(data).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class Verifier:
    """A known signer of notes: name, key id and Ed25519 public key (all consistent)."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        if key_id(self.name, self.public_key) != self.key_id:
            raise NoteError(f"key id {bytes(self.key_id).hex()} does not match key {self.name}")

    @classmethod
    def for_key(cls, name: str, public_key: bytes) -> Verifier:
        return cls(name, key_id(name, public_key), bytes(public_key))

    def key_string(self) -> str:
        """The verifier key string (:func:`verifier_key`)."""
        return verifier_key(self.name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return verify_signature(self.public_key, message, signature)

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}"


def verifier_key(name: str, public_key: bytes) -> str:
    """``<name>+<key id, 8 hex>+<base64(0x01 ‖ public key)>``: what auditors pin."""
    kid = key_id(name, public_key)
    return f"{name}+{kid.hex()}+{_b64encode(bytes([ALG_ED25519]) + bytes(public_key))}"


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse and check a verifier key string; raise :class:`NoteError` saying what is wrong."""
    if not isinstance(vkey, str):
        raise NoteError("a verifier key is a string")
    parts = vkey.split("+", 2)  # the name has no '+', the base64 key may
    if len(parts) != 3:
        raise NoteError(
            "malformed verifier key", hint="expected <name>+<8 hex key id>+<base64 key>"
        )
    name, kid_hex, key64 = parts
    if not _is_valid_name(name):
        raise NoteError(f"malformed verifier key: invalid key name {name!r}")
    if not _KEY_ID_RE.fullmatch(kid_hex):
        raise NoteError("malformed verifier key: the key id is not 8 lowercase hex digits")
    key = _b64decode(key64)
    if not key:
        raise NoteError("malformed verifier key: the key is not base64")
    if key[0] != ALG_ED25519:
        raise NoteError(
            f"unsupported verifier key type 0x{key[0]:02x}", hint="only Ed25519 (0x01) is supported"
        )
    if len(key) != 1 + ED25519_PUBLIC_KEY_SIZE:
        raise NoteError("malformed verifier key: an Ed25519 key is 32 bytes")
    public_key = key[1:]
    if key_id(name, public_key).hex() != kid_hex:
        raise NoteError("malformed verifier key: the key id does not match the name and key")
    return Verifier(name, bytes.fromhex(kid_hex), public_key)


# --- signed notes ----------------------------------------------------------------------


@dataclass(frozen=True)
class _SigLine:
    name: str
    key_id: bytes
    signature: bytes
    line: bytes  # the whole line, without its newline


def _signature_line(name: str, kid: bytes, signature: bytes) -> bytes:
    return f"{SIG_PREFIX}{name} {_b64encode(kid + signature)}\n".encode()


def _check_text(body: bytes) -> bytes:
    """A note text: UTF-8, no control characters but newline, ending in a newline."""
    text = _decode_text(body, "note text")
    if not text.endswith("\n"):
        raise NoteError("malformed note text: it must end with a newline")
    return bytes(body)


def _parse_note(note: bytes) -> tuple[bytes, list[_SigLine]]:
    """Split a note into its text and signature lines, checking syntax only."""
    _decode_text(note, "note")
    raw = bytes(note)
    # the text ends at the *last* blank line: texts may contain blank lines, signature
    # lines never do
    split = raw.rfind(b"\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = raw[: split + 1], raw[split + 2 :]
    if not block:
        raise NoteError("malformed note: no signature lines")
    if not block.endswith(b"\n"):
        raise NoteError("malformed note: it must end with a newline")
    lines = block[:-1].split(b"\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    out: list[_SigLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIG_PREFIX_BYTES):
            raise NoteError(
                f"malformed note: signature line {number} does not start with '{SIG_PREFIX}'"
            )
        name, _, b64 = line[len(_SIG_PREFIX_BYTES) :].decode().partition(" ")
        if not _is_valid_name(name):
            raise NoteError(f"malformed note: invalid key name in signature line {number}")
        sig = _b64decode(b64)
        if sig is None or len(sig) <= KEY_ID_SIZE:
            raise NoteError(f"malformed note: bad signature encoding in line {number}")
        out.append(_SigLine(name, sig[:KEY_ID_SIZE], sig[KEY_ID_SIZE:], line))
    return text, out


def sign_note(body: bytes, name: str, signer: NoteSigner) -> bytes:
    """The signed note: ``body``, a blank line, and ``— <name> base64(key id ‖ signature)``.

    ``body`` is the note text and must end with a newline (a checkpoint body does).
    """
    text = _check_text(body)
    return text + b"\n" + _sign_line(text, name, signer)


def _sign_line(text: bytes, name: str, signer: NoteSigner) -> bytes:
    public_key = signer.public_key_bytes()
    kid = key_id(name, public_key)
    signature = signer.sign(text)
    # a signer that returns garbage (a broken HSM, a fault) must not yield a note that
    # every auditor will reject later: check it now, it costs one verification
    if not verify_signature(public_key, text, signature):
        raise NoteError(f"the signer for {name} produced an invalid signature")
    return _signature_line(name, kid, signature)


def add_signature(note: bytes, name: str, signer: NoteSigner) -> bytes:
    """Co-sign: append a signature by another key to a signed note.

    Existing signature lines are kept in order (a previous signature by this same key,
    i.e. the same name and key id, is replaced, as golang.org/x/mod/sumdb/note does).
    The existing signatures are not verified here: open the note first.
    """
    text, lines = _parse_note(note)
    kid = key_id(name, signer.public_key_bytes())
    kept = [s.line + b"\n" for s in lines if (s.name, s.key_id) != (name, kid)]
    if len(kept) + 1 > MAX_SIGNATURES:
        raise NoteError(f"a note carries at most {MAX_SIGNATURES} signatures")
    return text + b"\n" + b"".join(kept) + _sign_line(text, name, signer)


def open_note(note: bytes, verifiers: Sequence[Verifier]) -> tuple[bytes, list[Verifier]]:
    """Check a signed note against known keys; return its text and the keys that signed it.

    As C2SP signed-note requires: signatures by unknown keys (name and key id not both
    matching a known key) are ignored; a signature by a known key must verify, otherwise
    the whole note is rejected; and at least one known key must have signed.
    """
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, bytes(v.key_id)), v)
        if other != v:
            # two different keys share name and id: we cannot tell which one signed
            raise NoteError(f"ambiguous key {v}", hint="two verifier keys share name and key id")
    text, lines = _parse_note(note)
    signed: list[Verifier] = []
    checked: set[bytes] = set()
    for sig in lines:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None or sig.line in checked:
            continue
        checked.add(sig.line)
        if not verifier.verify(text, sig.signature):
            raise NoteError(f"invalid signature by key {verifier}")
        if verifier not in signed:
            signed.append(verifier)
    if not signed:
        raise NoteError("no signature by a known key")
    return text, signed


# --- checkpoints -----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tree head in C2SP tlog-checkpoint form.

    ``origin`` names the log — for the vault ``<vault name>/<client id>``, e.g.
    ``evidence-vault.example/telco-de`` — so a checkpoint of one client's log can never
    pass for another's. ``root`` is the raw 32-byte RFC 9162 root hash.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise NoteError("a checkpoint origin is a non-empty string")
        if "\n" in self.origin or _CONTROL_RE.search(self.origin):
            raise NoteError("a checkpoint origin is one line without control characters")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise NoteError("a checkpoint tree size is an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {self.size} is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE:
            raise NoteError(f"a checkpoint root hash is {ROOT_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extension lines are a tuple of strings")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext or _CONTROL_RE.search(ext):
                raise NoteError("a checkpoint extension line is non-empty, one line")

    def body(self) -> bytes:
        """The note text: origin, size, base64 root, extension lines, each ending in newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines).encode()

    @classmethod
    def parse_body(cls, text: bytes) -> Checkpoint:
        """Parse a checkpoint text strictly; raise :class:`NoteError` saying what is wrong."""
        body = _decode_text(text, "checkpoint")
        if not body.endswith("\n"):
            raise NoteError("malformed checkpoint: it must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("malformed checkpoint: it needs an origin, a tree size and a root")
        for number, line in enumerate(lines, start=1):
            if not line:
                raise NoteError(f"malformed checkpoint: line {number} is empty")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE_RE.fullmatch(size_text):
            raise NoteError(
                "malformed checkpoint: the tree size is not a decimal number without leading zeros"
            )
        size = int(size_text)
        if size > MAX_TREE_SIZE:
            raise NoteError("malformed checkpoint: the tree size is out of range")
        root = _b64decode(root_text)
        if root is None or len(root) != ROOT_SIZE:
            raise NoteError("malformed checkpoint: the root hash is not base64 of 32 bytes")
        return cls(origin, size, root, tuple(extensions))


def open_checkpoint(
    note: bytes, verifiers: Sequence[Verifier], *, origin: str | None = None
) -> tuple[Checkpoint, list[Verifier]]:
    """:func:`open_note` then :meth:`Checkpoint.parse_body`; with ``origin``, also require
    the checkpoint to be of that log."""
    body, signed = open_note(note, verifiers)
    cp = Checkpoint.parse_body(body)
    if origin is not None and cp.origin != origin:
        raise NoteError(f"the checkpoint is of log {cp.origin!r}, not {origin!r}")
    return cp, signed
