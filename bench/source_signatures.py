"""Cost of source signatures on the ingest path: records sealed per second with and
without a dialer host's signature.

What is measured: ``Vault.ingest`` of 1 MiB WAV clips into an embedded vault (local
store, SQLite), one thread. ``signed``: each clip comes with its ``SourceSignature`` (made
beforehand: signing is the dialer's cost, not the vault's), so the vault reads the clip
once more for its SHA-256, looks up the key in the ``dialer_key`` cache, checks the
Ed25519 signature and puts ``source`` in the entry. ``unsigned`` (the baseline): the same
clips, other call ids, no signature. Series alternate in rounds (AB BA ...); the ratio is
the median over rounds of signed / unsigned rate. Afterwards ``verify`` must be clean
(every signed entry checked against the log's registration).

Target: signed / unsigned >= 0.9 (printed met or not).

    python bench/source_signatures.py [--quick]
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

import _common as c

TARGET = 0.9
FULL = {"clips": 40, "rounds": 4}
QUICK = {"clips": 3, "rounds": 1}


def main() -> int:
    args = c.parse_args(__doc__.splitlines()[0])
    size = QUICK if args.quick else FULL
    c.header("source signatures on ingest", args.quick)

    from tests.support.vaults import CLIENT, make_vault, order_meta
    from vault.ledger.entry import format_time
    from vault.sealing import SourceSigner, encode_public_key
    from vault.sealing.source import SourceSignature, metadata_digest
    from vault.synth import write_clip

    with tempfile.TemporaryDirectory(prefix="bench-sig-") as tmp:
        root = Path(tmp)
        v = make_vault(root / "v")
        host = SourceSigner.generate()
        v.register_dialer_key(CLIENT, encode_public_key(host.public_key))
        clips = []
        for i in range(size["clips"]):
            path = root / f"c{i}.wav"
            write_clip(path, "wav-pcm16", seconds=c.MIB / 32000, seed=i)
            clips.append(path)
        counter = iter(range(10**9))

        def series(signed: bool) -> float:
            jobs = []
            for path in clips:
                meta = order_meta(next(counter))
                sig = None
                if signed:
                    recorded = format_time(_recorded(meta))
                    digest = hashlib.sha256(path.read_bytes()).digest()
                    sig = SourceSignature(
                        host.key_id, host.sign(digest, metadata_digest(meta), recorded)
                    )
                jobs.append((path, meta, sig))
            start = time.perf_counter()
            for path, meta, sig in jobs:
                v.ingest(path, meta, signature=sig)
            return len(jobs) / (time.perf_counter() - start)

        series(False)  # warm up: imports, first KEK, caches
        rows, ratios = [], []
        for r in range(size["rounds"]):
            order = (True, False) if r % 2 == 0 else (False, True)
            rates = {s: series(s) for s in order}
            ratios.append(rates[True] / rates[False])
            rows.append((f"round {r + 1}", rates[False], rates[True], ratios[-1]))
        c.table(["", "unsigned rec/s", "signed rec/s", "ratio"], rows)
        report = v.verify()
        signed_entries = report.records
        v.close()
        if not report.clean:
            print("verify found:", *report.findings, sep="\n  ")
            return 1
    ratio = c.median(ratios)
    print(f"signed / unsigned: {ratio:.3f} (target >= {TARGET})")
    c.emit(
        "source_signatures",
        args.quick,
        ratio,
        TARGET,
        "ratio>=",
        clips_per_series=size["clips"],
        rounds=size["rounds"],
        records_verified=signed_entries,
    )
    return 0


def _recorded(meta: dict):
    from datetime import datetime

    return datetime.fromisoformat(meta["recorded_at"].replace("Z", "+00:00"))


if __name__ == "__main__":
    sys.exit(main())
