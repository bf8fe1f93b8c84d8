"""The tiled log (C2SP tlog-tiles): paths, bundles, publishing, mirroring, and tamper findings."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.support.tiles import flip, grow, published_dir, static_http
from tests.support.vaults import CLIENT, make_vault
from vault.ledger.audit import Finding
from vault.ledger.checkpoint import Checkpoint, parse_verifier_key, sign_note
from vault.ledger.merkle import MemoryNodes, leaf_hash, root
from vault.ledger.tiles import (
    Tile,
    TileError,
    audit_tiles,
    decode_bundle,
    encode_bundle,
    entry_bundles,
    hash_tiles,
    parse_tile_path,
    tile_path,
    tile_root,
)
from vault.services.tiles import published_size, tiles_prefix
from vault.tlog import DirectorySource, HttpSource, mirror

T0 = datetime(2026, 11, 22, tzinfo=UTC)


# --- pure: paths, tile sets, bundles ---------------------------------------------------


def test_paths_follow_the_spec() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(3, 0, 5) == "tile/3/000.p/5"
    assert tile_path("entries", 1000, 17) == "tile/entries/x001/000.p/17"
    for path in ("tile/0/x001/x234/067", "tile/entries/000.p/255", "tile/63/999"):
        assert parse_tile_path(path).path == path
    assert parse_tile_path("tile/2/x001/002.p/9") == Tile(2, 1002, 9)


@pytest.mark.parametrize(
    "bad",
    ["tile/0/1", "tile/0/x000/001", "tile/00/001", "tile/64/000", "tile/0/000.p/256",
     "tile/0/000.p/0", "tile/0/000.p/07", "tile/data/000", "tiles/0/000", "tile/0/001/x002"],
)  # fmt: skip
def test_non_canonical_paths_are_refused(bad: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(bad)


def test_the_specs_example_of_a_tree_of_70000() -> None:
    tiles = hash_tiles(70_000)
    level0 = [t for t in tiles if t.level == 0]
    assert sum(t.full for t in level0) == 273 and [t.width for t in level0 if not t.full] == [112]
    assert [(t.index, t.width) for t in tiles if t.level == 1] == [(0, 256), (1, 17)]
    assert [(t.index, t.width) for t in tiles if t.level == 2] == [(0, 1)]
    assert [(t.level, t.width) for t in hash_tiles(256)] == [(0, 256), (1, 1)]


def test_growing_publishes_only_what_changed() -> None:
    assert [t.path for t in hash_tiles(600, 300)] == [
        "tile/0/001",
        "tile/0/002.p/88",
        "tile/1/000.p/2",
    ]
    assert [t.path for t in entry_bundles(600, 512)] == ["tile/entries/002.p/88"]
    assert hash_tiles(300, 300) == [] and entry_bundles(512, 512) == []


def test_bundles_are_uint16_length_prefixed() -> None:
    assert encode_bundle([b"ab", b"", b"x"]) == b"\x00\x02ab\x00\x00\x00\x01x"
    assert decode_bundle(b"\x00\x02ab\x00\x00\x00\x01x") == [b"ab", b"", b"x"]
    with pytest.raises(TileError, match="runs past the end"):
        decode_bundle(b"\x00\x05ab")
    with pytest.raises(TileError, match="inside a length prefix"):
        decode_bundle(b"\x00\x01a\x00")
    with pytest.raises(TileError, match="does not fit"):
        encode_bundle([b"x" * 65536])


def test_a_full_tile_root_is_the_stored_node_eight_levels_up() -> None:
    leaves = [leaf_hash(str(i).encode()) for i in range(512)]
    nodes = MemoryNodes(leaves)
    assert tile_root(leaves[256:512]) == nodes.nodes([(8, 1)])[(8, 1)]
    assert root(nodes, 512) == tile_root([tile_root(leaves[:256]), tile_root(leaves[256:])])


# --- a published log -------------------------------------------------------------------


@pytest.fixture
def local_vault(tmp_path: Path):
    v = make_vault(tmp_path / "vault")
    yield v
    v.close()


def audit(where, vault, trusted=()) -> list[Finding]:
    key = parse_verifier_key(vault.log_key())
    return audit_tiles(where, key, trusted).findings


def test_publish_and_verify_a_local_log(local_vault) -> None:
    grow(local_vault, 300)
    first = (published_dir(local_vault) / "checkpoint").read_bytes()
    grow(local_vault, 300)
    d = published_dir(local_vault)
    files = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    size = local_vault.latest_checkpoint(CLIENT).size
    assert published_size(local_vault.context, CLIENT) == size
    # partial tiles of the first checkpoint made full were dropped, the rest kept
    assert "tile/0/000" in files and "tile/0/001.p/44" not in files
    assert f"tile/0/002.p/{size % 256}" in files and "tile/entries/000" in files
    report = audit_tiles(DirectorySource(d), parse_verifier_key(local_vault.log_key()), [first])
    assert report.findings == [] and report.clean
    assert report.entries == size and report.trusted == 1


def test_publishing_catches_up_after_a_failure(local_vault, monkeypatch) -> None:
    from vault.services import tiles

    grow(local_vault, 10)
    monkeypatch.setattr(tiles, "_put_tile", _failing)
    grow(local_vault, 300)  # the checkpoint is signed; publishing fails and is logged
    assert published_size(local_vault.context, CLIENT) < local_vault.latest_checkpoint(CLIENT).size
    monkeypatch.undo()
    from vault.services.checkpoints import checkpoint_all_due

    checkpoint_all_due(local_vault.context)  # the timer's tick
    size = local_vault.latest_checkpoint(CLIENT).size
    assert published_size(local_vault.context, CLIENT) == size
    assert audit(DirectorySource(published_dir(local_vault)), local_vault) == []


def _failing(*args, **kwargs):
    from vault.errors import StorageError

    raise StorageError("the store is down")


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    www = tmp_path / "www"
    www.mkdir()
    with static_http(www) as url:
        yield url, www


def test_mirror_over_http_then_verify_with_the_cli(local_vault, http_root, tmp_path) -> None:
    grow(local_vault, 520)
    url, www = http_root
    shutil.copytree(published_dir(local_vault), www / "log")
    key = local_vault.log_key()
    runner = CliRunner()
    out = runner.invoke(cli, ["log", "mirror", f"{url}/log", str(tmp_path / "m"), "--key", key])
    assert out.exit_code == 0, out.output
    got = runner.invoke(cli, ["--json", "log", "verify", str(tmp_path / "m"), "--key", key])
    assert got.exit_code == 0, got.output
    assert '"entries": 520' in got.output
    direct = runner.invoke(cli, ["log", "verify", f"{url}/log", "--key", key])
    assert direct.exit_code == 0 and "OK" in direct.output


def test_mirror_refuses_a_rollback(local_vault, http_root, tmp_path) -> None:
    grow(local_vault, 10)
    url, www = http_root
    older = (published_dir(local_vault) / "checkpoint").read_bytes()
    grow(local_vault, 10)
    shutil.copytree(published_dir(local_vault), www / "log")
    key = parse_verifier_key(local_vault.log_key())
    mirror(HttpSource(f"{url}/log"), tmp_path / "m", [key])
    (www / "log" / "checkpoint").write_bytes(older)
    with pytest.raises(Exception, match="rolled back against the mirror"):
        mirror(HttpSource(f"{url}/log"), tmp_path / "m", [key])


# --- tampering with the published tiles ---------------------------------------------


@pytest.fixture
def tampered(local_vault, tmp_path) -> tuple[object, Path, bytes]:
    grow(local_vault, 300)
    older = (published_dir(local_vault) / "checkpoint").read_bytes()
    grow(local_vault, 300)
    copy = tmp_path / "mirror"
    shutil.copytree(published_dir(local_vault), copy)
    for p in copy.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return local_vault, copy, older


def size_of(vault) -> int:
    return vault.latest_checkpoint(CLIENT).size


def test_a_flipped_hash_tile_byte(tampered) -> None:
    vault, d, _ = tampered
    flip(d / "tile/0/001", 32 * 5 + 3)
    assert audit(DirectorySource(d), vault) == [
        Finding(
            "modified", CLIENT, "entry 5 of tile/entries/001 does not hash to hash 5 of tile/0/001",
            seq=261,
        )
    ]  # fmt: skip


def test_a_flipped_byte_in_an_upper_tile(tampered) -> None:
    vault, d, _ = tampered
    flip(d / "tile/1/000.p/2", 40)
    assert audit(DirectorySource(d), vault) == [
        Finding("modified", CLIENT, "hash 1 of tile/1/000.p/2 is not the root of tile/0/001")
    ]


def test_a_flipped_entry_bundle_byte(tampered) -> None:
    vault, d, _ = tampered
    data = (d / "tile/entries/000").read_bytes()
    at = data.index(b"p-7")
    flip(d / "tile/entries/000", at + 2)  # "p-7" becomes "p-6": still valid JSON
    findings = audit(DirectorySource(d), vault)
    leaf = "entry 7 of tile/entries/000 does not hash to hash 7 of tile/0/000"
    assert Finding("modified", CLIENT, leaf, seq=7) in findings
    assert ("modified", "entry 7 does not hash to the value entry 8 chained to", 7) in [
        (f.kind, f.detail, f.seq) for f in findings
    ]
    size = size_of(vault)
    assert len(findings) == 3 and findings[-1] == Finding(
        "forked", CLIENT,
        f"the checkpoint of size {size} signed a different history than the published entries make",
        seq=size - 1,
    )  # fmt: skip


def test_a_dropped_tile(tampered) -> None:
    vault, d, _ = tampered
    (d / "tile/0/001").unlink()
    assert audit(DirectorySource(d), vault) == [Finding("missing", CLIENT, "tile/0/001 is missing")]


def test_a_dropped_entry_bundle(tampered) -> None:
    vault, d, _ = tampered
    size = size_of(vault)
    (d / f"tile/entries/002.p/{size % 256}").unlink()
    findings = audit(DirectorySource(d), vault)
    assert findings == [
        Finding("missing", CLIENT, f"tile/entries/002.p/{size % 256} is missing"),
        Finding(
            "truncated",
            CLIENT,
            f"the log head counts {size} entries but only 512 are stored",
            seq=512,
        ),
    ]


def test_an_older_checkpoint_put_back(tampered) -> None:
    vault, d, older = tampered
    newer = (d / "checkpoint").read_bytes()
    (d / "checkpoint").write_bytes(older)
    old_size = Checkpoint.parse_body(older.split(b"\n\n")[0] + b"\n").size
    # on its own the older log is consistent; against the checkpoint the auditor kept, not
    assert audit(DirectorySource(d), vault) == []
    assert audit(DirectorySource(d), vault, [newer]) == [
        Finding(
            "truncated", CLIENT,
            f"trusted checkpoint covers {size_of(vault)} entries but the published checkpoint "
            f"only {old_size}: the log was rolled back",
            seq=old_size,
        )
    ]  # fmt: skip


def test_a_forked_checkpoint(tampered) -> None:
    vault, d, _ = tampered
    size = size_of(vault)
    ctx = vault.context
    origin = f"{ctx.settings.name}/{CLIENT}"
    forged = Checkpoint(origin, size, bytes(32)).body()
    (d / "checkpoint").write_bytes(sign_note(forged, ctx.settings.name, ctx.keys.signing_key()))
    assert audit(DirectorySource(d), vault) == [
        Finding(
            "forked", CLIENT,
            f"the checkpoint of size {size} signed a different history than the published "
            "entries make",
            seq=size - 1,
        )
    ]  # fmt: skip


def test_an_unsigned_checkpoint(tampered) -> None:
    vault, d, _ = tampered
    flip(d / "checkpoint", 3)
    (finding,) = audit(DirectorySource(d), vault)
    assert finding.kind == "bad-signature" and finding.detail.startswith("checkpoint: ")


# --- SeaweedFS: a real bucket, read anonymously over plain HTTP -------------------------


@pytest.mark.seaweedfs
def test_seaweedfs_publish_anonymous_mirror_and_verify(
    seaweedfs, seaweedfs_bucket, tmp_path
) -> None:
    import json
    import secrets

    import httpx

    from vault.config import S3Settings

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
        grow(v, 300)
        older = tmp_path / "older"
        older.write_bytes(b"".join(v.context.store.get(f"{tiles_prefix(CLIENT)}/checkpoint")))
        grow(v, 300)
        url = f"{seaweedfs.endpoint_url}/{seaweedfs_bucket}/{prefix}/{tiles_prefix(CLIENT)}"
        if not _bucket_has_policy(seaweedfs, seaweedfs_bucket):
            # before the operator opens the prefix, an auditor is told what is wrong
            from vault.errors import StorageError

            with pytest.raises(StorageError, match="gave HTTP 403") as denied:
                HttpSource(url).get("checkpoint")
            assert "anonymous GET" in (denied.value.hint or "")
        # the operator's one statement: anonymous GetObject on the _tlog/ prefix only
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject"],
                    # every test vault's prefix in this shared bucket: tests never race
                    # each other's policy (an operator writes BUCKET/_tlog/*)
                    "Resource": [f"arn:aws:s3:::{seaweedfs_bucket}/*/_tlog/*"],
                }
            ],
        }
        seaweedfs.client().put_bucket_policy(Bucket=seaweedfs_bucket, Policy=json.dumps(policy))
        assert httpx.get(f"{url}/checkpoint").headers["content-type"].startswith("text/plain")
        # nothing else of the vault is readable without an account
        sealed = next(k for k in v.context.store.list(f"{CLIENT}/"))
        denied = httpx.get(f"{seaweedfs.endpoint_url}/{seaweedfs_bucket}/{prefix}/{sealed}")
        assert denied.status_code == 403
        key = parse_verifier_key(v.log_key())
        report = audit_tiles(HttpSource(url), key, [older.read_bytes()])
        assert report.findings == [] and report.entries == 600 and report.trusted == 1
        cp = mirror(HttpSource(url), tmp_path / "m", [key])
        assert audit_tiles(DirectorySource(tmp_path / "m"), key).clean
        # full tiles are locked like checkpoints; partial ones, replaced as the log grows, not
        store = v.context.store
        assert store.lock_state(f"{tiles_prefix(CLIENT)}/tile/0/000").mode == "COMPLIANCE"
        partial = f"{tiles_prefix(CLIENT)}/tile/0/002.p/{cp.size % 256}"
        assert store.lock_state(partial).mode is None
        assert not store.exists(f"{tiles_prefix(CLIENT)}/tile/0/001.p/44")
    finally:
        v.close()


# --- the committed vector ------------------------------------------------------------

VECTOR = Path(__file__).parent / "vectors" / "tlog-tiles"


def test_the_vector_is_what_the_pure_code_writes() -> None:
    from tests.support.tiles import vector_files

    files = vector_files()
    on_disk = {str(p.relative_to(VECTOR)): p.read_bytes() for p in VECTOR.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(files) == [
        "checkpoint", "tile/0/000", "tile/0/001.p/1", "tile/1/000.p/1",
        "tile/entries/000", "tile/entries/001.p/1",
    ]  # fmt: skip
    assert on_disk == files


def test_the_vector_verifies_with_the_published_key() -> None:
    import json

    keys = json.loads((VECTOR.parent / "c2sp_note.json").read_text())["vault"]
    report = audit_tiles(DirectorySource(VECTOR), parse_verifier_key(keys["verifier_key"]))
    assert report.clean and report.entries == 257 and report.origin == keys["origin"]
    # the level-1 partial tile is the root of the full level-0 tile
    level0 = (VECTOR / "tile/0/000").read_bytes()
    hashes = [level0[i : i + 32] for i in range(0, 8192, 32)]
    assert (VECTOR / "tile/1/000.p/1").read_bytes() == tile_root(hashes)
    first = decode_bundle((VECTOR / "tile/entries/000").read_bytes())[0]
    assert leaf_hash(first) == hashes[0] and first.startswith(b'{"body":')


# --- every backend ---------------------------------------------------------------------


class StoreSource:
    """The published log read straight from the vault's store (the same bytes HTTP serves)."""

    def __init__(self, vault) -> None:
        self.store, self.prefix = vault.context.store, tiles_prefix(CLIENT)

    def get(self, path: str) -> bytes | None:
        from vault.errors import ObjectMissing

        try:
            return b"".join(self.store.get(f"{self.prefix}/{path}"))
        except ObjectMissing:
            return None


