"""The object store contract, run on every backend: local directory, moto, SeaweedFS.

moto is an in-process mock (fast, but its Object Lock is partial); SeaweedFS is a real S3
server with enforced Object Lock, so the WORM claims are proven there. The SeaweedFS
server is started once per session (``seaweedfs`` fixture in tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.seaweedfs import SeaweedFS
from vault.errors import (
    BackendUnavailable,
    ConfigError,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    StorageError,
)
from vault.storage import LocalStore, ObjectStore, S3Store, normalise_retain_until
from vault.storage import s3 as s3_module
from vault.storage.local import TEMP_PREFIX

MiB = 1024 * 1024
#: the smallest part size S3 accepts; keeps the multipart tests small and fast
TEST_PART_SIZE = 5 * MiB
#: three parts: 5 MiB, 5 MiB and a short last one
BIG = 2 * TEST_PART_SIZE + 12_345

BACKENDS = ["local", "moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)]
S3_BACKENDS = ["moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)]


# --- fixtures ----------------------------------------------------------------------
# ``seaweedfs`` (one server per session) and ``moto_aws`` come from tests/conftest.py.


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "PART_SIZE", TEST_PART_SIZE)


def _bucket_name() -> str:
    return "vault-test-" + uuid.uuid4().hex[:12]


def _s3_store(request: pytest.FixtureRequest, backend: str, *, object_lock: bool) -> S3Store:
    if backend == "moto":
        request.getfixturevalue("moto_aws")
        return S3Store.ensure_bucket(_bucket_name(), object_lock=object_lock)
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    # endpoint and keys rather than client=, so make_client() is what gets tested
    return S3Store.ensure_bucket(
        _bucket_name(),
        object_lock=object_lock,
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Every backend; S3 buckets are created with Object Lock, as the vault does."""
    if request.param == "local":
        return LocalStore(tmp_path)
    return _s3_store(request, request.param, object_lock=True)


@pytest.fixture(params=S3_BACKENDS)
def locked(request: pytest.FixtureRequest) -> S3Store:
    return _s3_store(request, request.param, object_lock=True)


@pytest.fixture(params=S3_BACKENDS)
def plain(request: pytest.FixtureRequest) -> S3Store:
    """A bucket without Object Lock (and without versioning)."""
    return _s3_store(request, request.param, object_lock=False)


# --- helpers -----------------------------------------------------------------------


