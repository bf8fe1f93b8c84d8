"""The cost of RFC 3161 time-stamping: on the checkpoint path, and (none) on ingest.

A real TSA on loopback (``openssl ts -reply`` behind an HTTP handler, tests/support/tsa.py;
its CA made in the run) stamps the checkpoints of a vault on SQLite with local storage.

1. Checkpoints/s: append one entry, sign a checkpoint of it (``make_checkpoint``), and —
   in the stamped series — get its token from the TSA, check it (imprint, nonce, CMS
   signature, chain, EKU), store it under Object Lock semantics and record it
   (``stamp_checkpoint``). Baseline: the same loop without the token. For information:
   what stamping adds per checkpoint (ms), most of it the TSA itself (one ``openssl``
   process per token here).
2. Ingest rate with the TSA configured and ``serve``'s catch-up timer stamping meanwhile
   (interval 0.5 s), over the rate with no TSA: whole ``ingest`` calls (probe, seal,
   store, commit, the cadence's checkpoints), series alternating off, on, on, off, off,
   on, on, off (each a quarter of the clips).
   Target ratio >= 0.95: stamping is off the ingest path. The timer shares this
   machine's CPUs with ingest (and the loopback TSA its ``openssl`` processes), which a
   remote TSA would not.

    python bench/timestamping.py [--quick]
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import _common as c

TARGET = 0.95
FULL = {"checkpoints": 60, "ingests": 200, "every": 25}
QUICK = {"checkpoints": 5, "ingests": 12, "every": 4}


def open_vault(home: Path, tsa, *, stamped: bool, every: int):
    from tests.support.vaults import CAMPAIGN, CLIENT
    from vault import Vault
    from vault.config import TsaSettings, load_settings
    from vault.services.context import create_vault

    settings = replace(load_settings(home, env={}), checkpoint_every=every)
    if stamped:
        settings = replace(settings, tsas=(TsaSettings("bench-tsa", tsa.url, tsa.pki.ca),))
    v = Vault(create_vault(settings))
    v.add_client(CLIENT, "Telco DE")
    v.add_campaign(CLIENT, CAMPAIGN, retention_days=730)
    return v


def checkpoint_rate(v, n: int, *, stamped: bool) -> float:
    """Checkpoints/s of one new entry each, with or without its token."""
    from datetime import UTC, datetime

    from tests.support.vaults import CLIENT
    from vault.db import write_session
    from vault.db.log import EntryDraft, append_entries
    from vault.services.checkpoints import make_checkpoint
    from vault.services.timestamps import stamp_checkpoint

    ctx = v.context
    spent = 0.0
    for i in range(n):
        draft = EntryDraft("evidence.accessed", f"01m8{i:022d}", {"principal": "local:bench"})
        with write_session(ctx.engine) as s:
            append_entries(s, CLIENT, [draft], datetime.now(UTC), ctx.log_keys(CLIENT))
        t0 = time.perf_counter()
        cp = make_checkpoint(ctx, CLIENT)
        if stamped:
            report = stamp_checkpoint(ctx, CLIENT, cp.size)
            assert len(report.stamped) == 1, report.failed
        spent += time.perf_counter() - t0
    return n / spent


def ingest_rate(v, clips: list[Path], start: int, *, timer: bool) -> float:
    from tests.support.vaults import order_meta
    from vault.services.timestamps import TimestampTimer

    stamper = TimestampTimer(v.context, 0.5).start() if timer else None
    try:
        t0 = time.perf_counter()
        for i, clip in enumerate(clips):
            v.ingest(clip, order_meta(start + i))
        return len(clips) / (time.perf_counter() - t0)
    finally:
        if stamper is not None:
            stamper.stop()


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    sizes = QUICK if args.quick else FULL
    c.header("RFC 3161 time-stamping of checkpoints", args.quick)
    from tests.support.tsa import OPENSSL, LoopbackTsa
    from tests.support.vaults import clip
    from vault.services.timestamps import unstamped

    if OPENSSL is None:
        print("note: openssl is not installed: the loopback TSA cannot run, nothing measured")
        c.emit("timestamping", args.quick, None, TARGET, "ratio>=", skipped="no openssl")
        return
    with tempfile.TemporaryDirectory(prefix="bench-tsa-") as tmp:
        root = Path(tmp)
        tsa = LoopbackTsa(root / "tsa", label="Bench").start()
        try:
            plain = open_vault(root / "cp-plain", tsa, stamped=False, every=10**9)
            stamped = open_vault(root / "cp-stamped", tsa, stamped=True, every=10**9)
            n = sizes["checkpoints"]
            cps_plain = checkpoint_rate(plain, n, stamped=False)
            cps_stamped = checkpoint_rate(stamped, n, stamped=True)
            added_ms = (1 / cps_stamped - 1 / cps_plain) * 1000

            clips = [clip(root, seed=i % 8) for i in range(sizes["ingests"])]
            off = open_vault(root / "in-off", tsa, stamped=False, every=sizes["every"])
            on = open_vault(root / "in-on", tsa, stamped=True, every=sizes["every"])
            # ABBA order twice, each vault ingesting its own copies of the same clips
            parts = [clips[i::4] for i in range(4)]
            series: dict[str, list[float]] = {"off": [], "on": []}
            order = ("off", "on", "on", "off", "off", "on", "on", "off")
            done = {"off": 0, "on": 0}
            for label in order:
                vault = on if label == "on" else off
                part = parts[done[label]]
                series[label].append(
                    ingest_rate(vault, part, done[label] * 1000, timer=label == "on")
                )
                done[label] += 1
            from vault.services.timestamps import stamp_pending

            stamp_pending(on.context)  # whatever the timer had not reached yet
            left = len(unstamped(on.context))
            checkpoints = len(_checkpoints(on))
        finally:
            tsa.stop()
    ingest_off, ingest_on = c.median(series["off"]), c.median(series["on"])
    ratio = ingest_on / ingest_off
    c.table(
        ["measure", "value"],
        [
            ("checkpoints/s, no time-stamp", cps_plain),
            ("checkpoints/s, stamped by the loopback TSA", cps_stamped),
            ("checkpoint path ratio stamped/plain", cps_stamped / cps_plain),
            ("ms added per checkpoint by stamping", added_ms),
            ("ingests/s, no TSA (median of 4)", ingest_off),
            ("ingests/s, TSA on + catch-up timer (median of 4)", ingest_on),
            ("ingest ratio on/off (target >= 0.95)", ratio),
            ("checkpoints of the TSA-on vault / left unstamped", f"{checkpoints} / {left}"),
        ],
    )
    c.emit(
        "timestamping",
        args.quick,
        ratio,
        TARGET,
        "ratio>=",
        checkpoints_per_s_plain=round(cps_plain, 1),
        checkpoints_per_s_stamped=round(cps_stamped, 1),
        checkpoint_ratio=round(cps_stamped / cps_plain, 4),
        stamp_ms=round(added_ms, 2),
        ingest_per_s_off=round(ingest_off, 2),
        ingest_per_s_on=round(ingest_on, 2),
        unstamped_after_catch_up=left,
    )


def _checkpoints(v) -> list:
    from tests.support.vaults import CLIENT
    from vault.services.checkpoints import list_checkpoints

    return list_checkpoints(v.context, CLIENT)


if __name__ == "__main__":
    main()