def test_publish_on_every_backend(vault) -> None:
    grow(vault, 260)
    grow(vault, 10)
    report = audit_tiles(StoreSource(vault), parse_verifier_key(vault.log_key()))
    assert report.findings == [] and report.entries == 270
    # publishing again is a no-op; a second publisher waits for the first and finds it done
    (again,) = vault.publish_tiles(CLIENT)
    assert (again.old_size, again.size, again.written) == (270, 270, 0)


def test_log_publish_catches_up_from_the_cli(local_vault, monkeypatch) -> None:
    import json
    from concurrent.futures import ThreadPoolExecutor

    from vault.services import tiles

    monkeypatch.setattr(tiles, "publish_after_checkpoint", lambda ctx, client: None)
    grow(local_vault, 300)  # signed, never published (as a vault that never ran serve)
    assert published_size(local_vault.context, CLIENT) == 0
    # two publishers at once: one writes, the other finds it done; never an older checkpoint
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda _: tiles.publish(local_vault.context, CLIENT), range(2)))
    assert sorted(p.written for p in done) == [0, 5] and {p.size for p in done} == {300}
    grow(local_vault, 5)
    home = str(local_vault.settings.home)
    out = CliRunner().invoke(cli, ["--vault", home, "--json", "log", "publish"])
    assert out.exit_code == 0, out.output
    by_log = {p["client"]: p for p in json.loads(out.output)["published"]}
    assert by_log[CLIENT] == {
        "client": CLIENT, "old_size": 300, "size": 305, "written": 2, "prefix": "_tlog/telco-de"
    }  # fmt: skip


