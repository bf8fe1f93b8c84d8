"""One real evidence bundle, and the tools of a forger who edits its ZIP.

The bundle is exported once by a real vault (module-scoped fixture ``made``); every
tamper test rewrites a copy of the ZIP with Python's ``zipfile`` only.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault.bundle import REPORT_CHECKS
from vault.ledger.checkpoint import Checkpoint
from vault.ledger.entry import entry_hash
from vault.report import ReportFacts, render_report
from vault.sealing import LogSigner

PRINCIPAL = "local:lawyer-desk"


@dataclass(frozen=True)
class Made:
    path: Path
    key: str
    name: str  # the vault's name (key name, origin prefix)
    record_id: str
    other_clip: bytes  # another clip of the same length and format
    signer: LogSigner  # the vault's log key, to sign checkpoints of another log


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Made:
    tmp = tmp_path_factory.mktemp("bundle")
    v = make_vault(tmp / "vault")
    try:
        receipts = [v.ingest(clip(tmp, seed=i), order_meta(10 + i)) for i in range(3)]
        v.checkpoint(CLIENT)  # size 3: the proof of entry 1 has two hashes
        rid = receipts[1].record_id
        # format 3: the tamper tests of the members every format has start from it (the
        # format 4 additions, custody.json and report.pdf, have their own in test_dispute_report)
        return Made(
            path=v.export_bundle(rid, tmp / "bundle.zip", principal=PRINCIPAL, version=3),
            key=v.log_key(),
            name=v.settings.name,
            record_id=rid,
            other_clip=clip(tmp, seed=99).read_bytes(),
            signer=v.context.keys.signing_key(),
        )
    finally:
        v.close()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def listing(files: dict[str, bytes]) -> dict:
    """The manifest's ``files``, as a careful forger recomputes it."""
    return {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
        for n, d in files.items()
        if n != "manifest.json"
    }


def rewrite(
    made: Made,
    tmp_path: Path,
    change: Callable[[dict[str, bytes]], None],
    *,
    manifest: bool = True,
) -> Path:
    """A copy of the bundle with ``change`` applied to its members; with ``manifest`` the
    manifest is brought in line (as a careful forger would), else left as exported."""
    files = members(made.path)
    before = dict(files)
    change(files)
    if manifest:
        m = json.loads(files["manifest.json"])
        m["files"] = listing(files)
        files["manifest.json"] = json.dumps(m).encode()
    assert files != before or not manifest
    out = tmp_path / "tampered.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out


def note_body(note: bytes) -> bytes:
    return note[: note.rfind(b"\n\n") + 1]


def rerender(change: Callable[[dict[str, bytes]], None], files: dict[str, bytes]) -> None:
    """Apply ``change``, then render report.html again from the changed members, as a
    forger with the vault's (public) source would."""
    change(files)
    manifest = json.loads(files["manifest.json"])
    if manifest["version"] >= 4:
        _rerender_dispute(files, manifest)
        return
    entry = json.loads(files["entry.json"])
    audio = next(n for n in files if n.startswith("audio/"))
    cp = Checkpoint.parse_body(note_body(files["checkpoint.txt"]))
    facts = ReportFacts(
        version=manifest["version"],
        record_id=entry["record"],
        document=json.loads(files["evidence.json"]),
        entry=files["entry.json"],
        salt=json.loads(files["openings.json"])["salt"],
        audio_name=audio,
        audio_sha256=hashlib.sha256(files[audio]).hexdigest(),
        audio_size=len(files[audio]),
        evidence_sha256=hashlib.sha256(files["evidence.json"]).hexdigest(),
        log=entry["log"],
        seq=entry["seq"],
        tree_size=cp.size,
        root_hash=cp.root.hex(),
        leaf_hash=entry_hash(files["entry.json"]),
        checkpoint=files["checkpoint.txt"].decode(),
        verifier_key=files["verifier-key.txt"].decode().removesuffix("\n"),
        created_at=manifest["created_at"],
        checks=REPORT_CHECKS[manifest["version"]],
    )
    files["report.html"] = render_report(facts).encode()


def audio_name(made: Made) -> str:
    return f"audio/{made.record_id}.wav"


def failed(verdict) -> set[str]:
    return {c.name for c in verdict.checks if not c.ok}


def detail(verdict, name: str) -> str:
    return next(c.detail for c in verdict.checks if c.name == name)


def _rerender_dispute(files: dict[str, bytes], manifest: dict) -> None:
    """Format 4: the dispute report rendered again by the verifier's own derivation of its
    facts; the optional report.pdf dropped (a forger cannot make it match cheaply)."""
    import tempfile

    from vault.bundle.verify import _Bundle
    from vault.dispute_report import render_dispute_html

    files.pop("report.pdf", None)
    manifest["files"] = listing({n: d for n, d in files.items() if n != "manifest.json"})
    files["manifest.json"] = json.dumps(manifest).encode()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "b.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        with zipfile.ZipFile(path) as zf:
            bundle = _Bundle(zf, Path(scratch), 1 << 30)
            facts = bundle._dispute_facts(bundle._report_facts())
    files["report.html"] = render_dispute_html(facts).encode()
