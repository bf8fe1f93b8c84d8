"""Tampering with a vault behind its back, as an attacker with storage or DB access would.

Object edits bypass the vault's store entirely: files are rewritten on disk; on S3 a raw
boto3 client writes a new version or a delete marker (Object Lock keeps the old version,
but readers see the latest, which is what an attacker would aim for).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config
from sqlalchemy import text

from vault import Vault


def _s3(vault: Vault):
    s3 = vault.settings.s3
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region or "us-east-1",
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        config=Config(signature_version="s3v4"),
    )


def _full_key(vault: Vault, key: str) -> str:
    prefix = vault.settings.s3.prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def read_object(vault: Vault, key: str) -> bytes:
    if vault.settings.storage == "local":
        return (vault.settings.resolved_objects_dir / key).read_bytes()
    s3 = vault.settings.s3
    return _s3(vault).get_object(Bucket=s3.bucket, Key=_full_key(vault, key))["Body"].read()


def write_object(vault: Vault, key: str, data: bytes) -> None:
    """Overwrite (or create) an object, ignoring the vault's no-overwrite rule."""
    if vault.settings.storage == "local":
        path: Path = vault.settings.resolved_objects_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.chmod(0o644)
        path.write_bytes(data)
        return
    s3 = vault.settings.s3
    _s3(vault).put_object(Bucket=s3.bucket, Key=_full_key(vault, key), Body=data)


def delete_object(vault: Vault, key: str) -> None:
    if vault.settings.storage == "local":
        (vault.settings.resolved_objects_dir / key).unlink()
        return
    s3 = vault.settings.s3
    _s3(vault).delete_object(Bucket=s3.bucket, Key=_full_key(vault, key))


def edit_object(vault: Vault, key: str, change: Callable[[bytes], bytes]) -> None:
    write_object(vault, key, change(read_object(vault, key)))


def flip_byte(data: bytes, at: int = 100) -> bytes:
    at = min(at, len(data) - 1)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def sql(vault: Vault, statement: str, **params) -> None:
    """Run raw SQL against the vault's metadata database (an attacker with DB access)."""
    with vault.context.engine.begin() as conn:
        conn.execute(text(statement), params)