def test_the_vaults_verify_checks_the_published_checkpoint(local_vault) -> None:
    grow(local_vault, 20)
    assert local_vault.verify().clean
    ctx = local_vault.context
    size = local_vault.latest_checkpoint(CLIENT).size
    forged = Checkpoint(f"{ctx.settings.name}/{CLIENT}", size, bytes(32)).body()
    ctx.store.replace(
        f"{tiles_prefix(CLIENT)}/checkpoint",
        sign_note(forged, ctx.settings.name, ctx.keys.signing_key()),
    )
    findings = [f for f in local_vault.verify().findings if f.client == CLIENT]
    assert findings == [
        Finding(
            "forked", CLIENT,
            f"published checkpoint _tlog/{CLIENT}/checkpoint signed a different tree of {size} "
            "entries than the log holds",
            seq=size - 1,
        )
    ]  # fmt: skip


def test_a_source_refuses_an_object_larger_than_any_tile(tmp_path, monkeypatch) -> None:
    import vault.tlog
    from vault.errors import StorageError

    (tmp_path / "checkpoint").write_bytes(b"x" * 2000)
    monkeypatch.setattr(vault.tlog, "MAX_OBJECT_SIZE", 1000)
    with pytest.raises(StorageError, match="checkpoint of the tiled log is larger than 1000"):
        DirectorySource(tmp_path).get("checkpoint")
    assert DirectorySource(tmp_path).get("tile/0/000") is None


