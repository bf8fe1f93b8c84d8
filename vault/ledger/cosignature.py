"""Witness cosignatures of checkpoints (C2SP tlog-cosignature v1, Ed25519) and the text of
the C2SP tlog-witness protocol. Pure: no I/O; the Ed25519 primitive is ``vault.sealing``.

A witness that has checked a checkpoint is consistent with everything it saw of the log
before adds a *cosignature*: one more signature line of the signed note::

    — <witness name> base64(key id ‖ timestamp ‖ Ed25519 signature)

* key id    = SHA-256(name ‖ 0x0A ‖ 0x04 ‖ 32-byte public key)[:4] (type 0x04, not the
  log key's 0x01, so a cosignature can never pass for a log signature or the reverse);
* timestamp = the POSIX time of cosigning, 8 bytes big-endian, at most 2^63 - 1;
* signature = Ed25519 over ``cosignature/v1\\ntime <timestamp>\\n`` ‖ the checkpoint text.

A verifier holds a *policy*: M witness keys and a quorum N; a checkpoint is accepted only
with valid cosignatures by at least N of them. A cosignature line that names a policy
witness but does not verify fails the check whatever the count: a note with a bad
signature by a known key is malformed (C2SP signed-note). ``docs/formats.md``, "Witness
cosignatures", has the byte layouts and the test vector.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vault.ledger.checkpoint import (
    ED25519_PUBLIC_KEY_SIZE,
    ED25519_SIGNATURE_SIZE,
    KEY_ID_SIZE,
    SIG_PREFIX,
    NoteError,
    NoteSigner,
    _b64decode,
    _is_valid_name,
    _parse_note,
)
from vault.sealing import verify_signature

#: key id and verifier-key type byte of Ed25519 tlog-cosignature/v1
ALG_COSIGNATURE_V1 = 0x04
TIMESTAMP_SIZE = 8
MAX_TIMESTAMP = 2**63 - 1
#: the most consistency proof lines a tlog-witness request may carry
MAX_PROOF_LINES = 63
#: the media type of a witness's 409 Conflict answer (its latest cosigned size)
SIZE_MEDIA_TYPE = "text/x.tlog.size"
_KEY_ID_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)
_SIZE_RE = re.compile(r"0|[1-9][0-9]*", re.ASCII)


# --- witness keys ------------------------------------------------------------------------


def witness_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]: names the witness in signature lines."""
    if not _is_valid_name(name):
        raise NoteError(f"invalid witness name {name!r}")
    if len(public_key) != ED25519_PUBLIC_KEY_SIZE:
        raise NoteError(f"an Ed25519 public key is {ED25519_PUBLIC_KEY_SIZE} bytes")
    data = name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + bytes(public_key)
    return hashlib.sha256(data).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class WitnessKey:
    """A witness's name and Ed25519 cosigning key (key id consistent with both)."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        if witness_key_id(self.name, self.public_key) != self.key_id:
            raise NoteError(f"key id {bytes(self.key_id).hex()} does not match witness {self.name}")

    @classmethod
    def for_key(cls, name: str, public_key: bytes) -> WitnessKey:
        return cls(name, witness_key_id(name, public_key), bytes(public_key))

    def key_string(self) -> str:
        """``<name>+<key id>+base64(0x04 ‖ public key)``: what verifiers configure."""
        raw = bytes([ALG_COSIGNATURE_V1]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}"


def parse_witness_key(vkey: str) -> WitnessKey:
    """Parse a witness verifier key (type 0x04); :class:`NoteError` says what is wrong."""
    if not isinstance(vkey, str):
        raise NoteError("a witness key is a string")
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError(
            "malformed witness key", hint="expected <name>+<8 hex key id>+<base64 key>"
        )
    name, kid_hex, key64 = parts
    if not _is_valid_name(name):
        raise NoteError(f"malformed witness key: invalid name {name!r}")
    if not _KEY_ID_RE.fullmatch(kid_hex):
        raise NoteError("malformed witness key: the key id is not 8 lowercase hex digits")
    raw = _b64decode(key64)
    if not raw:
        raise NoteError("malformed witness key: the key is not base64")
    if raw[0] != ALG_COSIGNATURE_V1:
        raise NoteError(
            f"witness key type 0x{raw[0]:02x} is not a cosignature/v1 key",
            hint="a witness key has type 0x04 (Ed25519 tlog-cosignature/v1); 0x01 is a log key",
        )
    if len(raw) != 1 + ED25519_PUBLIC_KEY_SIZE:
        raise NoteError("malformed witness key: an Ed25519 key is 32 bytes")
    if witness_key_id(name, raw[1:]).hex() != kid_hex:
        raise NoteError("malformed witness key: the key id does not match the name and key")
    return WitnessKey(name, bytes.fromhex(kid_hex), raw[1:])


# --- cosignatures ------------------------------------------------------------------------


def cosigned_message(body: bytes, timestamp: int) -> bytes:
    """What a v1 cosignature signs: the header line, the time line, the checkpoint text."""
    _check_time(timestamp)
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + bytes(body)


def cosign(body: bytes, name: str, signer: NoteSigner, timestamp: int) -> bytes:
    """A cosignature line (with its newline) by ``signer`` as witness ``name``.

    The vault never cosigns its own log; this is the reference for the format (test
    vectors, tests).
    """
    kid = witness_key_id(name, signer.public_key_bytes())
    signature = signer.sign(cosigned_message(body, timestamp))
    blob = kid + timestamp.to_bytes(TIMESTAMP_SIZE, "big") + signature
    return f"{SIG_PREFIX}{name} {base64.b64encode(blob).decode()}\n".encode()


@dataclass(frozen=True)
class Cosignature:
    """A checked cosignature: by whom, when (POSIX seconds), and its line (no newline)."""

    witness: WitnessKey
    timestamp: int
    line: bytes


def open_cosignature(body: bytes, line: bytes, witness: WitnessKey) -> Cosignature:
    """Check one signature line as ``witness``'s cosignature of the checkpoint ``body``."""
    line = bytes(line).removesuffix(b"\n")
    _text, parsed = _parse_note(bytes(body) + b"\n" + line + b"\n")
    sig = parsed[0]
    if (sig.name, sig.key_id) != (witness.name, witness.key_id):
        raise NoteError(f"the line is not by witness {witness}")
    if len(sig.signature) != TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE:
        raise NoteError(f"the cosignature by {witness} is not a timestamped Ed25519 signature")
    timestamp = int.from_bytes(sig.signature[:TIMESTAMP_SIZE], "big")
    if timestamp > MAX_TIMESTAMP:
        raise NoteError(f"the cosignature by {witness} has a timestamp beyond 2^63 - 1")
    message = cosigned_message(body, timestamp)
    if not verify_signature(witness.public_key, message, sig.signature[TIMESTAMP_SIZE:]):
        raise NoteError(f"invalid cosignature by witness {witness}")
    return Cosignature(witness, timestamp, line)


