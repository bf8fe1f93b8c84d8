"""Attack 4: a record row edited behind the vault's back, column by column.

Every column that matters is committed to by the record's sealed entry, directly or
through its ``row`` digest: ``verify`` names the column, and every path that would act
on the row (read, hold, retention shred, erasure) refuses with ``tamper-detected``.
"""

from __future__ import annotations

import json

import pytest

from tests.attacks.conftest import OTHER_CAMPAIGN
from tests.attacks.helpers import PHONE_A, PHONE_B, cli_run, findings, seal
from tests.support.vaults import CLIENT
from vault.services.logauth import TamperDetected

EXIT_TAMPER = 7  # "integrity, key or storage failure" (cli/main.py)


@pytest.fixture
def records(vault, tmp_path):
    ids = [seal(vault, tmp_path, 0, PHONE_A), seal(vault, tmp_path, 1, PHONE_B)]
    assert vault.verify().clean
    return ids


def _other_campaign(a, _rec, _other):
    return a.one("SELECT id FROM campaign WHERE name = ?", OTHER_CAMPAIGN)


# column -> (the attacker's new value, the column(s) verify names)
EDITS = {
    "clip_size": (lambda a, rec, _o: a.record(rec, "clip_size") + 1, "row"),
    "phone_hash": (lambda a, _r, other: a.record(other, "phone_hash"), "row"),
    "order_ref": (lambda *_: "ORD-2026-999999", "row"),
    "agent_id": (lambda *_: "agent-666", "row"),
    "call_id": (lambda *_: "dialer-7f3a-999999", "row"),
    "segment": (lambda *_: 2, "row"),
    "codec": (lambda *_: "mp3", "row"),
    "media_type": (lambda *_: "audio/mpeg", "media_type"),
    "clip_key": (lambda a, _r, other: a.record(other, "clip_key"), "clip_key"),
    "campaign_id": (_other_campaign, "campaign_id"),
    "kek_id": (lambda *_: "kek-attacker-2099-01", "kek"),
}
SHIFTS = {"retain_until": (-1000, "retain_until"), "sealed_at": (-1, "sealed_at")}


def _tamper(attacker, column: str, rec: str, other: str) -> str:
    if column in SHIFTS:
        days, named = SHIFTS[column]
        attacker.shift_time("record", column, rec, days)
        return named
    value, named = EDITS[column]
    attacker.set_record(rec, column, value(attacker, rec, other))
    return named


@pytest.mark.parametrize("column", [*EDITS, *SHIFTS])
def test_edited_column_is_named_and_every_use_refused(vault, attacker, records, column):
    rec, other = records
    named = _tamper(attacker, column, rec, other)
    seq = attacker.record(rec, "seq")
    assert findings(vault.verify()) == [
        ("modified", rec, seq, f"record row disagrees with its log entry: {named}")
    ]
    size = attacker.head(CLIENT)[0]
    refusal = f"record {rec}: its row disagrees with its log entries \\({named}\\)"
    with pytest.raises(TamperDetected, match=refusal):
        vault.show(rec)
    out = vault.settings.home / "out.wav"
    with pytest.raises(TamperDetected, match=refusal):
        vault.write_audio(rec, out)
    assert not out.exists()
    with pytest.raises(TamperDetected, match=refusal):
        vault.place_hold(rec, case_ref="CASE-1", reason="dispute", principal="admin-a")
    assert attacker.rows("SELECT id FROM hold WHERE record_id = ?", rec) == []
    assert attacker.head(CLIENT)[0] == size  # no access or hold entry was logged
    assert findings(vault.verify()) == [  # the other record is untouched and usable
        ("modified", rec, seq, f"record row disagrees with its log entry: {named}")
    ]
    assert vault.show(other)["evidence"]["call_id"]


def _intact(attacker, rec: str) -> None:
    assert attacker.record(rec, "shredded_at") is None
    assert len(bytes(attacker.record(rec, "wrapped_dek"))) > 0
    assert attacker.seqs(CLIENT, "evidence.shredded", rec) == []


def test_retention_run_refuses_a_record_whose_date_was_moved_earlier(vault, attacker, records):
    rec = records[0]
    attacker.shift_time("record", "retain_until", rec, -1000)  # expired "yesterday"
    assert [i.record_id for i in vault.retention_plan()] == [rec]  # the plan is fooled ...
    size = attacker.head(CLIENT)[0]
    result = cli_run(vault, "retention", "run")
    assert result.exit_code == EXIT_TAMPER, result.output
    assert f"record {rec}: its row disagrees with its log entries (retain_until)" in (result.output)
    _intact(attacker, rec)  # ... the run is not
    assert attacker.head(CLIENT)[0] == size
    # the operator restores the column from a backup: the evidence is all there
    attacker.shift_time("record", "retain_until", rec, 1000)
    assert vault.verify().clean
    assert vault.show(rec)["evidence"]["order_ref"] == "ORD-2026-000000"


def test_erase_by_phone_refuses_a_record_given_the_callers_phone_hash(vault, attacker, records):
    """Record B (another callee) gets caller A's keyed phone hash, so that A's erasure
    request would destroy B's evidence."""
    a, b = records
    attacker.set_record(b, "phone_hash", attacker.record(a, "phone_hash"))
    result = cli_run(vault, "--json", "erase", "--phone", PHONE_A)
    assert result.exit_code == EXIT_TAMPER, result.output
    error = json.loads(result.output)["error"]
    assert error["kind"] == "tamper-detected"
    assert error["message"] == (
        f"record {b}: its row disagrees with its log entries (row); refusing to act on it"
    )
    _intact(attacker, b)
    # A's own erasure went through before B was reached (one transaction per record)
    assert attacker.record(a, "shredded_at") is not None
    assert findings(vault.verify()) == [
        ("modified", b, attacker.record(b, "seq"), "record row disagrees with its log entry: row")
    ]