def test_log_verify_says_what_it_cannot_read(tmp_path) -> None:
    key = "evidence-vault.example+0e775907+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"
    (tmp_path / "empty").mkdir()
    got = CliRunner().invoke(cli, ["log", "verify", str(tmp_path / "empty"), "--key", key])
    assert got.exit_code == 4 and "holds no tiled log (no checkpoint file)" in got.output
    got = CliRunner().invoke(cli, ["log", "verify", str(tmp_path / "nothing"), "--key", key])
    assert got.exit_code == 2 and "is neither a file, a directory nor an http(s) URL" in got.output


class CountingSource:
    def __init__(self, inner) -> None:
        self.inner, self.paths = inner, []

    def get(self, path: str) -> bytes | None:
        self.paths.append(path)
        return self.inner.get(path)


def test_a_mirror_fetches_only_what_is_new(local_vault, tmp_path) -> None:
    key = parse_verifier_key(local_vault.log_key())
    grow(local_vault, 600)
    first = CountingSource(DirectorySource(published_dir(local_vault)))
    mirror(first, tmp_path / "m", [key])
    assert len(first.paths) == 1 + 3 + 3 + 1  # checkpoint, bundles, level-0 tiles, level 1
    grow(local_vault, 10)
    again = CountingSource(DirectorySource(published_dir(local_vault)))
    mirror(again, tmp_path / "m", [key])
    # full tiles never change: only the checkpoint and the partial tiles are fetched again
    assert again.paths[0] == "checkpoint"  # then the tiles, fetched in parallel
    assert sorted(again.paths[1:]) == ["tile/0/002.p/98", "tile/1/000.p/2", "tile/entries/002.p/98"]
    assert audit_tiles(DirectorySource(tmp_path / "m"), key).clean


