"""Cost of entry authentication on the append path: group-commit append rate with and
without entry tags and head anchors.

What is measured: the commit step of an upload under concurrent committers, exactly as
in ``bench/group_commit.py`` (whose worker processes this script reuses): 2 processes x
THREADS threads call ``vault.services.ingest._commit`` on complete record rows with no
objects behind them; concurrent commits of a process share one transaction through the
group-commit queue, the processes serialise on the log head's row lock. Figure: log
entries (= records) per second, all committers together.

Three writers, swapped per series in the worker processes (``ctx.log_keys`` returns a
stand-in wrapped around the vault's own ``LogKeys``); the stand-ins are defined here,
never in the library:

* ``tags + anchor``: the vault's ``LogKeys`` as is — an HMAC-SHA256 tag per entry
  (``entry_tag``) and, after each commit, the head anchor file rewritten under its lock
  (``anchor``). This is what production does.
* ``tags only``: the real ``entry_tag``, ``anchor`` does nothing (the anchor's share is
  the difference to the row above).
* ``neither`` (the baseline): ``entry_tag`` returns a constant 32 zero bytes (the column
  is NOT NULL in spirit: same row size) and ``anchor`` does nothing — the append path as
  it was before entries were authenticated.

Series alternate in rounds (ABC CBA; 5 rounds in full mode), same database, same log, same
concurrency. Afterwards the chain is checked (seqs 0..n-1, no gap, no fork, one record
per entry) and every entry's tag: those written by the real writer verify under the
client's log key, the baseline's are the zero tag — so the stand-ins were really used.

The JSON's ``ratio``: the median over rounds of each round's ``tags + anchor`` /
``neither`` rate (the series of a round run back to back, so a round's ratio escapes most
of a shared machine's drift; ``ratio_of_totals`` is the same over all rounds at once).
For information, in-process and single-threaded: microseconds per ``entry_tag`` call and
per ``anchor`` call of the real writer.

Target: ``tags + anchor`` / ``neither`` >= 0.9 (printed met or not). PostgreSQL always
(skipped when absent); ``--sqlite`` adds the same on SQLite (one process, THREADS
threads: SQLite writers serialise on the database lock anyway).

    python bench/entry_auth.py [--quick] [--threads N] [--sqlite]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as c
import group_commit as gc

TARGET = 0.9
ZERO_TAG = bytes(32)
FULL = {"per_thread": 30, "rounds": 5}
QUICK = {"per_thread": 4, "rounds": 1}
MICRO = {"tags": 20_000, "anchors": 2_000}


class TagsOnly:
    """The vault's entry tags; no head anchor."""

    def __init__(self, keys: Any) -> None:
        self._keys = keys

    def entry_tag(self, seq: int, entry_hash: bytes) -> bytes:
        return self._keys.entry_tag(seq, entry_hash)

    def anchor(self, size: int, head_hash: str) -> None:
        return None


class Neither:
    """No authentication: a constant tag, no anchor (the append path before issue 9)."""

    def __init__(self, keys: Any) -> None:
        del keys

    def entry_tag(self, seq: int, entry_hash: bytes) -> bytes:
        return ZERO_TAG

    def anchor(self, size: int, head_hash: str) -> None:
        return None


# label -> the stand-in's class (None: the vault's own LogKeys)
WRITERS: dict[str, type | None] = {
    "tags + anchor": None,
    "tags only": TagsOnly,
    "neither": Neither,
}


def check_tags(vault: Any, expected_real: int, expected_zero: int) -> str:
    """Every entry's tag verifies under the log key or is the zero tag; counts as expected."""
    from sqlmodel import select

    from tests.support.vaults import CLIENT
    from vault.db import LogEntry, read_session

    keys = vault.context.log_keys(CLIENT)
    real = zero = 0
    with read_session(vault.context.engine) as s:
        for seq, raw, tag in s.exec(
            select(LogEntry.seq, LogEntry.entry, LogEntry.tag).where(LogEntry.client_id == CLIENT)
        ):
            tag = bytes(tag) if tag is not None else None
            if tag == ZERO_TAG:
                zero += 1
            elif keys.check_entry(seq, bytes(raw), tag):
                real += 1
            else:
                raise AssertionError(f"entry {seq}: neither a valid tag nor the stand-in's")
    if (real, zero) != (expected_real, expected_zero):
        raise AssertionError(
            f"{real} tagged and {zero} zero-tagged entries, expected "
            f"{expected_real} and {expected_zero}"
        )
    return f"tags ok: {real} entries tagged by the log key, {zero} by the stand-in"


def microcosts(sizes: dict) -> dict:
    """In-process, one thread: microseconds per ``entry_tag`` and per ``anchor`` call of
    the vault's own writer (the anchor rewrites the file each time: sizes increase)."""
    import hashlib
    import time

    from tests.support.vaults import CLIENT, make_vault

    with tempfile.TemporaryDirectory(prefix="bench-entry-auth-micro-") as tmp:
        vault = make_vault(Path(tmp) / "vault")
        keys = vault.context.log_keys(CLIENT)
        digests = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(sizes["tags"])]
        t0 = time.perf_counter()
        for seq, d in enumerate(digests):
            keys.entry_tag(seq, d)
        tag_us = (time.perf_counter() - t0) / len(digests) * 1e6
        head = digests[0].hex()
        t0 = time.perf_counter()
        for size in range(1, sizes["anchors"] + 1):
            keys.anchor(size, head)
        anchor_us = (time.perf_counter() - t0) / sizes["anchors"] * 1e6
        assert keys.read_anchor().size == sizes["anchors"]
        vault.close()
    return {"entry_tag_us": round(tag_us, 2), "anchor_us": round(anchor_us, 1)}


