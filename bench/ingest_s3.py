"""Ingest throughput of 1 MiB clips into a vault on a real S3 server (SeaweedFS).

Baseline: a plain boto3 ``put_object`` of the same clip bytes (read from the same file)
to a bucket of the same kind (Object Lock enabled) on the same server. The vault seals
the clip (fingerprint, encryption, commitments), uploads the clip and the metadata
objects with Object Lock retention, and commits the record and its log entry to the
metadata database (SQLite, and PostgreSQL when 127.0.0.1:5432 answers).

For information, a third series sends just the S3 requests an ingest makes (the clip and
a 2 KiB metadata object, each with If-None-Match, a SHA-256 checksum and a COMPLIANCE
retention) with none of the vault's other work: the ceiling of the ratio on this server.

The series take turns clip by clip, in rotating order, so drift of the server
(compaction, page cache, CPU clock) hits all alike. Figure: vault clips/s over raw clips/s.

    python bench/ingest_s3.py [--quick]
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common as c

TARGET = 0.8
CLIP_SIZE = 1 << 20


def make_clips(workdir: Path, count: int) -> list[Path]:
    """``count`` 1 MiB WAV files that all differ (random bytes spliced into the samples)."""
    from vault.synth import write_large_wav

    base = bytearray(write_large_wav(workdir / "base.wav", size_bytes=CLIP_SIZE).read_bytes())
    clips = []
    for i in range(count):
        data = bytearray(base)
        for offset in (44, len(data) // 2, len(data) - 32):  # past the 44-byte WAV header
            data[offset : offset + 16] = secrets.token_bytes(16)
        path = workdir / f"clip-{i:04d}.wav"
        path.write_bytes(data)
        clips.append(path)
    return clips


def measure(
    server, database_url: str, clips: list[Path], warmup: int, workdir: Path, label: str
) -> dict:
    from tests.support.vaults import make_vault, order_meta
    from vault.storage.s3 import S3Store, make_client

    settings = c.s3_settings(server)
    vault = make_vault(
        workdir / f"vault-{label}", storage="s3", database_url=database_url, s3=settings
    )
    client = make_client(
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )
    raw_bucket = c.new_bucket("raw")
    S3Store.ensure_bucket(raw_bucket, object_lock=True, client=client)

    def raw(i: int, path: Path) -> float:
        t0 = time.perf_counter()
        client.put_object(Bucket=raw_bucket, Key=f"raw/{label}/{i:06d}", Body=path.read_bytes())
        return time.perf_counter() - t0

    retain = datetime.now(UTC).replace(microsecond=0) + timedelta(days=730)
    meta_body = os.urandom(2048)  # about the size of a sealed evidence document

    def requests_only(i: int, path: Path) -> float:
        """The S3 requests an ingest sends, without the vault's other work: for information."""
        t0 = time.perf_counter()
        for key, body in (
            (f"like/{label}/{i:06d}/clip", path.read_bytes()),
            (f"like/{label}/{i:06d}/meta", meta_body),
        ):
            client.put_object(
                Bucket=raw_bucket,
                Key=key,
                Body=body,
                IfNoneMatch="*",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
                ContentType="application/octet-stream",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain,
            )
        return time.perf_counter() - t0

    def sealed(i: int, path: Path) -> float:
        t0 = time.perf_counter()
        vault.ingest(path, order_meta(i))
        return time.perf_counter() - t0

    ops = {"raw": raw, "vault": sealed, "requests": requests_only}
    times: dict[str, list[float]] = {k: [] for k in ops}
    names = list(ops)
    try:
        for i in range(warmup):
            for fn in ops.values():
                fn(i, clips[i])
        for j, path in enumerate(clips[warmup:]):
            # rotate the order every clip: each op runs first, second and third equally
            for name in names[j % 3 :] + names[: j % 3]:
                times[name].append(ops[name](warmup + j, path))
    finally:
        vault.close()
    return times


def rates(times: list[float]) -> dict:
    total = sum(times)
    return {
        "clips_s": len(times) / total,
        "mib_s": len(times) * CLIP_SIZE / c.MIB / total,
        "median_ms": c.median(times) * 1000,
    }


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    quick = args.quick
    n, warmup = (5, 2) if quick else (40, 5)
    c.header("ingest of 1 MiB clips on SeaweedFS S3 vs raw boto3 put_object", quick)

    rows = []
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, c.seaweedfs() as server:
        if server is None:
            c.emit("ingest_s3", quick, None, TARGET, "ratio>=", skipped="SeaweedFS missing")
            return 0
        workdir = Path(tmp)
        clips = make_clips(workdir, n + warmup)
        backends = [("sqlite", "")]
        with c.pg_database() as pg_url:
            if pg_url:
                backends.append(("postgres", pg_url))
            for label, url in backends:
                res = measure(server, url, clips, warmup, workdir, label)
                raw, sealed = rates(res["raw"]), rates(res["vault"])
                ratio = sealed["clips_s"] / raw["clips_s"]
                out[label] = {"vault": sealed, "raw": raw, "ratio": ratio}
                rows.append(
                    (
                        f"raw put_object ({label} run)",
                        raw["clips_s"],
                        raw["mib_s"],
                        raw["median_ms"],
                        None,
                    )
                )
                rows.append(
                    (
                        f"vault ingest, S3 + {label}",
                        sealed["clips_s"],
                        sealed["mib_s"],
                        sealed["median_ms"],
                        ratio,
                    )
                )
                like = rates(res["requests"])
                out[label]["requests_only"] = like
                out[label]["requests_only_ratio"] = like["clips_s"] / raw["clips_s"]
                rows.append(
                    (
                        "  (info) the vault's 2 PUTs alone",
                        like["clips_s"],
                        like["mib_s"],
                        like["median_ms"],
                        like["clips_s"] / raw["clips_s"],
                    )
                )

    print(
        f"{n} clips of {CLIP_SIZE // 1024} KiB after {warmup} warm-up clips per series, "
        "series interleaved"
    )
    c.table(["", "clips/s", "MiB/s", "median ms", "ratio"], rows)
    details = {"n": n, "warmup": warmup, "clip_bytes": CLIP_SIZE, "sqlite": _round(out["sqlite"])}
    if "postgres" in out:
        details["postgres"] = _round(out["postgres"])
        details["postgres_ratio"] = round(out["postgres"]["ratio"], 4)
    c.emit("ingest_s3", quick, out["sqlite"]["ratio"], TARGET, "ratio>=", **details)
    return 0


def _round(d: dict) -> dict:
    return {k: (_round(v) if isinstance(v, dict) else round(v, 3)) for k, v in d.items()}


if __name__ == "__main__":
    sys.exit(main())
