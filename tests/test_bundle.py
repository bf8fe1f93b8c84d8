"""Evidence bundles: export through the vault, then verify offline — and tamper with them.

The export tests run on every backend (``vault`` fixture). The tamper matrix only edits
the ZIP, so it shares one bundle made once on a local vault and rewrites copies of it.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from html import escape

import pytest
import rfc8785
from sqlmodel import select

from tests.support.bundles import (
    PRINCIPAL,
    audio_name,
    detail,
    failed,
    members,
    note_body,
    rerender,
    rewrite,
)
from tests.support.bundles import made as made_bundle
from tests.support.tamper import edit_object, flip_byte
from tests.support.vaults import CLIENT, clip, order_meta
from vault import Vault
from vault.bundle import REPORT_CHECKS, Check, verify_bundle
from vault.db import LogEntry, read_session
from vault.errors import DecryptionFailed, NotFound, VaultError
from vault.ledger.checkpoint import Checkpoint, sign_note, verifier_key
from vault.ledger.entry import entry_hash
from vault.sealing import LogSigner, commitment
from vault.services.checkpoints import log_verifier_key
from vault.services.export import export_bundle
from vault.services.retrieve import get_record


def accesses(vault: Vault, record_id: str) -> list[dict]:
    with read_session(vault.context.engine) as s:
        rows = s.exec(select(LogEntry).where(LogEntry.client_id == CLIENT).order_by(LogEntry.seq))
        entries = [json.loads(r.entry) for r in rows]
    return [
        e["body"]
        for e in entries
        if e["type"] == "evidence.accessed" and e.get("record") == record_id
    ]


# --- export, on every backend --------------------------------------------------------------


def test_export_then_verify(vault, tmp_path):
    # format 3, as exported before the dispute report (format 4: tests/test_dispute_report.py)
    upload = clip(tmp_path, seconds=3.0)  # more than one sealed segment
    receipt = vault.ingest(upload, order_meta(1))
    out = export_bundle(
        vault.context,
        receipt.record_id,
        tmp_path / "b.zip",
        principal=PRINCIPAL,
        client=CLIENT,
        version=3,
    )
    assert out == tmp_path / "b.zip"
    assert out.stat().st_mode & 0o777 == 0o600  # it holds PII
    assert not list(tmp_path.glob(".bundle-*"))  # no temporary file left behind

    verdict = verify_bundle(out, key=log_verifier_key(vault.context))
    assert verdict.ok, verdict.summary()
    assert [c.name for c in verdict.checks] == list(REPORT_CHECKS[3])
    assert all(c.ok for c in verdict.checks)
    assert verdict.key_pinned and verdict.key == vault.log_key()
    assert (verdict.record_id, verdict.client) == (receipt.record_id, CLIENT)
    assert verdict.summary().startswith("VALID: ")
    assert verdict.to_dict()["ok"] is True

    # the export is in the chain of custody, naming who made it
    assert accesses(vault, receipt.record_id) == [{"principal": PRINCIPAL, "what": "bundle"}]

    with zipfile.ZipFile(out) as zf:
        audio = zf.read(f"audio/{receipt.record_id}.wav")
        assert zf.getinfo(f"audio/{receipt.record_id}.wav").compress_type == zipfile.ZIP_STORED
        assert zf.getinfo("evidence.json").compress_type == zipfile.ZIP_DEFLATED
        entry = zf.read("entry.json")
        manifest = json.loads(zf.read("manifest.json"))
        report = zf.read("report.html").decode()
    assert audio == upload.read_bytes()
    assert entry_hash(entry) == receipt.entry_hash
    assert manifest["record_id"] == receipt.record_id and manifest["client"] == CLIENT
    assert manifest["format"] == "evidence-vault bundle" and manifest["version"] == 3
    assert "+4915112345678" in report and "Max Mustermann" in report  # for the lawyer
    assert "evidence-vault verify-bundle BUNDLE.zip --key" in report


def test_export_into_a_directory(vault, tmp_path):
    receipt = vault.ingest(clip(tmp_path), order_meta(2))
    out = vault.export_bundle(receipt.record_id, tmp_path, principal=PRINCIPAL)
    assert out == tmp_path / f"{receipt.record_id}.zip"
    assert verify_bundle(out, key=vault.log_key()).ok


def test_refused_exports_leave_no_trace(vault, tmp_path):
    receipt = vault.ingest(clip(tmp_path), order_meta(3))
    vault.add_client("other-co", "Other")
    with pytest.raises(NotFound):
        export_bundle(
            vault.context,
            receipt.record_id,
            tmp_path / "b.zip",
            principal=PRINCIPAL,
            client="other-co",
        )
    assert not (tmp_path / "b.zip").exists()
    # a target in a missing directory is refused before the access is logged
    with pytest.raises(VaultError, match="is not a directory"):
        vault.export_bundle(receipt.record_id, tmp_path / "nowhere" / "b.zip")
    assert accesses(vault, receipt.record_id) == []


def test_access_is_recorded_before_decrypting(vault, tmp_path):
    receipt = vault.ingest(clip(tmp_path), order_meta(4))
    rec = get_record(vault.context, receipt.record_id)
    edit_object(vault, rec.clip_key, flip_byte)
    if vault.settings.storage == "s3":
        # on S3 the flipped copy is a new version: the bundle still carries the pinned one
        vault.export_bundle(rec.id, tmp_path / "b.zip", principal=PRINCIPAL)
        assert verify_bundle(tmp_path / "b.zip", key=vault.log_key()).ok
        assert accesses(vault, rec.id) == [{"principal": PRINCIPAL, "what": "bundle"}]
        return
    with pytest.raises(DecryptionFailed):
        vault.export_bundle(rec.id, tmp_path / "b.zip", principal=PRINCIPAL)
    assert not (tmp_path / "b.zip").exists()
    assert not list(tmp_path.glob(".bundle-*"))
    assert accesses(vault, rec.id) == [{"principal": PRINCIPAL, "what": "bundle"}]


# --- the tamper matrix, on one bundle ------------------------------------------------------

made = made_bundle  # the fixture: one real bundle, exported once for this module


def test_untouched_bundle_is_valid(made):
    verdict = verify_bundle(made.path, key=made.key)
    assert verdict.ok, verdict.summary()
    proof = json.loads(members(made.path)["proof.json"])
    assert (proof["seq"], proof["tree_size"], len(proof["hashes"])) == (1, 3, 2)
    assert "leaf_index" not in proof  # the name before format version 3


def test_unpinned_verdict_says_so(made):
    verdict = verify_bundle(made.path)
    assert verdict.consistent and not verdict.key_pinned
    # every check passed, but only against the key the bundle brought along: not ok
    assert not verdict.ok and verdict.status == "unpinned"
    assert verdict.to_dict()["ok"] is False and verdict.to_dict()["consistent"] is True
    assert verdict.summary().startswith("VALID ONLY IF THE KEY IS GENUINE")
    assert "not pinned" in detail(verdict, "checkpoint-signature")


@pytest.mark.parametrize(("manifest", "expected"), [(True, set()), (False, {"archive"})])
def test_audio_replaced(made, tmp_path, manifest, expected):
    def swap(files):
        files[audio_name(made)] = made.other_clip

    verdict = verify_bundle(rewrite(made, tmp_path, swap, manifest=manifest), key=made.key)
    # the report shows the audio's SHA-256, which is no longer this audio's
    assert failed(verdict) == expected | {"clip-commitment", "report"}
    assert "not the clip the vault sealed" in detail(verdict, "clip-commitment")
    assert verdict.summary().startswith("INVALID: ")


@pytest.mark.parametrize(("manifest", "expected"), [(True, set()), (False, {"archive"})])
def test_price_edited(made, tmp_path, manifest, expected):
    def cheaper(files):
        doc = json.loads(files["evidence.json"])
        doc["evidence"]["intent"]["price"] = "9.99 EUR/month"
        files["evidence.json"] = rfc8785.dumps(doc)

    verdict = verify_bundle(rewrite(made, tmp_path, cheaper, manifest=manifest), key=made.key)
    assert failed(verdict) == expected | {"meta-commitment", "report"}
    if manifest:
        assert "not the document the vault sealed" in detail(verdict, "meta-commitment")
    else:  # another size than the manifest lists: not even read
        files = members(made.path)
        listed = len(files["evidence.json"])
        cheaper(files)
        assert detail(verdict, "meta-commitment") == (
            f"evidence.json inflates to {len(files['evidence.json'])} bytes by its ZIP "
            f"header, not the {listed} bytes manifest.json lists: refused unread"
        )


def test_evidence_reformatted(made, tmp_path):
    def pretty(files):
        files["evidence.json"] = json.dumps(json.loads(files["evidence.json"]), indent=2).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, pretty), key=made.key)
    assert failed(verdict) == {"meta-commitment", "report"}  # the report shows its SHA-256
    assert "canonical" in detail(verdict, "meta-commitment")


@pytest.mark.parametrize("field", ["hashes", "seq"])
def test_proof_altered(made, tmp_path, field):
    def alter(files):
        proof = json.loads(files["proof.json"])
        if field == "hashes":
            h = proof["hashes"][0]
            proof["hashes"][0] = ("0" if h[0] != "0" else "1") + h[1:]
        else:
            proof["seq"] = 0
        files["proof.json"] = json.dumps(proof).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, alter), key=made.key)
    # proof.json's seq is also a statement about the entry's position
    assert failed(verdict) == {"inclusion"} | ({"statements"} if field == "seq" else set())


def _rename_position(files: dict[str, bytes], old: str, new: str) -> None:
    proof = json.loads(files["proof.json"])
    proof[new] = proof.pop(old)
    files["proof.json"] = json.dumps(proof).encode()


def _set_version(files: dict[str, bytes], version: int) -> None:
    m = json.loads(files["manifest.json"])
    old, m["version"] = m["version"], version
    files["manifest.json"] = json.dumps(m).encode()
    # the report lists the checks of its version: what that version's exporter wrote
    files["report.html"] = _report_checks_of(files["report.html"], old, version)


def _report_checks_of(page: bytes, old: int, version: int) -> bytes:
    html = page.decode()
    for name, meaning in REPORT_CHECKS[old].items():
        if name not in REPORT_CHECKS[version]:
            item = f"<li><code>{escape(name)}</code>: {escape(meaning)}</li>"
            assert item in html
            html = html.replace(item, "")
    return html.encode()


def _as_format(files: dict[str, bytes], version: int) -> None:
    """The bundle as format ``version`` (2 or 3) exported it: no documents/, and the
    report with that format's check list."""
    _set_version(files, version)
    for name in [n for n in files if n.startswith("documents/")]:
        del files[name]
    rerender(lambda f: None, files)


