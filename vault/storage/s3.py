"""Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, SeaweedFS), via boto3.

Never overwriting: every write is conditional (``If-None-Match: *``), on PutObject and on
CompleteMultipartUpload, so two writers racing for one key cannot both win; the loser
gets ``ObjectExists``. Before a multipart upload starts, a HEAD also checks the key:
that fails fast without uploading anything, and is the only guard on a server that
ignores ``If-None-Match`` on CompleteMultipartUpload (then two concurrent multipart puts
of one key can both succeed, the later one as a newer version - the earlier version is
kept in a versioned bucket, overwritten in an unversioned one).

Integrity: a single-request put sends the SHA-256 of the body (``x-amz-checksum-sha256``)
and each multipart part its own SHA-256, so a server that checks checksums (AWS,
SeaweedFS; moto does not) rejects bytes altered in transit with BadDigest. The checksum
also satisfies Object Lock's "Content-MD5 or checksum required" rule.
``head().sha256`` is the server's full-object SHA-256 when it reports one
(single-request puts on AWS and SeaweedFS); it is "" for multipart objects (S3 only
keeps a checksum of the part checksums) and on servers that do not store checksums
(moto).

WORM: with a bucket created with Object Lock, ``put(retain_until=...)`` writes the
object in COMPLIANCE mode; deleting a locked version is refused (``ObjectLocked``).
After a multipart put the lock is checked with a HEAD and applied with
PutObjectRetention if the server dropped it (moto ignores the lock headers of
CreateMultipartUpload). Retain-until dates are rounded up to whole seconds (S3 keeps
seconds), and the returned ``retain_until`` is that rounded date.
``delete(key)`` without ``all_versions`` only adds a delete marker in a versioned bucket
- the locked bytes stay and ``list``/``get`` stop showing them.

Versions: ``put`` returns the VersionId S3 gave; every call given ``version_id`` passes
it as VersionId, so it reads and acts on that version whatever was stacked on the key
or deleted above it. A version that does not exist or is a delete marker is
``ObjectMissing`` (for a marker SeaweedFS answers 404, AWS 405, moto either). ``versions``
is one ListObjectVersions walk; ``lock_state`` is one versioned HEAD (see its comment).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.loaders import JSONFileLoader

from vault.errors import (
    BackendUnavailable,
    ConfigError,
    ObjectExists,
    ObjectLocked,
    ObjectMissing,
    StorageError,
)
from vault.storage.base import (
    CHUNK_SIZE,
    LEGAL_HOLD_NEEDS_LOCK,
    LockState,
    ObjectVersion,
    StoredObject,
    check_delete_args,
    check_range,
    normalise_retain_until,
    validate_key,
    validate_prefix,
)

log = logging.getLogger(__name__)

#: bodies larger than this go by multipart upload, one part of this size at a time.
#: S3's minimum (except for the last part): one part is what an upload holds in memory,
#: and 8 MiB parts took a 1 GiB upload's peak RSS past 100 MiB. At most 10,000 parts, so
#: objects up to ~48 GiB (a call recording is a few MiB to a few hundred).
PART_SIZE = 5 * 1024 * 1024

LOCK_MODE = "COMPLIANCE"

_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_NO_LOCK_CODES = {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
#: answers that mean "busy or briefly down, try again": throttling, timeouts, 5xx
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
}
_TRANSIENT_STATUSES = {500, 502, 503, 504}


def make_client(
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
) -> Any:
    """A boto3 S3 client set up for S3-compatible servers as well as AWS.

    Credentials not given fall back to boto3's usual chain (environment, profile, role).
    """
    config = Config(
        signature_version="s3v4",
        # "standard" retries throttling, 5xx and connection errors with backoff; a retried
        # conditional put that had in fact succeeded is recognised in put()
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        # custom endpoints (MinIO, SeaweedFS, Ceph) rarely have wildcard DNS for
        # virtual-hosted buckets; AWS itself keeps boto3's default
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    # a plain botocore session, not boto3's: boto3 adds the resource layer and the
    # transfer manager (s3transfer, which loads multiprocessing and asyncio), ~10 MiB of
    # modules this store never calls; the client and credential chain are the same
    session = botocore.session.get_session()
    session.get_component("data_loader").file_loader = _LeanJSONFileLoader()
    client = session.create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name or "us-east-1",
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        config=config,
    )
    _lean_object_puts(client)
    return client


#: the requests whose body :class:`S3Store` always sends with its SHA-256 checksum
_CHECKSUMMED = ("PutObject", "UploadPart")


def _lean_object_puts(client: Any) -> None:
    """Our object uploads are signed over their checksum and sent without waiting.

    *Signed over the checksum.* On a plain-HTTP endpoint botocore hashes every body for
    SigV4 (over HTTPS it already sends these two requests unsigned): a second SHA-256
    pass over each MiB, ~3 % of a ``serve`` worker's CPU per upload. Every PutObject and
    UploadPart of :class:`S3Store` carries ``x-amz-checksum-sha256``, which SigV4 signs
    like every ``x-amz-`` header and which the server checks against the body (AWS and
    SeaweedFS answer BadDigest; tests/test_storage.py), so an altered body is refused
    either way. Only those requests, and only when they carry the checksum, go
    ``UNSIGNED-PAYLOAD``: every other request keeps its payload hash.

    *No* ``Expect: 100-continue``. botocore turns every body into a file and asks for it,
    so each put sent its headers, waited for the server's "100 Continue", then the body:
    one more round trip, and up to a second's wait where a server is slow to answer it.
    What it saves (not sending a body the server refuses anyway) happens here only to a
    put that loses a race for its key, which is then sent in vain.
    """
    s3 = client.meta.config.s3 or {}
    unsigned = client.meta.config.merge(Config(s3={**s3, "payload_signing_enabled": False}))

    def unsigned_body(params: dict, context: dict, **_: Any) -> None:
        if params.get("ChecksumSHA256"):
            context["client_config"] = unsigned  # what the SigV4 signer consults

    def send_at_once(request: Any, **_: Any) -> None:
        del request.headers["Expect"]  # an email.message.Message: no error when absent

    for operation in _CHECKSUMMED:
        client.meta.events.register(f"before-parameter-build.s3.{operation}", unsigned_body)
        client.meta.events.register(f"before-sign.s3.{operation}", send_at_once)


#: the services whose endpoints a store's botocore session keeps (see _LeanJSONFileLoader)
_ENDPOINT_SERVICES = frozenset({"s3", "sts", "sso", "sso-oidc"})


class _LeanJSONFileLoader(JSONFileLoader):
    """botocore's model files read into plain dicts, without their documentation strings.

    botocore parses its JSON models (the S3 API, the endpoint rules, the endpoint list,
    ~2 MB) into ``OrderedDict``s and keeps them for the client's life; plain dicts keep
    the same order in about half the memory, and the documentation (four fifths of the S3
    model's text) is only ever read by the docs generator. With boto3's layer left out
    too, a client costs ~9 MiB instead of ~15.
    """

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            payload = fp.read().decode("utf-8")
        data = json.loads(payload, object_hook=_without_documentation)
        if os.path.basename(full_path).startswith("endpoints.json"):
            # the endpoint list of every AWS service (~4 MiB parsed): this session makes
            # the S3 client and, for role or SSO credentials, the clients of those
            for partition in data.get("partitions", []):
                services = partition.get("services", {})
                partition["services"] = {
                    k: v for k, v in services.items() if k in _ENDPOINT_SERVICES
                }
        return data


def _without_documentation(obj: dict[str, Any]) -> dict[str, Any]:
    # emptied, not removed: botocore reads the key in places (client context parameters);
    # only a string: a member or parameter named "documentation" would be a dict
    if isinstance(obj.get("documentation"), str):
        obj["documentation"] = ""
    return obj


class _Part:
    """One part of an upload, held as the chunks it was given: read like a file, no copy.

    Joining the chunks into one ``bytes`` (or slicing them out of a buffer) would hold the
    part twice while botocore sends it; botocore takes any seekable file as a body and
    reads it in blocks to send it. Single-request puts send ``bytes`` (botocore wraps
    them in a file all the same).
    """

    def __init__(self, chunks: list[bytes] | None = None) -> None:
        self._chunks: list[bytes] = chunks or []
        self._size = sum(len(c) for c in self._chunks)
        self._over = b""  # what split() cut off: the next part's start
        self._pos = 0
        self._index = 0  # chunk and offset in it of the read position
        self._offset = 0

    def __len__(self) -> int:
        return self._size

    def append(self, chunk: bytes) -> None:
        if not chunk:
            return  # an empty chunk would read as the end of the part
        # held, not copied: a bytearray or memoryview the caller may reuse is copied once
        self._chunks.append(chunk if type(chunk) is bytes else bytes(chunk))
        self._size += len(chunk)

    def split(self, limit: int) -> bool:
        """True when the part holds more than ``limit`` bytes: it is cut to ``limit``, the
        excess set aside for :meth:`start_next`."""
        if self._size <= limit:
            return False
        over = self._size - limit
        last = self._chunks.pop()
        # split after every append, so the excess lies within the last chunk
        keep = len(last) - over
        if keep:
            self._chunks.append(last[:keep])
        self._over = last[keep:]
        self._size = limit
        return True

    def start_next(self) -> None:
        """Empty the part in place for the next one, starting with the set-aside excess
        (in place: a caller's frame still referring to the part must not keep it alive)."""
        self.__init__([self._over] if self._over else [])  # type: ignore[misc]

    def sha256(self) -> bytes:
        digest = hashlib.sha256()
        for chunk in self._chunks:
            digest.update(chunk)
        return digest.digest()

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        pos = pos + (0, self._pos, self._size)[whence]
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos, self._index, self._offset = pos, 0, pos
        while self._index < len(self._chunks) and self._offset >= len(self._chunks[self._index]):
            self._offset -= len(self._chunks[self._index])
            self._index += 1
        return pos

    def read(self, n: int | None = -1) -> bytes:
        """Up to ``n`` bytes, never past the end of the current chunk (a short read, as a
        raw file may give: botocore and urllib3 read until ``b""``, so no block is joined
        from several chunks); all that is left when ``n`` is omitted or negative."""
        if n is None or n < 0:
            rest = [self.read(self._size)]
            while rest[-1]:
                rest.append(self.read(self._size))
            return b"".join(rest)
        if n == 0 or self._pos >= self._size:
            return b""
        chunk = self._chunks[self._index]
        piece = chunk[self._offset : self._offset + n]
        self._pos += len(piece)
        self._offset += len(piece)
        if self._offset == len(chunk):
            self._index, self._offset = self._index + 1, 0
        return piece

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class S3Store:
    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        client: Any = None,
        prefix: str = "",
    ) -> None:
        if not bucket:
            raise ConfigError("no S3 bucket given", hint="set the bucket name in the config")
        self.bucket = bucket
        self.client = client or make_client(
            endpoint_url=endpoint_url,
            region_name=region_name,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
        )
        self.endpoint = endpoint_url or self.client.meta.endpoint_url
        # all keys live under prefix/ in the bucket, so vaults can share one bucket
        self._prefix = validate_key(prefix.strip("/")) + "/" if prefix.strip("/") else ""

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint={self.endpoint!r})"

    @classmethod
    def ensure_bucket(
        cls,
        bucket: str,
        *,
        object_lock: bool,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        client: Any = None,
        prefix: str = "",
    ) -> S3Store:
        """Create ``bucket`` if missing (with Object Lock when asked) and open it.

        An existing bucket is used as is, but if Object Lock was asked for and the bucket
        does not have it, this raises ``ConfigError``: evidence must not silently lose WORM.
        """
        store = cls(
            bucket,
            endpoint_url=endpoint_url,
            region_name=region_name,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            client=client,
            prefix=prefix,
        )
        if not store._bucket_exists():
            store._create_bucket(object_lock, region_name)
        if object_lock and not store.supports_object_lock:
            raise ConfigError(
                f"bucket {bucket!r} exists without Object Lock",
                hint="use a bucket created with Object Lock, or set object_lock = false",
            )
        return store

    @cached_property
    def supports_object_lock(self) -> bool:
        """Asked of the bucket once, on first use."""
        with self._calling("read the Object Lock configuration of"):
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
            except ClientError as exc:
                code = _code(exc)
                if code in _NO_LOCK_CODES or code == "NotImplemented":
                    return False
                raise
        lock = conf.get("ObjectLockConfiguration", {})
        return lock.get("ObjectLockEnabled") == "Enabled"

    # --- writing -------------------------------------------------------------------

    def put(
        self, key: str, chunks: Iterable[bytes], *, retain_until: datetime | None = None
    ) -> StoredObject:
        validate_key(key)
        lock: dict[str, Any] = {}
        if retain_until is not None:
            retain_until = normalise_retain_until(retain_until)  # rejects naive datetimes
            if self.supports_object_lock:
                lock = {"ObjectLockMode": LOCK_MODE, "ObjectLockRetainUntilDate": retain_until}
            else:
                retain_until = None  # nothing enforces it: do not claim it

        digest = hashlib.sha256()
        part = _Part()
        it = iter(chunks)
        # gather up to one part: a body that fits goes in one PutObject request
        for chunk in it:
            digest.update(chunk)
            part.append(chunk)
            if part.split(PART_SIZE):
                return self._put_multipart(key, part, it, digest, lock, retain_until)
        return self._put_single(key, part.read(), digest.hexdigest(), lock, retain_until)

    def _put_single(
        self,
        key: str,
        body: bytes,
        sha256: str,
        lock: dict[str, Any],
        retain_until: datetime | None,
    ) -> StoredObject:
        with self._calling("write", key):
            try:
                resp = self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._k(key),
                    Body=body,
                    IfNoneMatch="*",
                    # our own hash: the server verifies it, botocore need not hash again
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_b64(bytes.fromhex(sha256)),
                    ContentType="application/octet-stream",
                    **lock,
                )
            except ClientError as exc:
                if _code(exc) == "PreconditionFailed" or _status(exc) == 412:
                    # with retries, the 412 may answer our own earlier attempt that
                    # succeeded but whose response was lost: then the stored object is ours
                    mine = self._own_retry(exc, key, lambda h: _full_sha256(h) == sha256)
                    if mine is not None:
                        resp = mine
                    else:
                        raise
                else:
                    raise
        return StoredObject(key, len(body), sha256, resp.get("VersionId"), retain_until)

    def replace(
        self, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        validate_key(key)
        sha256 = hashlib.sha256(data).hexdigest()
        with self._calling("write", key):
            # unconditional: a PutObject replaces the key's latest version atomically
            resp = self.client.put_object(
                Bucket=self.bucket,
                Key=self._k(key),
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(bytes.fromhex(sha256)),
                ContentType=content_type,
            )
        return StoredObject(key, len(data), sha256, resp.get("VersionId"), None)

    def _put_multipart(
        self,
        key: str,
        part: _Part,
        rest: Iterator[bytes],
        digest: Any,
        lock: dict[str, Any],
        retain_until: datetime | None,
    ) -> StoredObject:
        # fail fast before uploading a large body, and the only guard on servers that
        # ignore If-None-Match on CompleteMultipartUpload
        if self.exists(key):
            raise _exists(key)
        with self._calling("start a multipart upload of", key):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=self._k(key),
                ChecksumAlgorithm="SHA256",
                ContentType="application/octet-stream",
                **lock,
            )["UploadId"]

        parts: list[dict[str, Any]] = []
        etags: list[str] = []
        size = 0
        try:
            # one part in memory at a time, held as the chunks it came in (no copy); each
            # part but the last is exactly PART_SIZE, the last 1..PART_SIZE bytes
            while True:  # here the part is full
                size += len(part)
                self._upload_part(key, upload_id, parts, etags, part)
                part.start_next()
                if part.split(PART_SIZE):  # one chunk larger than a part
                    continue
                for chunk in rest:
                    digest.update(chunk)
                    part.append(chunk)
                    if part.split(PART_SIZE):
                        break
                else:
                    break
            size += len(part)
            self._upload_part(key, upload_id, parts, etags, part)
            part.start_next()
            resp = self._complete(key, upload_id, parts, etags)
        except BaseException:
            # also on KeyboardInterrupt / GeneratorExit: no half-uploaded parts may stay
            # behind (they cost storage and never become a visible object)
            self._abort(key, upload_id)
            raise

        version_id = resp.get("VersionId")
        if retain_until is not None:
            self._ensure_retention(key, version_id, retain_until)
        return StoredObject(key, size, digest.hexdigest(), version_id, retain_until)

    def _upload_part(
        self,
        key: str,
        upload_id: str,
        parts: list[dict[str, Any]],
        etags: list[str],
        body: _Part,
    ) -> None:
        number = len(parts) + 1
        checksum = _b64(body.sha256())
        with self._calling(f"upload part {number} of", key):
            body.seek(0)  # botocore rewinds on a retry itself; a fresh part starts at 0
            resp = self.client.upload_part(
                Bucket=self.bucket,
                Key=self._k(key),
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
            )
        parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum})
        etags.append(resp["ETag"])

    def _complete(
        self, key: str, upload_id: str, parts: list[dict[str, Any]], etags: list[str]
    ) -> dict[str, Any]:
        with self._calling("write", key):
            try:
                return self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self._k(key),
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if _code(exc) == "PreconditionFailed" or _status(exc) == 412:
                    expected = _multipart_etag(etags)
                    mine = self._own_retry(exc, key, lambda h: h.get("ETag") == expected)
                    if mine is not None:
                        return mine
                raise

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._k(key), UploadId=upload_id
            )
        except (ClientError, BotoCoreError) as exc:
            # the original error matters more; a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) is the backstop for this case
            log.warning("could not abort multipart upload of %r: %s", key, exc)

    def _ensure_retention(self, key: str, version_id: str | None, until: datetime) -> None:
        """Check the lock of a multipart object, applying it when the server dropped it.

        Some servers (moto) ignore the lock headers of CreateMultipartUpload; a HEAD per
        multipart object (>= 8 MiB) is cheap next to the upload.
        """
        with self._calling("apply the retention of", key, version_id):
            head = self.client.head_object(
                Bucket=self.bucket, Key=self._k(key), **_version(version_id)
            )
            if head.get("ObjectLockRetainUntilDate") is None:
                self.client.put_object_retention(
                    Bucket=self.bucket,
                    Key=self._k(key),
                    **_version(version_id),
                    Retention={"Mode": LOCK_MODE, "RetainUntilDate": until},
                )

    def delete(
        self, key: str, *, version_id: str | None = None, all_versions: bool = False
    ) -> None:
        validate_key(key)
        check_delete_args(version_id, all_versions)
        if all_versions:
            self._delete_all_versions(key)
        elif version_id is not None:
            # DeleteObject answers 204 for a version that does not exist; a HEAD cannot
            # tell a delete marker from nothing on every server, the listing can
            if version_id not in {v for v, _marker in self._key_versions(key)}:
                raise _missing(key, version_id)
            self._delete_one(key, version_id)
        else:
            # DeleteObject answers 204 for a missing key too
            if not self.exists(key):
                raise _missing(key)
            self._delete_one(key, None)

    def _delete_all_versions(self, key: str) -> None:
        versions = list(self._key_versions(key))
        if not versions:
            raise _missing(key)
        # data versions first, delete markers last: when a locked version refuses, we
        # stop there and the markers that decide what the key shows are still in place
        for version_id, _is_marker in sorted(versions, key=lambda v: v[1]):
            self._delete_one(key, version_id)

    def _delete_one(self, key: str, version_id: str | None) -> None:
        with self._calling("delete", key, version_id):
            try:
                self.client.delete_object(
                    Bucket=self.bucket, Key=self._k(key), **_version(version_id)
                )
            except ClientError as exc:
                # with Object Lock, AccessDenied on a delete is the lock (or legal hold)
                # refusing; without it, it is a real permission problem
                if _code(exc) == "AccessDenied" and self.supports_object_lock:
                    raise ObjectLocked(
                        f"object {key!r} is under Object Lock retention or a legal hold",
                        hint="it can be deleted once its retain-until date has passed and "
                        "any legal hold is released",
                    ) from exc
                raise

    def _key_versions(self, key: str) -> Iterator[tuple[str, bool]]:
        """(version id, is delete marker) of every version of exactly ``key``."""
        for v in self._list_versions(key, f"list the versions of {key!r}"):
            if v.key == key:
                yield v.version_id or "null", v.is_delete_marker

    def set_legal_hold(self, key: str, on: bool, *, version_id: str | None = None) -> None:
        validate_key(key)
        if not self.supports_object_lock:
            raise StorageError(
                LEGAL_HOLD_NEEDS_LOCK,
                hint=f"bucket {self.bucket!r} was created without Object Lock",
            )
        # HEAD first: on a missing key SeaweedFS answers 500 (retried 5 times) and moto
        # crashes; naming the version also pins the hold to the object we checked
        obj = self._present(key, version_id)
        with self._calling("set the legal hold of", key, version_id):
            self.client.put_object_legal_hold(
                Bucket=self.bucket,
                Key=self._k(key),
                **_version(version_id or obj.version_id),
                LegalHold={"Status": "ON" if on else "OFF"},
            )

    # --- reading -------------------------------------------------------------------

    def get(self, key: str, *, version_id: str | None = None) -> Iterator[bytes]:
        validate_key(key)
        with self._calling("read", key, version_id):
            body = self.client.get_object(
                Bucket=self.bucket, Key=self._k(key), **_version(version_id)
            )["Body"]
        # the request is made now, so ObjectMissing comes from get() itself; the body
        # streams lazily
        return self._stream(key, body)

    def _stream(self, key: str, body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK_SIZE)
        except BotoCoreError as exc:  # connection lost mid-body
            raise self._unreachable(exc) from exc
        finally:
            body.close()

    def read_range(
        self, key: str, start: int, length: int, *, version_id: str | None = None
    ) -> bytes:
        validate_key(key)
        check_range(start, length)
        if length == 0:
            self._present(key, version_id)
            return b""
        with self._calling("read", key, version_id):
            try:
                resp = self.client.get_object(
                    Bucket=self.bucket,
                    Key=self._k(key),
                    Range=f"bytes={start}-{start + length - 1}",
                    **_version(version_id),
                )
                with contextlib.closing(resp["Body"]) as body:
                    return body.read()
            except ClientError as exc:
                if _code(exc) == "InvalidRange":  # start is at or past the end
                    return b""
                raise

    def head(self, key: str, *, version_id: str | None = None) -> StoredObject | None:
        h = self._head(key, version_id)
        if h is None:
            return None
        until = h.get("ObjectLockRetainUntilDate")
        return StoredObject(
            key=key,
            size=h["ContentLength"],
            sha256=_full_sha256(h),
            version_id=h.get("VersionId"),
            retain_until=until.astimezone(UTC) if until else None,
        )

    def _head(self, key: str, version_id: str | None) -> dict[str, Any] | None:
        """The raw HEAD answer, or None for a missing key or version or a delete marker."""
        validate_key(key)
        with self._calling("inspect", key, version_id):
            try:
                return self.client.head_object(
                    Bucket=self.bucket,
                    Key=self._k(key),
                    ChecksumMode="ENABLED",
                    **_version(version_id),
                )
            except ClientError as exc:
                if _is_missing(exc, version_id):
                    return None
                raise

    def _present(self, key: str, version_id: str | None) -> StoredObject:
        obj = self.head(key, version_id=version_id)
        if obj is None:
            raise _missing(key, version_id)
        return obj

    def exists(self, key: str, *, version_id: str | None = None) -> bool:
        return self.head(key, version_id=version_id) is not None

    def get_retention(self, key: str, *, version_id: str | None = None) -> datetime | None:
        # HEAD carries the retain-until date (GetObjectRetention answers 500 on moto)
        return self._present(key, version_id).retain_until

    def lock_state(self, key: str, *, version_id: str | None = None) -> LockState:
        # One HEAD: it carries mode, date and hold on AWS, SeaweedFS and moto, where
        # GetObjectRetention answers 500 on moto. On AWS the HEAD answer includes them
        # only for a caller allowed s3:GetObjectRetention and s3:GetObjectLegalHold;
        # without those permissions an object reads as unlocked - a false alarm, never
        # a false all-clear.
        h = self._head(key, version_id)
        if h is None:
            raise _missing(key, version_id)
        until = h.get("ObjectLockRetainUntilDate")
        return LockState(
            mode=h.get("ObjectLockMode") or None,
            retain_until=until.astimezone(UTC) if until else None,
            legal_hold=h.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def extend_retention(
        self, key: str, retain_until: datetime, *, version_id: str | None = None
    ) -> None:
        validate_key(key)
        if not self.supports_object_lock:
            return
        until = normalise_retain_until(retain_until)
        obj = self._present(key, version_id)
        if obj.retain_until is not None and obj.retain_until >= until:
            return  # COMPLIANCE mode cannot shorten; an equal date needs no request
        with self._calling("extend the retention of", key, version_id):
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=self._k(key),
                **_version(version_id or obj.version_id),
                Retention={"Mode": LOCK_MODE, "RetainUntilDate": until},
            )

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        # ListObjectsV2 returns keys in UTF-8 byte order, the same order as sorted() on
        # our ASCII keys, and skips keys whose latest version is a delete marker
        cut = len(self._prefix)
        with self._calling("list", prefix or "/"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._prefix + prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][cut:]

    def versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        validate_prefix(prefix)
        return self._list_versions(prefix, f"list the versions under {prefix or '/'!r}")

    def _list_versions(self, prefix: str, action: str) -> Iterator[ObjectVersion]:
        # One ListObjectVersions walk. Each page has its versions and its delete markers
        # in two lists; pages follow each other in key order, so a stable sort by key per
        # page gives key order overall and keeps the server's order within a key.
        cut = len(self._prefix)
        with self._calling(action):
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=self._prefix + prefix
            )
            for page in pages:
                found = [_version_entry(v, cut, False) for v in page.get("Versions", [])]
                found += [_version_entry(m, cut, True) for m in page.get("DeleteMarkers", [])]
                found.sort(key=lambda v: v.key)
                yield from found

    # --- helpers -------------------------------------------------------------------

    def _k(self, key: str) -> str:
        return self._prefix + key

    def _bucket_exists(self) -> bool:
        with self._calling("inspect bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                    return False
                raise
        return True

    def _create_bucket(self, object_lock: bool, region_name: str | None) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket}
        if object_lock:
            args["ObjectLockEnabledForBucket"] = True  # also turns versioning on
        if region_name and region_name != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region_name}
        with self._calling("create bucket"):
            try:
                self.client.create_bucket(**args)
            except ClientError as exc:
                if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
        with contextlib.suppress(AttributeError):  # cached before the bucket existed
            del self.supports_object_lock

    def _own_retry(
        self, exc: ClientError, key: str, is_mine: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        """After a 412 on a *retried* request: the HEAD of the object if it is ours."""
        if not exc.response.get("ResponseMetadata", {}).get("RetryAttempts"):
            return None
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=self._k(key), ChecksumMode="ENABLED"
            )
        except (ClientError, BotoCoreError):
            return None
        return head if is_mine(head) else None

    @contextlib.contextmanager
    def _calling(
        self, action: str, key: str | None = None, version_id: str | None = None
    ) -> Iterator[None]:
        """Turn boto3's errors raised inside into the vault's (see ``_error``).

        A ``ClientError`` a block handles itself and re-raises lands here too.
        """
        try:
            yield
        except ClientError as exc:
            raise self._error(exc, action, key, version_id) from exc
        except BotoCoreError as exc:
            raise self._unreachable(exc) from exc

    def _error(
        self,
        exc: ClientError,
        action: str,
        key: str | None = None,
        version_id: str | None = None,
    ) -> StorageError:
        """Map a ClientError to the vault's errors; ``action`` reads "cannot <action> <key>"."""
        code, status = _code(exc), _status(exc)
        what = f"{action} {key!r}" if key is not None else f"{action} {self.bucket!r}"
        if code == "PreconditionFailed" or status == 412:
            return _exists(key or "")
        if _is_missing(exc, version_id):
            return _missing(key or "", version_id)
        if code == "NoSuchBucket":
            return StorageError(
                f"bucket {self.bucket!r} does not exist",
                hint="create it with `evidence-vault init` or check the bucket name",
            )
        if code in _CREDENTIAL_CODES:
            return StorageError(
                f"the object store rejected the credentials ({code})",
                hint="check the access key id and secret key",
            )
        if code == "AccessDenied" or status == 403:
            # a HEAD answer has no body, so bad credentials look the same as a refusal
            return StorageError(
                f"access denied: cannot {what}",
                hint="check the access key id and secret key, and the "
                "bucket policy / IAM permissions of that key",
            )
        if code in _TRANSIENT_CODES or status in _TRANSIENT_STATUSES:
            return BackendUnavailable(
                f"the object store is unavailable: S3 error {code} (HTTP {status})",
                backend="object store",
            )
        return StorageError(f"cannot {what}: S3 error {code} (HTTP {status})")

    def _unreachable(self, exc: BotoCoreError) -> StorageError:
        if isinstance(exc, NoCredentialsError):
            return StorageError(
                "no S3 credentials found",
                hint="set the access key id and secret key in the config or "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
            )
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            # down, restarting or timing out; the message goes to API clients, so it
            # names neither the endpoint nor credentials (the operator's log has the host)
            return BackendUnavailable(
                f"the object store cannot be reached: {type(exc).__name__}",
                hint="retry later; an operator checks that the object store is running "
                "and its endpoint URL is right",
                backend="object store",
            )
        return StorageError(f"the object store request failed: {type(exc).__name__}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _exists(key: str) -> ObjectExists:
    return ObjectExists(
        f"object {key!r} already exists", hint="objects are never overwritten; use a new key"
    )


def _missing(key: str, version_id: str | None = None) -> ObjectMissing:
    if version_id is None:
        return ObjectMissing(f"object {key!r} does not exist")
    # version ids are the store's opaque ids, never PII; capped in case of junk
    return ObjectMissing(
        f"version {version_id[:80]!r} of object {key!r} does not exist",
        hint="the version was deleted, or the id is not one the store gave (a delete "
        "marker is not an object version)",
    )


def _is_missing(exc: ClientError, version_id: str | None) -> bool:
    code = _code(exc)
    # AWS and moto answer a GET or HEAD naming a delete marker's version 405
    return code in _MISSING_CODES or (
        version_id is not None and code in {"MethodNotAllowed", "405"}
    )


def _version(version_id: str | None) -> dict[str, str]:
    """The VersionId argument of a boto3 call, or none."""
    return {"VersionId": version_id} if version_id is not None else {}


def _version_entry(entry: dict[str, Any], cut: int, is_marker: bool) -> ObjectVersion:
    modified = entry.get("LastModified")
    version_id = entry.get("VersionId")
    return ObjectVersion(
        key=entry["Key"][cut:],
        # "null" is S3's id of an object written while versioning was off; put()
        # returned None for it
        version_id=None if version_id in (None, "null") else version_id,
        is_latest=bool(entry.get("IsLatest")),
        is_delete_marker=is_marker,
        size=0 if is_marker else int(entry.get("Size", 0)),
        last_modified=modified.astimezone(UTC) if modified else None,
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _full_sha256(head: dict[str, Any]) -> str:
    """Hex SHA-256 of the whole object if the server reports one, else ""."""
    value = head.get("ChecksumSHA256")
    # a multipart object's checksum is of its parts' checksums ("...=-3", COMPOSITE);
    # moto reports it without either mark, so the multipart ETag ("...-3") decides too
    multipart = "-" in str(head.get("ETag", "")) or head.get("ChecksumType") == "COMPOSITE"
    if not value or "-" in value or multipart:
        return ""
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return ""


def _multipart_etag(etags: list[str]) -> str:
    """The ETag S3 gives a completed multipart object: MD5 of the part MD5s, "-N"."""
    try:
        md5s = b"".join(bytes.fromhex(e.strip('"')) for e in etags)
    except ValueError:  # not plain MD5s (e.g. SSE-KMS): cannot tell, assume not ours
        return ""
    return f'"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(etags)}"'
