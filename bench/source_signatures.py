"""Cost of source signatures on the ingest path: records sealed per second with and
without a dialer host's signature.

What is measured: ``Vault.ingest`` of 1 MiB WAV clips into an embedded vault (local
store, SQLite), one thread. ``signed``: each clip comes with its ``SourceSignature`` (made
beforehand: signing is the dialer's cost, not the vault's), so the vault reads the clip
once more for its SHA-256, looks up the key in the ``dialer_key`` cache, checks the
Ed25519 signature and puts ``source`` in the entry. ``unsigned`` (the baseline): the same
clips, other call ids, no signature. Each clip is ingested once unsigned and once signed,
back to back in alternating order; a round's rate is 1 / the median time per ingest, the
ratio the median over rounds of signed / unsigned rate. Afterwards ``verify`` must be clean
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

        def job(path: Path, signed: bool) -> tuple[Path, dict, SourceSignature | None]:
            meta = order_meta(next(counter))
            if not signed:
                return path, meta, None
            digest = hashlib.sha256(path.read_bytes()).digest()
            made = host.sign(digest, metadata_digest(meta), format_time(_recorded(meta)))
            return path, meta, SourceSignature(host.key_id, made)

        def timed(item: tuple[Path, dict, SourceSignature | None]) -> float:
            path, meta, sig = item
            start = time.perf_counter()
            v.ingest(path, meta, signature=sig)
            return time.perf_counter() - start

        for path in clips:  # warm up: imports, first KEK, caches
            timed(job(path, False))
        rows, ratios = [], []
        for r in range(size["rounds"]):
            times: dict[bool, list[float]] = {True: [], False: []}
            for i, path in enumerate(clips):
                # one unsigned and one signed ingest of the same clip, back to back, the
                # order alternating: a shared machine's drift hits both series alike
                for signed in (True, False) if (i + r) % 2 == 0 else (False, True):
                    times[signed].append(timed(job(path, signed)))
            unsigned, signed_ = 1 / c.median(times[False]), 1 / c.median(times[True])
            ratios.append(signed_ / unsigned)
            rows.append((f"round {r + 1}", unsigned, signed_, ratios[-1]))
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
