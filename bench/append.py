"""Chain append rate: ``append_entries`` in ``write_session`` vs plain INSERTs, same database.

For SQLite (the embedded default) and PostgreSQL (when 127.0.0.1:5432 answers): a client
is created through the facade; ``evidence.accessed`` entries are appended with 1, 10 and
100 entries per transaction (group commit), from one process, and then from 4 concurrent
processes with 1 and 10 entries per transaction. Baseline: the same number of INSERTs of
rows as large as the log entries into a bare table of the same database, through the same
engine (same pragmas, same write lock, same commit durability), grouped the same way.
Vault and baseline alternate (vault, plain, plain, vault). Each configuration appends to
a new client's empty log; one more row appends to a log that already holds many entries
(cost that grows with the log shows there). Afterwards every chain is checked for gaps
and forks: seqs 0..n-1, each entry's ``prev`` the hash of the one before, and the log
head at the last entry.

No target: the ratios (vault entries/s over plain rows/s) are reported figures.

    python bench/append.py [--quick]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common as c

WORKERS = 4
BODY = {"principal": "local:bench", "what": "audio"}
PLAIN_TABLE = "bench_plain"

# entries per side (vault, and again plain) for each group size; "grown": 10/txn appends
# to a log that already holds that many entries
FULL = {
    "single": {1: 1000, 10: 5000, 100: 20000},
    "concurrent": {1: 2000, 10: 8000},
    "grown": {"prefill": 30000, "count": 2000},
}
QUICK = {
    "single": {1: 40, 10: 200, 100: 400},
    "concurrent": {1: 40, 10: 160},
    "grown": {"prefill": 1000, "count": 200},
}


# --- the work (run in this process and in the workers) -----------------------------------


def append_vault(ctx: Any, client: str, record: str, count: int, group: int) -> None:
    from vault.db import write_session
    from vault.db.log import EntryDraft, append_entries

    done = 0
    while done < count:
        n = min(group, count - done)
        drafts = [EntryDraft("evidence.accessed", record, dict(BODY)) for _ in range(n)]
        with write_session(ctx.engine) as s:
            append_entries(s, client, drafts, datetime.now(UTC), ctx.log_keys(client))
        done += n


def insert_plain(engine: Any, payload: bytes, count: int, group: int) -> None:
    from sqlalchemy import text

    stmt = text(f"INSERT INTO {PLAIN_TABLE} (payload) VALUES (:p)")
    done = 0
    while done < count:
        n = min(group, count - done)
        # the same connection set-up as write_session: BEGIN IMMEDIATE on SQLite
        with engine.connect() as conn:
            conn = conn.execution_options(vault_write=True)
            with conn.begin():
                conn.execute(stmt, [{"p": payload}] * n)
        done += n


def run_task(contexts: dict, task: dict) -> None:
    # the vault itself, opened in this process: entries are tagged with the client's log key
    ctx = contexts.get(task["url"])
    if ctx is None:
        from vault.services.context import open_vault

        ctx = contexts[task["url"]] = open_vault(task["settings"])
    if task["kind"] == "vault":
        append_vault(ctx, task["client"], task["record"], task["count"], task["group"])
    else:
        insert_plain(ctx.engine, task["payload"], task["count"], task["group"])


def worker(tasks: Any, results: Any, barrier: Any) -> None:
    contexts: dict = {}
    # import before reporting ready, not inside the timing
    import vault.db.log
    import vault.services.context

    del vault

    results.put(("ready", os.getpid()))
    while True:
        task = tasks.get()
        if task is None:
            break
        if task["kind"] == "dispose":
            opened = contexts.pop(task["url"], None)
            if opened is not None:
                opened.close()
            results.put(("disposed", os.getpid()))
            continue
        try:
            barrier.wait()
            t0 = time.monotonic()
            run_task(contexts, task)
            results.put(("done", t0, time.monotonic(), task["count"]))
        except Exception as exc:  # reported to the parent, which fails
            barrier.abort()
            results.put(("error", repr(exc)))


class Pool:
    """WORKERS long-lived processes that start each task together (a barrier)."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")  # no engine or lock inherited through fork
        self.results = ctx.Queue()
        self.barrier = ctx.Barrier(WORKERS)
        self.queues = [ctx.Queue() for _ in range(WORKERS)]
        self.procs = [
            ctx.Process(target=worker, args=(q, self.results, self.barrier), daemon=True)
            for q in self.queues
        ]
        for p in self.procs:
            p.start()
        for _ in self.procs:
            self._get("ready")

    def run(self, task: dict) -> float:
        """Each worker does ``task`` (its count is per worker); the total rows per second."""
        for q in self.queues:
            q.put(task)
        done = [self._get("done") for _ in self.queues]
        start, end = min(d[1] for d in done), max(d[2] for d in done)
        return sum(d[3] for d in done) / (end - start)

    def dispose(self, url: str) -> None:
        for q in self.queues:
            q.put({"kind": "dispose", "url": url})
        for _ in self.queues:
            self._get("disposed")

    def close(self) -> None:
        for q in self.queues:
            q.put(None)
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()

    def _get(self, kind: str) -> tuple:
        msg = self.results.get(timeout=600)
        if msg[0] == "error":
            raise RuntimeError(f"worker failed: {msg[1]}")
        assert msg[0] == kind, msg
        return msg