def chunked(data: bytes, size: int = 700_001) -> Iterator[bytes]:
    """Odd-sized chunks, so part boundaries never line up with chunk boundaries."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


def failing(data: bytes) -> Iterator[bytes]:
    yield from chunked(data)
    raise RuntimeError("upstream failed")


def read_all(store: ObjectStore, key: str) -> bytes:
    return b"".join(store.get(key))


def pending_uploads(store: ObjectStore) -> list[Any]:
    assert isinstance(store, S3Store)
    return store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def in_a_day() -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


# --- the contract on every backend -------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 100_000, BIG], ids=["empty", "1B", "100kB", "multipart"])
def test_put_get_round_trip(store: ObjectStore, size: int) -> None:
    data = os.urandom(size)
    stored = store.put("c1/camp/2026/11/rec1/clip", chunked(data))

    assert stored.key == "c1/camp/2026/11/rec1/clip"
    assert stored.size == size
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.retain_until is None
    assert read_all(store, stored.key) == data
    head = store.head(stored.key)
    assert head is not None and head.size == size and head.version_id == stored.version_id
    # a backend either knows the hash cheaply or says "" - never something else
    assert head.sha256 in ("", stored.sha256)
    assert store.exists(stored.key)
    if isinstance(store, S3Store):
        assert stored.version_id  # Object Lock buckets are versioned
        raw = store.client.head_object(Bucket=store.bucket, Key=stored.key)
        assert raw["ETag"].endswith('-3"') == (size == BIG)  # multipart only when big
        assert pending_uploads(store) == []


def test_get_streams_in_chunks(store: ObjectStore) -> None:
    data = os.urandom(3 * MiB + 5)
    store.put("k/big", [data])
    chunks = list(store.get("k/big"))
    assert len(chunks) >= 4 and max(len(c) for c in chunks) <= MiB
    assert b"".join(chunks) == data


@pytest.mark.parametrize("size", [10, BIG], ids=["single", "multipart"])
def test_put_never_overwrites(store: ObjectStore, size: int) -> None:
    original = os.urandom(size)
    store.put("k/obj", chunked(original))
    with pytest.raises(ObjectExists):
        store.put("k/obj", chunked(os.urandom(size)))
    assert read_all(store, "k/obj") == original
    if isinstance(store, S3Store):
        assert pending_uploads(store) == []


def test_concurrent_puts_of_one_key_have_one_winner(store: ObjectStore) -> None:
    barrier = threading.Barrier(6)
    won: list[bytes] = []
    lost: list[Exception] = []

    def writer(n: int) -> None:
        body = bytes([n]) * 1000
        barrier.wait()
        try:
            store.put("race/key", [body])
            won.append(body)
        except ObjectExists as exc:
            lost.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 5
    assert read_all(store, "race/key") == won[0]


def test_read_range(store: ObjectStore) -> None:
    data = bytes(range(256)) * 40
    store.put("k/r", [data])
    assert store.read_range("k/r", 0, 10) == data[:10]
    assert store.read_range("k/r", 1000, 300) == data[1000:1300]
    assert store.read_range("k/r", len(data) - 5, 100) == data[-5:]  # short at the end
    assert store.read_range("k/r", len(data), 10) == b""
    assert store.read_range("k/r", len(data) + 10, 10) == b""
    assert store.read_range("k/r", 3, 0) == b""
    with pytest.raises(StorageError):
        store.read_range("k/r", -1, 5)
    with pytest.raises(ObjectMissing):
        store.read_range("k/none", 0, 5)
    with pytest.raises(ObjectMissing):
        store.read_range("k/none", 0, 0)


def test_missing_object(store: ObjectStore) -> None:
    assert store.head("no/such") is None
    assert not store.exists("no/such")
    with pytest.raises(ObjectMissing):
        store.get("no/such")  # raised by the call, before any iteration
    with pytest.raises(ObjectMissing):
        store.delete("no/such")
    with pytest.raises(ObjectMissing):
        store.delete("no/such", all_versions=True)
    with pytest.raises(ObjectMissing):
        store.get_retention("no/such")


def test_list(store: ObjectStore, tmp_path: Path) -> None:
    keys = ["a/b/1", "a/b/2", "a/c", "a-b", "a.x/y", "b/x", "ab"]
    for k in keys:
        store.put(k, [k.encode()])
    if isinstance(store, LocalStore):
        # what a crash mid-put leaves behind
        (tmp_path / "a" / "b" / (TEMP_PREFIX + "abc123")).write_bytes(b"partial")
        (tmp_path / (TEMP_PREFIX + "top")).write_bytes(b"partial")

    assert list(store.list()) == sorted(keys)
    assert list(store.list("a/")) == ["a/b/1", "a/b/2", "a/c"]
    assert list(store.list("a")) == ["a-b", "a.x/y", "a/b/1", "a/b/2", "a/c", "ab"]
    assert list(store.list("a/b")) == ["a/b/1", "a/b/2"]
    assert list(store.list("a/b/")) == ["a/b/1", "a/b/2"]
    assert list(store.list("a/b/1")) == ["a/b/1"]
    assert list(store.list("zzz/")) == []
    with pytest.raises(StorageError):
        list(store.list("../"))


def test_delete(store: ObjectStore) -> None:
    store.put("d/one", [b"1"])
    store.put("d/two", [b"2"])
    store.delete("d/one")
    assert not store.exists("d/one")
    assert list(store.list("d/")) == ["d/two"]
    with pytest.raises(ObjectMissing):
        store.get("d/one")
    with pytest.raises(ObjectMissing):
        store.delete("d/one")

    store.delete("d/two", all_versions=True)
    assert list(store.list("d/")) == []
    if isinstance(store, S3Store):  # no version and no delete marker left
        versions = store.client.list_object_versions(Bucket=store.bucket, Prefix="d/two")
        assert not versions.get("Versions") and not versions.get("DeleteMarkers")


BAD_KEYS = [
    "../x",
    "/abs",
    "a//b",
    "a/../b",
    "a/./b",
    "",
    "a/",
    ".hidden",
    "a/.tmp-x",
    "a b",
    "a\\b",
    "ä",
    "a\x00b",
    "x" * 1025,
    "s/" + "y" * 256,
]


def test_invalid_keys_are_rejected(store: ObjectStore, tmp_path: Path) -> None:
    # one test per backend, not per key: a bucket per key would make this slow
    for key in BAD_KEYS:
        with pytest.raises(StorageError, match="key"):
            store.put(key, [b"x"])
        for call in (store.get, store.head, store.exists, store.delete, store.get_retention):
            with pytest.raises(StorageError, match="key"):
                call(key)
        with pytest.raises(StorageError, match="key"):
            store.read_range(key, 0, 1)
        with pytest.raises(StorageError, match="key"):
            store.set_legal_hold(key, True)
    assert list(store.list()) == []
    if isinstance(store, LocalStore):  # nothing written, in the root or beside it
        assert files_under(tmp_path) == []
        assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("size", [10, BIG], ids=["single", "multipart"])
def test_failing_source_leaves_no_object(store: ObjectStore, size: int, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="upstream failed"):
        store.put("f/obj", failing(os.urandom(size)))
    assert not store.exists("f/obj")
    assert list(store.list()) == []
    if isinstance(store, LocalStore):
        assert files_under(tmp_path) == []  # not even a temp file
    else:
        assert pending_uploads(store) == []
    store.put("f/obj", [b"second try"])  # the key is still free
    assert read_all(store, "f/obj") == b"second try"


def test_object_lock_support(store: ObjectStore) -> None:
    assert store.supports_object_lock == isinstance(store, S3Store)
    assert store.name == ("s3" if isinstance(store, S3Store) else "local")


def test_naive_retain_until_is_rejected(store: ObjectStore) -> None:
    with pytest.raises(StorageError, match="timezone-aware"):
        store.put("n/obj", [b"x"], retain_until=datetime(2099, 1, 1))
    assert not store.exists("n/obj")


# --- local directory specifics -----------------------------------------------------


def test_local_files_are_read_only_and_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    root.mkdir()
    store = LocalStore(root)
    stored = store.put("c/x/clip", [b"abc"], retain_until=in_a_day())
    path = root / "c" / "x" / "clip"
    assert path.read_bytes() == b"abc"
    assert path.stat().st_mode & 0o777 == 0o444
    assert stored.retain_until is None  # not enforced here, so not claimed
    assert store.get_retention("c/x/clip") is None
    assert files_under(tmp_path) == ["objects/c/x/clip"]


def test_local_legal_hold_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("k", [b"1"])
    with pytest.raises(StorageError, match="legal holds need an S3 bucket with Object Lock"):
        store.set_legal_hold("k", True)
    with pytest.raises(ObjectMissing):
        store.set_legal_hold("nope", True)


def test_local_object_and_prefix_clash(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a/b", [b"1"])
    with pytest.raises(StorageError, match="prefix") as err:
        store.put("a/b/c", [b"2"])
    assert not isinstance(err.value, ObjectExists)
    store.put("x/y/z", [b"3"])
    with pytest.raises(StorageError, match="prefix") as err:
        store.put("x/y", [b"4"])
    assert not isinstance(err.value, ObjectExists)


def test_local_reads_only_regular_files(tmp_path: Path) -> None:
    """A symlink, a directory or a FIFO planted at an object's key is no object: each
    read says missing at once (a FIFO must not block the reader)."""
    store = LocalStore(tmp_path)
    store.put("c/real", [b"evidence"])
    (tmp_path / "c" / "link").symlink_to(tmp_path / "c" / "real")
    (tmp_path / "c" / "dir").mkdir()
    os.mkfifo(tmp_path / "c" / "fifo")
    for key in ("c/link", "c/dir", "c/fifo"):
        with pytest.raises(ObjectMissing):
            list(store.get(key))
        with pytest.raises(ObjectMissing):
            store.read_range(key, 0, 1)
    assert b"".join(store.get("c/real")) == b"evidence"


def test_local_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        LocalStore(tmp_path / "missing")


# --- S3: Object Lock (WORM) --------------------------------------------------------


def _sent_headers(store: S3Store, name: str) -> dict[str, list[str | None]]:
    """The value of header ``name`` each operation's requests went out with, as sent."""
    sent: dict[str, list[str | None]] = {}

    def record(request: Any, event_name: str, **_: Any) -> None:
        value = request.headers.get(name)
        value = value.decode() if isinstance(value, bytes) else value
        sent.setdefault(event_name.rsplit(".", 1)[-1], []).append(value)

    store.client.meta.events.register("before-send.s3", record)
    return sent


