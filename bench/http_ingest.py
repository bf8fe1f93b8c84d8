"""HTTP ingest of 1 MiB clips: 8 concurrent dialers against ``serve --workers 2``.

The script starts SeaweedFS (``weed mini``) and ``evidence-vault serve --workers 2`` (a
real subprocess: uvicorn's supervisor and two worker processes) on a vault whose
metadata is in PostgreSQL (a throw-away database on 127.0.0.1:5432) and whose objects
are in a SeaweedFS bucket with Object Lock. CLIENTS threads, each with its own keep-alive
connection, ``POST /v1/records`` distinct calls: the body is a 1 MiB WAV clip (random
samples, so every clip differs and validates), ``Evidence-Metadata`` the base64url
evidence JSON; each answer must be 201. The load generator is the standard library's
``http.client``: it shares the machine's cores with the server and SeaweedFS, and
``httpx`` spent ~20 ms of CPU per 1 MiB upload here against ~1.5 ms. What a request
costs the server: streaming the body to a temporary file, probing the audio, validating
the evidence, fingerprinting, encrypting and uploading the clip and metadata objects
(If-None-Match, SHA-256 checksum, COMPLIANCE retention), and the commit (group commit
across the worker's concurrent uploads; the workers serialise on the log head's row
lock); then the receipt.

Baseline, same run, same concurrency, same bytes (held in memory by both): CLIENTS
threads sharing one boto3 client ``put_object`` the clip bytes to a bucket of the same
kind (Object Lock) on the same SeaweedFS. The two series alternate (vault, raw, raw,
vault) after a warm-up of each. Figures: clips/s over the whole series (first request
sent to last answer), p50/p99 latency per request; ratio = vault clips/s over raw clips/s;
and, for information, the CPU milliseconds per clip of the server (supervisor and
workers), of SeaweedFS, of this load-generating process and of PostgreSQL (the whole
local cluster; 0 when it runs elsewhere).
Afterwards: one record per upload, the chain has no gap or fork, and ``verify`` (objects
re-hashed from S3) is clean.

    python bench/http_ingest.py [--quick]
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _common as c

TARGET = 0.7
CLIENTS = 8
WORKERS = 2
FULL = {"per_series": 160, "distinct_clips": 24, "warmup": 16}
QUICK = {"per_series": 16, "distinct_clips": 8, "warmup": 8}


class Server:
    """``evidence-vault serve`` as a subprocess in its own session; log to a file."""

    def __init__(self, home: Path, env: dict, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("wb")
        exe = Path(sys.executable).parent / "evidence-vault"
        args = ["--vault", str(home), "serve", "--port", str(self.port), "--workers", str(WORKERS)]
        self.proc = subprocess.Popen(
            [str(exe), *args],
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited:\n" + self.log.read_text()[-3000:])
            started = self.log.read_text(errors="replace").count("Application startup complete")
            with contextlib.suppress(httpx.HTTPError):
                ok = httpx.get(self.url + "/readyz", timeout=2).status_code == 200
                if ok and started >= WORKERS:
                    return
            time.sleep(0.2)
        raise RuntimeError("the server did not become ready:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self._out.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and of its waited-for children, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live children (the server's workers)."""
    total = cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += sum(cpu_seconds(int(c)) for c in (task / "children").read_text().split())
    return total


def postmaster_pid(pg_url: str) -> int | None:
    """The PostgreSQL server's main process (its backends are its children), when local."""
    import psycopg

    from tests.support.vaults import _dsn

    with psycopg.connect(_dsn(pg_url)) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:  # while the backend lives: it exits with the connection
            status = Path(f"/proc/{backend}/status").read_text()
        except OSError:  # another host or another PID namespace: not measured
            return None
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("PPid:")))


def meta_header(meta: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(meta).encode()).rstrip(b"=").decode()


def run_series(fn, jobs: list) -> tuple[float, list[float]]:
    """Run ``fn(job)`` for every job on CLIENTS threads; (clips/s, latencies in s)."""
    latencies: list[float] = []
    lock = threading.Lock()

    def timed(job):
        t0 = time.perf_counter()
        fn(job)
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(timed, jobs))
    return len(jobs) / (time.perf_counter() - t0), latencies


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def check(vault: Any, expected: int) -> str:
    from sqlmodel import func, select

    from tests.support.vaults import CLIENT
    from vault.db import LogEntry, Record, read_session
    from vault.ledger import GENESIS_PREV, entry_hash, parse_entry

    with read_session(vault.context.engine) as s:
        records = s.exec(select(func.count()).select_from(Record)).one()
        times = s.exec(select(func.count(func.distinct(Record.sealed_at)))).one()
        rows = s.exec(
            select(LogEntry.seq, LogEntry.entry)
            .where(LogEntry.client_id == CLIENT)
            .order_by(LogEntry.seq)
        ).all()
    prev, sealed = GENESIS_PREV, 0
    for n, (seq, raw) in enumerate(rows):
        entry = parse_entry(bytes(raw))
        if seq != n or entry["prev"] != prev:
            raise AssertionError(f"gap or fork at seq {n}")
        prev = entry_hash(bytes(raw))
        sealed += entry["type"] == "evidence.sealed"  # the dialer's person and token precede
    if records != expected or sealed != expected:
        raise AssertionError(f"{records} records, {sealed} sealed entries; expected {expected}")
    report = vault.verify()
    if not report.clean:
        raise AssertionError(f"verify: {[f.to_dict() for f in report.findings][:5]}")
    return (
        f"{records} records, chain 0..{len(rows) - 1} without gap or fork, verify clean; "
        f"{records / times:.2f} records per commit (records sharing a commit time)"
    )


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    quick = args.quick
    sizes = QUICK if quick else FULL
    c.header(f"HTTP ingest of 1 MiB clips, {CLIENTS} clients, serve --workers {WORKERS}", quick)
    with c.seaweedfs() as server, c.pg_database() as pg_url:
        if server is None or pg_url is None:
            why = "SeaweedFS missing" if server is None else "PostgreSQL absent"
            c.emit("http_ingest", quick, None, TARGET, "ratio>=", skipped=why)
            return 0
        with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
            return measure(server, pg_url, Path(tmp), sizes, quick)


