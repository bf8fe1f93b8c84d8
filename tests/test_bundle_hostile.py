"""Hostile bundles: ZIP bombs, a report that lies, unsafe names, fields nobody checks.

Every bundle here is a real export (``made``) whose ZIP is rewritten with Python's
``zipfile`` only (plus, for a ZIP header that understates a member's size, a few bytes
patched with ``struct``), never with the vault's own code.
"""

from __future__ import annotations

import html
import json
import os
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.support.bundles import (
    audio_name,
    detail,
    failed,
    listing,
    members,
    note_body,
    rerender,
    rewrite,
)
from tests.support.bundles import made as made_bundle
from vault.bundle import MAX_AUDIO_SIZE, verify_bundle
from vault.ledger.checkpoint import add_signature, verifier_key
from vault.sealing import LogSigner

made = made_bundle  # the fixture: one real bundle, exported once for this module

VECTOR = Path(__file__).parent / "vectors" / "bundle-v1.zip"
VECTOR_KEY = "evidence-vault+9b74d488+AamEvUo/APZzykdLMS6/CWNGgb2aQqO1HQZ7BRcbe6AG"
BOMB = 600 * 1024 * 1024  # what the bomb's audio member inflates to


def write_zip(out: Path, files: dict[str, bytes], **methods: int) -> Path:
    """``files`` as a ZIP, deflated unless ``methods`` names another ZIP method."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data, compress_type=methods.get(name, zipfile.ZIP_DEFLATED))
    return out


# --- measuring a verification in its own process -------------------------------------------

_MEASURE = """
import json, resource, sys
from vault.bundle import verify_bundle

def written():
    io = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
    return int(io["wchar"])

