"""Log append rate on PostgreSQL with group commit, under concurrent committers.

What is measured: the commit step of an upload, isolated. 2 processes with THREADS
threads each (32 committers by default) call ``vault.services.ingest._commit`` — the
step every ``ingest`` ends with — on record rows that are complete but were not sealed in
this run: no audio is probed, nothing is encrypted or uploaded (object keys and hashes are
well-formed random values; there are no objects). Per batch the commit does what it does
in production: takes the log head's row lock (``SELECT ... FOR UPDATE``), looks up
consent-based records of the callees (the campaign counts from the recording, so none
are extended), inserts the record rows, appends the ``evidence.sealed`` entries with
their Merkle leaves and nodes, commits (``synchronous_commit=on``: an fsync'd WAL flush).
Concurrent committers of one process share that transaction through the group-commit
queue (:mod:`vault.services.commits`); the two processes serialise on the head's row
lock. Figure: log entries (= records) per second, all committers together, first start
to last finish.

Baseline, same run, same database, same concurrency (the same 2 x THREADS threads):
single-row INSERTs of a payload as large as a sealed entry into a bare table, one
transaction and one commit each. Series alternate (vault, plain, plain, vault). For
information: the queue without its collection window (``window = 0``: batches form only
from commits that arrive while another runs), without group commit (``max_batch = 1``:
one transaction per record, as before the queue), vault and plain at 8 and 64
committers, and one committer alone in this process, through the queue and bypassing it
(its overhead when nobody else commits). Afterwards the chain is checked: seqs 0..n-1,
each ``prev`` the hash of the entry before, the head at the last entry, one record row
per entry with the entry's seq.

Target: at least 1,000 entries/s with group commit (printed met or not). The JSON's
``ratio`` is vault entries/s over plain rows/s (the plain rows need no lock and no chain).

    python bench/group_commit.py [--quick] [--threads N]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _common as c

PROCESSES = 2
THREADS = 16  # per process; a server worker runs up to 40 ingests at once (anyio threads)
SWEEP = (4, 32)  # other concurrencies, for information (threads per process)
TARGET_ENTRIES_S = 1000.0
PLAIN_TABLE = "bench_plain"
FULL = {"per_thread": 60, "single": 200}
QUICK = {"per_thread": 6, "single": 10}


# --- in the worker processes -----------------------------------------------------------------


def fake_sealed(campaign: Any, label: str, n: int) -> Any:
    """A complete record row and what ``_commit`` needs of a sealed upload (no objects)."""
    from vault.db import Record
    from vault.identifiers import new_record_id
    from vault.services.ingest import _Sealed, object_prefix

    now = datetime.now(UTC)
    recorded = now - timedelta(minutes=5)
    rid = new_record_id()
    prefix = object_prefix(campaign.client_id, campaign.name, recorded, rid)
    record = Record(
        id=rid,
        client_id=campaign.client_id,
        campaign_id=campaign.id,
        call_id=f"bench-{label}-{n:06d}",
        segment=1,
        order_ref=f"ORD-{label}-{n:06d}",
        agent_id="agent-042",
        recorded_at=recorded,
        sealed_at=now,
        retain_until=recorded + timedelta(days=730),
        retention_rule=f"campaign {campaign.name}: 730 days after recording",
        phone_hash=secrets.token_hex(32),
        clip_fingerprint=secrets.token_hex(32),
        meta_fingerprint=secrets.token_hex(32),
        media_type="audio/wav",
        codec="pcm_s16le",
        duration_ms=32_000,
        clip_size=1 << 20,
        clip_key=prefix + "/clip",
        clip_sha256=secrets.token_hex(32),
        meta_key=prefix + "/meta",
        meta_sha256=secrets.token_hex(32),
        kek_id=f"local:{campaign.client_id}:exp-2028-11:1",
        wrapped_dek=os.urandom(60),
        seq=-1,
    )
    commitments = {"clip": secrets.token_hex(32), "meta": secrets.token_hex(32)}
    return _Sealed(record, commitments, (1 << 20) + 272, 2100, secrets.token_bytes(16))


def worker(settings: Any, tasks: Any, results: Any, barrier: Any) -> None:
    from sqlalchemy import text
    from sqlmodel import select

    from vault.db import Campaign, read_session
    from vault.services.context import open_vault
    from vault.services.ingest import _commit, commit_queue
    from vault.services.retention import rule_for

    ctx = open_vault(settings)
    with read_session(ctx.engine) as s:
        campaign = s.exec(select(Campaign)).one()
        rule = rule_for(s, campaign)
    # of the prepared upload, _commit reads only the campaign's name and its rule's basis
    prepared = SimpleNamespace(campaign=campaign, rule=rule)
    queue = commit_queue(ctx.engine)
    log_keys = ctx.log_keys
    results.put(("ready", os.getpid()))
    while (task := tasks.get()) is not None:
        kind, per_thread, run = task["kind"], task["per_thread"], task["run"]
        # bench/entry_auth.py: a stand-in wrapped around the client's log writer (picklable)
        stand_in = task.get("writer")
        ctx.log_keys = (  # type: ignore[method-assign]
            log_keys if stand_in is None else (lambda client, w=stand_in: w(log_keys(client)))
        )
        queue.window, queue.max_batch = task.get("window", 0.002), task.get("max_batch", 64)
        queue.stats = type(queue.stats)()  # this task's figures only
        work = [
            [fake_sealed(campaign, f"{run}-{os.getpid()}-{t}", i) for i in range(per_thread)]
            for t in range(task["threads"])
        ]
        payload = os.urandom(task["payload_bytes"])
        stmt = text(f"INSERT INTO {PLAIN_TABLE} (payload) VALUES (:p)")
        spans: list[tuple[float, float]] = []
        errors: list[str] = []
        start = threading.Barrier(task["threads"] + 1)

        def commit_all(
            items: list,
            spans=spans,
            errors=errors,
            stmt=stmt,
            payload=payload,
            kind=kind,
            start=start,
        ) -> None:
            try:
                start.wait()
                t0 = time.monotonic()
                for sealed in items:
                    if kind == "vault":
                        _commit(ctx, sealed, prepared, None)  # unsigned: no source
                    else:
                        with ctx.engine.connect() as conn, conn.begin():
                            conn.execute(stmt, {"p": payload})
                spans.append((t0, time.monotonic()))
            except Exception as exc:  # reported to the parent, which fails
                errors.append(repr(exc))

        threads = [threading.Thread(target=commit_all, args=(w,)) for w in work]
        for th in threads:
            th.start()
        barrier.wait()  # every process ready: start together
        start.wait()
        for th in threads:
            th.join()
        if errors:
            results.put(("error", errors[0]))
            continue
        stats = queue.stats.snapshot()
        first, last = min(s for s, _ in spans), max(e for _, e in spans)
        results.put(("done", first, last, per_thread * task["threads"], stats))
    ctx.close()


# --- in the parent ----------------------------------------------------------------------------


class Pool:
    def __init__(self, settings: Any) -> None:
        ctx = mp.get_context("spawn")
        self.results = ctx.Queue()
        self.barrier = ctx.Barrier(PROCESSES)
        self.queues = [ctx.Queue() for _ in range(PROCESSES)]
        self.procs = [
            ctx.Process(target=worker, args=(settings, q, self.results, self.barrier), daemon=True)
            for q in self.queues
        ]
        for p in self.procs:
            p.start()
        for _ in self.procs:
            self._get("ready")

    def run(self, task: dict) -> tuple[float, int, dict]:
        for q in self.queues:
            q.put(task)
        done = [self._get("done") for _ in self.queues]
        start, end = min(d[1] for d in done), max(d[2] for d in done)
        count = sum(d[3] for d in done)
        stats = {
            "batches": sum(d[4]["batches"] for d in done),
            "max_batch": max(d[4]["max_batch"] for d in done),
            "waited": sum(d[4]["waited"] for d in done),
        }
        return count / (end - start), count, stats

    def close(self) -> None:
        for q in self.queues:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()

    def _get(self, kind: str) -> tuple:
        msg = self.results.get(timeout=900)
        if msg[0] == "error":
            raise RuntimeError(f"worker failed: {msg[1]}")
        assert msg[0] == kind, msg
        return msg


def single_committer(vault: Any, count: int) -> dict[str, float]:
    """One committer in this process: median ms per commit through the queue, and with
    the queue bypassed (the same transaction, opened and committed directly). The two
    alternate commit by commit, so drift hits both alike."""
    import statistics

    from sqlmodel import select

    from vault.db import Campaign, read_session
    from vault.services.ingest import (
        _begin_batch,
        _commit,
        _commit_batch,
        _ToCommit,
        sealed_entry_body,
    )
    from vault.services.retention import rule_for

    ctx = vault.context
    with read_session(ctx.engine) as s:
        campaign = s.exec(select(Campaign)).one()
        rule = rule_for(s, campaign)
    prepared = SimpleNamespace(campaign=campaign, rule=rule)

    def direct(sealed: Any) -> None:
        r = sealed.record
        body = sealed_entry_body(r, campaign.name, sealed.commitments, 1, 1)
        item = _ToCommit(ctx.engine, ctx.log_keys(r.client_id), r.model_dump(), body, False)
        with _begin_batch(r.client_id, item) as locked:
            _commit_batch(locked, [item])

    times: dict[str, list[float]] = {"queue": [], "direct": []}
    for i in range(2 * count):
        kind = "queue" if i % 2 == 0 else "direct"
        sealed = fake_sealed(campaign, f"single-{kind}", i)
        t0 = time.perf_counter()
        if kind == "queue":
            _commit(ctx, sealed, prepared, None)  # unsigned: no source
        else:
            direct(sealed)
        times[kind].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def sample_entry_size() -> int:
    """The size of an ``evidence.sealed`` entry as the vault writes it."""
    from vault.ledger import encode_entry, make_entry
    from vault.services.ingest import sealed_entry_body

    campaign = SimpleNamespace(client_id="telco-de", name="fibre-upsell-2026q4", id=1)
    sealed = fake_sealed(campaign, "sample", 0)
    body = sealed_entry_body(sealed.record, campaign.name, sealed.commitments, 1, 1)
    return len(
        encode_entry(
            make_entry(
                log="telco-de",
                seq=123456,
                type="evidence.sealed",
                time=datetime.now(UTC),
                prev="0" * 64,
                record=sealed.record.id,
                body=body,
            )
        )
    )


def check(vault: Any, expected: int) -> str:
    from sqlmodel import func, select

    from tests.support.vaults import CLIENT
    from vault.db import LogEntry, Record, read_session
    from vault.db.log import log_head
    from vault.ledger import GENESIS_PREV, entry_hash, parse_entry

    prev, n = GENESIS_PREV, 0
    with read_session(vault.context.engine) as s:
        rows = s.exec(
            select(LogEntry.seq, LogEntry.entry, LogEntry.record_id)
            .where(LogEntry.client_id == CLIENT)
            .order_by(LogEntry.seq)
        )
        seq_of = dict(s.exec(select(Record.id, Record.seq)).all())
        for seq, raw, record_id in rows:
            entry = parse_entry(bytes(raw))
            if seq != n or entry["seq"] != n:
                raise AssertionError(f"gap or duplicate at seq {n}: found {seq}")
            if entry["prev"] != prev:
                raise AssertionError(f"fork at seq {n}")
            if seq_of.get(record_id) != seq:
                raise AssertionError(f"record {record_id} does not point at its entry {seq}")
            prev, n = entry_hash(bytes(raw)), n + 1
        head = log_head(s, CLIENT)
        records = s.exec(select(func.count()).select_from(Record)).one()
    if n != expected or records != expected:
        raise AssertionError(f"{n} entries and {records} records, expected {expected}")
    if head.size != n or head.head_hash != prev:
        raise AssertionError("the log head does not point at the last entry")
    return f"chain ok: {n} entries, seqs 0..n-1, no gap, no fork, one record per entry"


def main() -> int:
    def extra(p):
        p.add_argument(
            "--threads",
            type=int,
            default=THREADS,
            help=f"committer threads per process in the main comparison ({PROCESSES} processes)",
        )

    args = c.parse_args(__doc__.splitlines()[0], extra)
    quick, threads = args.quick, args.threads
    sizes = QUICK if quick else FULL
    per = sizes["per_thread"]
    c.header("log append rate with group commit (PostgreSQL) vs plain INSERTs", quick)
    with c.pg_database() as pg_url:
        if not pg_url:
            c.emit("group_commit", quick, None, None, None, skipped="PostgreSQL absent")
            return 0
        from sqlalchemy import text

        from tests.support.vaults import make_vault

        with tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp:
            vault = make_vault(Path(tmp) / "vault", database_url=pg_url)
            with vault.context.engine.begin() as conn:
                conn.execute(
                    text(
                        f"CREATE TABLE {PLAIN_TABLE} "
                        "(id BIGSERIAL PRIMARY KEY, payload BYTEA NOT NULL)"
                    )
                )
            payload_bytes = sample_entry_size()
            pool = Pool(vault.settings)
            base = {"threads": threads, "per_thread": per, "payload_bytes": payload_bytes}
            # (label, kind, options): the main comparison alternates vault and plain; then
            # the queue without its window and without batching; then other concurrencies
            order: list[tuple[str, str, dict]] = [
                ("vault", "vault", {}),
                ("plain", "plain", {}),
                ("plain", "plain", {}),
                ("vault", "vault", {}),
                ("vault, window 0", "vault", {"window": 0.0}),
                # one transaction per record is slow: fewer of them give the same rate
                ("vault, no group commit", "vault", {"max_batch": 1, "per_thread": per // 4 or 1}),
            ]
            for t in SWEEP:
                if t != threads:
                    n = PROCESSES * t
                    order += [
                        (f"vault, {n} committers", "vault", {"threads": t}),
                        (f"plain, {n} committers", "plain", {"threads": t}),
                    ]
            series: dict[str, list[tuple[float, int, dict]]] = {}
            committed = 0
            try:
                # warm-up: connections, imports, the first pages of every table
                pool.run({**base, "kind": "vault", "run": "warm", "per_thread": 2})
                pool.run({**base, "kind": "plain", "run": "warm", "per_thread": 2})
                committed += 2 * threads * PROCESSES
                for i, (label, kind, opts) in enumerate(order):
                    rate, count, stats = pool.run({**base, **opts, "kind": kind, "run": i})
                    series.setdefault(label, []).append((rate, count, stats))
                    if kind == "vault":
                        committed += count
            finally:
                pool.close()
            single = single_committer(vault, sizes["single"])
            committed += 2 * sizes["single"]
            status = check(vault, committed)
            vault.close()

    def combined(label: str) -> tuple[float, dict]:
        runs = series[label]
        rate = len(runs) / sum(1 / r for r, _, _ in runs)  # harmonic mean: total / time
        stats = {
            "batches": sum(s["batches"] for _, _, s in runs),
            "records": sum(n for _, n, _ in runs),
            "max_batch": max(s["max_batch"] for _, _, s in runs),
        }
        return rate, stats

    rows, figures = [], {}
    for label in series:
        rate, stats = combined(label)
        is_plain = label.startswith("plain")
        if is_plain and label != "plain":
            continue  # printed with its vault row
        plain_label = "plain" if "committers" not in label else "plain" + label[5:]
        plain = combined(plain_label)[0]
        mean = None if is_plain else stats["records"] / stats["batches"]
        n = int(label.split()[1]) if "committers" in label else PROCESSES * threads
        rows.append(
            (label, n, rate, mean, None if is_plain else stats["max_batch"], plain, rate / plain)
        )
        figures[label] = {
            "committers": n,
            "per_s": round(rate, 1),
            "mean_batch": mean and round(mean, 2),
            "max_batch": None if is_plain else stats["max_batch"],
            "plain_per_s": round(plain, 1),
            "ratio": round(rate / plain, 4),
        }
    print(
        f"{PROCESSES} processes x {threads} threads in the main comparison, {per} commits per "
        f"thread per series; plain payload {payload_bytes} bytes (one sealed entry)"
    )
    c.table(
        ["", "committers", "entries/s", "mean batch", "max batch", "plain rows/s", "ratio"], rows
    )
    print(
        f"1 committer, median per commit: {single['queue']:.2f} ms through the queue, "
        f"{single['direct']:.2f} ms bypassing it"
    )
    print(status)
    vault_rate = combined("vault")[0]
    met = vault_rate >= TARGET_ENTRIES_S
    print(
        f"target >= {TARGET_ENTRIES_S:,.0f} entries/s with group commit "
        f"({PROCESSES * threads} committers): {'met' if met else 'NOT met'} "
        f"({vault_rate:,.0f} entries/s)"
    )
    c.emit(
        "group_commit",
        quick,
        vault_rate / combined("plain")[0],
        None,
        None,
        entries_per_s=round(vault_rate, 1),
        entries_target=TARGET_ENTRIES_S,
        entries_target_met=met,
        processes=PROCESSES,
        threads=threads,
        per_thread=per,
        series=figures,
        single_committer_ms={k: round(v, 3) for k, v in single.items()},
        chain=status,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