def measure(server: Any, pg_url: str, workdir: Path, sizes: dict, quick: bool) -> int:
    import http.client

    from ingest_s3 import make_clips

    from tests.support.vaults import make_vault, order_meta, person_token
    from vault.storage.s3 import S3Store, make_client

    vault = make_vault(
        workdir / "vault", storage="s3", database_url=pg_url, s3=c.s3_settings(server)
    )
    _, secret = person_token(vault.context, "dialer", "telco-de")
    clips = [p.read_bytes() for p in make_clips(workdir, sizes["distinct_clips"])]
    raw_client = make_client(
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )  # botocore's pool holds 10 connections: enough for CLIENTS threads
    raw_bucket = c.new_bucket("raw")
    S3Store.ensure_bucket(raw_bucket, object_lock=True, client=raw_client)
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    srv = Server(vault.settings.home, env, workdir / "server.log")
    local = threading.local()
    uploaded = 0
    try:
        srv.wait_ready()

        def vault_upload(n: int) -> None:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
            headers = {
                "Authorization": f"Bearer {secret}",
                "Content-Type": "audio/wav",
                "Evidence-Metadata": meta_header(order_meta(n)),
            }
            conn.request("POST", "/v1/records", body=clips[n % len(clips)], headers=headers)
            r = conn.getresponse()
            answer = r.read()
            if r.status != 201:
                raise RuntimeError(f"upload {n}: {r.status} {answer[:300]!r}")

        def raw(n: int) -> None:
            raw_client.put_object(Bucket=raw_bucket, Key=f"raw/{n:07d}", Body=clips[n % len(clips)])

        per, counter = sizes["per_series"], iter(range(10**7))

        def jobs(count: int) -> list[int]:
            return [next(counter) for _ in range(count)]

        warm = jobs(sizes["warmup"])
        run_series(vault_upload, warm)
        run_series(raw, warm)
        uploaded += len(warm)
        results: dict[str, list] = {"vault": [], "raw": []}
        # CPU seconds spent per series by the server, by weed, by this (client) process and
        # by PostgreSQL (the whole cluster: its live backends and those that exited)
        cpu: dict[str, dict[str, float]] = {
            n: {"server": 0.0, "weed": 0.0, "client": 0.0, "postgres": 0.0} for n in results
        }
        weed_pid, pg_pid = server.pid, postmaster_pid(pg_url)

        def sample() -> tuple[float, ...]:
            pg = tree_cpu(pg_pid) if pg_pid else 0.0
            return tree_cpu(srv.proc.pid), tree_cpu(weed_pid), time.process_time(), pg

        for name in ("vault", "raw", "raw", "vault"):
            batch = jobs(per)
            before = sample()
            results[name].append(run_series(vault_upload if name == "vault" else raw, batch))
            after = sample()
            for i, part in enumerate(("server", "weed", "client", "postgres")):
                cpu[name][part] += after[i] - before[i]
            if name == "vault":
                uploaded += len(batch)
    finally:
        srv.stop()
    status = check(vault, uploaded)
    vault.close()

    rows, figures = [], {}
    for name in ("raw", "vault"):
        runs = results[name]
        rate = len(runs) / sum(1 / r for r, _ in runs)  # harmonic mean: total clips / time
        lat = [x for _, xs in runs for x in xs]
        figures[name] = {
            "clips_s": round(rate, 2),
            "p50_ms": round(percentile(lat, 50) * 1000, 1),
            "p99_ms": round(percentile(lat, 99) * 1000, 1),
            # CPU milliseconds per clip: where a 2-core machine's time goes
            "cpu_ms_per_clip": {k: round(v * 1000 / len(lat), 1) for k, v in cpu[name].items()},
        }
    ratio = figures["vault"]["clips_s"] / figures["raw"]["clips_s"]
    for name, title in (("raw", "raw boto3 put_object"), ("vault", "POST /v1/records")):
        f = figures[name]
        rows.append(
            (title, f["clips_s"], f["p50_ms"], f["p99_ms"], ratio if name == "vault" else None)
        )
    print(
        f"{2 * per} clips per series kind ({per} x 2, alternating), {CLIENTS} concurrent "
        f"clients, after {sizes['warmup']} warm-up clips each; PostgreSQL + SeaweedFS"
    )
    c.table(["", "clips/s", "p50 ms", "p99 ms", "ratio"], rows)
    for name in ("raw", "vault"):
        parts = figures[name]["cpu_ms_per_clip"]
        print(f"CPU ms per clip, {name}: " + ", ".join(f"{k} {v}" for k, v in parts.items()))
    print(status)
    c.emit(
        "http_ingest",
        quick,
        ratio,
        TARGET,
        "ratio>=",
        clients=CLIENTS,
        workers=WORKERS,
        clip_bytes=len(clips[0]),
        per_series=per,
        vault=figures["vault"],
        raw=figures["raw"],
        check=status,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