# --- set-up and checks ---------------------------------------------------------------------


def setup(workdir: Path, label: str, database_url: str) -> tuple[Any, bytes]:
    """A vault (clients are added per configuration), the bare table, the row payload."""
    from sqlalchemy import text

    from tests.support.vaults import make_vault
    from vault.ledger import encode_entry, make_entry

    vault = make_vault(workdir / f"vault-{label}", database_url=database_url)
    sample = encode_entry(
        make_entry(
            log="bench-s100",
            seq=12345,
            type="evidence.accessed",
            time=datetime.now(UTC),
            prev="0" * 64,
            record=record_id(),
            body=BODY,
        )
    )
    id_col = "id INTEGER PRIMARY KEY" if database_url == "" else "id BIGSERIAL PRIMARY KEY"
    blob = "BLOB" if database_url == "" else "BYTEA"
    with vault.context.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {PLAIN_TABLE} ({id_col}, payload {blob} NOT NULL)"))
    return vault, os.urandom(len(sample))


def record_id() -> str:
    from vault.identifiers import new_record_id

    return new_record_id()


def check_chain(vault: Any, client: str, expected: int) -> None:
    """Seqs 0..n-1, each prev the hash of the entry before, head at the end: or raise."""
    from sqlmodel import select

    from vault.db import LogEntry, read_session
    from vault.db.log import log_head
    from vault.ledger import GENESIS_PREV, entry_hash, parse_entry

    prev, n = GENESIS_PREV, 0
    with read_session(vault.context.engine) as s:
        rows = s.exec(
            select(LogEntry.seq, LogEntry.entry)
            .where(LogEntry.client_id == client)
            .order_by(LogEntry.seq)
        )
        for seq, raw in rows:
            entry = parse_entry(raw)
            if seq != n or entry["seq"] != n or entry["log"] != client:
                raise AssertionError(f"{client}: gap or duplicate at seq {n}: found {seq}")
            if entry["prev"] != prev:
                raise AssertionError(f"{client}: fork at seq {n}: prev is not entry {n - 1}")
            prev, n = entry_hash(raw), n + 1
        head = log_head(s, client)
    if n != expected:
        raise AssertionError(f"{client}: {n} entries in the log, expected {expected}")
    if head.size != n or head.head_hash != prev:
        raise AssertionError(f"{client}: log head does not point at the last entry")


def count_plain(vault: Any) -> int:
    from sqlalchemy import text

    with vault.context.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {PLAIN_TABLE}")).scalar_one()


# --- measurement --------------------------------------------------------------------------


def single(
    ctx: Any, client: str, record: str, payload: bytes, count: int, group: int
) -> tuple[float, float]:
    """Vault and plain rows/s from this process: vault, plain, plain, vault (drift cancels)."""
    half = count // 2
    t = {"vault": 0.0, "plain": 0.0}
    for kind in ("vault", "plain", "plain", "vault"):
        t0 = time.perf_counter()
        if kind == "vault":
            append_vault(ctx, client, record, half, group)
        else:
            insert_plain(ctx.engine, payload, half, group)
        t[kind] += time.perf_counter() - t0
    return 2 * half / t["vault"], 2 * half / t["plain"]


