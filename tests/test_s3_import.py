"""``evidence-vault import s3://bucket/prefix``: pairs from a bucket, each stored once.

Run against moto and against a real S3 server (SeaweedFS on loopback), through the CLI.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault.facade import Vault
from vault.services import s3import

OTHER = "acme-at"


class Source:
    """A source bucket and the options `import` needs to reach it."""

    def __init__(self, s3: Any, bucket: str, options: list[str]) -> None:
        self.s3, self.bucket, self.options = s3, bucket, options

    def put_pair(self, stem: str, audio: bytes, meta: dict, *, suffix: str = ".wav") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=stem + suffix, Body=audio)
        self.put_meta(stem, meta)

    def put_meta(self, stem: str, meta: dict) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=stem + ".json", Body=json.dumps(meta).encode())


@pytest.fixture(params=["moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)])
def source(request, monkeypatch: pytest.MonkeyPatch) -> Iterator[Source]:
    bucket = "rec-" + secrets.token_hex(4)
    if request.param == "moto":
        request.getfixturevalue("moto_aws")
        s3 = boto3.client("s3", region_name="us-east-1")
        options = ["--region", "us-east-1"]
    else:
        weed = request.getfixturevalue("seaweedfs")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", weed.access_key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", weed.secret_key)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        s3 = boto3.client("s3", endpoint_url=weed.endpoint_url, region_name="us-east-1")
        options = ["--endpoint-url", weed.endpoint_url, "--region", "us-east-1"]
    s3.create_bucket(Bucket=bucket)
    yield Source(s3, bucket, options)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    v = make_vault(tmp_path / "v")
    v.add_client(OTHER, "Acme AT")
    yield v
    v.close()


def run_import(v: Vault, src: Source, prefix: str, *extra: str) -> tuple[int, dict]:
    args = ["--vault", str(v.settings.home), "import", f"s3://{src.bucket}/{prefix}"]
    result = CliRunner().invoke(cli, [*args, *src.options, *extra, "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.output)


def statuses(out: dict) -> dict[str, str]:
    return {o["key"]: o["status"] for o in out["objects"]}


def test_the_same_object_delivered_twice_is_stored_once(vault, source, tmp_path) -> None:
    audio = clip(tmp_path).read_bytes()
    source.put_pair("calls/c1", audio, order_meta(1))
    code, first = run_import(vault, source, "calls/")
    assert code == 0 and statuses(first) == {"calls/c1.wav": "imported"}
    # the event again, and the same bytes PUT again (same ETag): nothing new
    source.put_pair("calls/c1", audio, order_meta(1))
    code, second = run_import(vault, source, "calls/c1.wav")
    assert code == 0 and statuses(second) == {"calls/c1.wav": "already-imported"}
    assert second["objects"][0]["record_id"] == first["objects"][0]["record_id"]
    # the same pair delivered under another key: ingest's call segment answers it
    source.put_pair("again/c1", audio, order_meta(1))
    code, third = run_import(vault, source, "again/")
    assert statuses(third) == {"again/c1.wav": "duplicate"}
    assert third["objects"][0]["record_id"] == first["objects"][0]["record_id"]
    assert len(vault.find(client=CLIENT)) == 1


def test_a_clip_waits_for_its_sidecar(vault, source, tmp_path) -> None:
    source.s3.put_object(Bucket=source.bucket, Key="in/c2.wav", Body=clip(tmp_path).read_bytes())
    code, out = run_import(vault, source, "in/")
    assert code == 0 and statuses(out) == {"in/c2.wav": "waiting"}
    assert vault.find(client=CLIENT) == []
    source.put_meta("in/c2", order_meta(2))
    code, out = run_import(vault, source, "in/")
    assert code == 0 and statuses(out) == {"in/c2.wav": "imported"}
    assert len(vault.find(client=CLIENT)) == 1


def test_refusals_are_listed_and_exit_1(vault, source, tmp_path) -> None:
    source.put_pair("mix/bad", b"RIFF not audio at all", order_meta(3))
    source.put_pair("mix/other", clip(tmp_path).read_bytes(), order_meta(4, client=OTHER))
    source.put_pair("mix/good", clip(tmp_path, seed=1).read_bytes(), order_meta(5))
    code, out = run_import(vault, source, "mix/", "--client", CLIENT)
    assert code == 1
    assert statuses(out) == {
        "mix/bad.wav": "refused",
        "mix/good.wav": "imported",
        "mix/other.wav": "refused",
    }
    reasons = {o["key"]: o["reason"] for o in out["objects"] if o["status"] == "refused"}
    assert reasons["mix/bad.wav"].startswith("invalid-audio")
    assert reasons["mix/other.wav"].startswith("permission-denied")
    assert "+49" not in json.dumps(out)
    assert [h.call_id for h in vault.find(client=CLIENT)] == ["dialer-7f3a-000005"]


def test_pair_key_covers_bucket_keys_and_etags() -> None:
    base = ("b", "k.wav", "e1", "k.json", "e2")
    keys = {s3import.pair_key(*base)}
    for i in range(5):
        changed = list(base)
        changed[i] += "x"
        keys.add(s3import.pair_key(*changed))
    assert len(keys) == 6


def test_the_source_must_be_an_s3_url() -> None:
    with pytest.raises(s3import.InvalidRequest):
        s3import.S3Location.parse("https://bucket/prefix")
    assert s3import.S3Location.parse("s3://b") == s3import.S3Location("b", "")


def test_a_missing_bucket_is_a_clear_error(vault, source) -> None:
    args = ["--vault", str(vault.settings.home), "import", "s3://no-such-bucket-x1/p"]
    result = CliRunner().invoke(cli, [*args, *source.options])
    assert result.exit_code == 4, result.output
    assert "the source bucket does not exist" in result.output
