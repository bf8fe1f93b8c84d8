"""``evidence-vault reconcile --calls calls.csv``: the dialer's CDR against the vault."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.support.vaults import CLIENT, RECORDED_AT, clip, make_vault, order_meta
from vault.errors import InvalidRequest
from vault.services.reconcile import parse_calls

OTHER = "acme-at"


@pytest.fixture
def vault(tmp_path: Path):
    v = make_vault(tmp_path / "v")
    v.add_client(OTHER, "Acme AT")
    v.add_campaign(OTHER, "winback", retention_days=365)
    # calls 1-4 sealed for telco-de; call 5 sealed for the other tenant
    for n in (1, 2, 3, 4):
        v.ingest(clip(tmp_path, seed=n), order_meta(n))
    v.ingest(clip(tmp_path, seed=5), order_meta(5, client=OTHER, campaign="winback"))
    v.erase(record_id=v.find(client=CLIENT, order_ref="ORD-2026-000004")[0].record_id)
    yield v
    v.close()


def run(v, csv_text: str, tmp: Path, *extra: str):
    path = tmp / "calls.csv"
    path.write_text(csv_text)
    args = ["--vault", str(v.settings.home), "reconcile", "--calls", str(path), *extra]
    return CliRunner().invoke(cli, args)


def test_lists_calls_without_evidence_and_evidence_without_calls(vault, tmp_path) -> None:
    csv_text = (
        "Call ID,Segment,Order Ref,agent\n"
        "dialer-7f3a-000001,1,ORD-2026-000001,a1\n"  # matches
        "dialer-7f3a-000002,,ORD-WRONG,a1\n"  # segment defaults to 1; order ref differs
        "dialer-7f3a-000004,1,ORD-2026-000004,a1\n"  # sealed, then shredded
        "dialer-7f3a-000005,1,ORD-2026-000005,a1\n"  # sealed, but for another tenant
        "dialer-7f3a-000009,2,ORD-2026-000009,a1\n"  # never sealed
    )
    result = run(vault, csv_text, tmp_path, "--client", CLIENT, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert (report["calls"], report["records"], report["clean"]) == (5, 4, False)
    missing = {(m["call_id"], m["segment"]) for m in report["missing"]}
    assert missing == {("dialer-7f3a-000005", 1), ("dialer-7f3a-000009", 2)}
    (mismatch,) = report["order_ref_mismatch"]
    assert (mismatch["call_id"], mismatch["cdr_order_ref"]) == ("dialer-7f3a-000002", "ORD-WRONG")
    assert [s["call_id"] for s in report["shredded"]] == ["dialer-7f3a-000004"]
    assert [u["call_id"] for u in report["unmatched"]] == ["dialer-7f3a-000003"]
    assert "+49" not in result.output and "Mustermann" not in result.output
    # the human form names the same
    human = run(vault, csv_text, tmp_path, "--client", CLIENT)
    assert human.exit_code == 1
    assert "calls without sealed evidence (2)" in human.output
    assert "evidence without a call in the CDR (1)" in human.output


def test_clean_when_everything_matches_and_the_window_limits_records(vault, tmp_path) -> None:
    csv_text = "call_id,segment,order_ref\n" + "".join(
        f"dialer-7f3a-00000{n},1,ORD-2026-00000{n}\n" for n in (1, 2, 3)
    )
    # record 4 was shredded: not in the CDR, and not listed as evidence without a call
    result = run(vault, csv_text, tmp_path, "--client", CLIENT, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["records"], report["clean"], report["unmatched"]) == (4, True, [])
    # a window after the recordings: no records in scope, every call is missing
    window = ["--since", (RECORDED_AT + timedelta(days=1)).isoformat()]
    result = run(vault, csv_text, tmp_path, "--client", CLIENT, *window, "--json")
    report = json.loads(result.output)
    assert report["records"] == 0 and len(report["missing"]) == 3 and result.exit_code == 1
    # each tenant reconciles its own records only
    result = run(vault, "call_id\ndialer-7f3a-000005\n", tmp_path, "--client", OTHER)
    assert result.exit_code == 0, result.output
    assert "every call has its sealed evidence" in result.output


def test_bad_csv_names_the_line_not_the_value() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_calls(["order_ref\n", "ORD-1\n"])
    assert err.value.errors[0].message == "has no call_id column"
    with pytest.raises(InvalidRequest) as err:
        parse_calls(["call_id,segment\n", "c1,1\n", ",1\n", "c3,x+49151\n"])
    fields = [(e.field, e.message) for e in err.value.errors]
    assert fields == [
        ("calls line 3", "call_id is empty"),
        ("calls line 4", "segment is not a positive whole number"),
    ]
    assert parse_calls(["call_id\n", "\n", "c1\n"])[0].segment == 1


def test_an_unknown_client_is_not_found(vault, tmp_path) -> None:
    result = run(vault, "call_id\nc1\n", tmp_path, "--client", "nobody")
    assert result.exit_code == 4