def test_ingest_stands_when_publishing_fails(local_vault, tmp_path, monkeypatch, caplog) -> None:
    from tests.support.vaults import clip, order_meta
    from vault.services import tiles

    def broken(ctx, client):
        raise RuntimeError("the bucket is gone")

    monkeypatch.setattr(tiles, "publish", broken)
    receipt = local_vault.ingest(clip(tmp_path), order_meta(1))
    assert receipt.record_id and local_vault.latest_checkpoint(CLIENT).size >= 1
    assert "publishing the tiles of log telco-de postponed: RuntimeError" in caplog.text
    assert "bucket is gone" not in caplog.text  # kinds only in the log, never messages


def test_a_key_rotation_is_followed_from_the_pinned_key(local_vault, tmp_path) -> None:
    old_key = local_vault.log_key()
    grow(local_vault, 300)
    local_vault.rotate_log_key()  # entry 300, hand-over checkpoint of size 301
    new_key = local_vault.log_key()
    grow(local_vault, 10)
    d = published_dir(local_vault)
    assert (d / "key-handover/301").is_file()
    report = audit_tiles(DirectorySource(d), parse_verifier_key(old_key))
    assert report.findings == [] and report.keys == [old_key, new_key]
    assert audit_tiles(DirectorySource(d), parse_verifier_key(new_key)).clean
    # a mirror made with the old key follows the hand-over too, and copies its note
    cp = mirror(DirectorySource(d), tmp_path / "m", [parse_verifier_key(old_key)])
    assert cp.size == 311 and (tmp_path / "m" / "key-handover/301").is_file()
    assert audit_tiles(DirectorySource(tmp_path / "m"), parse_verifier_key(old_key)).clean
    # without the co-signed hand-over the old key cannot follow: nothing else vouches
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    (copy / "key-handover/301").chmod(0o644)
    (copy / "key-handover/301").unlink()
    assert audit(DirectorySource(copy), local_vault, ()) == []  # pinned to the new key
    report = audit_tiles(DirectorySource(copy), parse_verifier_key(old_key))
    assert report.findings == [
        Finding(
            "missing", CLIENT, "key-handover/301 is missing: the key hand-over cannot be followed"
        ),
        Finding("bad-signature", CLIENT, "checkpoint: no signature by a known key"),
    ]


