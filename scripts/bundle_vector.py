"""Regenerate ``tests/vectors/bundle-v4.zip``, the format 4 bundle other verifiers check.

A throwaway vault (local storage, SQLite) seals one 2-second clip and a Textform contract
summary, has its checkpoint time-stamped by a loopback TSA (``openssl ts -reply``, a test CA
made here; its root is written beside the vector) and exports the bundle in German with
report.pdf. Prints the vault's verifier key: put it into ``VECTOR_KEY`` in
``tests/test_dispute_report.py``. Regenerate only when format 4 itself changes (a vector
that moves with every commit proves nothing about compatibility).

Run from the repository root: ``python scripts/bundle_vector.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.textform import pdf  # noqa: E402
from tests.support.tsa import LoopbackTsa  # noqa: E402
from tests.support.vaults import clip, make_vault, order_meta  # noqa: E402
from vault.config import TsaSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests/vectors/bundle-v4.zip")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        tsa = LoopbackTsa(tmp / "tsa", label="Vector").start()
        v = make_vault(tmp / "vault")
        try:
            v.context.settings = replace(
                v.settings, tsas=(TsaSettings("vector-tsa", tsa.url, tsa.pki.ca),)
            )
            rid = v.ingest(clip(tmp, seed=4, seconds=2.0), order_meta(4)).record_id
            summary = tmp / "contract-summary.pdf"
            summary.write_bytes(pdf())
            v.attach(rid, summary, kind="contract-summary")
            path = v.export_bundle(rid, tmp / "v4.zip", principal="local:lawyer-desk")
            shutil.copyfile(path, args.out)
            roots = args.out.with_name(args.out.stem + "-tsa-root.pem")
            shutil.copyfile(tsa.pki.ca, roots)
            print(f"{args.out}, {roots.name}: record {rid}\nVECTOR_KEY = {v.log_key()!r}")
        finally:
            v.close()
            tsa.stop()


if __name__ == "__main__":
    main()
