"""Object storage: one interface (``ObjectStore``), a local directory and an S3 backend."""

from typing import TYPE_CHECKING

from vault.storage.base import (
    CHUNK_SIZE,
    ChunkReader,
    LockState,
    ObjectStore,
    ObjectVersion,
    StoredObject,
    normalise_retain_until,
    validate_key,
    validate_prefix,
)
from vault.storage.local import LocalStore

if TYPE_CHECKING:
    from vault.storage.s3 import S3Store, make_client


def __getattr__(name: str):
    # boto3 is ~25 MiB and a second of start-up: load it only for an S3-backed vault
    if name in ("S3Store", "make_client"):
        from vault.storage import s3

        return getattr(s3, name)
    raise AttributeError(f"module 'vault.storage' has no attribute {name!r}")


__all__ = [
    "CHUNK_SIZE",
    "ChunkReader",
    "LocalStore",
    "LockState",
    "ObjectStore",
    "ObjectVersion",
    "S3Store",
    "StoredObject",
    "make_client",
    "normalise_retain_until",
    "validate_key",
    "validate_prefix",
]