before = written()
verdict = verify_bundle(sys.argv[1], sys.argv[2])
after = written()
print(json.dumps({
    "checks": {c.name: c.detail for c in verdict.checks if not c.ok},
    "written": after - before,
    "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
"""


def measure(path: Path, key: str, tmp_path: Path) -> dict:
    """Verify in a fresh process: its failed checks, bytes written, and peak RSS."""
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), key],
        capture_output=True,
        env=env,
        check=True,
        text=True,
    )
    result = json.loads(done.stdout)
    assert not list(scratch.iterdir())  # the scratch copy is gone
    return result


@pytest.fixture(scope="module")
def baseline(made, tmp_path_factory) -> dict:
    """The untouched bundle, measured the same way."""
    result = measure(made.path, made.key, tmp_path_factory.mktemp("baseline"))
    assert result["checks"] == {}
    return result


@pytest.fixture(scope="module")
def bomb(made, tmp_path_factory) -> Path:
    """The bundle with its audio replaced by 600 MiB of zeros, deflated (~600 KiB),
    the manifest left as exported: the bomb of the security review."""
    out = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    files = members(made.path)
    audio = audio_name(made)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            if name != audio:
                zf.writestr(name, data)
        info = zipfile.ZipInfo(audio)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as dst:
            zero = bytes(1024 * 1024)
            for _ in range(BOMB // len(zero)):
                dst.write(zero)
    assert out.stat().st_size < 2 * 1024 * 1024
    return out


def understate(path: Path, name: str, size: int) -> None:
    """Patch the ZIP so that its headers say ``name`` inflates to ``size`` bytes (with the
    CRC of that many zeros): what a forger does to slip past a size check."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
        central = zf.start_dir
    crc = zlib.crc32(bytes(size))
    local = info.header_offset
    assert raw[local : local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", raw, local + 14, crc)
    struct.pack_into("<I", raw, local + 22, size)
    at = central
    while True:
        assert raw[at : at + 4] == b"PK\x01\x02"
        name_len = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46 : at + 46 + name_len] == name.encode():
            break
        extra, comment = struct.unpack_from("<HH", raw, at + 30)
        at += 46 + name_len + extra + comment
    struct.pack_into("<I", raw, at + 16, crc)
    struct.pack_into("<I", raw, at + 24, size)
    path.write_bytes(bytes(raw))


# --- bombs ---------------------------------------------------------------------------------


def test_bomb_is_refused_unread(made, bomb, baseline, tmp_path):
    listed = len(made.other_clip)  # the exported clip has this length too
    audio = audio_name(made)
    result = measure(bomb, made.key, tmp_path)
    print(
        f"bomb: {result['written']} bytes written, peak RSS {result['max_rss']}; "
        f"good bundle: {baseline['written']}, {baseline['max_rss']}"
    )
    refusal = (
        f"{audio} inflates to {BOMB} bytes by its ZIP header, not the {listed} bytes "
        "manifest.json lists: refused unread"
    )
    assert set(result["checks"]) == {"archive", "clip-commitment", "audio", "report"}
    assert result["checks"]["clip-commitment"] == refusal
    assert refusal in result["checks"]["archive"]
    # nothing was inflated: not a byte more written, no more memory than for a good bundle
    assert result["written"] <= baseline["written"]
    assert result["max_rss"] < baseline["max_rss"] + 16 * 1024 * 1024


def test_bomb_with_understating_header_is_refused_at_the_listed_size(
    made, bomb, baseline, tmp_path
):
    listed = len(made.other_clip)
    audio = audio_name(made)
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bomb.read_bytes())
    understate(lying, audio, listed)
    with zipfile.ZipFile(lying) as zf:
        assert zf.getinfo(audio).file_size == listed  # the header now agrees with the manifest
    result = measure(lying, made.key, tmp_path)
    print(f"lying bomb: {result['written']} bytes written, peak RSS {result['max_rss']}")
    refusal = (
        f"{audio} inflates past the {listed} bytes manifest.json lists (its ZIP header "
        f"understates it): refused after {listed} bytes"
    )
    assert set(result["checks"]) == {"archive", "clip-commitment", "audio", "report"}
    assert result["checks"]["clip-commitment"] == refusal
    # at most the listed size was inflated (and written to the scratch copy)
    assert result["written"] <= baseline["written"] + listed
    assert result["max_rss"] < baseline["max_rss"] + 16 * 1024 * 1024


def test_bomb_with_a_manifest_to_match_meets_the_hard_cap(made, bomb, tmp_path):
    files = members(bomb)  # (inflates it here, in the test, once)
    m = json.loads(files["manifest.json"])
    m["files"] = listing(files)
    files["manifest.json"] = json.dumps(m).encode()
    forged = write_zip(tmp_path / "forged.zip", files)
    del files
    verdict = verify_bundle(forged, key=made.key)
    assert detail(verdict, "clip-commitment") == (
        f"manifest.json lists {BOMB} bytes for {audio_name(made)}, more than the "
        f"{MAX_AUDIO_SIZE} bytes a bundle's audio file may have: refused unread"
    )
    # a caller who allows bigger clips still reads nothing the sealed entry does not promise
    verdict = verify_bundle(forged, key=made.key, max_audio_size=BOMB)
    assert detail(verdict, "clip-commitment") == (
        f"manifest.json lists {BOMB} bytes for {audio_name(made)}, but the clip sealed in "
        f"entry.json has {len(made.other_clip)}: refused unread"
    )


def test_other_compression_methods_are_refused_unread(made, tmp_path):
    files = members(made.path)
    m = json.loads(files["manifest.json"])
    m["files"] = listing(files)
    files["manifest.json"] = json.dumps(m).encode()
    audio = audio_name(made)
    out = write_zip(tmp_path / "bz.zip", files, **{audio: zipfile.ZIP_BZIP2})
    verdict = verify_bundle(out, key=made.key)
    assert detail(verdict, "clip-commitment") == (
        f"{audio} uses ZIP compression method 12; a bundle's files are stored or "
        "deflated: refused unread"
    )
    assert failed(verdict) == {"archive", "clip-commitment", "audio", "report"}


def test_manifest_bomb_is_refused_unread(made, tmp_path):
    files = members(made.path)
    files["manifest.json"] = b" " * (8 * 1024 * 1024) + files["manifest.json"]
    verdict = verify_bundle(write_zip(tmp_path / "m.zip", files), key=made.key)
    assert detail(verdict, "archive") == (
        f"manifest.json inflates to {len(files['manifest.json'])} bytes by its ZIP header, "
        "more than the 65536 bytes a bundle's manifest may have: refused unread"
    )
    assert not verdict.consistent


# --- a report that lies --------------------------------------------------------------------


def _lie(files: dict[str, bytes]) -> None:
    """Show another name, product and price in report.html (escaped, as the exporter would)."""
    evidence = json.loads(files["evidence.json"])["evidence"]
    report = files["report.html"].decode()
    name = evidence["identity"]["confirmed"]["name"]
    intent = evidence["intent"]
    for old, new in (
        (name, "Erika Musterfrau"),
        (intent["product"], "Fibre 10 (basic)"),
        (intent["price"], "0.00 EUR/month"),
    ):
        assert html.escape(old, quote=True) in report
        report = report.replace(html.escape(old, quote=True), html.escape(new, quote=True))
    files["report.html"] = report.encode()


def test_edited_report_is_invalid(made, tmp_path):
    verdict = verify_bundle(rewrite(made, tmp_path, _lie), key=made.key)
    assert failed(verdict) == {"report"}
    assert detail(verdict, "report") == (
        "report.html does not show what the bundle's checked members prove: it differs from "
        'the report rendered from them in the section "Who was called"; do not rely on it'
    )
    assert verdict.summary().startswith("INVALID: ") and not verdict.ok
    assert verdict.to_dict()["status"] == "invalid"


def test_report_checked_in_a_format_1_bundle(made, tmp_path):
    # a bundle exported before the report was checked still verifies, report included
    assert "leaf_index" in json.loads(members(VECTOR)["proof.json"])  # the old name of seq
    verdict = verify_bundle(VECTOR, key=VECTOR_KEY)
    assert verdict.ok, verdict.summary()
    assert detail(verdict, "report").startswith("report.html is exactly the report rendered")
    assert [u.member for u in verdict.unchecked] == ["manifest.json", "report.html"]
    # ... and its report cannot be edited either
    files = members(VECTOR)
    _lie(files)
    m = json.loads(files["manifest.json"])
    m["files"] = listing(files)
    files["manifest.json"] = json.dumps(m).encode()
    verdict = verify_bundle(write_zip(tmp_path / "v1.zip", files), key=VECTOR_KEY)
    assert failed(verdict) == {"report"}

    # calling a newer bundle version 1 does not escape the check (proof.json named the
    # position leaf_index then, as version 1 did)
    def as_version_1(files):
        proof = json.loads(files["proof.json"])
        proof["leaf_index"] = proof.pop("seq")
        files["proof.json"] = json.dumps(proof).encode()
        _set_version(files, 1)
        for name in [n for n in files if n.startswith("documents/")]:
            del files[name]  # format 1 had no documents/

    verdict = verify_bundle(rewrite(made, tmp_path, as_version_1), key=made.key)
    assert failed(verdict) == {"report"}


def _set_version(files: dict[str, bytes], version: int) -> None:
    m = json.loads(files["manifest.json"])
    m["version"] = version
    files["manifest.json"] = json.dumps(m).encode()


# --- names, members and fields nobody asked for -------------------------------------------


@pytest.mark.parametrize(
    "name", ["../evidence.json", "/tmp/evidence.json", "audio/../../x.wav", "a\\b", "x\x1b[2J"]
)
def test_unsafe_names_are_refused(made, tmp_path, name):
    def add(files):
        files[name] = b"hello"

    verdict = verify_bundle(rewrite(made, tmp_path, add), key=made.key)
    # (a second file under audio/ also leaves the audio ambiguous: those checks fail too)
    assert "archive" in failed(verdict) and not verdict.consistent
    assert f"{name!a} is not a safe file name" in detail(verdict, "archive")
    assert "\x1b" not in verdict.summary()  # no terminal escape from a hostile name


def test_duplicate_member_is_refused_not_read(made, tmp_path):
    out = tmp_path / "double.zip"
    files = members(made.path)
    lying = dict(files)
    _lie(lying)
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
            zf.writestr("report.html", lying["report.html"])
    verdict = verify_bundle(out, key=made.key)
    assert failed(verdict) == {"archive", "report"}
    assert detail(verdict, "report") == (
        "the ZIP holds more than one file named report.html: refused"
    )


def test_comments_and_unknown_fields_are_findings(made, tmp_path):
    files = members(made.path)
    openings = json.loads(files["openings.json"])
    files["openings.json"] = json.dumps({**openings, "note": "court-approved"}).encode()
    m = json.loads(files["manifest.json"])
    m.update(files=listing(files), certified_by="District Court")
    files["manifest.json"] = json.dumps(m).encode()
    out = write_zip(tmp_path / "commented.zip", files)
    with zipfile.ZipFile(out, "a") as zf:
        zf.comment = b"verified by the court"
    verdict = verify_bundle(out, key=made.key)
    assert failed(verdict) == {"archive", "statements"}
    archive = detail(verdict, "archive")
    assert "the ZIP carries a comment (21 bytes)" in archive
    assert "manifest.json has the unknown field certified_by" in archive
    assert detail(verdict, "statements") == "openings.json has the unknown field note"


def test_unchecked_parts_are_listed(made, tmp_path):
    """What a person reads but no check can cover is named in the verdict."""
    other = LogSigner.generate()
    other_key = verifier_key("witness.example", other.public_key_bytes())

    def cosign_and_ship_other_key(files):
        files["checkpoint.txt"] = add_signature(files["checkpoint.txt"], "witness.example", other)
        files["verifier-key.txt"] = (other_key + "\n").encode()

    out = rewrite(made, tmp_path, lambda f: rerender(cosign_and_ship_other_key, f))
    verdict = verify_bundle(out, key=made.key)
    assert verdict.ok, verdict.summary()
    assert {u.member: u.detail for u in verdict.unchecked} == {
        "manifest.json": "created_at, when the bundle was made (also shown in report.html), "
        "is its maker's statement: nothing seals it",
        "checkpoint.txt": f"1 signature line(s) by other keys than {made.name}+"
        f"{_key_id(made.key)} were not checked: they prove nothing unless you check them "
        "with their keys",
        "verifier-key.txt": "names another key than the pinned one (also shown in "
        "report.html); it was ignored: trust only the key you pinned",
    }
    assert "[UNCHECKED] checkpoint.txt: 1 signature line(s)" in verdict.summary()
    assert note_body(members(out)["checkpoint.txt"]) == note_body(
        members(made.path)["checkpoint.txt"]
    )


def _key_id(key: str) -> str:
    return key.split("+")[1]


# --- ok means pinned -----------------------------------------------------------------------


def test_ok_only_with_the_pinned_key(made):
    unpinned = verify_bundle(made.path).to_dict()
    assert (unpinned["ok"], unpinned["status"], unpinned["consistent"]) == (
        False,
        "unpinned",
        True,
    )
    pinned = verify_bundle(made.path, key=made.key).to_dict()
    assert (pinned["ok"], pinned["status"]) == (True, "valid")
    wrong = verifier_key(made.name, LogSigner.generate().public_key_bytes())
    mismatch = verify_bundle(made.path, key=wrong)
    assert failed(mismatch) == {"checkpoint-signature"}
    assert (mismatch.ok, mismatch.status) == (False, "invalid")
