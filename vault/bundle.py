"""Evidence bundles: the layout, and their offline verification. Needs no vault.

A bundle is one ZIP per record, made by ``vault.services.bundle.export_bundle`` for a
dispute. Everything needed to check it is inside, except the one thing that must come
from elsewhere: the vault's verifier key (``evidence-vault log key``), given to
:func:`verify_bundle` as ``key``. Layout (``docs/formats.md``, "Evidence bundle")::

    manifest.json            format, record, client, created_at, SHA-256 + size of the rest
    audio/<record><ext>      the clip, byte-identical to the upload
    evidence.json            the sealed document, RFC 8785 bytes (the meta commitment's input)
    entry.json               the record's ``evidence.sealed`` log entry, exact bytes
    openings.json            the commitment salt (and the two commitments it opens)
    proof.json               RFC 9162 inclusion proof of the entry
    checkpoint.txt           the signed checkpoint (C2SP signed note) the proof leads to
    verifier-key.txt         the vault's verifier key, as the vault says it is
    report.html              the same facts for people; not checked, not trusted

The checks (:data:`CHECKS`) each end up in the verdict, passed or failed; malformed
input of any kind is a failed check, never an exception.

This module imports only pure code (ledger arithmetic and text formats, the commitment
hash, the audio probe): it runs on an auditor's machine with nothing but the bundle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785

from vault.audio import probe
from vault.errors import VaultError
from vault.ledger.checkpoint import Checkpoint, NoteError, Verifier, open_note, parse_verifier_key
from vault.ledger.entry import parse_entry
from vault.ledger.merkle import leaf_hash, verify_inclusion
from vault.sealing import CommitmentHasher, commitment, plaintext_size

FORMAT = "evidence-vault bundle"
VERSION = 1

MANIFEST = "manifest.json"
EVIDENCE = "evidence.json"
ENTRY = "entry.json"
OPENINGS = "openings.json"
PROOF = "proof.json"
CHECKPOINT = "checkpoint.txt"
VERIFIER_KEY = "verifier-key.txt"
REPORT = "report.html"
AUDIO_DIR = "audio/"
#: every member but the manifest and the audio, in the order the exporter writes them
TEXT_MEMBERS = (EVIDENCE, ENTRY, OPENINGS, PROOF, CHECKPOINT, VERIFIER_KEY, REPORT)

#: file extension of the audio member, by the canonical media type of the clip
AUDIO_EXTENSIONS = {
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
}

#: the checks of a verdict, in order, and what each one establishes
CHECKS = {
    "archive": "the ZIP is readable and holds exactly the files of its manifest, "
    "each with the listed SHA-256 and size",
    "entry": "entry.json is a canonical (RFC 8785) evidence.sealed log entry of this "
    "record and client",
    "clip-commitment": "the audio file is the clip the vault sealed: its salted "
    "commitment equals the entry's commitments.clip",
    "meta-commitment": "evidence.json is the document the vault sealed: its salted "
    "commitment equals the entry's commitments.meta",
    "audio": "the audio is what the entry describes: media type, duration and size",
    "inclusion": "the entry is in the client's log: its Merkle inclusion proof leads to "
    "the checkpoint's root at the checkpoint's tree size",
    "checkpoint-signature": "the checkpoint is signed by the vault's log key",
    "checkpoint-origin": "the checkpoint is of this client's log",
}

#: text members are small; a bigger one is refused unread (a ZIP bomb stays a failed check)
MAX_TEXT_SIZE = 16 * 1024 * 1024
_CHUNK = 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
#: what a damaged or hostile ZIP can raise while being read
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError)


@dataclass(frozen=True)
class Check:
    """One check of a bundle: its name (a key of :data:`CHECKS`), the outcome, and why."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class BundleVerdict:
    """The outcome of :func:`verify_bundle`.

    ``ok`` says every check passed. ``key_pinned`` says whether the signature was checked
    against a key the caller supplied; when it is False the result is only as good as the
    verifier key shipped inside the bundle, which whoever made the bundle chose.
    """

    record_id: str | None
    client: str | None
    checks: list[Check] = field(default_factory=list)
    key_pinned: bool = False
    key: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "record_id": self.record_id,
            "client": self.client,
            "key_pinned": self.key_pinned,
            "key": self.key,
            "checks": [c.to_dict() for c in self.checks],
        }

    def summary(self) -> str:
        """A verdict for people: one headline, then one line per check."""
        lines = [self._headline()]
        lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)

    def _headline(self) -> str:
        what = f"record {self.record_id or '(unknown)'} of client {self.client or '(unknown)'}"
        if not self.ok:
            names = ", ".join(c.name for c in self.failed)
            return (
                f"INVALID: the bundle of {what} does not prove its evidence; "
                f"{len(self.failed)} of {len(self.checks)} checks failed ({names})"
            )
        proven = (
            f"the audio and evidence of {what} are exactly what the vault sealed, "
            "and its log entry is in the signed log"
        )
        if self.key_pinned:
            return f"VALID: {proven} (signed by the pinned key {self.key})"
        return (
            f"VALID ONLY IF THE KEY IS GENUINE: {proven} — but the signature was checked "
            f"with the key shipped inside the bundle ({self.key or 'none'}), not a pinned "
            "one. The result holds only if that key is the vault's published key: get the "
            "key from the vault operator (`evidence-vault log key`) and verify again with "
            "--key."
        )