@pytest.mark.seaweedfs
def test_object_bodies_are_signed_through_their_checksum(request: pytest.FixtureRequest) -> None:
    """PutObject and UploadPart carrying our SHA-256 go UNSIGNED-PAYLOAD (the signed
    x-amz-checksum-sha256 covers the body) and without Expect: 100-continue; every other
    request keeps its payload hash."""
    store = _s3_store(request, "seaweedfs", object_lock=True)
    sent = _sent_headers(store, "X-Amz-Content-SHA256")
    expect = _sent_headers(store, "Expect")
    store.put("signed/single", [b"x" * 1000], retain_until=in_a_day())
    big = os.urandom(BIG)
    store.put("signed/multipart", chunked(big))
    assert sent["PutObject"] == ["UNSIGNED-PAYLOAD"]
    assert sent["UploadPart"] == ["UNSIGNED-PAYLOAD"] * 3
    completion = sent["CompleteMultipartUpload"]
    assert len(completion) == 1 and len(completion[0] or "") == 64  # the XML body is hashed
    assert read_all(store, "signed/multipart") == big
    # and sent at once, without waiting for a "100 Continue"
    assert expect["PutObject"] == [None] and expect["UploadPart"] == [None] * 3
    # a put without our checksum (not one S3Store makes) is hashed as before
    store.client.put_object(Bucket=store.bucket, Key="signed/raw", Body=b"y")
    assert sent["PutObject"][-1] == hashlib.sha256(b"y").hexdigest()