def measure(label: str, database_url: str, processes: int, threads: int, sizes: dict) -> dict:
    from tests.support.vaults import make_vault

    with tempfile.TemporaryDirectory(prefix="bench-entry-auth-") as tmp:
        vault = make_vault(Path(tmp) / "vault", database_url=database_url)
        gc.PROCESSES = processes  # Pool starts this many workers
        pool = gc.Pool(vault.settings)
        base = {"kind": "vault", "threads": threads, "payload_bytes": 0}
        names = list(WRITERS)
        order = names + names[::-1]
        series: dict[str, list[tuple[float, int, dict]]] = {n: [] for n in names}
        rounds: list[dict[str, float]] = []  # per round: each writer's rate in it
        committed = {n: 0 for n in names}
        try:
            for name in names:  # warm-up: connections, imports, first pages; each writer once
                pool.run({**base, "per_thread": 2, "run": f"warm-{name}",
                          "writer": WRITERS[name]})
                committed[name] += 2 * threads * processes
            for r in range(sizes["rounds"]):
                times = {n: 0.0 for n in names}
                for i, name in enumerate(order):
                    rate, count, stats = pool.run({**base, "per_thread": sizes["per_thread"],
                                                   "run": f"{r}-{i}", "writer": WRITERS[name]})
                    series[name].append((rate, count, stats))
                    committed[name] += count
                    times[name] += 1 / rate
                rounds.append({n: 2 / t for n, t in times.items()})
        finally:
            pool.close()
        total = sum(committed.values())
        chain = gc.check(vault, total)
        tags = check_tags(vault, total - committed["neither"], committed["neither"])
        vault.close()

    rates = {n: len(runs) / sum(1 / r for r, _, _ in runs) for n, runs in series.items()}
    batches = {n: sum(c for _, c, _ in runs) / sum(s["batches"] for _, _, s in runs)
               for n, runs in series.items()}
    base_rate = rates["neither"]

    def paired(a: str, b: str) -> float:
        # the series of a round ran back to back: their ratio escapes most of the drift
        return c.median([rd[a] / rd[b] for rd in rounds])

    return {
        "label": label,
        "committers": processes * threads,
        "per_s": {n: round(r, 1) for n, r in rates.items()},
        "runs_per_s": {n: [round(r, 1) for r, _, _ in runs] for n, runs in series.items()},
        "mean_batch": {n: round(b, 2) for n, b in batches.items()},
        "ratio": round(paired("tags + anchor", "neither"), 4),
        "tags_only_ratio": round(paired("tags only", "neither"), 4),
        "anchor_ratio": round(paired("tags + anchor", "tags only"), 4),
        "ratio_of_totals": round(rates["tags + anchor"] / base_rate, 4),
        "round_ratios": [round(rd["tags + anchor"] / rd["neither"], 3) for rd in rounds],
        "chain": chain,
        "tags": tags,
    }


def main() -> int:
    def extra(p):
        p.add_argument("--threads", type=int, default=gc.THREADS,
                       help="committer threads per process")
        p.add_argument("--sqlite", action="store_true", help="also measure on SQLite")

    args = c.parse_args(__doc__.splitlines()[0], extra)
    quick, threads = args.quick, args.threads
    sizes = QUICK if quick else FULL
    c.header("entry authentication on the append path (group commit)", quick)
    results = []
    with c.pg_database() as pg_url:
        if pg_url:
            results.append(measure("postgres", pg_url, 2, threads, sizes))
    if args.sqlite or not results:
        results.append(measure("sqlite", "", 1, threads, sizes))
    micro = microcosts({k: v // 10 for k, v in MICRO.items()} if quick else MICRO)

    rows = []
    for r in results:
        for name in WRITERS:
            rel = r["per_s"][name] / r["per_s"]["neither"]
            rows.append((f"{r['label']}: {name}", r["committers"], r["per_s"][name],
                         r["mean_batch"][name], rel))
    print(f"{sizes['per_thread']} commits per thread per series; {sizes['rounds']} rounds of "
          "(tags + anchor, tags only, neither, neither, tags only, tags + anchor)")
    c.table(["", "committers", "entries/s", "mean batch", "vs neither"], rows)
    for r in results:
        print(f"{r['label']}: {r['chain']}; {r['tags']}")
        print(f"{r['label']}: median of the rounds' ratios: tags + anchor / neither = "
              f"{r['ratio']:.3f} (rounds: {r['round_ratios']}); tags only / neither = "
              f"{r['tags_only_ratio']:.3f}; tags + anchor / tags only = {r['anchor_ratio']:.3f}")
    print(f"in-process, one thread: entry_tag {micro['entry_tag_us']:.2f} us per entry, "
          f"anchor {micro['anchor_us']:.1f} us per commit")
    head = results[0]
    met = head["ratio"] >= TARGET
    print(f"target {head['label']}: tags + anchor >= {TARGET} x neither: "
          f"{'met' if met else 'NOT met'} ({head['ratio']:.3f})")
    c.emit("entry_auth", quick, head["ratio"], TARGET, "ratio>=", headline=head["label"],
           per_thread=sizes["per_thread"], rounds=sizes["rounds"], microcosts=micro,
           results={r["label"]: r for r in results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
