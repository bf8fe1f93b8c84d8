"""The short soak (bench/soak.py's quick settings): 45 s of uploads by four clients to
``serve --workers 2`` on a private PostgreSQL cluster and SeaweedFS while SeaweedFS is
killed and restarted, the cluster stopped (``pg_ctl stop -m fast``) and started, a worker
killed and a few clients trickle their bodies. Every acknowledged upload is stored exactly
once, the unacknowledged ones succeed when sent again with their key, ``gc --grace 0s``
leaves no orphan that ``verify`` reports, and no answer is a 500. Timings are not asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "bench_soak", Path(__file__).resolve().parent.parent / "bench" / "soak.py"
)
soak = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = soak  # its dataclasses look their module up there
_SPEC.loader.exec_module(soak)

pytestmark = [pytest.mark.seaweedfs]


def test_quick_soak_loses_nothing_and_stores_nothing_twice():
    reason = soak.unavailable()
    if reason:
        pytest.skip(reason)
    q = soak.QUICK
    # 45 s of load rather than the bench's minute: each fault still comes once
    f = soak.soak(0.75, q["uploaders"], q["clip_kb"], seed=15, quick=True, say=print)

    assert [x["fault"] for x in f["faults"]] == list(soak.FAULTS)  # each fault happened once
    assert f["attempted"] > 0
    assert f["unacknowledged"] == 0  # every upload was acknowledged in the end
    assert f["accepted"] == f["attempted"] == f["stored"]
    assert f["foreign_records"] == 0
    assert f["duplicates"] == 0
    assert f["lost"] == 0
    assert f["orphans_after_gc"] == 0
    assert f["findings_after_gc"] == {}  # verify is clean after gc
    assert f["answers_500"] == 0
