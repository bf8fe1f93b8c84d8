"""The benchmark scripts still run (quick mode). Figures are not asserted: they are
measurements, printed by `make bench`, not pass/fail criteria."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize(
    "name",
    [
        "sealing",
        "append",
        "ledger",
        "ingest_s3",
        "pg_round_trips",
        "memory",
        "retention",
        "group_commit",
        "http_ingest",
        "entry_auth",
        "verify_checks",
        "shred_walk",
        "agent",
        "agent_drain",
        "desk",
        "tiles",
        "report_pdf",
        "timestamping",
        "witnessing",
        "source_signatures",
    ],
)
def test_bench_script_runs(name):
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["bench"] == name and doc["mode"] == "quick"