def test_format_2_bundle_with_leaf_index_still_verifies(made, tmp_path):
    # what version 2 exported: the same bundle, proof.json naming the position leaf_index
    def as_version_2(files):
        _rename_position(files, "seq", "leaf_index")
        _as_format(files, 2)

    # the report as version 2 rendered it (its check list: version 4 lists more checks)
    path = rewrite(made, tmp_path, lambda files: rerender(as_version_2, files))
    proof = json.loads(members(path)["proof.json"])
    assert proof["leaf_index"] == 1 and "seq" not in proof
    verdict = verify_bundle(path, key=made.key)
    assert verdict.ok, verdict.summary()


@pytest.mark.parametrize(
    ("version", "rename"),
    [
        (3, ("seq", "leaf_index")),  # a current bundle with the old name
        (2, None),  # an old bundle with the new name
    ],
)
def test_position_named_for_another_version(made, tmp_path, version, rename):
    def change(files):
        if rename:
            _rename_position(files, *rename)
        _as_format(files, version)

    verdict = verify_bundle(
        rewrite(made, tmp_path, lambda files: rerender(change, files)), key=made.key
    )
    # the arithmetic holds whatever the name; the statement is of the wrong format
    assert failed(verdict) == {"statements"}
    want, other = ("seq", "leaf_index") if version >= 3 else ("leaf_index", "seq")
    assert f"proof.json lacks {want}" in detail(verdict, "statements")
    assert f"proof.json has the unknown field {other}" in detail(verdict, "statements")


