"""The S3 store's multipart parts (held as their chunks) and its lean botocore models."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from vault.storage import s3 as s3_module
from vault.storage.s3 import _Part

LIMIT = 1000


def cut(data: bytes, chunk_size: int) -> list[bytes]:
    """The parts ``put`` would send: the same loop over ``_Part`` as ``S3Store.put``."""
    chunks = iter([data[i : i + chunk_size] for i in range(0, len(data), chunk_size)])
    part, parts, full = _Part(), [], False
    for chunk in chunks:
        part.append(chunk)
        if full := part.split(LIMIT):
            break
    while full:
        parts.append(part.read())
        part.start_next()
        if part.split(LIMIT):
            continue
        for chunk in chunks:
            part.append(chunk)
            if part.split(LIMIT):
                break
        else:
            full = False
    parts.append(part.read())
    return parts


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [
        (0, 7),
        (1, 7),
        (LIMIT, 7),
        (LIMIT + 1, 7),
        (3 * LIMIT, LIMIT),
        (2 * LIMIT + 5, 333),
        (3 * LIMIT + 1, 4 * LIMIT),
        (5 * LIMIT, 2500),
    ],
)
def test_parts_are_exact_and_lose_nothing(size: int, chunk_size: int) -> None:
    data = os.urandom(size)
    parts = cut(data, chunk_size)
    assert b"".join(parts) == data
    assert all(len(p) == LIMIT for p in parts[:-1])
    assert 0 < len(parts[-1]) <= LIMIT or size == 0


def test_part_reads_like_a_file() -> None:
    chunks = [os.urandom(n) for n in (10, 1, 300, 64)]
    whole = b"".join(chunks)
    part = _Part(list(chunks))
    ref = io.BytesIO(whole)
    assert len(part) == len(whole)
    for n in (5, 5, 1, 100, 0, 250):
        got = part.read(n)  # short reads stop at a chunk's end, like a raw file's
        assert got == ref.read(len(got)) and (got or n == 0)
        assert part.tell() == ref.tell()
    assert part.read() == ref.read()
    assert part.read(10) == b""
    # botocore rewinds to hash the payload and on a retry
    for pos, whence in ((0, 0), (11, 0), (-3, 2), (2, 1), (len(whole), 0)):
        assert part.seek(pos, whence) == ref.seek(pos, whence)
        got = part.read(20)
        assert got == ref.read(len(got))
    assert part.seek(0) == 0 and part.read() == whole
    assert _Part(list(chunks)).sha256() == hashlib.sha256(whole).digest()


def test_empty_chunks_do_not_end_a_part() -> None:
    part = _Part()
    for chunk in (b"ab", b"", b"cd"):
        part.append(chunk)
    assert [part.read(10), part.read(10), part.read(10)] == [b"ab", b"cd", b""]


def test_a_reused_buffer_is_copied() -> None:
    buf = bytearray(b"abc")
    part = _Part()
    part.append(buf)
    buf[:] = b"xyz"
    assert part.read() == b"abc"


def test_lean_models_keep_what_a_client_uses() -> None:
    client = s3_module.make_client(
        endpoint_url="http://127.0.0.1:9", aws_access_key_id="a", aws_secret_access_key="b"
    )
    op = client.meta.service_model.operation_model("PutObject")
    assert op.documentation == ""  # the text is dropped, the key kept
    assert "ObjectLockRetainUntilDate" in op.input_shape.members
    loader = s3_module._LeanJSONFileLoader()
    path = os.path.join(os.path.dirname(s3_module.botocore.__file__), "data", "endpoints")
    services = {s for p in loader.load_file(path)["partitions"] for s in p["services"]}
    assert services <= s3_module._ENDPOINT_SERVICES and "s3" in services