def audio_member(record_id: str, media_type: str) -> str:
    """``audio/<record_id><ext>``; ``.bin`` for a media type without a known extension."""
    return f"{AUDIO_DIR}{record_id}{AUDIO_EXTENSIONS.get(media_type, '.bin')}"


def verify_bundle(path: str | os.PathLike, key: str | None = None) -> BundleVerdict:
    """Check an evidence bundle offline; see :data:`CHECKS` for what is checked.

    ``key`` is the vault's C2SP verifier key, obtained from the vault operator out of
    band: with it the checkpoint must be signed by *that* key and the bundled
    ``verifier-key.txt`` is ignored. Without it the bundled key is used and the verdict
    says the key was not pinned.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (*_ZIP_ERRORS, TypeError):
        # one check only: nothing else can be looked at
        detail = "bundle is not a readable ZIP archive"
        return BundleVerdict(None, None, [Check("archive", False, detail)], key is not None, key)
    with zf, tempfile.TemporaryDirectory(prefix="evidence-bundle-") as scratch:
        bundle = _Bundle(zf, Path(scratch))
        checks = [
            _run("archive", bundle.check_archive),
            _run("entry", bundle.check_entry),
            _run("clip-commitment", bundle.check_clip_commitment),
            _run("meta-commitment", bundle.check_meta_commitment),
            _run("audio", bundle.check_audio),
            _run("inclusion", bundle.check_inclusion),
            _run("checkpoint-signature", lambda: bundle.check_signature(key)),
            _run("checkpoint-origin", bundle.check_origin),
        ]
        return BundleVerdict(
            bundle.record_id(), bundle.client(), checks, key is not None, bundle.used_key
        )


# --- running checks ----------------------------------------------------------------------


class _Fail(Exception):
    """A check failed, or could not be made; the message says why (and never holds PII)."""


def _run(name: str, check: Callable[[], str]) -> Check:
    try:
        return Check(name, True, check())
    except _Fail as exc:
        return Check(name, False, str(exc))
    except Exception as exc:
        # malformed input must become a failed check, whatever shape it takes
        return Check(name, False, f"cannot check: malformed bundle data ({type(exc).__name__})")


@contextmanager
def _needs() -> Iterator[None]:
    """Around reading what a check depends on but is not about: say it could not be made."""
    try:
        yield
    except _Fail as exc:
        raise _Fail(f"cannot check: {exc}") from None


def _strict_json(raw: bytes, name: str) -> Any:
    """JSON with duplicate keys refused: a reader must never see another value than we did."""

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in items:
            if k in out:
                raise _Fail(f"{name} has the member {k!r} twice")
            out[k] = v
        return out

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Fail(f"{name} is not valid JSON") from None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _hex32(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _Fail(f"{what} is not 64 lowercase hex digits")
    return bytes.fromhex(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- reading the archive -----------------------------------------------------------------


@dataclass
class _Member:
    """What one pass over a member gave: its bytes (text members only), hash and size."""

    sha256: str
    size: int
    data: bytes | None = None


@dataclass
class _Audio:
    """What one pass over the audio member gave."""

    name: str
    sha256: str
    size: int
    clip_commitment: str | None  # None when no salt could be read
    path: Path  # a scratch copy for the probe


class _Bundle:
    """A bundle being checked: members are read once, on demand; parse errors are _Fail."""

    def __init__(self, zf: zipfile.ZipFile, scratch: Path) -> None:
        self._zf = zf
        self._scratch = scratch
        self._members: dict[str, _Member | _Fail] = {}
        self._audio: _Audio | _Fail | None = None
        self.used_key: str | None = None

    # -- members ----------------------------------------------------------------------

    def _info(self, name: str) -> zipfile.ZipInfo:
        try:
            return self._zf.getinfo(name)
        except KeyError:
            raise _Fail(f"{name} is missing from the bundle") from None

    def _read(self, name: str) -> _Member:
        if name not in self._members:
            try:
                self._members[name] = self._read_text(name)
            except _Fail as exc:
                self._members[name] = exc
        got = self._members[name]
        if isinstance(got, _Fail):
            raise _Fail(str(got))
        return got

    def _read_text(self, name: str) -> _Member:
        info = self._info(name)
        if info.file_size > MAX_TEXT_SIZE:
            raise _Fail(f"{name} is too large ({info.file_size} bytes) to be a bundle file")
        try:
            data = self._zf.read(info)
        except _ZIP_ERRORS:
            raise _Fail(f"{name} cannot be read from the ZIP archive (damaged)") from None
        return _Member(hashlib.sha256(data).hexdigest(), len(data), data)

    def data(self, name: str) -> bytes:
        member = self._read(name)
        assert member.data is not None
        return member.data

    def manifest(self) -> dict:
        manifest = _strict_json(self.data(MANIFEST), MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _Fail(f"{MANIFEST} is not the manifest of an evidence bundle")
        if manifest.get("version") != VERSION:
            raise _Fail(f"bundle format version {manifest.get('version')!r} is not supported")
        if not isinstance(manifest.get("files"), dict):
            raise _Fail(f"{MANIFEST} lists no files")
        return manifest

    def audio_name(self) -> str:
        """The audio member: as the manifest names it, else the one file under ``audio/``."""
        try:
            names = [n for n in self.manifest()["files"] if str(n).startswith(AUDIO_DIR)]
        except _Fail:
            names = [n for n in self._zf.namelist() if n.startswith(AUDIO_DIR)]
        if len(names) != 1:
            raise _Fail(f"the bundle must hold exactly one audio file, not {len(names)}")
        return names[0]

    def audio(self) -> _Audio:
        if self._audio is None:
            try:
                self._audio = self._read_audio()
            except _Fail as exc:
                self._audio = exc
        if isinstance(self._audio, _Fail):
            raise _Fail(str(self._audio))
        return self._audio

    def _read_audio(self) -> _Audio:
        """One streaming pass: SHA-256, size, salted commitment and a scratch copy."""
        name = self.audio_name()
        info = self._info(name)
        try:
            salt: bytes | None = self.salt()
        except _Fail:
            salt = None
        digest = hashlib.sha256()
        commit = CommitmentHasher(salt, "clip") if salt else None
        copy = self._scratch / ("clip" + Path(name).suffix)
        size = 0
        try:
            with self._zf.open(info) as src, copy.open("wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    if commit:
                        commit.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
        except _ZIP_ERRORS:
            raise _Fail(f"{name} cannot be read from the ZIP archive (damaged)") from None
        clip = commit.hexdigest() if commit else None
        return _Audio(name, digest.hexdigest(), size, clip, copy)

    # -- parsed members ---------------------------------------------------------------

    def entry(self) -> dict:
        try:
            entry = parse_entry(self.data(ENTRY))
        except ValueError as exc:
            raise _Fail(f"{ENTRY} is not a valid log entry: {exc}") from None
        if entry.get("type") != "evidence.sealed":
            raise _Fail(f"{ENTRY} is not an evidence.sealed entry")
        if not isinstance(entry.get("body"), dict):
            raise _Fail(f"{ENTRY} has no body")
        return entry

    def committed(self, role: str) -> str:
        value = _get(self.entry(), "body", "commitments", role)
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise _Fail(f"{ENTRY} holds no {role} commitment")
        return value

    def openings(self) -> dict:
        openings = _strict_json(self.data(OPENINGS), OPENINGS)
        if not isinstance(openings, dict):
            raise _Fail(f"{OPENINGS} is not a JSON object")
        return openings

    def salt(self) -> bytes:
        return _hex32(self.openings().get("salt"), f"the salt in {OPENINGS}")

    def note(self) -> bytes:
        return self.data(CHECKPOINT)

    def checkpoint(self) -> Checkpoint:
        """The checkpoint body, parsed but not yet trusted (the signature is its own check)."""
        note = self.note()
        split = note.rfind(b"\n\n")
        try:
            if split < 0:
                raise NoteError("no blank line before the signatures")
            return Checkpoint.parse_body(note[: split + 1])
        except NoteError as exc:
            raise _Fail(f"{CHECKPOINT} is not a valid checkpoint: {exc.message}") from None

    def record_id(self) -> str | None:
        return self._first_text(
            lambda: self.entry().get("record"), lambda: self.manifest()["record_id"]
        )

    def client(self) -> str | None:
        return self._first_text(lambda: self.entry().get("log"), lambda: self.manifest()["client"])

    @staticmethod
    def _first_text(*sources) -> str | None:
        """The first source that yields a string: the entry if readable, else the manifest."""
        for source in sources:
            try:
                value = source()
            except (_Fail, KeyError):
                continue
            if isinstance(value, str):
                return value
        return None

    # -- the checks -------------------------------------------------------------------

    def check_archive(self) -> str:
        names = self._zf.namelist()
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            # a second copy of a name: different tools would show different files
            raise _Fail(f"the ZIP holds more than one file named {', '.join(doubles)}")
        manifest = self.manifest()
        listed: dict = manifest["files"]
        expected = {*TEXT_MEMBERS, self.audio_name()}
        problems = [f"{n} is missing" for n in sorted(expected - set(names))]
        problems += [f"{n} is not listed in the manifest" for n in sorted(expected - set(listed))]
        unexpected = sorted(set(names) - expected - {MANIFEST}) + sorted(set(listed) - expected)
        problems += [f"unexpected file {n}" for n in dict.fromkeys(unexpected)]
        for name in sorted(expected & set(names) & set(listed)):
            problems += self._compare(name, listed[name])
        record = manifest.get("record_id")
        audio = self.audio_name()
        if isinstance(record, str) and not audio.startswith(f"{AUDIO_DIR}{record}."):
            problems.append(f"the audio file {audio} is not named for record {record}")
        if problems:
            raise _Fail("; ".join(problems))
        return f"{len(names)} files, each matching the SHA-256 and size in {MANIFEST}"

    def _compare(self, name: str, want: Any) -> list[str]:
        try:
            got = self.audio() if name.startswith(AUDIO_DIR) else self._read(name)
        except _Fail as exc:
            return [str(exc)]
        if _get(want, "sha256") != got.sha256 or _get(want, "size") != got.size:
            return [f"{name} does not match its SHA-256 or size in {MANIFEST}"]
        return []

    def check_entry(self) -> str:
        entry = self.entry()
        problems = []
        try:
            manifest = self.manifest()
        except _Fail as exc:
            raise _Fail(f"cannot tell which record the bundle is for: {exc}") from None
        if entry.get("record") != manifest.get("record_id"):
            problems.append(f"{ENTRY} is about another record than {MANIFEST} names")
        if entry.get("log") != manifest.get("client"):
            problems.append(f"{ENTRY} is in another client's log than {MANIFEST} names")
        if problems:
            raise _Fail("; ".join(problems))
        return (
            f"canonical evidence.sealed entry {entry['seq']} of log {entry['log']} "
            f"for record {entry['record']}"
        )

    def check_clip_commitment(self) -> str:
        with _needs():
            want = self.committed("clip")
        self._check_opening("clip", want)
        audio = self.audio()
        if audio.clip_commitment is None:
            raise _Fail(f"cannot check: no valid salt in {OPENINGS}")
        if not hmac.compare_digest(audio.clip_commitment, want):
            raise _Fail(f"{audio.name} is not the clip the vault sealed (commitment mismatch)")
        return f"{audio.name} opens commitments.clip {want}"

    def check_meta_commitment(self) -> str:
        with _needs():
            want = self.committed("meta")
        self._check_opening("meta", want)
        raw = self.data(EVIDENCE)
        if hmac.compare_digest(commitment(self.salt(), "meta", raw), want):
            return f"{EVIDENCE} opens commitments.meta {want}"
        if not _is_canonical(raw):
            raise _Fail(f"{EVIDENCE} is not in RFC 8785 canonical form: it was edited")
        raise _Fail(f"{EVIDENCE} is not the document the vault sealed (commitment mismatch)")

    def _check_opening(self, role: str, want: str) -> None:
        listed = _get(self.openings(), "commitments", role)
        if listed != want:
            raise _Fail(f"{OPENINGS} lists another {role} commitment than {ENTRY}")

    def check_audio(self) -> str:
        with _needs():
            body = self.entry()["body"]
        audio = self.audio()
        media_type, duration = body.get("media_type"), body.get("duration_ms")
        problems = []
        sealed_size = _get(body, "objects", "clip", "size")
        try:
            if not _is_count(sealed_size) or plaintext_size(sealed_size) != audio.size:
                problems.append(
                    f"{audio.name} has {audio.size} bytes, not the size of the sealed clip"
                )
        except VaultError:
            problems.append(f"{ENTRY} gives an impossible sealed clip size")
        if audio.name != audio_member(str(self.entry().get("record")), str(media_type)):
            problems.append(f"{audio.name} is not named for a {media_type} clip of this record")
        try:
            info = probe(audio.path)
        except VaultError as exc:
            problems.append(f"{audio.name} is not valid audio: {exc.message}")
        else:
            if info.media_type != media_type:
                problems.append(f"{audio.name} is {info.media_type}, the entry says {media_type}")
            if info.duration_ms != duration:
                problems.append(
                    f"{audio.name} lasts {info.duration_ms} ms, the entry says {duration} ms"
                )
        problems += self._document_audio(media_type, duration)
        if problems:
            raise _Fail("; ".join(problems))
        return f"{media_type}, {duration} ms, {audio.size} bytes, as the entry states"

    def _document_audio(self, media_type: Any, duration: Any) -> list[str]:
        """The audio facts in evidence.json must be the entry's too (when it is readable)."""
        try:
            document = _strict_json(self.data(EVIDENCE), EVIDENCE)
        except _Fail:
            return []  # the meta-commitment check reports it
        facts = _get(document, "audio")
        if _get(facts, "media_type") != media_type or _get(facts, "duration_ms") != duration:
            return [f"the audio facts in {EVIDENCE} differ from the entry's"]
        return []

    def check_inclusion(self) -> str:
        raw = self.data(ENTRY)
        try:
            seq = json.loads(raw)["seq"]
        except (ValueError, KeyError, TypeError):
            raise _Fail(f"cannot check: {ENTRY} has no position (seq)") from None
        if not _is_count(seq):
            raise _Fail(f"cannot check: {ENTRY} has no valid position (seq)")
        with _needs():
            cp = self.checkpoint()
        proof = _strict_json(self.data(PROOF), PROOF)
        if _get(proof, "leaf_index") != seq:
            raise _Fail(f"{PROOF} is for another leaf than entry {seq}")
        if _get(proof, "tree_size") != cp.size or _get(proof, "root_hash") != cp.root.hex():
            raise _Fail(f"{PROOF} is for another tree than {CHECKPOINT} signs")
        hashes = _get(proof, "hashes")
        if not isinstance(hashes, list):
            raise _Fail(f"{PROOF} holds no hashes")
        path = [_hex32(h, f"a hash in {PROOF}") for h in hashes]
        if not verify_inclusion(leaf_hash(raw), seq, cp.size, path, cp.root):
            raise _Fail(
                f"the inclusion proof does not lead from {ENTRY} to the root of {CHECKPOINT}"
            )
        return f"entry {seq} is leaf {seq} of the tree of {cp.size} entries, root {cp.root.hex()}"

    def check_signature(self, key: str | None) -> str:
        bundled = self._bundled_key()
        if key is not None:
            verifier = _parse_key(key, "the given verifier key")
            where = "the pinned key"
        else:
            if bundled is None:
                raise _Fail(f"{VERIFIER_KEY} is missing or unreadable, and no key was given")
            verifier = _parse_key(bundled, VERIFIER_KEY)
            where = f"the key in {VERIFIER_KEY} (not pinned)"
        self.used_key = verifier.key_string()
        try:
            open_note(self.note(), [verifier])
        except NoteError as exc:
            raise _Fail(
                f"{CHECKPOINT} is not signed by {where} {verifier}: {exc.message}"
            ) from None
        detail = f"signed by {where} {verifier}"
        if key is not None and bundled is None:
            detail += f"; note: {VERIFIER_KEY} is missing or unreadable"
        elif key is not None and bundled != verifier.key_string():
            detail += f"; note: {VERIFIER_KEY} names another key, which was ignored"
        return detail

    def _bundled_key(self) -> str | None:
        try:
            return self.data(VERIFIER_KEY).decode("utf-8").strip()
        except (_Fail, UnicodeDecodeError):
            return None

    def check_origin(self) -> str:
        with _needs():
            cp = self.checkpoint()
            log = self.entry().get("log")
        if not isinstance(log, str) or not cp.origin.endswith(f"/{log}"):
            raise _Fail(f"the checkpoint is of log {cp.origin!r}, not of client {log!r}")
        return f"origin {cp.origin}"


def _parse_key(text: str, what: str) -> Verifier:
    try:
        return parse_verifier_key(text)
    except NoteError as exc:
        raise _Fail(f"{what} is not a valid verifier key: {exc.message}") from None


def _is_canonical(raw: bytes) -> bool:
    try:
        return rfc8785.dumps(json.loads(raw)) == raw
    except Exception:
        return False