def test_proof_with_both_names_is_refused(made, tmp_path):
    def both(files):
        proof = json.loads(files["proof.json"])
        proof["leaf_index"] = proof["seq"]
        files["proof.json"] = json.dumps(proof).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, both), key=made.key)
    assert failed(verdict) == {"statements"}
    assert detail(verdict, "statements") == "proof.json has the unknown field leaf_index"


def test_checkpoint_resigned_by_another_key(made, tmp_path):
    other = LogSigner.generate()
    other_key = verifier_key(made.name, other.public_key_bytes())

    def resign(files):
        files["checkpoint.txt"] = sign_note(note_body(files["checkpoint.txt"]), made.name, other)

    def resign_and_ship_key(files):
        resign(files)
        files["verifier-key.txt"] = (other_key + "\n").encode()

    # pinned to the vault's key: the forged signature is not the vault's
    verdict = verify_bundle(rewrite(made, tmp_path, resign), key=made.key)
    # the report shows the checkpoint with its signature line
    assert failed(verdict) == {"checkpoint-signature", "report"}
    assert "no signature by a known key" in detail(verdict, "checkpoint-signature")

    # not pinned, with the forger's key shipped too: the crypto holds, but only for that key
    forged = rewrite(made, tmp_path, lambda files: rerender(resign_and_ship_key, files))
    verdict = verify_bundle(forged)
    assert verdict.consistent and not verdict.ok and verdict.key == other_key
    summary = verdict.summary()
    assert summary.startswith("VALID ONLY IF THE KEY IS GENUINE")
    assert "only if that key is the vault's published key" in summary
    # ... and pinning the vault's key exposes it, the shipped key being ignored
    verdict = verify_bundle(forged, key=made.key)
    assert failed(verdict) == {"checkpoint-signature"}


