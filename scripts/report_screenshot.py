"""Pictures of the German dispute report (report.pdf) for the docs, and a text sample.

A throwaway vault (local storage, SQLite) seals one 12-second call, a quality desk reads
it, a dispute is opened, and a lawyer's desk exports the bundle; poppler's ``pdftoppm``
renders the PDF's pages and ``pdftotext`` its text. Writes into ``docs/screenshots/``:

- ``report-de-1.png``, ``report-de-2.png``: the first two pages, 100 dpi
- ``report-de.txt``: the report's text as ``pdftotext -layout`` reads it

Run from the repository root: ``python scripts/report_screenshot.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.vaults import clip, make_vault, order_meta  # noqa: E402

PAGES = 2
DPI = 100


def export(tmp: Path) -> bytes:
    from vault.services.holds import place_hold

    v = make_vault(tmp / "vault")
    try:
        meta = order_meta(
            7,
            consent={"recording_at_ms": 800},
            identity={
                "method": "name+date_of_birth+postcode",
                "confirmed": {"name": "Max Mustermann", "date_of_birth": "1980-01-31"},
                "span_ms": [1500, 4200],
            },
            intent={
                "product": "Glasfaser 250",
                "price": "39,99 EUR/Monat",
                "term": "24 Monate",
                "statement": "Ja, ich möchte den Vertrag so abschließen.",
                "span_ms": [5000, 8800],
            },
            withdrawal_notice_span_ms=[9000, 11500],
        )
        rid = v.ingest(clip(tmp, seconds=12.0, seed=7), meta).record_id
        v.show(rid, principal="local:qualitaet")
        place_hold(
            v.context,
            rid,
            kind="dispute",
            case_ref="AZ-2026/0815",
            reason="Kunde bestreitet den Vertragsschluss",
            principal="local:streitfall",
        )
        bundle = v.export_bundle(rid, tmp / "bundle.zip", principal="local:kanzlei")
    finally:
        v.close()
    with zipfile.ZipFile(bundle) as zf:
        return zf.read("report.pdf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    for tool in ("pdftoppm", "pdftotext"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: install poppler-utils", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="report-shot-") as tmp:
        pdf = Path(tmp) / "report.pdf"
        pdf.write_bytes(export(Path(tmp)))
        prefix = Path(tmp) / "page"
        subprocess.run(
            ["pdftoppm", "-png", "-r", str(DPI), "-f", "1", "-l", str(PAGES), str(pdf), prefix],
            check=True,
        )
        for n in range(1, PAGES + 1):
            page = next(Path(tmp).glob(f"page-{n}.png"), None) or next(
                Path(tmp).glob(f"page-0{n}.png")
            )
            shutil.copyfile(page, args.out / f"report-de-{n}.png")
            print(f"wrote {args.out / f'report-de-{n}.png'}")
        text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True
        ).stdout
        (args.out / "report-de.txt").write_bytes(text)
        print(f"wrote {args.out / 'report-de.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
