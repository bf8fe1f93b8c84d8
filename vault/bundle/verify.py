"""The offline verification of an evidence bundle. Needs no vault.

Everything needed to check a bundle is inside, except the one thing that must come from
elsewhere: the vault's verifier key (``evidence-vault log key``), given to
:func:`verify_bundle` as ``key``. The layout is :mod:`vault.bundle.layout`.

The checks (:data:`~vault.bundle.layout.CHECKS`) each end up in the verdict, passed or
failed; malformed input of any kind is a failed check, never an exception. What no check
can cover (when the bundle was made, signatures by keys not given) is listed as
*unchecked*.

A bundle is hostile input: every member's inflated size is checked against the manifest
and a hard cap *before* anything is inflated, and the ZIP's own size fields are not
trusted either (a member is read through a reader that stops one byte past the size the
manifest lists and refuses it). The audio is streamed: hashed while it is read.

This module imports only pure code (ledger arithmetic and text formats, the commitment
hash, the audio probe, the report renderer): it runs on an auditor's machine with
nothing but the bundle. ``tests/test_layering.py`` holds it to that.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import json
import os
import re
import shlex
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import rfc8785

from vault.audio import probe
from vault.bundle.court import court_facts
from vault.bundle.layout import (
    AUDIO_DIR,
    AUDIO_EXTENSIONS,
    CHECKPOINT,
    CUSTODY,
    CUSTODY_TYPES,
    DOCUMENT_FIELDS,
    DOCUMENTS_DIR,
    DOCUMENTS_INDEX,
    DOCUMENTS_INDEX_FIELDS,
    ENTRY,
    EVIDENCE,
    FORMAT,
    MANIFEST,
    OPENINGS,
    PROOF,
    REPORT,
    REPORT_CHECKS,
    REPORT_LANGUAGES,
    REPORT_PDF,
    SUPPORTED_VERSIONS,
    TIMESTAMP_MEMBER,
    TIMESTAMPS_DIR,
    VERIFIER_KEY,
    audio_member,
    document_member,
    has_documents,
    manifest_fields,
    openings_scheme,
    pdf_attachments,
    proof_statement,
    text_members,
)
from vault.bundle.pdf import PdfRefused, read_pdf
from vault.dispute_report import (
    CustodyEvent,
    DisputeFacts,
    expected_pdf_text,
    render_dispute_html,
)
from vault.errors import VaultError
from vault.ledger.checkpoint import Checkpoint, NoteError, Verifier, open_note, parse_verifier_key
from vault.ledger.cosignature import WitnessPolicy, WitnessVerdict, check_witnesses
from vault.ledger.entry import parse_entry
from vault.ledger.merkle import leaf_hash, verify_inclusion
from vault.ledger.timestamps import INVALID, TimestampResult, check_checkpoint_timestamp
from vault.report import BUNDLE_PLACEHOLDER, ReportFacts, render_report
from vault.results import DocumentFact, TextformFacts
from vault.sealing import (
    CommitmentHasher,
    check_statement,
    commitment,
    key_id_of,
    plaintext_size,
)
from vault.sealing.timestamps import TrustRoots

#: hard caps on what a member may inflate to, whatever the manifest says: a bundle is
#: hostile input until checked. The manifest lists a handful of files; the text members
#: are metadata (fields of at most a few thousand characters); audio is one call segment,
#: capped like an HTTP upload by default (``verify_bundle(max_audio_size=)`` raises it).
MAX_MANIFEST_SIZE = 64 * 1024
MAX_TEXT_SIZE = 4 * 1024 * 1024
MAX_AUDIO_SIZE = 512 * 1024 * 1024
#: a Textform document (format 4): the vault seals none larger
MAX_DOCUMENT_SIZE = 25 * 1024 * 1024
#: the ZIP methods the exporter uses; others (bzip2, LZMA) inflate without an output
#: bound in Python's zipfile and are refused unread
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_CHUNK = 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
#: a member name that unzips inside the target folder on every system: relative, plain
#: characters, no "." or ".." component, no backslash or drive letter
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*/?")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)
#: what a damaged or hostile ZIP can raise while being read
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError)
_AUDIO_SUFFIXES = set(AUDIO_EXTENSIONS.values())
_CREATED_AT_UNCHECKED = (
    "created_at, when the bundle was made (also shown in report.html), is its maker's "
    "statement: nothing seals it"
)


@dataclass(frozen=True)
class Check:
    """One check of a bundle: its name (a key of :data:`~vault.bundle.layout.CHECKS`), the
    outcome, and why."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Unchecked:
    """Something a person can read in the bundle that no check covers, and why not."""

    member: str
    detail: str

    def to_dict(self) -> dict:
        return {"member": self.member, "detail": self.detail}