def measure_db(
    label: str, database_url: str, workdir: Path, pool: Pool, sizes: dict
) -> tuple[list[tuple], dict]:
    vault, payload = setup(workdir, label, database_url)
    url = vault.settings.resolved_database_url
    ctx = vault.context
    rows, figures = [], {}
    appended: dict[str, int] = {}  # per client (each configuration starts on a new log)
    plain_rows = 0

    def new_client(name: str) -> tuple[str, str]:
        vault.add_client(name, f"bench {name}")  # through the facade: a fresh, empty log
        appended[name] = 0
        return name, record_id()

    def report(key: str, title: str, v: float, p: float) -> None:
        rows.append((f"{label}: {title}", v, p, v / p))
        figures[key] = {
            "vault_per_s": round(v, 1),
            "plain_per_s": round(p, 1),
            "ratio": round(v / p, 4),
        }

    try:
        for group, count in sizes["single"].items():
            client, record = new_client(f"bench-s{group}")
            v, p = single(ctx, client, record, payload, count, group)
            appended[client] += count // 2 * 2
            plain_rows += count // 2 * 2
            report(f"single_g{group}", f"1 process, {group}/txn", v, p)
        for group, count in sizes["concurrent"].items():
            client, record = new_client(f"bench-c{group}")
            per = count // WORKERS // 2  # per worker and per half
            base = {"url": url, "settings": vault.settings, "group": group, "count": per}
            vtask = {**base, "kind": "vault", "client": client, "record": record}
            ptask = {**base, "kind": "plain", "payload": payload}
            rates: dict[str, list[float]] = {"vault": [], "plain": []}
            for kind, task in (
                ("vault", vtask),
                ("plain", ptask),
                ("plain", ptask),
                ("vault", vtask),
            ):
                rates[kind].append(pool.run(task))
            appended[client] += 2 * per * WORKERS
            plain_rows += 2 * per * WORKERS
            v = 2 / sum(1 / r for r in rates["vault"])  # harmonic mean: total rows / time
            p = 2 / sum(1 / r for r in rates["plain"])
            report(f"concurrent{WORKERS}_g{group}", f"{WORKERS} processes, {group}/txn", v, p)
        pool.dispose(url)
        grown = sizes["grown"]
        client, record = new_client("bench-grown")
        append_vault(ctx, client, record, grown["prefill"], 100)
        v, p = single(ctx, client, record, payload, grown["count"], 10)
        appended[client] += grown["prefill"] + grown["count"] // 2 * 2
        plain_rows += grown["count"] // 2 * 2
        report("grown_g10", f"1 process, 10/txn, log at {grown['prefill']:,}", v, p)
        for client, n in appended.items():
            check_chain(vault, client, n)
        if count_plain(vault) != plain_rows:
            raise AssertionError("the bare table lost rows")
    finally:
        vault.close()
    status = (
        f"chains ok: {len(appended)} logs, {sum(appended.values())} entries, "
        "seqs 0..n-1, no gap, no fork"
    )
    print(f"{label}: {status}")
    figures["chain"] = status
    return rows, figures


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    quick = args.quick
    sizes = QUICK if quick else FULL
    c.header("ledger append rate vs plain INSERTs", quick)
    rows: list[tuple] = []
    details: dict[str, Any] = {
        "sizes": {k: {str(g): n for g, n in v.items()} for k, v in sizes.items()}
    }
    pool = Pool()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-append-") as tmp:
            r, details["sqlite"] = measure_db("sqlite", "", Path(tmp), pool, sizes)
            rows += r
            with c.pg_database() as pg_url:
                if pg_url:
                    r, details["postgres"] = measure_db("postgres", pg_url, Path(tmp), pool, sizes)
                    rows += r
    finally:
        pool.close()
    c.table(["", "vault entries/s", "plain rows/s", "ratio"], rows)
    headline = details["sqlite"]["single_g1"]["ratio"]
    c.emit(
        "append", quick, headline, None, None, headline="sqlite, 1 process, 1 entry/txn", **details
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