def test_wholly_forged_bundle_needs_a_pinned_key_to_be_caught(made, tmp_path):
    """A forger rewrites the price, the commitments, the entry and a one-entry log of
    their own, signed with their own key: every hash checks, the key does not."""
    forger = LogSigner.generate()
    salt = bytes(32)

    def forge(files):
        doc = json.loads(files["evidence.json"])
        doc["evidence"]["intent"]["price"] = "0.99 EUR/month"
        files["evidence.json"] = rfc8785.dumps(doc)
        commits = {
            "clip": commitment(salt, "clip", files[audio_name(made)]),
            "meta": commitment(salt, "meta", files["evidence.json"]),
        }
        entry = json.loads(files["entry.json"])
        entry.update(seq=0, prev="0" * 64)
        entry["body"]["commitments"] = commits
        files["entry.json"] = raw = rfc8785.dumps(entry)
        openings = json.loads(files["openings.json"])
        openings.update(salt=salt.hex(), commitments=commits)
        files["openings.json"] = json.dumps(openings).encode()
        root = bytes.fromhex(entry_hash(raw))
        proof = json.loads(files["proof.json"])
        proof.update(seq=0, leaf_hash=root.hex(), tree_size=1, root_hash=root.hex())
        proof["hashes"] = []
        files["proof.json"] = json.dumps(proof).encode()
        body = Checkpoint(f"{made.name}/{CLIENT}", 1, root).body()
        files["checkpoint.txt"] = sign_note(body, made.name, forger)
        files["verifier-key.txt"] = verifier_key(made.name, forger.public_key_bytes()).encode()

    forged = rewrite(made, tmp_path, lambda files: rerender(forge, files))
    unpinned = verify_bundle(forged)
    assert unpinned.consistent  # not pinned: nothing to tell it apart ...
    assert not unpinned.ok and unpinned.status == "unpinned"  # ... so it is not ok
    assert failed(verify_bundle(forged, key=made.key)) == {"checkpoint-signature"}


def test_checkpoint_of_another_log(made, tmp_path):
    def other_origin(files):
        cp = Checkpoint.parse_body(note_body(files["checkpoint.txt"]))
        body = Checkpoint(f"{made.name}/other-co", cp.size, cp.root).body()
        files["checkpoint.txt"] = sign_note(body, made.name, made.signer)

    verdict = verify_bundle(rewrite(made, tmp_path, other_origin), key=made.key)
    assert failed(verdict) == {"checkpoint-origin", "report"}


def test_entry_edited_canonically(made, tmp_path):
    def longer(files):
        files["entry.json"] = files["entry.json"].replace(
            b'"duration_ms":2000', b'"duration_ms":2500'
        )

    verdict = verify_bundle(rewrite(made, tmp_path, longer), key=made.key)
    # the entry's leaf hash is stated in proof.json and shown in the report
    assert failed(verdict) == {"inclusion", "audio", "statements", "report"}
    assert "the entry says 2500 ms" in detail(verdict, "audio")