def with_cosignatures(note: bytes, lines: Sequence[bytes]) -> bytes:
    """The signed note with cosignature lines appended (lines already in it are kept once)."""
    text, present = _parse_note(note)
    have = {s.line for s in present}
    out = bytes(note)
    for line in lines:
        bare = bytes(line).removesuffix(b"\n")
        if bare not in have:
            _parse_note(text + b"\n" + bare + b"\n")  # one well-formed signature line
            out += bare + b"\n"
            have.add(bare)
    return out


def _check_time(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise NoteError("a cosignature timestamp is an integer")
    if not 0 < timestamp <= MAX_TIMESTAMP:
        raise NoteError("a cosignature timestamp is between 1 and 2^63 - 1")


# --- the N-of-M policy -------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessPolicy:
    """Accept a checkpoint only with valid cosignatures by ``quorum`` of ``witnesses``."""

    witnesses: tuple[WitnessKey, ...]
    quorum: int

    def __post_init__(self) -> None:
        ids = {(w.name, w.key_id) for w in self.witnesses}
        if len(ids) != len(self.witnesses):
            raise NoteError("a witness is listed twice in the policy")
        if isinstance(self.quorum, bool) or not isinstance(self.quorum, int):
            raise NoteError("the witness quorum is a whole number")
        if not 1 <= self.quorum <= len(self.witnesses):
            raise NoteError(
                f"a quorum of {self.quorum} cannot be met by {len(self.witnesses)} witness(es)",
                hint="give 1 <= --witness-quorum <= the number of --witness keys",
            )

    @classmethod
    def of(cls, keys: Sequence[str], quorum: int | None = None) -> WitnessPolicy:
        """From witness key strings; the quorum defaults to all of them."""
        witnesses = tuple(parse_witness_key(k) for k in keys)
        return cls(witnesses, len(witnesses) if quorum is None else quorum)

    def describe(self) -> str:
        return f"{self.quorum} of {len(self.witnesses)} witness(es)"


#: verdicts of one policy witness on one checkpoint; UNCHECKED: listed, no key to check
VALID, INVALID, MISSING, UNCHECKED = "valid", "invalid", "missing", "unchecked"


@dataclass(frozen=True)
class CosignatureFact:
    """What one witness of the policy said about a checkpoint: the reports show this."""

    witness: str  # the witness's name
    key_id: str  # 8 hex digits
    verdict: str  # VALID, INVALID or MISSING
    timestamp: int | None = None  # POSIX seconds of a valid cosignature

    def to_dict(self) -> dict[str, object]:
        return {
            "witness": self.witness,
            "key_id": self.key_id,
            "verdict": self.verdict,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class WitnessVerdict:
    """The policy applied to one checkpoint note."""

    quorum: int
    facts: tuple[CosignatureFact, ...]

    @property
    def valid(self) -> int:
        return sum(f.verdict == VALID for f in self.facts)

    @property
    def invalid(self) -> list[CosignatureFact]:
        return [f for f in self.facts if f.verdict == INVALID]

    @property
    def ok(self) -> bool:
        """The quorum is met and no policy witness's line fails to verify."""
        return self.valid >= self.quorum and not self.invalid

    def to_dict(self) -> dict[str, object]:
        return {
            "quorum": self.quorum,
            "valid": self.valid,
            "ok": self.ok,
            "cosignatures": [f.to_dict() for f in self.facts],
        }

    def summary(self) -> str:
        """One sentence, no data from the note but names, times and counts."""
        if self.invalid:
            names = ", ".join(f"{f.witness}+{f.key_id}" for f in self.invalid)
            return f"invalid cosignature by witness {names}"
        got = [f"{f.witness} (time {f.timestamp})" for f in self.facts if f.verdict == VALID]
        text = f"{self.valid} of the {self.quorum} required witness cosignature(s)"
        return f"{text}: {', '.join(got)}" if got else f"{text}: none"


def check_witnesses(note: bytes, policy: WitnessPolicy) -> WitnessVerdict:
    """Apply ``policy`` to the cosignature lines of a signed checkpoint note.

    The log's own signature is not checked here (:func:`~vault.ledger.checkpoint.open_note`).
    """
    text, lines = _parse_note(note)
    facts = []
    for witness in policy.witnesses:
        mine = [s for s in lines if (s.name, s.key_id) == (witness.name, witness.key_id)]
        fact = CosignatureFact(witness.name, witness.key_id.hex(), MISSING)
        for sig in mine:
            try:
                got = open_cosignature(text, sig.line, witness)
            except NoteError:
                fact = CosignatureFact(witness.name, witness.key_id.hex(), INVALID)
                break
            if fact.verdict == MISSING:
                fact = CosignatureFact(witness.name, witness.key_id.hex(), VALID, got.timestamp)
        facts.append(fact)
    return WitnessVerdict(policy.quorum, tuple(facts))


def listed_cosignatures(note: bytes) -> list[CosignatureFact]:
    """The lines of a signed note shaped like v1 cosignatures (key id, 8-byte time, 64-byte
    signature), as UNCHECKED facts: what a report can show from a checkpoint without the
    witness keys. The first line (the log's own signature) is never one."""
    _text, lines = _parse_note(note)
    out = []
    for sig in lines[1:]:
        if len(sig.signature) != TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE:
            continue
        timestamp = int.from_bytes(sig.signature[:TIMESTAMP_SIZE], "big")
        out.append(CosignatureFact(sig.name, sig.key_id.hex(), UNCHECKED, timestamp))
    return out


# --- the tlog-witness protocol's text ----------------------------------------------------


def add_checkpoint_request(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    """The body of ``POST <witness>/add-checkpoint``: old size, proof lines, blank, note."""
    if old_size < 0 or len(proof) > MAX_PROOF_LINES:
        raise NoteError("a witness request has an old size >= 0 and at most 63 proof lines")
    if old_size == 0 and proof:
        raise NoteError("a proof from size 0 is empty")
    lines = [f"old {old_size}".encode(), *(base64.b64encode(h) for h in proof)]
    return b"".join(line + b"\n" for line in lines) + b"\n" + bytes(note)


def parse_size_answer(body: bytes) -> int:
    """The witness's latest cosigned size from a 409 Conflict answer (``<decimal>\\n``)."""
    text = bytes(body).decode("ascii", "replace")
    if not text.endswith("\n") or not _SIZE_RE.fullmatch(text[:-1]):
        raise NoteError("the witness's size answer is not a decimal number and a newline")
    return int(text[:-1])


def parse_cosignature_answer(body: bytes) -> list[bytes]:
    """The signature lines of a 200 answer (each without its newline)."""
    raw = bytes(body)
    if not raw.endswith(b"\n"):
        raise NoteError("the witness's answer does not end with a newline")
    lines = raw[:-1].split(b"\n")
    if not all(line.startswith(SIG_PREFIX.encode()) for line in lines):
        raise NoteError("the witness's answer is not signature lines")
    return lines
