"""Run every benchmark under bench/ (full mode unless --quick) and print a summary table.

Each script runs in its own process; its output is shown as it comes, and its last line
(one JSON object) feeds the summary. Exit status 1 when a script fails (not when a
figure misses its target: these are measurements, not tests).

    python bench/run_all.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import _common as c

BENCHES = (
    "sealing",
    "ingest_s3",
    "pg_round_trips",
    "append",
    "memory",
    "ledger",
    "retention",
    "group_commit",
    "http_ingest",
    "entry_auth",
    "verify_checks",
    "shred_walk",
    "soak",
    "desk",
    "agent",
    "tiles",
    "report_pdf",
    "timestamping",
    "witnessing",
    "source_signatures",
)
HERE = Path(__file__).resolve().parent


def run(name: str, quick: bool) -> tuple[dict | None, float, int]:
    cmd = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else [])]
    print(f"\n$ {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.strip():
            last = line.strip()
    code = proc.wait()
    doc = None
    if code == 0 and last and last.startswith("{"):
        try:
            doc = json.loads(last)
        except json.JSONDecodeError:
            doc = None
    return doc, time.perf_counter() - t0, code


def describe_target(doc: dict) -> str:
    kind, target = doc.get("target_kind"), doc.get("target")
    if kind == "ratio>=":
        return f"ratio >= {target}"
    if kind == "peak_rss_mib<":
        return f"peak < {target:g} MiB (peak {doc.get('peak_rss_mib')} MiB)"
    if kind == "integrity":
        return "0 lost, duplicates, orphans, 500s"
    return "reported"


def _brief(doc: dict | None) -> dict | None:
    if doc is None:
        return None
    keys = (
        "ratio",
        "target",
        "target_kind",
        "met",
        "peak_rss_mib",
        "postgres_ratio",
        "decrypt_ratio",
        "cpu_ratio",
        "proof_gen_ms_median",
        "proof_gen_ms_p99",
        "proof_verify_ms_p99",
        "deep_ratio",
        "deep_cpu_ratio",
        "signed_in_ratio",
    )
    return {k: doc[k] for k in keys if k in doc}


def main() -> int:
    def extra(p):
        p.add_argument("--only", nargs="*", choices=BENCHES, help="run only these")

    args = c.parse_args(__doc__.splitlines()[0], extra)
    names = args.only or BENCHES
    c.header("all benchmarks", args.quick)
    results = []
    failed = False
    for name in names:
        doc, seconds, code = run(name, args.quick)
        failed |= doc is None
        results.append((name, doc, seconds, code))

    print("\n== summary")
    rows = []
    for name, doc, seconds, code in results:
        if doc is None:
            rows.append((name, None, f"FAILED (exit {code})", None, seconds))
            continue
        met = {True: "yes", False: "NO", None: "-"}[doc.get("met")]
        rows.append((name, doc.get("ratio"), describe_target(doc), met, seconds))
    c.table(["bench", "ratio", "target", "met", "seconds"], rows)
    print(
        json.dumps(
            {
                "bench": "run_all",
                "mode": "quick" if args.quick else "full",
                "results": {name: _brief(doc) for name, doc, _, _ in results},
                "machine": c.machine(),
            }
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
