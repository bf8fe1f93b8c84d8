"""Cost of verify's trust checks: entries/s of ``verify`` with every check vs without the
per-entry tag check and the per-record column checks.

The log: RECORDS sealed records (2,000 full; 200 quick) and ACCESS ``evidence.accessed``
entries per record, one client, checkpointed at the end. It is built fast, not through
``ingest``: each record is a complete row (``bench/group_commit.fake_sealed``) whose two
objects are written to the local object directory as small random blobs (CLIP_BYTES and
META_BYTES; ``verify`` without ``--deep`` only hashes the stored bytes, which then agree
with the row and the entry), and rows and entries are committed through the real commit
step (``ingest._begin_batch`` / ``_commit_batch``, batches of 200) and ``append_entries``,
so every entry is a real v2 entry with its tag under the client's log key and the head
anchor is written. ``verify`` must report the log clean before anything is timed.

Series (``vault.services.verify.verify`` on the whole vault, alternating ABCD DCBA):

* ``all checks``: the vault as is.
* ``no tag check``: ``LogKeys.check_entry`` patched to return True.
* ``pre-issue-9 rows``: ``vault.services.verify.row_mismatch`` (the name verify calls)
  patched to the column comparison verify made before issue 9 (seq, object keys and
  hashes, recording time, retention, KEK, duration, key and shred state — no client,
  campaign, media type, sealed time, object versions or row digest).
* ``neither`` (the baseline): both patches.

The patches are made in this process only, for the duration of a series, and undone
after it (see :func:`patched`); nothing else changes — the lookup-column check, the head
anchor and the rest of verify run in every series. Figure: entries/s (``report.entries``
over wall time). The JSON's ``ratio`` is ``all checks`` / ``neither`` (median of the
rounds' ratios); no target.

Local object directory with SQLite, and with PostgreSQL when it answers.

    python bench/verify_checks.py [--quick] [--records N]
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common as c
import group_commit as gc

ACCESS = 2  # evidence.accessed entries per record
BATCH = 200
CLIP_BYTES, META_BYTES = 4096, 512
FULL = {"records": 2000, "rounds": 3}
QUICK = {"records": 200, "rounds": 1}
SERIES = ("all checks", "no tag check", "pre-issue-9 rows", "neither")


def pre_issue9_row_mismatch(rec: Any, item: Any, facts: Any, campaign: Any) -> str | None:
    """The record-row check of ``verify`` before issue 9 (``_row_mismatch`` at 720f26f^)."""
    from vault.ledger.entry import format_time

    del campaign
    body = item.entry.get("body", {})
    objects = body.get("objects", {})
    retain_until = facts.retain_until.get(rec.id, body.get("retain_until"))
    shredded = rec.id in facts.shredded
    pairs = {
        "seq": (rec.seq, item.seq),
        "clip_key": (rec.clip_key, objects.get("clip", {}).get("key")),
        "clip_sha256": (rec.clip_sha256, objects.get("clip", {}).get("sha256")),
        "meta_key": (rec.meta_key, objects.get("meta", {}).get("key")),
        "meta_sha256": (rec.meta_sha256, objects.get("meta", {}).get("sha256")),
        "recorded_at": (format_time(rec.recorded_at), body.get("recorded_at")),
        "retain_until": (format_time(rec.retain_until), retain_until),
        "kek": (True, facts.reaches(body.get("kek"), rec.kek_id)),
        "duration_ms": (rec.duration_ms, body.get("duration_ms")),
        "wrapped_dek": (bool(rec.wrapped_dek), not shredded),
        "shredded_at": (rec.shredded_at is not None, shredded),
    }
    bad = [name for name, (row, entry) in pairs.items() if row != entry]
    return ", ".join(bad) if bad else None


@contextlib.contextmanager
def patched(series: str) -> Iterator[None]:
    """The series' checks switched off for the duration (restored on exit)."""
    import vault.services.verify as verify_mod
    from vault.services.logauth import LogKeys

    saved = (verify_mod.row_mismatch, LogKeys.check_entry, LogKeys.entry_checker)
    try:
        if series in ("no tag check", "neither"):
            LogKeys.check_entry = lambda self, seq, raw, tag: True  # type: ignore[method-assign]
            # verify's walk takes its checker from here (the entry hashed once)
            LogKeys.entry_checker = lambda self: lambda seq, h, tag: True  # type: ignore[method-assign]
        if series in ("pre-issue-9 rows", "neither"):
            verify_mod.row_mismatch = pre_issue9_row_mismatch  # type: ignore[assignment]
        yield
    finally:
        verify_mod.row_mismatch, LogKeys.check_entry, LogKeys.entry_checker = saved  # type: ignore[method-assign]


