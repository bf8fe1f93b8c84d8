"""The lifecycle commands end to end: disputes, holds, retention, erasure, keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

import vault.facade
from cli.main import cli
from tests.support.vaults import CAMPAIGN, CLIENT, clip, order_meta

NOW = [datetime(2026, 11, 21, 12, 0, tzinfo=UTC)]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.delenv("EVIDENCE_VAULT_MASTER_KEY", raising=False)
    NOW[0] = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    real_open = vault.facade.open_vault
    # the CLI runs in this process: give every vault it opens the test's clock
    monkeypatch.setattr(
        vault.facade, "open_vault", lambda settings, clock=None: real_open(settings, clock=_now)
    )
    home = tmp_path / "vault"
    runner = CliRunner()

    def invoke(*args, code=0):
        result = runner.invoke(cli, ["--vault", str(home), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    invoke("init")
    invoke("client", "add", CLIENT)
    invoke("campaign", "add", CAMPAIGN, "--client", CLIENT, "--retention-days", "730")
    return invoke


def _now() -> datetime:
    return NOW[0]


def _ingest(run, tmp_path, n: int) -> str:
    meta = tmp_path / f"order-{n}.json"
    meta.write_text(json.dumps(order_meta(n)))
    out = run("--json", "ingest", str(clip(tmp_path, seed=n)), "--meta", str(meta)).output
    return json.loads(out)["record_id"]


def test_dispute_blocks_retention_until_four_eyes_release(run, tmp_path):
    held, free = _ingest(run, tmp_path, 1), _ingest(run, tmp_path, 2)
    run("person", "add", "carla", "--role", "client", "--client", "telco-de")
    for admin in ("alice", "bob"):
        run("person", "add", admin, "--role", "admin")
    out = run(
        "--json",
        "dispute",
        "open",
        held,
        "--case",
        "CASE-7",
        "--reason",
        "says no order",
        "--as",
        "carla",
    ).output
    hold_id = json.loads(out)["id"]
    assert json.loads(out)["placed_by"] == "person:carla"

    NOW[0] = datetime(2029, 1, 1, tzinfo=UTC)
    plan = {i["record_id"]: i for i in json.loads(run("--json", "retention", "plan").output)}
    assert plan[held]["action"] == "keep" and hold_id in plan[held]["why"]
    assert plan[free]["action"] == "shred"
    assert "730 days after recording" in plan[free]["rule"]

    report = json.loads(run("--json", "retention", "run").output)
    assert report["shredded"] == [free]
    assert [k["record_id"] for k in report["kept"]] == [held]

    refused = run("show", free, code=4).output
    assert "crypto-shredded on 2029-01-01" in refused
    assert "730 days after recording" in refused
    assert "Max Mustermann" in run("show", held).output

    assert "a second admin must approve" in run("hold", "release", hold_id, "--as", "alice").output
    assert "four-eyes" in run("hold", "release", hold_id, "--as", "alice", code=9).output
    released = run("hold", "release", hold_id, "--as", "bob").output
    assert "requested by person:alice, approved by person:bob" in released
    unknown = run("hold", "release", hold_id, "--as", "mallory", code=4).output
    assert "no person 'mallory'" in unknown
    assert run("hold", "list").output.strip() == "(no holds)"
    assert f"{hold_id}\t{held}\tdispute\tCASE-7\treleased" in run("hold", "list", "--all").output

    assert json.loads(run("--json", "retention", "run").output)["shredded"] == [held]
    assert run("retention", "plan").output.strip() == "nothing is due"
    run("verify")


def test_erase_by_phone_keeps_held_records(run, tmp_path):
    held, other = _ingest(run, tmp_path, 1), _ingest(run, tmp_path, 2)
    run("person", "add", "ops", "--role", "admin")
    run("hold", "place", held, "--case", "LIT-2026-1", "--reason", "court order", "--as", "ops")
    out = json.loads(
        run("--json", "erase", "--phone", "+49 151 12345678", "--request", "REQ-1").output
    )
    assert out["erased"] == [other]
    assert out["kept"][0]["record_id"] == held
    assert "Art. 17(3)(e)" in out["kept"][0]["why"]
    assert "on an erasure request (GDPR Art. 17 request REQ-1)" in run("show", other, code=4).output
    run("erase", code=2)
    run("erase", "--phone", "+4915112345678", "--record", held, code=2)
    run("verify")


def test_retention_rules_and_consent_use(run, tmp_path):
    run("campaign", "add", "no-rule", "--client", CLIENT, code=3)
    run("client", "retention", CLIENT, "400")
    assert (
        "400 days after recording, client default"
        in run("campaign", "add", "by-default", "--client", CLIENT).output
    )
    run(
        "campaign",
        "add",
        "optin",
        "--client",
        CLIENT,
        "--retention-days",
        "1825",
        "--basis",
        "consent-use",
    )
    listed = run("campaign", "list").output
    assert "optin\tretention 1825 days after last consent use" in listed
    assert "by-default\tretention 400 days after recording, client default" in listed

    meta = tmp_path / "optin.json"
    meta.write_text(json.dumps(order_meta(9, campaign="optin")))
    rid = json.loads(run("--json", "ingest", str(clip(tmp_path)), "--meta", str(meta)).output)[
        "record_id"
    ]
    NOW[0] = datetime(2027, 6, 2, tzinfo=UTC)
    future = ("consent", "used", "--client", CLIENT, "--phone", "+4915112345678")
    assert "not in the future" in run(*future, "--at", "2027-06-03T00:00:00Z", code=3).output
    out = run(
        "--json",
        "consent",
        "used",
        "--client",
        CLIENT,
        "--phone",
        "+4915112345678",
        "--at",
        "2027-06-01T00:00:00Z",
    ).output
    assert json.loads(out)["extended"] == [rid]
    [hit] = [h for h in json.loads(run("--json", "find").output) if h["record_id"] == rid]
    assert hit["retain_until"] == "2032-05-30T00:00:00.000Z"  # 2027-06-01 + 1825 days (2028 leap)
    run("campaign", "retention", "optin", "--client", CLIENT, code=2)
    assert (
        "500 days"
        in run(
            "campaign", "retention", "optin", "--client", CLIENT, "--retention-days", "500"
        ).output
    )
    run("verify")


def test_key_rotation_commands(run, tmp_path):
    rid = _ingest(run, tmp_path, 1)
    [kek] = json.loads(run("--json", "keys", "list", "--client", CLIENT).output)
    assert kek["kek"] == f"local:{CLIENT}:exp-2028-11:1" and kek["live_records"] == 1
    assert "re-wrapped 1 data key(s)" in run("keys", "rotate", "--client", CLIENT).output
    assert "still wrapped" in run("keys", "destroy", f"local:{CLIENT}:exp-2028-11:2", code=5).output
    NOW[0] = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    run("keys", "destroy", f"local:{CLIENT}:exp-2028-11:1")
    assert "Max Mustermann" in run("show", rid).output

    old_key = run("log", "key").output.strip()
    rotated = json.loads(run("--json", "log", "rotate-key").output)
    assert rotated["old"] == old_key and rotated["clients"] == [CLIENT]
    gens = json.loads(run("--json", "log", "keys").output)
    assert [(g["generation"], g["active"]) for g in gens] == [(1, False), (2, True)]
    assert run("log", "key").output.strip() == rotated["new"]
    run("verify", "--deep")

    export = tmp_path / "log.jsonl"
    run("log", "export", "--client", CLIENT, "-o", str(export))
    audited = json.loads(run("--json", "log", "verify", str(export), "--key", old_key).output)
    assert audited["clean"] and audited["keys"] == [old_key, rotated["new"]]


def test_retention_plan_at_a_later_day_changes_nothing(run, tmp_path):
    rid = _ingest(run, tmp_path, 1)
    [hit] = json.loads(run("--json", "find").output)
    due = datetime.fromisoformat(hit["retain_until"].replace("Z", "+00:00"))
    before, after = (due - timedelta(days=1)).date(), (due + timedelta(days=1)).date()

    assert "nothing is due" in run("retention", "plan").output
    assert "nothing is due" in run("retention", "plan", "--at", before.isoformat()).output
    planned = json.loads(run("retention", "plan", "--at", after.isoformat(), "--json").output)
    assert [(i["record_id"], i["action"]) for i in planned] == [(rid, "shred")]

    # only a look: the run is always now, and today nothing is due
    report = json.loads(run("--json", "retention", "run").output)
    assert report["shredded"] == []
    assert json.loads(run("--json", "show", rid).output)["evidence"]["order_ref"]
    bad = run("retention", "plan", "--at", "next tuesday", code=2).output
    assert "--at" in bad and "ISO-8601" in bad
