"""Attack 5: hold rows deleted, released or invented behind the vault's back.

The hold entries of the log say which holds are open; the retention run and erasure
compare the hold rows with them before they shred and refuse a disagreement.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.attacks.helpers import cli_run, findings, seal
from tests.support.vaults import CLIENT
from vault.services.logauth import TamperDetected

EXIT_TAMPER = 7
REFUSAL = "its hold rows disagree with the hold entries of the log; refusing to shred it"


@pytest.fixture
def held(vault, tmp_path):
    """A record under a legal hold, and a free one."""
    rec = seal(vault, tmp_path, 0)
    free = seal(vault, tmp_path, 1)
    hold = vault.place_hold(rec, case_ref="CASE-7", reason="court order", principal="admin-a")
    assert vault.verify().clean
    return rec, free, hold.id


def _expire(vault) -> None:
    """Three years on: both records are past their retention date."""
    real = vault.context.clock
    vault.context.clock = lambda: real() + timedelta(days=3 * 365)


def _intact(attacker, rec: str) -> None:
    assert attacker.record(rec, "shredded_at") is None
    assert len(bytes(attacker.record(rec, "wrapped_dek"))) > 0
    assert attacker.seqs(CLIENT, "evidence.shredded", rec) == []


def test_deleted_hold_row_of_an_expired_record(vault, attacker, held):
    rec, _free, hold = held
    _expire(vault)
    attacker.run("DELETE FROM hold WHERE id = ?", hold)
    assert [i.action for i in vault.retention_plan() if i.record_id == rec] == ["shred"]
    with pytest.raises(TamperDetected, match=f"record {rec}: {REFUSAL}"):
        vault.run_retention()
    _intact(attacker, rec)
    assert vault.show(rec)["evidence"]["order_ref"] == "ORD-2026-000000"


def test_hold_row_released_without_the_four_eyes(vault, attacker, held):
    rec, _free, hold = held
    _expire(vault)
    attacker.run(
        "UPDATE hold SET release_requested_by = 'admin-a', released_by = 'admin-a', "
        "released_at = ? WHERE id = ?",
        attacker.now_value(),
        hold,
    )
    with pytest.raises(TamperDetected, match=f"record {rec}: {REFUSAL}"):
        vault.run_retention()
    _intact(attacker, rec)


def test_erase_of_a_record_whose_hold_row_was_deleted(vault, attacker, held):
    rec, _free, hold = held
    attacker.run("DELETE FROM hold WHERE id = ?", hold)
    result = cli_run(vault, "--json", "erase", "--record", rec)
    assert result.exit_code == EXIT_TAMPER, result.output
    error = json.loads(result.output)["error"]
    assert error["kind"] == "tamper-detected"
    assert error["message"] == f"record {rec}: {REFUSAL}"
    _intact(attacker, rec)


def test_invented_hold_row_blocking_an_erasure(vault, attacker, held):
    """The other direction: a hold row the log knows nothing about, to keep evidence the
    data subject asked to erase."""
    _rec, free, _hold = held
    attacker.run(
        "INSERT INTO hold (id, client_id, record_id, kind, case_ref, reason, placed_by, "
        "placed_at) VALUES ('hforged', ?, ?, 'legal', 'CASE-9', 'x', 'admin-z', ?)",
        CLIENT,
        free,
        attacker.now_value(),
    )
    result = cli_run(vault, "--json", "erase", "--record", free)
    assert result.exit_code == EXIT_TAMPER, result.output
    assert json.loads(result.output)["error"]["message"] == f"record {free}: {REFUSAL}"
    _intact(attacker, free)


def test_verify_names_a_deleted_hold_row(vault, attacker, held):
    rec, _free, hold = held
    attacker.run("DELETE FROM hold WHERE id = ?", hold)
    report = vault.verify()
    assert any(f.record == rec for f in report.findings), findings(report)