def test_a_mirror_keeps_its_checkpoint_when_a_bundle_is_missing(tampered, tmp_path) -> None:
    from vault.errors import NotFound

    vault, d, older = tampered
    key = parse_verifier_key(vault.log_key())
    published = (d / "checkpoint").read_bytes()
    (d / "checkpoint").write_bytes(older)
    mirror(DirectorySource(d), tmp_path / "m", [key])
    (d / "checkpoint").write_bytes(published)
    # the full bundle 001 came with the older checkpoint (its partial was gone); 002 is new
    assert (tmp_path / "m" / "tile/entries/001").is_file()
    last = f"tile/entries/002.p/{size_of(vault) % 256}"
    (d / last).unlink()
    with pytest.raises(NotFound, match=f"{last} is missing at the source"):
        mirror(DirectorySource(d), tmp_path / "m", [key])
    assert (tmp_path / "m" / "checkpoint").read_bytes() == older


def test_log_verify_pins_the_origin(local_vault) -> None:
    grow(local_vault, 3)
    key, d = local_vault.log_key(), str(published_dir(local_vault))
    name = local_vault.context.settings.name
    ok = CliRunner().invoke(cli, ["log", "verify", d, "--key", key, "--origin", f"{name}/{CLIENT}"])
    assert ok.exit_code == 0, ok.output
    other = CliRunner().invoke(cli, ["log", "verify", d, "--key", key, "--origin", f"{name}/x"])
    assert other.exit_code == 1
    assert f"[bad-signature] : the log is '{name}/{CLIENT}', not '{name}/x'" in other.output


def _bucket_has_policy(server, bucket: str) -> bool:
    try:
        server.client().get_bucket_policy(Bucket=bucket)
        return True
    except Exception:  # NoSuchBucketPolicy: the session's first tiled-log test
        return False