def test_entry_and_openings_rewritten_for_another_clip(made, tmp_path):
    """Swapping the audio and re-committing to it consistently leaves only the log to
    catch it: the rewritten entry is not the one the checkpoint covers."""

    def swap(files):
        files[audio_name(made)] = made.other_clip
        openings = json.loads(files["openings.json"])
        new = commitment(bytes.fromhex(openings["salt"]), "clip", made.other_clip)
        entry = json.loads(files["entry.json"])
        entry["body"]["commitments"]["clip"] = openings["commitments"]["clip"] = new
        files["entry.json"] = rfc8785.dumps(entry)
        files["openings.json"] = json.dumps(openings).encode()

    forged = rewrite(made, tmp_path, lambda files: rerender(swap, files))
    verdict = verify_bundle(forged, key=made.key)
    assert failed(verdict) == {"inclusion", "statements"}  # proof.json names the leaf hash
    assert "proof.json states another leaf_hash" in detail(verdict, "statements")


def test_entry_not_canonical(made, tmp_path):
    def spaced(files):
        files["entry.json"] = files["entry.json"].replace(b'"v":2', b'"v": 2')

    verdict = verify_bundle(rewrite(made, tmp_path, spaced), key=made.key)
    assert {"entry", "inclusion"} <= failed(verdict)
    assert "canonical" in detail(verdict, "entry")


def test_manifest_hash_mismatch(made, tmp_path):
    def wrong_hash(files):
        m = json.loads(files["manifest.json"])
        m["files"]["proof.json"]["sha256"] = "0" * 64
        files["manifest.json"] = json.dumps(m).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, wrong_hash, manifest=False), key=made.key)
    assert failed(verdict) == {"archive"}
    assert "proof.json does not match its SHA-256 or size" in detail(verdict, "archive")


def test_unexpected_and_duplicate_files(made, tmp_path):
    def extra(files):
        files["notes.txt"] = b"hello"

    verdict = verify_bundle(rewrite(made, tmp_path, extra), key=made.key)
    assert failed(verdict) == {"archive"}
    assert "unexpected file notes.txt" in detail(verdict, "archive")

    out = tmp_path / "double.zip"
    with zipfile.ZipFile(made.path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            dst.writestr("evidence.json", b"{}")
    assert "more than one file named evidence.json" in detail(
        verify_bundle(out, key=made.key), "archive"
    )


@pytest.mark.parametrize("manifest", [True, False])
def test_missing_members(made, tmp_path, manifest):
    def drop(name):
        return lambda files: files.pop(name)

    verdict = verify_bundle(rewrite(made, tmp_path, drop("proof.json"), manifest=manifest))
    assert failed(verdict) == {"archive", "inclusion", "statements"}
    assert "proof.json is missing" in detail(verdict, "inclusion")

    verdict = verify_bundle(rewrite(made, tmp_path, drop(audio_name(made)), manifest=manifest))
    # (with the manifest rewritten, no audio file is named: openings.json cannot be read)
    lost = {"archive", "clip-commitment", "audio", "report"}
    assert failed(verdict) == lost | ({"statements"} if manifest else set())
    assert detail(verdict, "report").startswith("cannot check: ")

    # the shipped key is not needed for the signature when one is pinned, but the report
    # shows it: without it the report cannot be checked
    no_key = rewrite(made, tmp_path, drop("verifier-key.txt"), manifest=manifest)
    assert failed(verify_bundle(no_key, key=made.key)) == {"archive", "report"}
    assert failed(verify_bundle(no_key)) == {"archive", "checkpoint-signature", "report"}


def test_not_a_zip(made, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(made.path.read_bytes()[:2000])
    for path in (junk, truncated, tmp_path / "absent.zip", tmp_path):
        verdict = verify_bundle(path, key=made.key)
        assert verdict.checks == [Check("archive", False, "bundle is not a readable ZIP archive")]
        assert not verdict.ok and verdict.summary().startswith("INVALID: ")


def test_malformed_key_and_members_are_failed_checks(made, tmp_path):
    assert failed(verify_bundle(made.path, key="not a key")) == {"checkpoint-signature"}

    def garbage(files):
        for name in ("entry.json", "proof.json", "openings.json", "checkpoint.txt"):
            files[name] = b"\xff\x00[1,2"

    verdict = verify_bundle(rewrite(made, tmp_path, garbage), key=made.key)
    # every check of the (format 3) bundle but the archive's
    assert failed(verdict) == set(REPORT_CHECKS[3]) - {"archive"}
    assert verdict.record_id == made.record_id  # from the manifest
