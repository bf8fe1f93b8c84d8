"""Object storage: one interface (``ObjectStore``), a local directory and an S3 backend."""

from vault.storage.base import (
    CHUNK_SIZE,
    ChunkReader,
    ObjectStore,
    StoredObject,
    normalise_retain_until,
    validate_key,
    validate_prefix,
)
from vault.storage.local import LocalStore
from vault.storage.s3 import S3Store, make_client

__all__ = [
    "CHUNK_SIZE",
    "ChunkReader",
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "StoredObject",
    "make_client",
    "normalise_retain_until",
    "validate_key",
    "validate_prefix",
]
