"""Tiled log: mirror a whole log from its tiles over HTTP and verify it, vs log export + verify.

A log of N entries (1,000,000 full; 5,000 quick) is built through the real append path
(group commits of 5,000) and checkpointed every 100,000 entries (quick: every 1,000); each
checkpoint publishes the tiles, as ``serve`` does, into the local store. A static HTTP
server on loopback then plays the bucket's public prefix.

* tiles: ``log mirror`` (every tile and bundle by plain GET, into a directory) then
  ``log verify`` of the mirror (signature, chain, every tile, the root);
* baseline: ``log export`` (the vault reads its database) then ``log verify`` of the export.

``ratio`` = baseline seconds / tiles seconds (> 1: the auditor's tiles path is faster).
Also printed: the publishing cost per entry, the bytes each path moves.

    python bench/tiles.py [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _common as c

GROUP = 5000


def build(vault, n: int, every: int) -> tuple[float, float]:
    """Append and checkpoint (publishing each time); entries/s, and seconds spent publishing."""
    from tests.support.tiles import grow
    from vault.services import tiles

    spent = 0.0
    real = tiles.publish

    def timed(ctx, client):
        nonlocal spent
        t = time.perf_counter()
        try:
            return real(ctx, client)
        finally:
            spent += time.perf_counter() - t

    tiles.publish = timed
    t0 = time.perf_counter()
    try:
        for _ in range(0, n, every):
            grow(vault, every, group=GROUP)
    finally:
        tiles.publish = real
    return n / (time.perf_counter() - t0), spent


def tiles_path(url: str, out: Path, key: str) -> tuple[float, int, bool]:
    from vault.ledger.checkpoint import parse_verifier_key
    from vault.ledger.tiles import audit_tiles
    from vault.tlog import DirectorySource, HttpSource, mirror

    verifier = parse_verifier_key(key)
    t0 = time.perf_counter()
    source = HttpSource(url)
    mirror(source, out, [verifier])
    source.close()
    report = audit_tiles(DirectorySource(out), verifier)
    secs = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return secs, size, report.clean and report.entries > 0


def export_path(vault, out: Path, key: str) -> tuple[float, int, bool]:
    from tests.support.vaults import CLIENT
    from vault.ledger.checkpoint import parse_verifier_key
    from vault.ledger.offline import audit_export

    t0 = time.perf_counter()
    vault.export_log(CLIENT, out)
    with out.open(encoding="utf-8") as fh:
        report = audit_export(fh, parse_verifier_key(key))
    return time.perf_counter() - t0, out.stat().st_size, report.clean


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    quick = args.quick
    n, every = (5_000, 1_000) if quick else (1_000_000, 100_000)
    c.header("tiled log: mirror + verify vs export + verify", quick)
    from tests.support.tiles import published_dir, static_http
    from tests.support.vaults import make_vault

    with tempfile.TemporaryDirectory(prefix="bench-tiles-") as tmp:
        tmp = Path(tmp)
        vault = make_vault(tmp / "vault")
        rate, publishing = build(vault, n, every)
        key = vault.log_key()
        with static_http(published_dir(vault)) as url:
            t_tiles, b_tiles, ok_tiles = tiles_path(url, tmp / "mirror", key)
        t_export, b_export, ok_export = export_path(vault, tmp / "log.jsonl", key)
        vault.close()
    assert ok_tiles and ok_export, "a path did not verify clean"
    ratio = t_export / t_tiles
    print(f"log of {n:,} entries built at {rate:,.0f} entries/s, checkpoint every {every:,}")
    c.table(
        ["figure", "seconds", "MiB moved", "entries/s"],
        [
            ["tiles: mirror over HTTP + verify", t_tiles, b_tiles / c.MIB, n / t_tiles],
            ["export + verify (baseline)", t_export, b_export / c.MIB, n / t_export],
            ["publishing, all checkpoints", publishing, None, n / publishing],
        ],
    )
    c.emit(
        "tiles",
        quick,
        ratio,
        None,
        None,
        entries=n,
        tiles_seconds=round(t_tiles, 3),
        export_seconds=round(t_export, 3),
        tiles_mib=round(b_tiles / c.MIB, 2),
        export_mib=round(b_export / c.MIB, 2),
        publish_us_per_entry=round(publishing / n * 1e6, 2),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