def build_log(vault: Any, records: int) -> tuple[int, float]:
    """RECORDS sealed records with their objects, ACCESS access entries each; entries/s."""
    from sqlmodel import select

    from tests.support.vaults import CLIENT
    from vault.db import Campaign, read_session, write_session
    from vault.db.log import EntryDraft, append_entries
    from vault.services.ingest import _begin_batch, _commit_batch, _ToCommit, sealed_entry_body
    from vault.services.retention import rule_for

    ctx = vault.context
    keys = ctx.log_keys(CLIENT)
    with read_session(ctx.engine) as s:
        campaign = s.exec(select(Campaign)).one()
        rule_for(s, campaign)  # the campaign is usable for records, as in ingest
    t0 = time.perf_counter()
    for start in range(0, records, BATCH):
        items, ids = [], []
        for n in range(start, min(records, start + BATCH)):
            sealed = gc.fake_sealed(campaign, "verify", n)
            rec = sealed.record
            for role, size in (("clip", CLIP_BYTES), ("meta", META_BYTES)):
                blob = os.urandom(size)
                stored = ctx.store.put(getattr(rec, f"{role}_key"), [blob])
                setattr(rec, f"{role}_sha256", hashlib.sha256(blob).hexdigest())
                setattr(rec, f"{role}_version", stored.version_id)
            body = sealed_entry_body(rec, campaign.name, sealed.commitments, CLIP_BYTES, META_BYTES)
            items.append(_ToCommit(ctx.engine, keys, rec.model_dump(), body, False))
            ids.append(rec.id)
        with _begin_batch(CLIENT, items[0]) as locked:
            _commit_batch(locked, items)
        drafts = [
            EntryDraft(
                "evidence.accessed",
                rid,
                {"principal": f"client:{CLIENT}:escalation-{k:03d}", "what": "audio"},
            )
            for k in range(ACCESS)
            for rid in ids
        ]
        with write_session(ctx.engine) as s:
            append_entries(s, CLIENT, drafts, ctx.clock(), keys)
    entries = records * (1 + ACCESS)
    rate = entries / (time.perf_counter() - t0)
    vault.checkpoint(CLIENT)
    return entries, rate


def time_verify(vault: Any, series: str) -> tuple[float, Any]:
    from vault.services.verify import verify

    with patched(series):
        t0 = time.perf_counter()
        report = verify(vault.context)
        seconds = time.perf_counter() - t0
    return report.entries / seconds, report


def measure(label: str, database_url: str, workdir: Path, sizes: dict) -> dict:
    from tests.support.vaults import make_vault

    vault = make_vault(workdir / f"vault-{label}", database_url=database_url)
    try:
        entries, build_rate = build_log(vault, sizes["records"])
        _, report = time_verify(vault, "all checks")  # warm-up; and the log is clean
        if not report.clean or report.entries < entries:
            raise AssertionError(f"verify: {report.entries} entries, {report.findings[:3]}")
        checked = report.entries
        order = list(SERIES) + list(SERIES)[::-1]
        runs: dict[str, list[float]] = {s: [] for s in SERIES}
        rounds: list[dict[str, float]] = []
        for _ in range(sizes["rounds"]):
            times = {s: 0.0 for s in SERIES}
            for series in order:
                rate, report = time_verify(vault, series)
                if not report.clean:
                    raise AssertionError(f"{series}: verify is not clean: {report.findings[:3]}")
                runs[series].append(rate)
                times[series] += 1 / rate
            rounds.append({s: 2 / t for s, t in times.items()})
    finally:
        vault.close()
    per_s = {s: len(r) / sum(1 / x for x in r) for s, r in runs.items()}
    ratios = {s: c.median([rd[s] / rd["neither"] for rd in rounds]) for s in SERIES}
    return {
        "label": label,
        "records": sizes["records"],
        "entries": checked,
        "build_entries_per_s": round(build_rate),
        "per_s": {s: round(v) for s, v in per_s.items()},
        "runs_per_s": {s: [round(x) for x in r] for s, r in runs.items()},
        "ratio_vs_neither": {s: round(v, 4) for s, v in ratios.items()},
        "ratio": round(ratios["all checks"], 4),
    }


def main() -> int:
    def extra(p):
        p.add_argument("--records", type=int, help="sealed records in the log")

    args = c.parse_args(__doc__.splitlines()[0], extra)
    quick = args.quick
    sizes = dict(QUICK if quick else FULL)
    if args.records:
        sizes["records"] = args.records
    c.header("verify with and without the issue-9 checks", quick)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-verify-checks-") as tmp:
        results.append(measure("sqlite", "", Path(tmp), sizes))
        with c.pg_database() as pg_url:
            if pg_url:
                results.append(measure("postgres", pg_url, Path(tmp), sizes))
    rows = []
    for r in results:
        for s in SERIES:
            rows.append((f"{r['label']}: {s}", r["per_s"][s], r["ratio_vs_neither"][s]))
    print(
        f"{sizes['records']:,} sealed records + {ACCESS} access entries each "
        f"({results[0]['entries']:,} entries), objects {CLIP_BYTES} + {META_BYTES} bytes, "
        f"local store; {sizes['rounds']} rounds of ABCD DCBA"
    )
    c.table(["", "verify entries/s", "vs neither"], rows)
    head = results[0]
    c.emit(
        "verify_checks",
        quick,
        head["ratio"],
        None,
        None,
        headline=head["label"],
        records=sizes["records"],
        rounds=sizes["rounds"],
        results={r["label"]: r for r in results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
