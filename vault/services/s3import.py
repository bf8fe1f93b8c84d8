"""Import recordings dropped under an S3 prefix: the watch folder's pairs, in a bucket.

A pair is a clip (``.wav .mp3 .ogg .opus .flac``) and its evidence sidecar with the same
stem and ``.json`` (as the agent's watch folder takes them, :mod:`vault.agent.intake`).
Object-created events are delivered at least once, and a listing sees every object again,
so the import is idempotent twice over:

* each pair is one :class:`~vault.db.models.PullJob` (``source = "s3"``) keyed by the
  SHA-256 of bucket, keys and ETags of both objects: a pair already imported is skipped
  without a download; a changed object (new ETag) is a new attempt;
* ingest is idempotent on the call segment: the same clip and metadata again (a job row
  lost in a crash, the same pair under another key) answer the sealed record, a different
  clip under that call segment is refused.

A clip whose sidecar is not there yet is skipped (not an error): the next event or run
takes it. Nothing of the sidecar's content is logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from vault import audio
from vault.db import Client, read_session, write_session
from vault.db.models import PullJob
from vault.errors import (
    BackendUnavailable,
    FieldError,
    InvalidEvidence,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    VaultError,
)
from vault.identifiers import new_record_id
from vault.services.context import VaultContext
from vault.services.ingest import ingest

log = logging.getLogger("vault.import")

SOURCE = "s3"
CLIP_SUFFIXES = (".wav", ".mp3", ".ogg", ".opus", ".flac")
#: a sidecar is a small JSON document; anything larger is refused unread
MAX_SIDECAR_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket/prefix`` (the prefix may be empty, or one clip's key)."""
        if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
            raise InvalidRequest(
                [FieldError("source", "is not an s3://bucket/prefix URL")],
                hint="e.g. s3://recordings/telco-de/2026-12/",
            )
        bucket, _, prefix = url[5:].partition("/")
        return cls(bucket, prefix)


@dataclass(frozen=True)
class Outcome:
    """What became of one clip under the prefix."""

    key: str
    #: imported | already-imported | duplicate | waiting | refused
    status: str
    record_id: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def import_prefix(
    ctx: VaultContext,
    s3: Any,
    where: S3Location,
    *,
    client: str | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Import every complete pair under ``where`` with the boto3 S3 client ``s3``.

    ``client``: only sidecars naming this client are imported (others are refused).
    """
    outcomes = []
    try:
        for key, etag in _clips(s3, where):
            outcome = _import_one(ctx, s3, where.bucket, key, etag, client)
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    except (BotoCoreError, ClientError) as exc:
        raise _source_error(exc) from None
    return outcomes


def _source_error(exc: Exception) -> VaultError:
    """The source bucket's refusal or absence, as a VaultError (no address, no key)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    if code in ("NoSuchBucket", "404"):
        return NotFound(
            "the source bucket does not exist", hint="check the s3:// URL and --endpoint-url"
        )
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return PermissionDenied(
            "the source bucket refused these credentials",
            hint="give the import credentials that may list and read the prefix "
            "(boto3's chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile or role)",
        )
    return BackendUnavailable(
        f"the source bucket cannot be read now ({type(exc).__name__} {code})".rstrip(),
        backend="source bucket",
    )


def _clips(s3: Any, where: S3Location) -> Iterator[tuple[str, str]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            if PurePosixPath(obj["Key"]).suffix.lower() in CLIP_SUFFIXES:
                yield obj["Key"], obj["ETag"].strip('"')


def pair_key(bucket: str, clip: str, clip_etag: str, meta: str, meta_etag: str) -> str:
    """The idempotency key of one delivered pair: SHA-256 over bucket, keys and ETags."""
    parts = json.dumps([bucket, clip, clip_etag, meta, meta_etag], separators=(",", ":"))
    return hashlib.sha256(parts.encode()).hexdigest()


def _import_one(
    ctx: VaultContext, s3: Any, bucket: str, key: str, etag: str, only: str | None
) -> Outcome:
    meta_key = str(PurePosixPath(key).with_suffix(".json"))
    try:
        head = s3.head_object(Bucket=bucket, Key=meta_key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return Outcome(key, "waiting", reason="no sidecar yet")
        raise
    source_key = pair_key(bucket, key, etag, meta_key, head["ETag"].strip('"'))
    done = _done_job(ctx, source_key)
    if done is not None:
        return Outcome(key, "already-imported", record_id=done.record_id)
    try:
        meta = _sidecar(s3, bucket, meta_key, head)
        _check_client(meta, only)
        with ctx.spool().file() as spooled:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            while chunk := body.read(_CHUNK):
                spooled.write(chunk)
            spooled.finish()
            declared = audio.media_type_for_path(PurePosixPath(key))
            receipt = ingest(ctx, spooled.path, meta, media_type=declared)
    except VaultError as exc:
        if exc.http_status >= 500:
            raise  # an outage: the run stops, the next one resumes
        log.warning("import refused %s: %s", key, exc.kind)
        return Outcome(key, "refused", reason=f"{exc.kind}: {exc.message}")
    _remember(ctx, receipt.client, receipt.campaign, source_key, f"s3://{bucket}/{key}", receipt)
    status = "duplicate" if receipt.duplicate else "imported"
    log.info("import %s: %s record %s", key, status, receipt.record_id)
    return Outcome(key, status, record_id=receipt.record_id)


def _sidecar(s3: Any, bucket: str, key: str, head: dict) -> bytes:
    if int(head.get("ContentLength", 0)) > MAX_SIDECAR_BYTES:
        raise InvalidEvidence(
            [FieldError("$", f"the sidecar is larger than {MAX_SIDECAR_BYTES} bytes")],
            hint="a sidecar holds the evidence JSON only",
        )
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read(MAX_SIDECAR_BYTES + 1)


def _check_client(meta: bytes, only: str | None) -> None:
    if only is None:
        return
    try:
        doc = json.loads(meta)
    except ValueError:
        return  # ingest names what is wrong with it
    if not isinstance(doc, dict) or doc.get("client") != only:
        raise PermissionDenied(
            "the sidecar names another client than this import's",
            hint="import each client's prefix with its own --client",
        )


def _done_job(ctx: VaultContext, source_key: str) -> PullJob | None:
    with read_session(ctx.engine) as s:
        return s.exec(
            select(PullJob).where(
                PullJob.source == SOURCE,
                PullJob.source_key == source_key,
                PullJob.state == "done",
            )
        ).first()


def _remember(ctx: VaultContext, client: str, campaign: str, source_key: str, url: str, receipt):
    now = ctx.clock()
    try:
        with write_session(ctx.engine) as s:
            if s.get(Client, client) is None:
                return
            s.add(
                PullJob(
                    id="pj" + new_record_id(),
                    client_id=client,
                    campaign=campaign,
                    source=SOURCE,
                    source_key=source_key,
                    url=url[:2048],
                    state="done",
                    attempts=1,
                    next_try=now,
                    created_at=now,
                    updated_at=now,
                    record_id=receipt.record_id,
                )
            )
    except IntegrityError:
        pass  # a concurrent import of the same delivery remembered it first
