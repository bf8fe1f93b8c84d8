"""Object versions: the vault pins the version it wrote, whatever is stacked on the key.

On a versioned (Object Lock) bucket anyone allowed to PutObject can stack a new version on
a key the vault wrote, and a plain DELETE adds a delete marker. These tests make both
happen with raw boto3 calls - as an attacker with bucket write access would - and check
that every call given the version id ``put`` returned still reads and acts on the
original version, and that ``versions`` shows what was stacked.

Run on moto and on SeaweedFS (real Object Lock). moto answers GetObjectRetention with
HTTP 500, so there the raw retention of a version is read from its HEAD instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.test_storage import BIG, TEST_PART_SIZE, _s3_store, chunked
from vault.errors import ObjectLocked, ObjectMissing, StorageError
from vault.storage import (
    LocalStore,
    LockState,
    ObjectStore,
    ObjectVersion,
    S3Store,
    normalise_retain_until,
)
from vault.storage import s3 as s3_module

BACKENDS = ["local", "moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)]
S3_BACKENDS = ["moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)]

KEY = "c1/camp/2026/11/rec1/clip"
ORIGINAL = b"sealed ciphertext"
JUNK = b"stacked by someone else"


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "PART_SIZE", TEST_PART_SIZE)


@pytest.fixture(params=S3_BACKENDS)
def locked(request: pytest.FixtureRequest) -> S3Store:
    return _s3_store(request, request.param, object_lock=True)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path)
    return _s3_store(request, request.param, object_lock=True)


# --- helpers -----------------------------------------------------------------------


def in_days(n: int) -> datetime:
    return normalise_retain_until(datetime.now(UTC) + timedelta(days=n))


def read(store: ObjectStore, key: str, version_id: str | None = None) -> bytes:
    return b"".join(store.get(key, version_id=version_id))


def stack(store: S3Store, key: str, body: bytes) -> str:
    """A new version on ``key`` written around the vault; its version id."""
    version_id = store.client.put_object(Bucket=store.bucket, Key=key, Body=body)["VersionId"]
    assert version_id
    return version_id


def mark_deleted(store: S3Store, key: str) -> str:
    """A plain DELETE around the vault: a delete marker; its version id."""
    resp = store.client.delete_object(Bucket=store.bucket, Key=key)
    assert resp.get("DeleteMarker") is True
    return resp["VersionId"]


def raw_hold(store: S3Store, key: str, version_id: str) -> bool:
    try:
        resp = store.client.get_object_legal_hold(
            Bucket=store.bucket, Key=key, VersionId=version_id
        )
    except ClientError as exc:
        # SeaweedFS: a version that never had a hold has "no legal hold configuration"
        assert exc.response["Error"]["Code"] == "NoSuchObjectLegalHold"
        return False
    return resp["LegalHold"].get("Status") == "ON"


def raw_retention(store: S3Store, key: str, version_id: str) -> datetime | None:
    if "amazonaws.com" in store.endpoint:  # moto: GetObjectRetention answers 500
        head = store.client.head_object(Bucket=store.bucket, Key=key, VersionId=version_id)
        until = head.get("ObjectLockRetainUntilDate")
        return until.astimezone(UTC) if until else None
    try:
        resp = store.client.get_object_retention(Bucket=store.bucket, Key=key, VersionId=version_id)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ObjectLockConfigurationNotFoundError"
        return None
    return resp["Retention"]["RetainUntilDate"].astimezone(UTC)


def of_key(versions: Iterator[ObjectVersion], key: str) -> dict[str | None, ObjectVersion]:
    return {v.version_id: v for v in versions if v.key == key}


# --- put returns the version id ----------------------------------------------------


@pytest.mark.parametrize("size", [10, BIG], ids=["single", "multipart"])
def test_put_returns_the_version_id(locked: S3Store, size: int) -> None:
    stored = locked.put(KEY, chunked(os.urandom(size)), retain_until=in_days(1))
    assert stored.version_id
    raw = locked.client.list_object_versions(Bucket=locked.bucket, Prefix=KEY)["Versions"]
    assert [v["VersionId"] for v in raw] == [stored.version_id]
    head = locked.head(KEY, version_id=stored.version_id)
    assert head is not None and head.version_id == stored.version_id and head.size == size


# --- a stacked version does not replace the pinned one ------------------------------


def test_reads_by_version_ignore_a_stacked_version(locked: S3Store) -> None:
    until = in_days(1)
    v1 = locked.put(KEY, [ORIGINAL], retain_until=until).version_id
    assert v1
    v2 = stack(locked, KEY, JUNK)

    assert read(locked, KEY) == JUNK  # what a read by key alone now gets
    assert read(locked, KEY, v1) == ORIGINAL
    assert read(locked, KEY, v2) == JUNK
    assert locked.read_range(KEY, 2, 4, version_id=v1) == ORIGINAL[2:6]
    assert locked.read_range(KEY, 0, 0, version_id=v1) == b""
    assert locked.read_range(KEY, len(ORIGINAL), 5, version_id=v1) == b""

    pinned = locked.head(KEY, version_id=v1)
    assert pinned is not None
    assert (pinned.version_id, pinned.size, pinned.retain_until) == (v1, len(ORIGINAL), until)
    latest = locked.head(KEY)
    assert latest is not None and latest.version_id == v2 and latest.retain_until is None
    assert locked.exists(KEY, version_id=v1)
    assert locked.get_retention(KEY, version_id=v1) == until
    assert locked.get_retention(KEY, version_id=v2) is None


def test_a_delete_marker_hides_the_key_but_not_the_version(locked: S3Store) -> None:
    v1 = locked.put(KEY, [ORIGINAL], retain_until=in_days(1)).version_id
    assert v1
    v2 = stack(locked, KEY, JUNK)
    marker = mark_deleted(locked, KEY)
    locked.put("c1/other", [b"x"])

    # by key alone, the object looks gone
    assert not locked.exists(KEY)
    with pytest.raises(ObjectMissing):
        locked.get(KEY)
    assert list(locked.list("c1/")) == ["c1/other"]  # list() hides a deleted key
    # by version, it is still there
    assert read(locked, KEY, v1) == ORIGINAL
    assert locked.read_range(KEY, 0, 6, version_id=v1) == ORIGINAL[:6]

    found = list(locked.versions("c1/"))
    assert [v.key for v in found] == sorted(v.key for v in found)
    versions = of_key(iter(found), KEY)
    assert set(versions) == {v1, v2, marker}
    assert [v for v in versions.values() if v.is_latest] == [versions[marker]]
    assert versions[marker].is_delete_marker and versions[marker].size == 0
    assert not versions[v1].is_delete_marker and versions[v1].size == len(ORIGINAL)
    assert not versions[v2].is_delete_marker and versions[v2].size == len(JUNK)
    for v in found:
        assert v.last_modified is not None and v.last_modified.tzinfo == UTC
    other = of_key(iter(found), "c1/other")
    assert len(other) == 1 and next(iter(other.values())).is_latest

    # a delete marker is not an object version
    assert locked.head(KEY, version_id=marker) is None
    for call in (
        lambda: locked.get(KEY, version_id=marker),
        lambda: locked.read_range(KEY, 0, 1, version_id=marker),
        lambda: locked.lock_state(KEY, version_id=marker),
        lambda: locked.get_retention(KEY, version_id=marker),
        lambda: locked.set_legal_hold(KEY, True, version_id=marker),
    ):
        with pytest.raises(ObjectMissing):
            call()

    # ... but it can be deleted by its id, which shows the key again
    locked.delete(KEY, version_id=marker)
    assert read(locked, KEY) == JUNK
    assert set(of_key(locked.versions(KEY), KEY)) == {v1, v2}


def test_versions_walks_every_page(locked: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # Three entries a page, newest first within a key:
    #   [a marker, a junk, a v1]  [b marker, b v1, c junk]  [c v1]
    # so a page holds one key's delete marker next to the next key's version (S3 lists
    # them in two lists per page) and one key's versions straddle two pages.
    pinned = {k: locked.put(k, [k.encode()]).version_id for k in ("p/a", "p/b", "p/c")}
    stack(locked, "p/a", JUNK)
    mark_deleted(locked, "p/a")
    mark_deleted(locked, "p/b")
    stack(locked, "p/c", JUNK)
    real = locked.client.get_paginator
    pages: list[int] = []

    def small_pages(name: str) -> Any:
        paginator = real(name)
        paginate = paginator.paginate

        def paginate_small(**kwargs: Any) -> Iterator[dict[str, Any]]:
            for page in paginate(**kwargs, PaginationConfig={"PageSize": 3}):
                pages.append(1)
                yield page

        paginator.paginate = paginate_small
        return paginator

    monkeypatch.setitem(locked.client.__dict__, "get_paginator", small_pages)
    found = list(locked.versions("p/"))
    assert len(pages) == 3
    assert [v.key for v in found] == ["p/a"] * 3 + ["p/b"] * 2 + ["p/c"] * 2
    for key, version_id in pinned.items():
        assert version_id in of_key(iter(found), key)
    assert [v.key for v in found if v.is_delete_marker] == ["p/a", "p/b"]
    latest = {v.key: v.is_delete_marker for v in found if v.is_latest}
    assert latest == {"p/a": True, "p/b": True, "p/c": False}


# --- holds and retention act on the named version only -----------------------------


def test_hold_and_retention_act_on_the_named_version(locked: S3Store) -> None:
    until = in_days(1)
    v1 = locked.put(KEY, [ORIGINAL], retain_until=until).version_id
    assert v1
    v2 = stack(locked, KEY, JUNK)

    assert locked.lock_state(KEY, version_id=v1) == LockState("COMPLIANCE", until, False)
    assert locked.lock_state(KEY, version_id=v2) == LockState(None, None, False)

    locked.set_legal_hold(KEY, True, version_id=v1)
    assert raw_hold(locked, KEY, v1) and not raw_hold(locked, KEY, v2)

    later = in_days(3)
    locked.extend_retention(KEY, later, version_id=v1)
    assert raw_retention(locked, KEY, v1) == later
    assert raw_retention(locked, KEY, v2) is None  # the junk was not locked for years

    assert locked.lock_state(KEY, version_id=v1) == LockState("COMPLIANCE", later, True)
    assert locked.lock_state(KEY) == LockState(None, None, False)  # the latest: v2
    locked.extend_retention(KEY, until, version_id=v1)  # earlier: nothing to do
    assert raw_retention(locked, KEY, v1) == later

    locked.set_legal_hold(KEY, False, version_id=v1)
    assert not raw_hold(locked, KEY, v1)
    assert locked.lock_state(KEY, version_id=v1) == LockState("COMPLIANCE", later, False)


def test_deleting_a_version_by_id(locked: S3Store) -> None:
    v1 = locked.put(KEY, [ORIGINAL], retain_until=in_days(1)).version_id
    assert v1
    v2 = stack(locked, KEY, JUNK)

    with pytest.raises(ObjectLocked):
        locked.delete(KEY, version_id=v1)
    assert read(locked, KEY, v1) == ORIGINAL

    locked.delete(KEY, version_id=v2)  # the unlocked junk goes for good
    assert set(of_key(locked.versions(KEY), KEY)) == {v1}
    assert read(locked, KEY) == ORIGINAL  # the pinned version is the latest again
    with pytest.raises(ObjectMissing):
        locked.delete(KEY, version_id=v2)


def test_held_version_refuses_delete_by_id(locked: S3Store) -> None:
    v1 = locked.put(KEY, [ORIGINAL]).version_id
    assert v1
    stack(locked, KEY, JUNK)
    locked.set_legal_hold(KEY, True, version_id=v1)
    with pytest.raises(ObjectLocked):
        locked.delete(KEY, version_id=v1)
    locked.set_legal_hold(KEY, False, version_id=v1)
    locked.delete(KEY, version_id=v1)
    assert not locked.exists(KEY, version_id=v1)


def test_a_version_of_another_key_is_missing(locked: S3Store) -> None:
    locked.put(KEY, [ORIGINAL])
    elsewhere = locked.put("c1/elsewhere", [b"x"]).version_id
    assert elsewhere
    assert locked.head(KEY, version_id=elsewhere) is None
    assert not locked.exists(KEY, version_id=elsewhere)
    for call in (
        lambda: locked.get(KEY, version_id=elsewhere),
        lambda: locked.read_range(KEY, 0, 1, version_id=elsewhere),
        lambda: locked.read_range(KEY, 0, 0, version_id=elsewhere),
        lambda: locked.get_retention(KEY, version_id=elsewhere),
        lambda: locked.lock_state(KEY, version_id=elsewhere),
        lambda: locked.set_legal_hold(KEY, True, version_id=elsewhere),
        lambda: locked.extend_retention(KEY, in_days(2), version_id=elsewhere),
        lambda: locked.delete(KEY, version_id=elsewhere),
    ):
        with pytest.raises(ObjectMissing, match="version"):
            call()
    assert read(locked, "c1/elsewhere") == b"x"  # untouched


# --- every backend -----------------------------------------------------------------


def test_versions_lists_what_put_returned(store: ObjectStore) -> None:
    stored = {k: store.put(k, [k.encode()]) for k in ("v/b", "v/a/1", "v/a-2", "w/x")}
    found = list(store.versions("v/"))
    assert [v.key for v in found] == ["v/a-2", "v/a/1", "v/b"]
    for v in found:
        assert v.version_id == stored[v.key].version_id
        assert v.is_latest and not v.is_delete_marker
        assert v.size == len(v.key)
        assert v.last_modified is not None and v.last_modified.tzinfo == UTC
    assert [v.key for v in store.versions()] == sorted(stored)
    assert list(store.versions("zzz/")) == []
    with pytest.raises(StorageError):
        list(store.versions("../"))


def test_lock_state_without_a_lock(store: ObjectStore) -> None:
    stored = store.put(KEY, [ORIGINAL])
    assert store.lock_state(KEY) == LockState(None, None, False)
    assert store.lock_state(KEY, version_id=stored.version_id) == LockState(None, None, False)
    with pytest.raises(ObjectMissing):
        store.lock_state("no/such")
    with pytest.raises(StorageError, match="key"):
        store.lock_state("../x")


def test_delete_takes_a_version_or_all_versions_not_both(store: ObjectStore) -> None:
    stored = store.put(KEY, [ORIGINAL])
    with pytest.raises(StorageError, match="not both"):
        store.delete(KEY, version_id=stored.version_id or "v", all_versions=True)
    assert read(store, KEY) == ORIGINAL


def test_versions_are_relative_to_the_store_prefix(locked: S3Store) -> None:
    inner = S3Store(locked.bucket, client=locked.client, prefix="tenant-a")
    v1 = inner.put("x/1", [b"1"]).version_id
    assert [(v.key, v.version_id) for v in inner.versions()] == [("x/1", v1)]
    assert [v.key for v in locked.versions()] == ["tenant-a/x/1"]
    assert read(inner, "x/1", v1) == b"1"


def test_local_store_has_no_versions(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    stored = store.put(KEY, [ORIGINAL])
    assert stored.version_id is None
    assert read(store, KEY, None) == ORIGINAL
    assert store.lock_state(KEY) == LockState(None, None, False)
    for call in (
        lambda: store.get(KEY, version_id="1"),
        lambda: store.read_range(KEY, 0, 1, version_id="1"),
        lambda: store.get_retention(KEY, version_id="1"),
        lambda: store.lock_state(KEY, version_id="1"),
        lambda: store.set_legal_hold(KEY, True, version_id="1"),
        lambda: store.extend_retention(KEY, in_days(2), version_id="1"),
        lambda: store.delete(KEY, version_id="1"),
    ):
        with pytest.raises(ObjectMissing, match="no versions"):
            call()
    assert store.head(KEY, version_id="1") is None
    assert read(store, KEY) == ORIGINAL  # nothing was deleted
    store.delete(KEY, version_id=None)
    assert not store.exists(KEY)
