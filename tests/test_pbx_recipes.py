"""The PBX recipes' drop script (scripts/pbx/evidence-drop, docs/dialers.md) feeds the agent.

The script runs as the PBX would run it (a separate process); its output must be a pair
the agent's watch folder takes and the agent's local validation accepts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.vaults import CAMPAIGN, CLIENT, clip, order_meta
from vault.agent.intake import check_pair
from vault.agent.watch import Settler

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "pbx" / "evidence-drop"
PII = ("+4915112345678", "Mustermann", "1980-01-31")


def files(tmp: Path) -> tuple[Path, Path, Path]:
    meta = order_meta(9)
    template = {k: meta[k] for k in ("client", "campaign", "consent", "intent")} | {
        "identity": {"method": meta["identity"]["method"], "span_ms": meta["identity"]["span_ms"]}
    }
    call = {
        "order_ref": meta["order_ref"],
        "callee": meta["callee"],
        "identity": {"confirmed": meta["identity"]["confirmed"]},
    }
    (tmp / "campaign.json").write_text(json.dumps(template))
    (tmp / "call.json").write_text(json.dumps(call))
    recording = clip(tmp)
    return tmp / "campaign.json", tmp / "call.json", recording


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True
    )


def test_the_drop_is_a_pair_the_agent_accepts(tmp_path: Path) -> None:
    template, call, recording = files(tmp_path)
    audio = recording.read_bytes()
    watch = tmp_path / "watch"
    watch.mkdir()
    done = run(
        "--clip", recording, "--watch", watch, "--template", template,
        "--call-fields", call, "--consume-call-fields",
        "--set", "call_id=1764751234.42", "--set", "segment=1",
        "--recorded-at-epoch", "1795167000", "--set", "agent_id=agent-042",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in watch.iterdir())
    assert names == ["1764751234.42-1.json", "1764751234.42-1.wav"]
    assert not recording.exists() and not call.exists()  # moved; the PII file consumed
    assert not any(p in done.stdout + done.stderr for p in PII)
    # the watch folder's own rule takes it: a complete, settled pair
    settler = Settler(watch, 0, writers=lambda paths: set())
    settler.scan()
    ((clip_path, meta_path),) = settler.scan()
    assert clip_path.read_bytes() == audio
    checked = check_pair(clip_path, meta_path)
    ev = checked.evidence
    assert (ev.client, ev.campaign, ev.call_id, ev.segment) == (
        CLIENT, CAMPAIGN, "1764751234.42", 1
    )  # fmt: skip
    assert ev.recorded_at.isoformat() == "2026-11-20T09:30:00+00:00"
    assert ev.order_ref == order_meta(9)["order_ref"] and ev.callee.phone == "+4915112345678"


def test_a_failed_drop_leaves_the_recording_and_the_folder_alone(tmp_path: Path) -> None:
    template, call, recording = files(tmp_path)
    watch = tmp_path / "watch"
    watch.mkdir()
    # no call_id: refused before anything is written
    failed = run("--clip", recording, "--watch", watch, "--template", template,
                 "--call-fields", call, "--consume-call-fields")  # fmt: skip
    assert failed.returncode == 1 and "call_id" in failed.stderr
    assert recording.exists() and call.exists() and list(watch.iterdir()) == []
    # a pair of that name already waiting: never overwritten
    args = ["--clip", recording, "--watch", watch, "--template", template, "--call-fields",
            call, "--set", "call_id=c1", "--set", "segment=1", "--keep"]  # fmt: skip
    assert run(*args).returncode == 0
    again = run(*args)
    assert again.returncode == 1 and "already in the watch folder" in again.stderr
    assert sorted(p.name for p in watch.iterdir()) == ["c1-1.json", "c1-1.wav"]
    assert not any(p in again.stderr for p in PII)