@dataclass
class BundleVerdict:
    """The outcome of :func:`verify_bundle`.

    ``consistent`` says every check passed. ``ok`` says more: consistent *and* the
    signature was checked against a key the caller supplied (``key_pinned``). Without a
    pinned key the result is only as good as the verifier key shipped inside the bundle,
    which whoever made the bundle chose, so ``ok`` is then False whatever the checks say.
    ``unchecked`` lists what a person can read in the bundle that no check covers.
    """

    record_id: str | None
    client: str | None
    checks: list[Check] = field(default_factory=list)
    key_pinned: bool = False
    key: str | None = None
    unchecked: list[Unchecked] = field(default_factory=list)
    #: format version 4: the verdict on each time-stamp token (TSA, genTime, serial, status)
    timestamps: list[TimestampResult] | None = None
    #: format 4: the bundle's Textform documents, each with its verdict ("ok" or why
    #: not), and the required kinds missing (pending Textform); None before format 4
    textform: TextformFacts | None = None
    #: the witness policy applied to checkpoint.txt (None: no policy was given)
    witnesses: WitnessVerdict | None = None

    @property
    def consistent(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def ok(self) -> bool:
        return self.consistent and self.key_pinned

    @property
    def status(self) -> str:
        """``valid`` (ok), ``unpinned`` (consistent, key not pinned) or ``invalid``."""
        if not self.consistent:
            return "invalid"
        return "valid" if self.key_pinned else "unpinned"

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "status": self.status,
            "consistent": self.consistent,
            "record_id": self.record_id,
            "client": self.client,
            "key_pinned": self.key_pinned,
            "key": self.key,
            "checks": [c.to_dict() for c in self.checks],
            "unchecked": [u.to_dict() for u in self.unchecked],
        } | (
            {}
            if self.timestamps is None
            else {"timestamps": [t.to_dict() for t in self.timestamps]}
        ) | ({"textform": self.textform.to_dict()} if self.textform is not None else {}) | (
            {"witnesses": self.witnesses.to_dict()} if self.witnesses else {}
        )

    def summary(self) -> str:
        """A verdict for people: one headline, one line per check, one per unchecked item."""
        lines = [self._headline()]
        lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        lines += [f"  [UNCHECKED] {u.member}: {u.detail}" for u in self.unchecked]
        return "\n".join(lines)

    def _headline(self) -> str:
        what = f"record {self.record_id or '(unknown)'} of client {self.client or '(unknown)'}"
        if not self.consistent:
            names = ", ".join(c.name for c in self.failed)
            return (
                f"INVALID: the bundle of {what} does not prove its evidence; "
                f"{len(self.failed)} of {len(self.checks)} checks failed ({names})"
            )
        proven = (
            f"the audio, evidence and report of {what} are exactly what the vault sealed, "
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


def verify_bundle(
    path: str | os.PathLike,
    key: str | None = None,
    *,
    max_audio_size: int = MAX_AUDIO_SIZE,
    tsa_roots: TrustRoots | None = None,
    witnesses: WitnessPolicy | None = None,
) -> BundleVerdict:
    """Check an evidence bundle offline; :data:`~vault.bundle.layout.CHECKS` says what is checked.

    ``key`` is the vault's C2SP verifier key, obtained from the vault operator out of
    band: with it the checkpoint must be signed by *that* key and the bundled
    ``verifier-key.txt`` is ignored. Without it the bundled key is used, the verdict says
    the key was not pinned and ``ok`` is False. ``max_audio_size`` is the hard cap on the
    audio member (bytes), whatever the manifest claims. ``tsa_roots`` are the root
    certificates of the Time-Stamping Authorities the caller trusts (format version 4):
    without them a time-stamp's imprint is checked, its signature is not (and the verdict
    lists it as unchecked).
    ``witnesses`` is the N-of-M witness
    policy the checkpoint must meet (check ``witnesses``; always listed from version 4 on).
    """
    try:
        zf = zipfile.ZipFile(path)
    except (*_ZIP_ERRORS, TypeError):
        # one check only: nothing else can be looked at
        detail = "bundle is not a readable ZIP archive"
        return BundleVerdict(None, None, [Check("archive", False, detail)], key is not None, key)
    with zf, tempfile.TemporaryDirectory(prefix="evidence-bundle-") as scratch:
        bundle = _Bundle(zf, Path(scratch), max_audio_size, witnesses)
        checks = [
            _run("archive", bundle.check_archive),
            _run("entry", bundle.check_entry),
            _run("clip-commitment", bundle.check_clip_commitment),
            _run("meta-commitment", bundle.check_meta_commitment),
            _run("audio", bundle.check_audio),
            _run("inclusion", bundle.check_inclusion),
            _run("checkpoint-signature", lambda: bundle.check_signature(key)),
            _run("checkpoint-origin", bundle.check_origin),
            _run("statements", bundle.check_statements),
            _run("report", bundle.check_report),
        ]
        if bundle.version() == 4:
            checks += [
                _run("custody", bundle.check_custody),
                _run("report-pdf", bundle.check_report_pdf),
            ]
        if (bundle.version() or 0) >= 4:
            checks.append(_run("timestamp", lambda: bundle.check_timestamps(tsa_roots)))
        if has_documents(bundle.version() or 0):
            checks.append(_run("documents", bundle.check_documents))
        if witnesses is not None or bundle.version_at_least(4):
            checks.append(_run("witnesses", bundle.check_witnesses))
        if bundle.signed_at_source():
            checks.append(_run("source-signature", bundle.check_source_signature))
        return BundleVerdict(
            bundle.record_id(),
            bundle.client(),
            checks,
            key is not None,
            bundle.used_key,
            bundle.unchecked(),
            bundle.timestamps,
            bundle.textform,
            bundle.witness_verdict,
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


def _court_member(name: str) -> bool:
    """The members :func:`court_facts` reads."""
    return name in (CHECKPOINT, DOCUMENTS_INDEX) or TIMESTAMP_MEMBER.fullmatch(name) is not None


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


def _shown(name: Any) -> str:
    """A member name for a message: as is when safe, else escaped (no control characters
    from a hostile ZIP reach the terminal)."""
    text = str(name)
    return text if _SAFE_NAME.fullmatch(text) else ascii(text)[:120]


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


@dataclass(frozen=True)
class _Limit:
    """The most bytes a member may inflate to, and whether the manifest said so."""

    size: int
    listed: bool  # False: the manifest gives no size, this is the hard cap
    kind: str  # "manifest", "text file", "audio file"

    def exceeded_by_header(self, name: str, declared: int) -> str:
        if self.listed:
            return (
                f"{name} inflates to {declared} bytes by its ZIP header, not the "
                f"{self.size} bytes {MANIFEST} lists: refused unread"
            )
        return (
            f"{name} inflates to {declared} bytes by its ZIP header, more than the "
            f"{self.size} bytes a bundle's {self.kind} may have: refused unread"
        )

    def exceeded_by_data(self, name: str) -> str:
        where = f"{MANIFEST} lists" if self.listed else f"a bundle's {self.kind} may have"
        return (
            f"{name} inflates past the {self.size} bytes {where} (its ZIP header "
            f"understates it): refused after {self.size} bytes"
        )


class _Bundle:
    """A bundle being checked: members are read once, on demand; parse errors are _Fail."""

    def __init__(
        self,
        zf: zipfile.ZipFile,
        scratch: Path,
        max_audio_size: int,
        witnesses: WitnessPolicy | None = None,
    ) -> None:
        self._zf = zf
        self._policy = witnesses
        self.witness_verdict: WitnessVerdict | None = None
        self._scratch = scratch
        self._max_audio = max_audio_size
        names = zf.namelist()
        # a second copy of a name: different tools would show different files
        self._doubles = sorted({n for n in names if names.count(n) > 1})
        self._members: dict[str, _Member | _Fail] = {}
        self._audio: _Audio | _Fail | None = None
        self._unchecked: dict[tuple[str, str], None] = {}  # ordered set
        self.used_key: str | None = None
        self.timestamps: list[TimestampResult] | None = None
        self.textform: TextformFacts | None = None

    def unchecked(self) -> list[Unchecked]:
        found = list(self._unchecked)
        try:
            if "created_at" in self.manifest():
                found.insert(0, (MANIFEST, _CREATED_AT_UNCHECKED))
        except _Fail:
            pass
        return [Unchecked(member, detail) for member, detail in found]

    def _not_checked(self, member: str, detail: str) -> None:
        self._unchecked[(member, detail)] = None

    # -- members ----------------------------------------------------------------------

    def _info(self, name: str) -> zipfile.ZipInfo:
        if not _SAFE_NAME.fullmatch(name):
            raise _Fail(f"{_shown(name)} is not a safe file name: refused")
        if name in self._doubles:
            raise _Fail(f"the ZIP holds more than one file named {name}: refused")
        try:
            return self._zf.getinfo(name)
        except KeyError:
            raise _Fail(f"{name} is missing from the bundle") from None

    def _limit(self, name: str) -> _Limit:
        if name == MANIFEST:
            return _Limit(MAX_MANIFEST_SIZE, False, "manifest")
        audio = name.startswith(AUDIO_DIR)
        cap, kind = (self._max_audio, "audio file") if audio else (MAX_TEXT_SIZE, "text file")
        if name == REPORT_PDF:  # it carries the audio and every text member
            cap, kind = self._max_audio + 8 * MAX_TEXT_SIZE, "PDF report"
        elif name.startswith(DOCUMENTS_DIR) and name != DOCUMENTS_INDEX:
            cap, kind = MAX_DOCUMENT_SIZE, "document file"
        try:
            listed = _get(self.manifest()["files"], name, "size")
        except _Fail:
            listed = None
        if not _is_count(listed):
            return _Limit(cap, False, kind)
        if listed > cap:
            raise _Fail(
                f"{MANIFEST} lists {listed} bytes for {name}, more than the {cap} bytes a "
                f"bundle's {kind} may have: refused unread"
            )
        sealed = self._sealed_clip_size() if audio else None
        if sealed is not None and listed != sealed:
            raise _Fail(
                f"{MANIFEST} lists {listed} bytes for {name}, but the clip sealed in "
                f"{ENTRY} has {sealed}: refused unread"
            )
        return _Limit(listed, True, kind)

    def _sealed_clip_size(self) -> int | None:
        """The clip's size by the entry, if the entry can tell (its own check says if not)."""
        try:
            sealed = _get(self.entry(), "body", "objects", "clip", "size")
            return plaintext_size(sealed) if _is_count(sealed) else None
        except (_Fail, VaultError):
            return None

    def _inflate(self, name: str) -> Iterator[bytes]:
        """The bytes of ``name`` in chunks, never more than its :class:`_Limit`.

        Sizes are checked before anything is inflated, and the ZIP's own size field is
        not trusted: the reader is told the member is one byte longer than allowed, so a
        member whose data runs past the limit shows itself and is refused there.
        """
        info = self._info(name)
        limit = self._limit(name)
        if info.compress_type not in _METHODS:
            raise _Fail(
                f"{name} uses ZIP compression method {info.compress_type}; a bundle's files "
                "are stored or deflated: refused unread"
            )
        if info.flag_bits & 0x1:
            raise _Fail(f"{name} is encrypted in the ZIP: refused unread")
        if info.file_size > limit.size or (limit.listed and info.file_size != limit.size):
            raise _Fail(limit.exceeded_by_header(name, info.file_size))
        bounded = copy.copy(info)
        bounded.file_size = limit.size + 1
        # zipfile checks the CRC when it reaches that size, which would turn "too long"
        # into "damaged"; the content is checked by SHA-256 against the manifest anyway
        if hasattr(bounded, "CRC"):
            del bounded.CRC
        total = 0
        try:
            with self._zf.open(bounded) as src:
                while chunk := src.read(min(_CHUNK, limit.size + 1 - total)):
                    total += len(chunk)
                    if total > limit.size:
                        raise _Fail(limit.exceeded_by_data(name))
                    yield chunk
        except _ZIP_ERRORS:
            raise _Fail(f"{name} cannot be read from the ZIP archive (damaged)") from None

    def _read(self, name: str) -> _Member:
        if name not in self._members:
            try:
                data = b"".join(self._inflate(name))
                self._members[name] = _Member(hashlib.sha256(data).hexdigest(), len(data), data)
            except _Fail as exc:
                self._members[name] = exc
        got = self._members[name]
        if isinstance(got, _Fail):
            raise _Fail(str(got))
        return got

    def data(self, name: str) -> bytes:
        member = self._read(name)
        assert member.data is not None
        return member.data

    def manifest(self) -> dict:
        manifest = _strict_json(self.data(MANIFEST), MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _Fail(f"{MANIFEST} is not the manifest of an evidence bundle")
        if manifest.get("version") not in SUPPORTED_VERSIONS:
            raise _Fail(f"bundle format version {manifest.get('version')!r} is not supported")
        if not isinstance(manifest.get("files"), dict):
            raise _Fail(f"{MANIFEST} lists no files")
        return manifest

    def version(self) -> int | None:
        try:
            return int(self.manifest()["version"])
        except (_Fail, TypeError, ValueError):
            return None

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
        try:
            salt: bytes | None = self.salt()
        except _Fail:
            salt = None
        digest = hashlib.sha256()
        commit = CommitmentHasher(salt, "clip") if salt else None
        suffix = Path(name).suffix
        copy_path = self._scratch / ("clip" + (suffix if suffix in _AUDIO_SUFFIXES else ".bin"))
        size = 0
        try:
            with copy_path.open("wb") as dst:
                for chunk in self._inflate(name):
                    digest.update(chunk)
                    if commit:
                        commit.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
        except _Fail:
            copy_path.unlink(missing_ok=True)  # a refused member leaves nothing behind
            raise
        clip = commit.hexdigest() if commit else None
        return _Audio(name, digest.hexdigest(), size, clip, copy_path)

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
        problems = self._zip_problems()
        try:
            manifest = self.manifest()
        except _Fail as exc:
            raise _Fail("; ".join([*problems, str(exc)])) from None
        problems += self._manifest_fields(manifest)
        listed: dict = manifest["files"]
        version = manifest["version"]
        unsafe = {n for n in [*names, *listed] if not _SAFE_NAME.fullmatch(str(n))}
        problems += [
            f"{_shown(n)} is not a safe file name (absolute, with '..', or with characters "
            "a bundle never uses): refused"
            for n in sorted(unsafe, key=str)
        ]
        expected = set(text_members(version))
        if version >= 4 and (REPORT_PDF in names or REPORT_PDF in listed):
            expected.add(REPORT_PDF)  # optional: an export may leave it out
        expected |= set(self.timestamp_names())
        if has_documents(version):
            expected |= {DOCUMENTS_INDEX, *self._document_members()}
        try:
            name = self.audio_name()
            expected.add(name)
            audio: str | None = name
        except _Fail as exc:
            audio = None
            problems.append(str(exc))
        problems += [f"{n} is missing" for n in sorted(expected - set(names))]
        problems += [f"{n} is not listed in the manifest" for n in sorted(expected - set(listed))]
        unexpected = sorted(set(names) - expected - {MANIFEST} - unsafe)
        unexpected += sorted(set(listed) - expected - unsafe, key=str)
        problems += [f"unexpected file {_shown(n)}" for n in dict.fromkeys(unexpected)]
        for name in sorted(expected & set(names) & set(listed)):
            problems += self._compare(name, listed[name])
        record = manifest.get("record_id")
        if audio and isinstance(record, str) and not audio.startswith(f"{AUDIO_DIR}{record}."):
            problems.append(f"the audio file {_shown(audio)} is not named for record {record}")
        if problems:
            raise _Fail("; ".join(problems))
        return f"{len(names)} files, each matching the SHA-256 and size in {MANIFEST}"

    # -- format version 4: time-stamps -----------------------------------------------

    def timestamp_names(self) -> list[str]:
        """The time-stamp members of a version 4 bundle: well-named, in the ZIP or listed."""
        if (self.version() or 0) < 4:
            return []
        names = {*self._zf.namelist(), *map(str, self.manifest()["files"])}
        return sorted(n for n in names if TIMESTAMP_MEMBER.fullmatch(n))

    def check_timestamps(self, roots: TrustRoots | None) -> str:
        names = self.timestamp_names()
        self.timestamps = []
        if not names:
            return (
                f"the bundle carries no time-stamp ({TIMESTAMPS_DIR} is empty): when the "
                "checkpoint was signed rests on the vault's word"
            )
        with _needs():
            note = self.note()
            self.checkpoint()
        results = []
        for name in names:
            tsa = name.removeprefix(TIMESTAMPS_DIR).removesuffix(".tsr")
            try:
                token = self.data(name)
            except _Fail as exc:
                results.append(
                    TimestampResult(tsa, None, INVALID, reason="malformed", detail=str(exc))
                )
                continue
            results.append(check_checkpoint_timestamp(tsa, token, note, roots))
        self.timestamps = results
        bad = [
            f"{TIMESTAMPS_DIR}{r.tsa}.tsr: {r.detail} ({r.reason})"
            for r in self.timestamps
            if not r.ok
        ]
        if bad:
            raise _Fail("; ".join(bad))
        if roots is None:
            for name in names:
                self._not_checked(
                    name,
                    "the time-stamp's signature and certificate chain were not checked: no TSA "
                    "trust roots were given (verify again with --tsa-roots FILE)",
                )
        return "; ".join(str(r) for r in results)

    def _zip_problems(self) -> list[str]:
        """What is wrong with the ZIP itself: a name twice, text no check covers."""
        problems = [f"the ZIP holds more than one file named {n}" for n in self._doubles]
        if self._zf.comment:
            problems.append(f"the ZIP carries a comment ({len(self._zf.comment)} bytes)")
        problems += [
            f"{_shown(i.filename)} carries a ZIP comment" for i in self._zf.infolist() if i.comment
        ]
        return problems

    @staticmethod
    def _manifest_fields(manifest: dict) -> list[str]:
        """No field a person could read beyond the known ones, each of its type."""
        problems = [
            f"{MANIFEST} has the unknown field {_shown(k)}"
            for k in sorted(set(manifest) - manifest_fields(manifest["version"]), key=str)
        ]
        created = manifest.get("created_at")
        if not (isinstance(created, str) and _TIME.fullmatch(created)):
            problems.append(f"created_at in {MANIFEST} is not a UTC time")
        if manifest["version"] >= 4:
            if manifest.get("language") not in REPORT_LANGUAGES:
                problems.append(f"language in {MANIFEST} is not one of {REPORT_LANGUAGES}")
            if not _is_zone(manifest.get("time_zone")):
                problems.append(f"time_zone in {MANIFEST} is not a known time zone")
        return problems

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

    def signed_at_source(self) -> bool:
        """Whether the entry carries a dialer host's source signature (docs/formats.md)."""
        try:
            return _get(self.entry(), "body", "source") is not None
        except _Fail:
            return False  # the entry check says what is wrong with it

    def check_source_signature(self) -> str:
        """The audio is the clip the dialer host signed, and the signature verifies.

        Whether the key was registered for the client (and not revoked) the log says, not
        the bundle: ``verify`` and an auditor's log check see the dialer.* entries.
        """
        with _needs():
            entry = self.entry()
        source, recorded_at = _get(entry, "body", "source"), _get(entry, "body", "recorded_at")
        if not isinstance(source, dict) or not isinstance(recorded_at, str):
            raise _Fail(f"{ENTRY}'s source signature is malformed")
        try:
            pub = base64.b64decode(str(source.get("pub")), validate=True)
            sig = base64.b64decode(str(source.get("sig")), validate=True)
            key = key_id_of(pub)
        except ValueError:
            raise _Fail(f"{ENTRY}'s source signature is malformed") from None
        if source.get("key") != key:
            raise _Fail(f"{ENTRY}'s source key id is not that of its public key")
        clip = _hex32(source.get("clip"), "the signed clip hash")
        meta = _hex32(source.get("meta"), "the signed metadata hash")
        audio = self.audio()
        if not hmac.compare_digest(audio.sha256, clip.hex()):
            raise _Fail(f"{audio.name} is not the clip dialer key {key} signed")
        if not check_statement(pub, sig, clip, meta, recorded_at):
            raise _Fail(f"the source signature of dialer key {key} does not verify")
        return f"{audio.name} is the clip dialer key {key} signed, recorded at {recorded_at}"

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
        if _proof_position(proof) != seq:
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
            self._not_checked(
                VERIFIER_KEY,
                "names another key than the pinned one (also shown in report.html); it was "
                "ignored: trust only the key you pinned",
            )
        others = _other_signatures(self.note(), verifier) - self._policy_lines()
        if others:
            self._not_checked(
                CHECKPOINT,
                f"{others} signature line(s) by other keys than {verifier} were not checked: "
                "they prove nothing unless you check them with their keys",
            )
        return detail

    # -- witness cosignatures (format 4) ---------------------------------------------

    def version_at_least(self, version: int) -> bool:
        try:
            got = self.manifest().get("version")
        except _Fail:
            return False
        return isinstance(got, int) and not isinstance(got, bool) and got >= version

    def _policy_lines(self) -> int:
        """Signature lines by the policy's witnesses: the witnesses check covers them."""
        if self._policy is None:
            return 0
        ours = {(w.name, w.key_id) for w in self._policy.witnesses}
        try:
            _text, lines = _note_lines(self.note())
        except (_Fail, NoteError):
            return 0
        return sum((s.name, s.key_id) in ours for s in lines)

    def check_witnesses(self) -> str:
        with _needs():
            note = self.note()
            self.checkpoint()  # the note's text must be a checkpoint
        if self._policy is None:
            return self._witnesses_not_checked(note)
        try:
            verdict = check_witnesses(note, self._policy)
        except NoteError as exc:
            raise _Fail(f"cannot check: {CHECKPOINT} is malformed: {exc.message}") from None
        self.witness_verdict = verdict
        if verdict.invalid:
            names = ", ".join(f"{f.witness}+{f.key_id}" for f in verdict.invalid)
            raise _Fail(
                f"{CHECKPOINT} holds a cosignature line by witness {names} that does not "
                "verify: it was altered, or is not that witness's cosignature of this checkpoint"
            )
        cosigned = [f for f in verdict.facts if f.verdict == "valid"]
        if len(cosigned) < verdict.quorum:
            absent = [f for f in verdict.facts if f.verdict != "valid"]
            missing = ", ".join(f"{f.witness}+{f.key_id}" for f in absent)
            raise _Fail(
                f"{CHECKPOINT} is cosigned by {len(cosigned)} of the witnesses the policy "
                f"names, {verdict.quorum} required ({self._policy.describe()}); no "
                f"cosignature by {missing}"
            )
        shown = ", ".join(f"{f.witness} at {_posix_time(f.timestamp)}" for f in cosigned)
        return (
            f"cosigned by {len(cosigned)} of {len(verdict.facts)} witnesses "
            f"({verdict.quorum} required): {shown}"
        )

    def _witnesses_not_checked(self, note: bytes) -> str:
        try:
            _text, lines = _note_lines(note)
        except NoteError:
            lines = []
        # the signature check lists these lines as unchecked (signatures by other keys)
        others = max(0, len(lines) - 1)
        return (
            f"no witness policy given (--witness KEY, repeated, and --witness-quorum N): "
            f"{others} other signature line(s) of {CHECKPOINT} were not checked as cosignatures"
        )

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

    def check_statements(self) -> str:
        """openings.json and proof.json hold nothing but what the checked members say."""
        with _needs():
            entry, raw, cp = self.entry(), self.data(ENTRY), self.checkpoint()
            audio = self.audio_name()
            version = self.manifest()["version"]
        openings = self.openings()
        proof = _strict_json(self.data(PROOF), PROOF)
        if not isinstance(proof, dict):
            raise _Fail(f"{PROOF} is not a JSON object")
        problems = _differences(
            OPENINGS,
            openings,
            {
                "record_id": entry.get("record"),
                "salt": openings.get("salt"),  # checked by opening the commitments
                "commitments": _get(entry, "body", "commitments"),
                "scheme": openings_scheme(audio),
            },
        )
        problems += _differences(
            PROOF,
            proof,
            proof_statement(
                version,  # which names the position: seq, or leaf_index before version 3
                log=entry.get("log"),
                record_id=entry.get("record"),
                seq=entry.get("seq"),
                leaf_hash=leaf_hash(raw).hex(),
                tree_size=cp.size,
                root_hash=cp.root.hex(),
                hashes=proof.get("hashes"),  # checked by the inclusion proof
            ),
        )
        if problems:
            raise _Fail("; ".join(problems))
        return f"every field of {OPENINGS} and {PROOF} agrees with {ENTRY} and {CHECKPOINT}"

    def check_report(self) -> str:
        with _needs():
            facts = self._report_facts()
            dispute = self._dispute_facts(facts) if facts.version >= 4 else None
        got = self.data(REPORT)
        want = (render_dispute_html(dispute) if dispute else render_report(facts)).encode()
        if hmac.compare_digest(got, want):
            return f"{REPORT} is exactly the report rendered from the checked members"
        raise _Fail(
            f"{REPORT} does not show what the bundle's checked members prove: it differs "
            f"from the report rendered from them {_section_of_difference(got, want)}; do not "
            "rely on it"
        )

    def _report_facts(self) -> ReportFacts:
        """What the report shows, from the members the other checks cover."""
        manifest, entry, raw = self.manifest(), self.entry(), self.data(ENTRY)
        version = manifest["version"]
        evidence, audio, cp = self.data(EVIDENCE), self.audio(), self.checkpoint()
        try:
            note = self.note().decode("utf-8")
            shipped = self.data(VERIFIER_KEY).decode("utf-8").removesuffix("\n")
        except UnicodeDecodeError:
            raise _Fail(f"{CHECKPOINT} or {VERIFIER_KEY} is not UTF-8 text") from None
        return ReportFacts(
            version=version,
            record_id=entry["record"],
            document=_strict_json(evidence, EVIDENCE),
            entry=raw,
            salt=self.salt().hex(),
            audio_name=audio.name,
            audio_sha256=audio.sha256,
            audio_size=audio.size,
            evidence_sha256=hashlib.sha256(evidence).hexdigest(),
            log=entry["log"],
            seq=entry["seq"],
            tree_size=cp.size,
            root_hash=cp.root.hex(),
            leaf_hash=leaf_hash(raw).hex(),
            checkpoint=note,
            verifier_key=shipped,
            created_at=manifest["created_at"],
            checks=REPORT_CHECKS[version],
            bundle_name=BUNDLE_PLACEHOLDER if version > 1 else self._v1_bundle_name(),
        )

    # -- Textform documents (format 4) ---------------------------------------------------

    def _documents_index(self) -> dict:
        index = _strict_json(self.data(DOCUMENTS_INDEX), DOCUMENTS_INDEX)
        if not isinstance(index, dict) or not isinstance(index.get("documents"), list):
            raise _Fail(f"{DOCUMENTS_INDEX} lists no documents")
        return index

    def _document_members(self) -> list[str]:
        """The members documents/index.json names (the archive check expects them)."""
        try:
            listed = self._documents_index()["documents"]
        except _Fail:
            return []
        return [
            d["member"]
            for d in listed
            if isinstance(d, dict)
            and isinstance(d.get("member"), str)
            and _SAFE_NAME.fullmatch(d["member"])
        ]

    def check_documents(self) -> str:
        with _needs():
            manifest, cp = self.manifest(), self.checkpoint()
        index = self._documents_index()
        problems = [
            f"{DOCUMENTS_INDEX} has the unknown field {_shown(k)}"
            for k in sorted(set(index) - DOCUMENTS_INDEX_FIELDS, key=str)
        ]
        if index.get("record_id") != manifest.get("record_id"):
            problems.append(f"{DOCUMENTS_INDEX} is about another record than {MANIFEST} names")
        facts: list[DocumentFact] = []
        for n, statement in enumerate(index["documents"]):
            fact, wrong = self._check_document(n, statement, manifest, cp)
            problems += wrong
            if fact is not None:
                facts.append(fact)
        required, missing = index.get("required"), index.get("missing")
        if not (isinstance(required, list) and all(isinstance(k, str) for k in required)):
            problems.append(f"required in {DOCUMENTS_INDEX} is not a list of kinds")
            required = []
        have = {f.kind for f in facts if f.verdict == "ok"}
        if missing != [k for k in required if k not in have]:
            problems.append(
                f"missing in {DOCUMENTS_INDEX} is not the required kinds the bundle lacks"
            )
        self.textform = TextformFacts(str(manifest.get("record_id")), tuple(required), tuple(facts))
        if problems:
            raise _Fail("; ".join(problems))
        if required:
            self._not_checked(
                DOCUMENTS_INDEX,
                "required, the kinds the campaign asks for, is the vault's statement at "
                "export: nothing seals it",
            )
        state = (
            f"pending Textform: missing {', '.join(self.textform.missing)}"
            if self.textform.pending
            else "Textform complete"
            if required
            else "no documents required"
        )
        kinds = ", ".join(f.kind for f in facts) or "none"
        return f"{len(facts)} document(s) sealed with the record ({kinds}); {state}"

    def _check_document(
        self, n: int, statement: Any, manifest: dict, cp: Checkpoint
    ) -> tuple[DocumentFact | None, list[str]]:
        where = f"document {n + 1} of {DOCUMENTS_INDEX}"
        if not isinstance(statement, dict) or set(statement) != DOCUMENT_FIELDS:
            return None, [f"{where} does not have exactly the fields {sorted(DOCUMENT_FIELDS)}"]
        try:
            raw = str(statement["entry"]).encode("utf-8")
            entry = parse_entry(raw)
        except (ValueError, UnicodeEncodeError):
            return None, [f"{where}: its entry is not a canonical log entry"]
        found = entry.get("body")
        body: dict = found if isinstance(found, dict) else {}
        problems = []
        if entry.get("type") != "document.sealed":
            problems.append(f"{where}: its entry is not a document.sealed entry")
        if entry.get("record") != manifest.get("record_id") or entry.get("log") != manifest.get(
            "client"
        ):
            problems.append(f"{where}: its entry is of another record or client")
        seq, kind, media = entry.get("seq"), body.get("kind"), body.get("media_type")
        member = statement["member"]
        if statement["seq"] != seq or not _is_count(seq):
            problems.append(f"{where}: its seq is not its entry's")
            seq = -1
        if member != document_member(seq, str(kind), str(media)):
            problems.append(f"{where}: its file {_shown(member)} is not named for its entry")
        if problems:
            return None, problems
        member_name = str(member)
        verdict = "ok"
        try:
            data = self.data(member_name)
            salt = _hex32(statement["salt"], f"the salt of {member_name}")
            hashes = statement["hashes"]
            if not isinstance(hashes, list):
                raise _Fail(f"the proof of {member_name} holds no hashes")
            path = [_hex32(h, f"a hash of the proof of {member_name}") for h in hashes]
            if len(data) != body.get("size"):
                raise _Fail(f"{member_name} is not the size its entry seals")
            if commitment(salt, "document", data) != _get(body, "commitments", "document"):
                raise _Fail(
                    f"{member_name} is not the document the vault sealed: its commitment "
                    "differs from its entry's"
                )
            if seq >= cp.size or not verify_inclusion(leaf_hash(raw), seq, cp.size, path, cp.root):
                raise _Fail(
                    f"the inclusion proof of {member_name} does not lead from its entry to "
                    f"the root of {CHECKPOINT}"
                )
        except _Fail as exc:
            verdict = str(exc)
            problems.append(verdict)
        return (
            DocumentFact(
                str(body.get("document")),
                seq,
                str(kind),
                str(media),
                int(body.get("size") or 0),
                _parse_time_text(entry.get("time")),
                verdict,
            ),
            problems,
        )

    def _v1_bundle_name(self) -> str:
        """Version 1 reports name the file as exported, in their verify command."""
        page = self.data(REPORT).decode("utf-8", "replace")
        found = _V1_COMMAND.search(page)
        try:
            words = shlex.split(html.unescape(found.group(1))) if found else []
        except ValueError:
            words = []
        if len(words) != 1:
            raise _Fail(f"{REPORT} has no verify command naming the bundle")
        self._not_checked(
            REPORT,
            "the bundle's file name in its verify command (format 1 reports name the file "
            "as exported; nothing seals it)",
        )
        return words[0]

    # -- format 4: custody and the PDF ------------------------------------------------

    def custody(self) -> list[tuple[int, bytes, dict, list]]:
        """custody.json's entries: (seq, exact bytes, parsed entry, proof hashes)."""
        doc = _strict_json(self.data(CUSTODY), CUSTODY)
        items = _get(doc, "entries")
        if not isinstance(doc, dict) or not isinstance(items, list):
            raise _Fail(f"{CUSTODY} lists no entries")
        if set(doc) != {"record_id", "tree_size", "entries"}:
            raise _Fail(f"{CUSTODY} has other fields than record_id, tree_size and entries")
        out = []
        for n, item in enumerate(items):
            if not isinstance(item, dict) or set(item) != {"seq", "entry", "hashes"}:
                raise _Fail(f"entry {n} of {CUSTODY} is not a seq, an entry and its hashes")
            text = item["entry"]
            raw = text.encode("utf-8") if isinstance(text, str) else b""
            try:
                entry = parse_entry(raw)
            except (ValueError, UnicodeDecodeError):
                raise _Fail(f"entry {n} of {CUSTODY} is not a canonical log entry") from None
            out.append((item["seq"], raw, entry, item["hashes"]))
        return out

    def check_custody(self) -> str:
        with _needs():
            record, log, cp = self.entry().get("record"), self.entry().get("log"), self.checkpoint()
        doc = _strict_json(self.data(CUSTODY), CUSTODY)
        entries = self.custody()
        problems = []
        if _get(doc, "record_id") != record or _get(doc, "tree_size") != cp.size:
            problems.append(f"{CUSTODY} is for another record or tree than {CHECKPOINT}")
        last = -1
        for n, (seq, raw, entry, hashes) in enumerate(entries):
            where = f"entry {n} of {CUSTODY}"
            if entry.get("seq") != seq or not _is_count(seq) or seq <= last:
                problems.append(f"{where} is out of order or names another position")
                continue
            last = seq
            if entry.get("type") not in CUSTODY_TYPES:
                problems.append(f"{where} is not an access or a hold")
            if entry.get("record") != record or entry.get("log") != log:
                problems.append(f"{where} is about another record or log")
            if not isinstance(entry.get("body"), dict):
                problems.append(f"{where} has no body")
            if not isinstance(hashes, list):
                problems.append(f"{where} has no inclusion proof")
                continue
            path = [_hex32(h, f"a hash of {where}") for h in hashes]
            if not verify_inclusion(leaf_hash(raw), seq, cp.size, path, cp.root):
                problems.append(f"{where} is not in the log: its proof does not lead to the root")
        if problems:
            raise _Fail("; ".join(problems))
        self._not_checked(
            CUSTODY,
            "that it lists every access: a bundle proves the listed entries are in the log, "
            "not that none was left out (`evidence-vault log verify` over the whole log does)",
        )
        accesses = sum(1 for e in entries if e[2].get("type") == "evidence.accessed")
        return f"{len(entries)} entries ({accesses} accesses), each in the log of {cp.size} entries"

    def _dispute_facts(self, base: ReportFacts) -> DisputeFacts:
        manifest = self.manifest()
        events = tuple(
            CustodyEvent(seq, entry["time"], entry["type"], entry["body"])
            for seq, _, entry, _ in self.custody()
        )
        names = list(manifest["files"]) if REPORT_PDF in manifest["files"] else []
        court = court_facts(
            {n: self.data(n) for n in manifest["files"] if _court_member(n)},
            manifest["language"],
        )
        return DisputeFacts(
            base=base,
            language=manifest["language"],
            time_zone=manifest["time_zone"],
            custody=events,
            required_documents=court.required_documents,
            documents=court.documents,
            timestamps=court.timestamps,
            witnesses=court.witnesses,
            attachments=tuple(pdf_attachments(names)),
        )

    def check_report_pdf(self) -> str:
        manifest = self.manifest()
        if REPORT_PDF not in manifest["files"]:
            return f"no {REPORT_PDF} in this bundle (it is optional)"
        with _needs():
            facts = self._dispute_facts(self._report_facts())
        expected = list(facts.attachments)
        with _needs():
            limits = {
                n: (self.audio().size if n.startswith(AUDIO_DIR) else len(self.data(n)))
                for n in expected
            }
        try:
            pdf = read_pdf(self.data(REPORT_PDF), limits)
        except PdfRefused as exc:
            raise _Fail(f"{REPORT_PDF} is refused: {exc}") from None
        problems = [
            f"{REPORT_PDF} does not carry {n}" for n in expected if n not in pdf.attachments
        ]
        for name in expected:
            if name in pdf.attachments and not self._same_member(name, pdf.attachments[name]):
                problems.append(f"{REPORT_PDF} carries another {name} than the bundle")
            elif name in pdf.attachments and pdf.relationships[name] == "":
                problems.append(f"{REPORT_PDF} carries {name} without an AFRelationship")
        problems += self._pdf_text_problems(pdf.text, facts)
        problems += [f"{REPORT_PDF}'s signature: {f.detail}" for f in pdf.signatures if not f.ok]
        if problems:
            raise _Fail("; ".join(problems))
        signed = ""
        for finding in pdf.signatures:
            signed += f"; {finding.detail}"
            self._not_checked(
                REPORT_PDF,
                f"whether its signer ({finding.signer}) and time-stamping authority are "
                "trusted: the signature is intact and covers the whole file, but trust is "
                "yours to decide (check it with a PAdES validator and your trust list)",
            )
        return (
            f"{REPORT_PDF} shows exactly the text of the report rendered from the checked "
            f"members and carries exactly the bundle's {len(expected)} other files{signed}"
        )

    def _same_member(self, name: str, data: bytes) -> bool:
        if name.startswith(AUDIO_DIR):
            audio = self.audio()
            return len(data) == audio.size and hmac.compare_digest(
                hashlib.sha256(data).hexdigest(), audio.sha256
            )
        return hmac.compare_digest(data, self.data(name))

    @staticmethod
    def _pdf_text_problems(shown: str, facts: DisputeFacts) -> list[str]:
        """The PDF's characters (white space aside) against the report's, by section."""
        got = "".join(shown.split())
        pieces = expected_pdf_text(facts)
        want = "".join(text for _, text in pieces)
        if got == want:
            return []
        at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        at = min(len(got), len(want)) if at is None else at
        section, passed = "", 0
        for title, piece in pieces:
            if passed + len(piece) > at:
                section = title
                break
            passed += len(piece)
        where = f'in the section "{section}"' if section else "before its first section"
        return [
            f"{REPORT_PDF} does not show what the bundle's checked members prove: its text "
            f"differs from the report rendered from them {where}; do not rely on it"
        ]


_V1_COMMAND = re.compile(r"<pre>evidence-vault verify-bundle (.*?) --key &quot;\$VAULT_KEY&quot;")


def _parse_time_text(value: Any) -> datetime:
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise _Fail("a document's entry has no valid time") from None


def _proof_position(proof: Any) -> Any:
    """The leaf proof.json proves: ``seq``, or ``leaf_index`` in a bundle before version 3.

    Either name will do for the arithmetic; the statements check requires the one of the
    bundle's version and no other.
    """
    return _get(proof, "seq") if _get(proof, "seq") is not None else _get(proof, "leaf_index")


def _differences(member: str, got: dict, want: dict) -> list[str]:
    """One problem per field of ``got`` that is not ``want``'s, missing, or unknown."""
    problems = [
        f"{member} lacks {k}"
        if k not in got
        else f"{member} states another {k} than the checked members"
        for k in want
        if k not in got or got[k] != want[k]
    ]
    unknown = sorted(set(got) - set(want), key=str)
    problems += [f"{member} has the unknown field {_shown(k)}" for k in unknown]
    return problems


def _section_of_difference(got: bytes, want: bytes) -> str:
    """Where two renderings first differ, as the title of the section in ``want`` (our own
    text: nothing from the bundle is echoed)."""
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    if at is None:
        at = min(len(got), len(want))
    start = want.rfind(b"<h2", 0, at + 1)
    title = re.match(rb"<h2[^>]*>(.*?)</h2>", want[start:]) if start >= 0 else None
    if title is None:
        return "before its first section"
    return f'in the section "{html.unescape(title.group(1).decode("utf-8"))}"'


def _other_signatures(note: bytes, verifier: Verifier) -> int:
    """How many signature lines of a (verified) note are not by ``verifier``."""
    split = note.rfind(b"\n\n")
    text, lines = note[: split + 1], note[split + 2 :].splitlines()
    others = 0
    for line in lines:
        try:
            open_note(text + b"\n" + line + b"\n", [verifier])
        except NoteError:
            others += 1
    return others


def _note_lines(note: bytes) -> tuple[bytes, list[Any]]:
    from vault.ledger.checkpoint import _parse_note

    return _parse_note(note)


def _posix_time(seconds: int | None) -> str:
    from datetime import UTC, datetime

    if seconds is None:
        return "(no time)"
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"POSIX time {seconds}"


def _parse_key(text: str, what: str) -> Verifier:
    try:
        return parse_verifier_key(text)
    except NoteError as exc:
        raise _Fail(f"{what} is not a valid verifier key: {exc.message}") from None


def _is_zone(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _is_canonical(raw: bytes) -> bool:
    try:
        return rfc8785.dumps(json.loads(raw)) == raw
    except Exception:
        return False
