"""Interop: the Go team's golang.org/x/mod/sumdb/{note,tlog} verify our tiled log.

tests/support/tlogcheck is built offline from Debian's packages (golang-go and
golang-golang-x-mod-dev: ``GO111MODULE=off GOPATH=/usr/share/gocode``), then checks the
signed checkpoint, every hash tile (``tlog.TileHashReader`` / ``ReadTileData``), every
entry's leaf, inclusion proofs and a consistency proof — from a directory and over HTTP.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.tiles import flip, grow, published_dir, static_http
from tests.support.vaults import CLIENT, make_vault
from vault.ledger.checkpoint import Checkpoint, sign_note

CHECKER = Path(__file__).parent / "support" / "tlogcheck"
GOPATH = Path("/usr/share/gocode")
XMOD = GOPATH / "src" / "golang.org" / "x" / "mod" / "sumdb" / "tlog"


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed (apt-get install golang-go golang-golang-x-mod-dev)")
    if not XMOD.is_dir():
        pytest.skip(
            f"golang.org/x/mod is not in {GOPATH} (apt-get install golang-golang-x-mod-dev)"
        )
    out = tmp_path_factory.mktemp("go")
    env = {
        **os.environ,
        "GO111MODULE": "off",  # GOPATH mode: Debian's x/mod, no network, no go.mod
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out / "cache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    built = subprocess.run(
        [go, "build", "-o", str(out / "tlogcheck"), "."],
        cwd=CHECKER,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    return out / "tlogcheck"


@pytest.fixture
def published(tmp_path: Path):
    v = make_vault(tmp_path / "vault")
    grow(v, 300)
    older = tmp_path / "older"
    older.write_bytes((published_dir(v) / "checkpoint").read_bytes())
    grow(v, 400)
    copy = tmp_path / "log"
    shutil.copytree(published_dir(v), copy)
    for p in copy.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield v, copy, older
    v.close()


def run(checker: Path, key: str, where: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checker), "-vkey", key, *extra, where], capture_output=True, text=True, timeout=120
    )


def test_go_verifies_the_published_log(tlogcheck, published) -> None:
    v, d, older = published
    got = run(tlogcheck, v.log_key(), str(d), "-old", str(older))
    assert got.returncode == 0, got.stdout + got.stderr
    lines = got.stdout.splitlines()
    assert lines[0] == f"ok checkpoint {v.context.settings.name}/{CLIENT} size 700 signed by " + (
        v.context.settings.name
    )
    assert lines[1:] == [
        "ok tree hash from the tiles",
        "ok 4 hash tiles",  # tile/0/000 and 001, tile/0/002.p/188, tile/1/000.p/2
        "ok 700 entries, 700 inclusion proofs",
        "ok consistency 300 -> 700",
    ]


def test_go_reads_over_http(tlogcheck, published) -> None:
    v, d, _ = published
    with static_http(d) as url:
        got = run(tlogcheck, v.log_key(), url, "-every", "50")
    assert got.returncode == 0, got.stdout + got.stderr
    assert "ok 700 entries, 15 inclusion proofs" in got.stdout


def test_go_verifies_a_checkpoint_carrying_witness_cosignatures(tlogcheck, published) -> None:
    """The published checkpoint gains the witnesses' cosignature lines; a verifier that
    knows only the log's key ignores them (C2SP signed-note), as Go's note.Open does."""
    from vault.ledger.cosignature import cosign
    from vault.sealing import LogSigner

    v, d, _ = published
    note = (d / "checkpoint").read_bytes()
    body = note[: note.rfind(b"\n\n") + 1]
    line = cosign(body, "witness.test/w1", LogSigner.generate(), 1_767_225_600)
    (d / "checkpoint").write_bytes(note + line)
    got = run(tlogcheck, v.log_key(), str(d))
    assert got.returncode == 0, got.stdout + got.stderr
    assert "ok 700 entries, 700 inclusion proofs" in got.stdout


def test_go_refuses_a_flipped_hash_tile(tlogcheck, published) -> None:
    v, d, _ = published
    flip(d / "tile/0/001", 7)
    got = run(tlogcheck, v.log_key(), str(d))
    assert got.returncode == 1 and got.stdout.splitlines()[-1].startswith("FAIL: ")


def test_go_refuses_a_flipped_entry(tlogcheck, published) -> None:
    v, d, _ = published
    data = (d / "tile/entries/000").read_bytes()
    flip(d / "tile/entries/000", data.index(b"p-7") + 2)
    got = run(tlogcheck, v.log_key(), str(d))
    assert got.returncode == 1
    assert got.stdout.splitlines()[-1] == "FAIL: entry 7 does not hash to its leaf"


def test_go_refuses_a_forked_checkpoint(tlogcheck, published) -> None:
    v, d, _ = published
    ctx = v.context
    forged = Checkpoint(f"{ctx.settings.name}/{CLIENT}", 700, bytes(32)).body()
    (d / "checkpoint").write_bytes(sign_note(forged, ctx.settings.name, ctx.keys.signing_key()))
    got = run(tlogcheck, v.log_key(), str(d))
    assert got.returncode == 1 and "FAIL: " in got.stdout


def test_go_refuses_another_key(tlogcheck, published, tmp_path) -> None:
    _, d, _ = published
    other = make_vault(tmp_path / "other")
    try:
        got = run(tlogcheck, other.log_key(), str(d))
    finally:
        other.close()
    assert got.returncode == 1 and got.stdout.startswith("FAIL: checkpoint: ")


def test_go_verifies_the_committed_vector(tlogcheck) -> None:
    import json

    vector = Path(__file__).parent / "vectors"
    key = json.loads((vector / "c2sp_note.json").read_text())["vault"]["verifier_key"]
    got = run(tlogcheck, key, str(vector / "tlog-tiles"))
    assert got.returncode == 0, got.stdout
    assert "ok 257 entries, 257 inclusion proofs" in got.stdout


@pytest.mark.seaweedfs
def test_go_reads_a_public_seaweedfs_prefix(tlogcheck, seaweedfs, seaweedfs_bucket, tmp_path):
    import json
    import secrets

    from vault.config import S3Settings
    from vault.services.tiles import tiles_prefix

    prefix = "t-" + secrets.token_hex(6)
    s3 = S3Settings(
        prefix=prefix,
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        region="us-east-1",
        access_key_id=seaweedfs.access_key,
        secret_access_key=seaweedfs.secret_key,
        object_lock=True,
    )
    v = make_vault(tmp_path / "vault", storage="s3", s3=s3)
    try:
        grow(v, 260)
        statement = {
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{seaweedfs_bucket}/*/_tlog/*"],
        }
        policy = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
        seaweedfs.client().put_bucket_policy(Bucket=seaweedfs_bucket, Policy=policy)
        url = f"{seaweedfs.endpoint_url}/{seaweedfs_bucket}/{prefix}/{tiles_prefix(CLIENT)}"
        got = run(tlogcheck, v.log_key(), url, "-every", "13")
    finally:
        v.close()
    assert got.returncode == 0, got.stdout + got.stderr
    assert "ok 260 entries, 21 inclusion proofs" in got.stdout
