"""A retention run shreds in batches (issue 13): one transaction per batch, all or nothing.

Ten expired records go in batches of 1, 1, 2, 4 and 2 (:func:`retention._batch_size`).
A tampered record, a hold or a crash inside a batch must leave the whole batch as it
was — not only the record at fault — keep the batches before it, and a rerun (once the
cause is gone) must finish the rest with a clean log. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.attacks.helpers import seal
from tests.support.vaults import CLIENT
from vault.services import retention as retention_service
from vault.services.logauth import TamperDetected

N = 10
SIZES = [1, 1, 2, 4, 2]


@pytest.fixture
def expired(vault, tmp_path, monkeypatch):
    """Ten sealed records, three years on (all expired), in the order a run takes them;
    and the batch sizes the run used."""
    ids = [seal(vault, tmp_path, n) for n in range(N)]
    real = vault.context.clock
    vault.context.clock = lambda: real() + timedelta(days=3 * 365)
    order = [i.record_id for i in vault.retention_plan()]
    assert sorted(order) == sorted(ids)
    sizes: list[int] = []
    real_batch = retention_service._shred_and_purge

    def spy(ctx, batch, *a, **kw):
        sizes.append(len(batch))
        return real_batch(ctx, batch, *a, **kw)

    monkeypatch.setattr(retention_service, "_shred_and_purge", spy)
    return order, sizes


def _shredded(attacker, ids: list[str]) -> list[str]:
    return [r for r in ids if attacker.record(r, "shredded_at") is not None]


def _intact(attacker, rec: str) -> None:
    assert attacker.record(rec, "shredded_at") is None
    assert len(bytes(attacker.record(rec, "wrapped_dek"))) > 0
    assert attacker.seqs(CLIENT, "evidence.shredded", rec) == []


def test_a_run_shreds_and_purges_in_growing_batches(vault, attacker, expired):
    order, sizes = expired
    size_before = attacker.head(CLIENT)[0]
    report = vault.run_retention()
    assert sizes == SIZES
    assert report.shredded == order and report.purged == order and report.pending == []
    # one entry per record, in the plan's order, each of its own record
    seqs = [attacker.seqs(CLIENT, "evidence.shredded", r) for r in order]
    assert [len(s) for s in seqs] == [1] * N
    assert [s[0] for s in seqs] == list(range(size_before, size_before + N))
    for r in order:
        assert bytes(attacker.record(r, "wrapped_dek")) == b""
        assert attacker.record(r, "purged_at") is not None
    assert vault.verify().clean


def test_a_tampered_record_refuses_its_whole_batch_only(vault, attacker, expired):
    order, sizes = expired
    victim = order[5]  # the second record of the batch of four (order[4:8])
    attacker.set_record(victim, "agent_id", "agent-666")
    with pytest.raises(TamperDetected, match=f"record {victim}: its row disagrees"):
        vault.run_retention()
    assert sizes == SIZES[:4]
    assert _shredded(attacker, order) == order[:4]  # the batches before it: kept
    for rec in order[4:]:  # order[4] was checked and fine, and is intact all the same
        _intact(attacker, rec)
    attacker.set_record(victim, "agent_id", "agent-042")  # restored from a backup
    report = vault.run_retention()
    assert report.shredded == order[4:]
    assert sorted(report.purged) == sorted(order[4:])
    assert vault.verify().clean


def test_a_hold_inside_a_batch_keeps_that_record_only(vault, attacker, expired):
    order, sizes = expired
    vault.place_hold(order[6], case_ref="CASE-12", reason="dispute", principal="admin-a")
    report = vault.run_retention()
    # the held record is planned as "keep", which splits the batch around it
    assert [k.record_id for k in report.kept] == [order[6]]
    assert report.shredded == [r for r in order if r != order[6]]
    _intact(attacker, order[6])
    assert sum(sizes) == N - 1
    assert vault.verify().clean


def test_a_hold_placed_after_the_plan_keeps_that_record_only(vault, attacker, expired, monkeypatch):
    order, sizes = expired
    real = retention_service._shred_batch

    def hold_first(ctx, batch, tail):
        if len(batch) == 4:  # a hold arrives between the plan and the batch's transaction
            vault.place_hold(order[6], case_ref="CASE-13", reason="dispute", principal="a")
        return real(ctx, batch, tail)

    monkeypatch.setattr(retention_service, "_shred_batch", hold_first)
    report = vault.run_retention()
    assert sizes == SIZES
    assert report.shredded == [r for r in order if r != order[6]]
    assert order[6] not in report.purged and report.pending == []
    _intact(attacker, order[6])
    assert vault.verify().clean


def test_a_crash_inside_a_batch_rolls_the_batch_back_and_a_rerun_finishes(
    vault, attacker, expired, monkeypatch
):
    order, _sizes = expired
    real = retention_service.append_entries
    calls: list[int] = []

    def dies_in_the_fourth_batch(session, client, drafts, *a, **kw):
        calls.append(len(drafts))
        if len(calls) == 4:
            raise ConnectionError("the process died here")
        return real(session, client, drafts, *a, **kw)

    monkeypatch.setattr(retention_service, "append_entries", dies_in_the_fourth_batch)
    with pytest.raises(ConnectionError):
        vault.run_retention()
    assert calls == [1, 1, 2, 4]
    assert _shredded(attacker, order) == order[:4]
    for rec in order[4:]:
        _intact(attacker, rec)
    assert vault.verify().clean
    monkeypatch.setattr(retention_service, "append_entries", real)
    report = vault.run_retention()
    assert report.shredded == order[4:]
    assert all(attacker.record(r, "purged_at") is not None for r in order)
    assert vault.verify().clean
