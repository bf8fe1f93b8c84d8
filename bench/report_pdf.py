"""Cost of the dispute report's PDF: seconds per ``export`` with report.pdf vs without.

One local vault (SQLite, local object directory), one sealed record per clip length
(CLIP_SECONDS, WAV 16 kHz mono PCM: 32 KB/s). Series, alternating per round (AB BA):

* ``with PDF``: ``export_bundle`` as by default (format 4: report.html, custody.json and
  report.pdf with every member attached, then the offline verifier on the finished ZIP);
* ``without PDF`` (the baseline): the same export with ``pdf=False`` (``--no-pdf``): the
  format 4 bundle, the same self-check, no PDF.

Each export is also an access (an ``evidence.accessed`` entry), so the custody list grows
by one per export in both series alike. WeasyPrint's import and its first page (fonts
loaded) are paid once before timing. Figures: seconds per export; the JSON's ``ratio`` is
``with PDF`` / ``without PDF`` for the longest clip (median over rounds) — a cost factor,
so no target.

    python bench/report_pdf.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import _common as c

FULL = {"clips": (10.0, 120.0), "rounds": 3}
QUICK = {"clips": (2.0,), "rounds": 1}


def measure(tmp: Path, seconds: float, rounds: int) -> dict:
    from tests.support.vaults import clip, make_vault, order_meta

    v = make_vault(tmp / f"vault-{seconds:g}")
    try:
        rid = v.ingest(clip(tmp, seconds=seconds, seed=1), order_meta(1)).record_id
        v.export_bundle(rid, tmp / "warm.zip")  # WeasyPrint loaded, fonts found
        times: dict[str, list[float]] = {"with PDF": [], "without PDF": []}
        sizes: dict[str, int] = {}
        for r in range(rounds):
            order = ("with PDF", "without PDF") if r % 2 == 0 else ("without PDF", "with PDF")
            for series in order:
                out = tmp / f"{series.replace(' ', '-')}.zip"
                start = time.perf_counter()
                v.export_bundle(rid, out, pdf=series == "with PDF")
                times[series].append(time.perf_counter() - start)
                sizes[series] = out.stat().st_size
    finally:
        v.close()
    ratios = [a / b for a, b in zip(times["with PDF"], times["without PDF"], strict=True)]
    return {
        "clip_seconds": seconds,
        "seconds": {s: round(c.median(t), 3) for s, t in times.items()},
        "bundle_bytes": sizes,
        "ratio": round(c.median(ratios), 3),
    }


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    sizes = QUICK if args.quick else FULL
    c.header("export with and without report.pdf", args.quick)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-report-pdf-") as tmp:
        for seconds in sizes["clips"]:
            results.append(measure(Path(tmp), seconds, sizes["rounds"]))
    rows = [
        (
            f"{r['clip_seconds']:g} s clip",
            r["seconds"]["without PDF"],
            r["seconds"]["with PDF"],
            r["ratio"],
            r["bundle_bytes"]["without PDF"],
            r["bundle_bytes"]["with PDF"],
        )
        for r in results
    ]
    c.table(
        ["", "s/export no PDF", "s/export PDF", "PDF/no PDF", "ZIP bytes", "ZIP bytes PDF"],
        rows,
    )
    c.emit(
        "report_pdf",
        args.quick,
        results[-1]["ratio"],
        None,
        None,
        rounds=sizes["rounds"],
        results=results,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