@pytest.mark.seaweedfs
@pytest.mark.parametrize("size", [1000, BIG], ids=["single", "multipart"])
def test_a_body_altered_in_transit_is_refused(request: pytest.FixtureRequest, size: int) -> None:
    """A byte flipped after signing (on the wire): the server checks the signed checksum
    and answers BadDigest; nothing is stored under the key."""
    store = _s3_store(request, "seaweedfs", object_lock=True)

    def flip_a_byte(request: Any, **_: Any) -> None:
        body = request.body
        data = bytearray(body.read() if hasattr(body, "read") else body)
        data[len(data) // 2] ^= 0x01
        request.body = bytes(data)

    for operation in ("PutObject", "UploadPart"):
        store.client.meta.events.register(f"before-send.s3.{operation}", flip_a_byte)
    with pytest.raises(StorageError, match="BadDigest"):
        store.put("altered/clip", chunked(os.urandom(size)), retain_until=in_a_day())
    with pytest.raises(ObjectMissing):
        read_all(store, "altered/clip")


@pytest.mark.parametrize("size", [10, BIG], ids=["single", "multipart"])
def test_retention_blocks_delete(locked: S3Store, size: int) -> None:
    asked = in_a_day().replace(microsecond=123_456)
    data = os.urandom(size)
    stored = locked.put("w/obj", chunked(data), retain_until=asked)

    expected = normalise_retain_until(asked)
    assert expected > asked  # rounded up, never shorter than asked
    assert stored.retain_until == expected
    assert locked.get_retention("w/obj") == expected
    head = locked.head("w/obj")
    assert head is not None and head.retain_until == expected
    with pytest.raises(ObjectLocked):
        locked.delete("w/obj", all_versions=True)
    assert read_all(locked, "w/obj") == data  # still there, still the same


def test_legal_hold_blocks_delete(locked: S3Store) -> None:
    locked.put("h/obj", [b"disputed"])
    locked.set_legal_hold("h/obj", True)
    with pytest.raises(ObjectLocked):
        locked.delete("h/obj", all_versions=True)
    assert read_all(locked, "h/obj") == b"disputed"

    locked.set_legal_hold("h/obj", False)
    locked.delete("h/obj", all_versions=True)
    assert not locked.exists("h/obj")
    with pytest.raises(ObjectMissing):
        locked.set_legal_hold("h/obj", True)


def test_delete_without_versions_only_hides_a_locked_object(locked: S3Store) -> None:
    stored = locked.put("m/obj", [b"kept"], retain_until=in_a_day())
    locked.delete("m/obj")  # a delete marker: allowed, the locked version stays
    assert not locked.exists("m/obj")
    raw = locked.client.get_object(Bucket=locked.bucket, Key="m/obj", VersionId=stored.version_id)
    assert raw["Body"].read() == b"kept"


def test_plain_bucket_ignores_retention(plain: S3Store) -> None:
    assert not plain.supports_object_lock
    stored = plain.put("p/obj", [b"x"], retain_until=in_a_day())
    assert stored.retain_until is None
    assert plain.get_retention("p/obj") is None
    with pytest.raises(StorageError, match="legal holds need an S3 bucket with Object Lock"):
        plain.set_legal_hold("p/obj", True)
    plain.delete("p/obj", all_versions=True)
    assert not plain.exists("p/obj")


def test_ensure_bucket_refuses_to_drop_object_lock(plain: S3Store) -> None:
    with pytest.raises(ConfigError, match="without Object Lock"):
        S3Store.ensure_bucket(plain.bucket, object_lock=True, client=plain.client)
    # asking for what the bucket has is fine, and idempotent
    again = S3Store.ensure_bucket(plain.bucket, object_lock=False, client=plain.client)
    assert not again.supports_object_lock


# --- S3: prefix, errors, retried writes --------------------------------------------


def test_prefix_keeps_keys_apart(locked: S3Store) -> None:
    inner = S3Store(locked.bucket, client=locked.client, prefix="tenant-a")
    inner.put("x/1", [b"1"])
    assert list(inner.list()) == ["x/1"]
    assert list(locked.list()) == ["tenant-a/x/1"]
    assert read_all(locked, "tenant-a/x/1") == b"1"


def test_unreachable_endpoint_is_transient_and_names_no_endpoint_nor_secret() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="very-secret-key",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    store = S3Store("bucket", endpoint_url=url, client=client)
    with pytest.raises(BackendUnavailable) as err:
        store.put("k", [b"x"])
    # the message reaches API clients: no internal address, no secret
    text = str(err.value)
    assert f"{port}" not in text and "127.0.0.1" not in text and "very-secret-key" not in text
    assert err.value.backend == "object store" and err.value.http_status == 503


def test_wrong_credentials_are_reported(seaweedfs: SeaweedFS) -> None:
    store = S3Store(
        "anything",
        endpoint_url=seaweedfs.endpoint_url,
        aws_access_key_id=seaweedfs.access_key,
        aws_secret_access_key="wrong",
    )
    with pytest.raises(StorageError, match="access denied") as err:
        store.head("k")  # a HEAD answer has no error code, only 403
    assert "wrong" not in str(err.value)
    with pytest.raises(StorageError, match="rejected the credentials") as err:
        list(store.list())
    assert "wrong" not in str(err.value)


def _lose_first_response(store: S3Store, operation: str) -> None:
    """Make ``operation`` succeed on the server, then answer 412 as a retry would."""
    real = getattr(store.client, operation)

    def flaky(**kwargs: Any) -> Any:
        real(**kwargs)
        raise ClientError(
            {
                "Error": {"Code": "PreconditionFailed", "Message": "retry saw its own write"},
                "ResponseMetadata": {"HTTPStatusCode": 412, "RetryAttempts": 1},
            },
            operation,
        )

    store.client.__dict__[operation] = flaky  # instance attribute shadows the method


@pytest.mark.seaweedfs
def test_retried_single_put_recognises_its_own_write(seaweedfs: SeaweedFS) -> None:
    # needs the server's stored SHA-256 checksum, which moto does not keep
    store = S3Store.ensure_bucket(_bucket_name(), object_lock=True, client=seaweedfs.client())
    _lose_first_response(store, "put_object")
    stored = store.put("r/obj", [b"payload"])
    assert stored.sha256 == hashlib.sha256(b"payload").hexdigest()
    assert stored.version_id
    head = store.head("r/obj")  # SeaweedFS keeps the SHA-256 checksum we sent
    assert head is not None and head.sha256 == stored.sha256
    with pytest.raises(ObjectExists):  # and a different body is still refused
        store.put("r/obj", [b"other"])


def test_retried_multipart_put_recognises_its_own_write(locked: S3Store) -> None:
    _lose_first_response(locked, "complete_multipart_upload")
    data = os.urandom(BIG)
    stored = locked.put("r/big", chunked(data))
    assert stored.size == BIG and read_all(locked, "r/big") == data
    assert pending_uploads(locked) == []


def test_replace_swaps_a_small_mutable_object(store: ObjectStore) -> None:
    # the one overwrite the vault does: a tiled log's published checkpoint
    store.replace("pub/checkpoint", b"size 1\n", content_type="text/plain; charset=utf-8")
    store.replace("pub/checkpoint", b"size 2\n")
    assert b"".join(store.get("pub/checkpoint")) == b"size 2\n"
    assert list(store.list("pub/")) == ["pub/checkpoint"]
    # put still never overwrites what replace wrote
    with pytest.raises(ObjectExists):
        store.put("pub/checkpoint", [b"x"])
