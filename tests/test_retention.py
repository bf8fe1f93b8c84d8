"""Retention, consent-use extension, crypto-shredding, holds and erasure.

The vault's clock is injected (``vault.context.clock``): evidence is ingested near its
recording time and the clock is then moved to the day its retention ends. S3 servers
keep the real wall clock, so on S3 the Object Lock still runs when the vault's clock
says the retention is over: the record is shredded but its objects stay (``pending``).
Core behaviours run on every backend; the heavy scenarios on local+SQLite only.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from tests.support.tamper import read_object, write_object
from tests.support.vaults import CAMPAIGN, CLIENT, RECORDED_AT, clip, make_vault, order_meta
from vault.config import S3Settings
from vault.db import LogEntry, LogHead, Record, read_session
from vault.errors import (
    Conflict,
    InvalidEvidence,
    KeyUnavailable,
    NotFound,
    ObjectLocked,
    PermissionDenied,
    Shredded,
)
from vault.ledger import parse_entry
from vault.sealing import WrappedKey
from vault.services import retention as retention_service
from vault.services.retention import PlanItem, RunReport

PHONE = "+4915112345678"
OTHER_PHONE = "+4915199999999"
#: the vault's clock at ingest: the day after RECORDED_AT
T0 = datetime(2026, 11, 21, tzinfo=UTC)
#: RECORDED_AT + 730 days (the CAMPAIGN's rule)
UNTIL = datetime(2028, 11, 19, 9, 30, tzinfo=UTC)
RULE = f"campaign {CAMPAIGN}: 730 days after recording"
KEK = f"local:{CLIENT}:exp-2028-11:1"
#: the KEK of bucket exp-2028-11 may be destroyed from here on (month end + 1 day)
SWEEP_AT = datetime(2028, 12, 2, tzinfo=UTC)
CONSENT_RULE = "campaign optin: 1826 days after the last use of the advertising consent (UWG §7a)"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def clocked(vault, when: datetime = T0) -> Clock:
    clock = Clock(when)
    vault.context.clock = clock
    return clock


def ingest(vault, tmp_path, n: int, **over) -> str:
    return vault.ingest(clip(tmp_path, seed=n), order_meta(n, **over)).record_id


def row(vault, record_id: str) -> Record:
    with read_session(vault.context.engine) as s:
        return s.get(Record, record_id)


def entries(vault, kind: str | None = None, client: str = CLIENT) -> list[dict]:
    with read_session(vault.context.engine) as s:
        raws = list(
            s.exec(
                select(LogEntry.entry).where(LogEntry.client_id == client).order_by(LogEntry.seq)
            )
        )
    out = [parse_entry(bytes(raw)) for raw in raws]
    return [e for e in out if kind is None or e["type"] == kind]


def log_size(vault, client: str = CLIENT) -> int:
    with read_session(vault.context.engine) as s:
        return s.get(LogHead, client).size


def locked(vault) -> bool:
    return vault.context.store.supports_object_lock


def assert_clean(vault) -> None:
    report = vault.verify()
    assert report.findings == [] and report.clean
    deep = vault.verify(deep=True)
    assert deep.findings == [] and deep.clean


def purge_item(vault, record_id: str, shredded_on: str) -> PlanItem:
    rec = row(vault, record_id)
    return PlanItem(
        record_id,
        CLIENT,
        rec.retain_until,
        rec.retention_rule,
        "purge",
        f"shredded on {shredded_on}; its ciphertext objects are still stored (deleted once "
        "the store allows)",
    )


@pytest.fixture
def local(tmp_path):
    """local + SQLite, clock at T0."""
    clock = Clock(T0)
    v = make_vault(tmp_path / "v", clock=clock)
    yield v
    v.close()


# -- 1. the rule and the day ------------------------------------------------------------


def test_expires_on_its_day_and_not_a_second_before(vault, tmp_path):
    clock = clocked(vault)
    rid = ingest(vault, tmp_path, 1)
    rec = row(vault, rid)
    assert rec.retain_until == RECORDED_AT + timedelta(days=730) == UNTIL
    assert rec.retention_rule == RULE
    [sealed] = entries(vault, "evidence.sealed")
    assert sealed["body"]["retain_until"] == "2028-11-19T09:30:00.000Z"
    if locked(vault):
        assert vault.context.store.get_retention(rec.clip_key) == UNTIL
        assert vault.context.store.get_retention(rec.meta_key) == UNTIL

    clock.now = UNTIL - timedelta(seconds=1)
    assert vault.retention_plan() == []
    size = log_size(vault)
    assert vault.run_retention() == RunReport()
    assert log_size(vault) == size
    assert row(vault, rid).shredded_at is None
    assert vault.show(rid)["evidence"]["call_id"] == "dialer-7f3a-000001"

    clock.now = UNTIL
    assert [i.to_dict() for i in vault.retention_plan()] == [
        {
            "record_id": rid,
            "client": CLIENT,
            "retain_until": "2028-11-19T09:30:00.000Z",
            "rule": RULE,
            "action": "shred",
            "why": "retention expired on 2028-11-19",
        }
    ]
    report = vault.run_retention()
    assert report.shredded == [rid]
    assert report.kept == [] and report.rewrapped == 0
    assert report.keks_destroyed == []  # the bucket's month is not over yet
    rec = row(vault, rid)
    assert rec.shredded_at == UNTIL and rec.shred_reason == "retention" and rec.shred_rule == RULE
    if locked(vault):
        # the store's clock has not reached the lock date: the objects stay for now
        assert report.purged == []
        assert report.pending == [purge_item(vault, rid, "2028-11-19")]
        assert rec.purged_at is None
        assert vault.retention_plan() == [purge_item(vault, rid, "2028-11-19")]
    else:
        assert report.purged == [rid] and report.pending == []
        assert rec.purged_at == UNTIL
        assert vault.retention_plan() == []
    assert_clean(vault)


def test_campaign_without_days_uses_the_client_default(local, tmp_path):
    v = local
    v.add_client("acme", "Acme", retention_days=30)
    info = v.add_campaign("acme", "door-to-door")
    assert (info.retention_days, info.client_default, info.retention_basis) == (
        30,
        True,
        "recorded",
    )
    meta = {"client": "acme", "campaign": "door-to-door"}
    rid = ingest(v, tmp_path, 1, **meta)
    rec = row(v, rid)
    assert rec.retain_until == RECORDED_AT + timedelta(days=30)
    assert rec.retention_rule == "campaign door-to-door: 30 days after recording (client default)"
    # the default is resolved at each ingest: a new default applies to new evidence only
    v.set_client_retention("acme", 60)
    rid2 = ingest(v, tmp_path, 2, **meta)
    assert row(v, rid2).retain_until == RECORDED_AT + timedelta(days=60)
    assert row(v, rid).retain_until == RECORDED_AT + timedelta(days=30)
    # a campaign's own period wins over the client default
    v.add_campaign("acme", "own", retention_days=7)
    rid3 = ingest(v, tmp_path, 3, client="acme", campaign="own")
    assert row(v, rid3).retention_rule == "campaign own: 7 days after recording"

    v.add_client("bare", "Bare")
    with pytest.raises(InvalidEvidence) as exc:
        v.add_campaign("bare", "c1")
    assert [e.field for e in exc.value.errors] == ["retention_days"]
    assert [c.name for c in v.campaigns("bare")] == []
    with pytest.raises(InvalidEvidence):
        v.add_campaign("bare", "c1", retention_days=0)
    with pytest.raises(InvalidEvidence):
        v.add_campaign("bare", "c1", retention_days=30, retention_basis="forever")


def test_evidence_due_on_arrival_is_refused(local, tmp_path):
    local.context.clock.now = UNTIL
    with pytest.raises(InvalidEvidence) as exc:
        ingest(local, tmp_path, 1)
    assert [e.field for e in exc.value.errors] == ["recorded_at"]
    assert RULE in str(exc.value)


# -- 2. consent use (UWG §7a) -----------------------------------------------------------


def test_consent_use_extends_the_callees_consent_records(vault, tmp_path):
    clock = clocked(vault)
    vault.add_campaign(CLIENT, "optin", retention_days=1826, retention_basis="consent-use")
    a = ingest(vault, tmp_path, 1, campaign="optin")
    b = ingest(vault, tmp_path, 2)  # same callee, "recorded" basis
    d = ingest(vault, tmp_path, 3, campaign="optin", callee={"phone": OTHER_PHONE})
    a_until = RECORDED_AT + timedelta(days=1826)
    assert row(vault, a).retain_until == a_until
    assert row(vault, a).retention_rule == CONSENT_RULE
    assert entries(vault, "retention.extended") == []

    # a later call to the same callee is a use of the consent
    clock.now = T0 + timedelta(days=10)
    later = RECORDED_AT + timedelta(days=7)
    c = ingest(vault, tmp_path, 4, recorded_at=later)
    new_until = later + timedelta(days=1826)
    assert row(vault, a).retain_until == new_until
    assert row(vault, a).retention_rule == CONSENT_RULE
    assert row(vault, b).retain_until == UNTIL
    assert row(vault, c).retain_until == later + timedelta(days=730)
    assert row(vault, d).retain_until == a_until
    [ext] = entries(vault, "retention.extended")
    assert ext["record"] == a
    assert ext["body"] == {
        "retain_until": "2031-11-27T09:30:00.000Z",
        "rule": CONSENT_RULE,
        "cause": "consent-use",
    }
    if locked(vault):
        store = vault.context.store
        assert store.get_retention(row(vault, a).clip_key) == new_until
        assert store.get_retention(row(vault, a).meta_key) == new_until
        assert store.get_retention(row(vault, d).clip_key) == a_until

    # a use reported from outside the vault (e.g. a mailing), in another spelling
    used = clock.now = T0 + timedelta(days=20)
    assert vault.record_consent_use(CLIENT, "+49 151 12345678", used) == [a]
    assert row(vault, a).retain_until == used + timedelta(days=1826)
    assert [e["record"] for e in entries(vault, "retention.extended")] == [a, a]
    # an earlier use moves nothing and logs nothing
    size = log_size(vault)
    assert vault.record_consent_use(CLIENT, PHONE, used - timedelta(days=1)) == []
    assert log_size(vault) == size
    assert vault.record_consent_use(CLIENT, "+49 30 1234567", used) == []
    with pytest.raises(NotFound):
        vault.record_consent_use("nobody", PHONE, used)
    assert row(vault, d).retain_until == a_until
    assert_clean(vault)

    # at a's original date it is not due any more; d (never used again) is
    clock.now = a_until
    plan = vault.retention_plan()
    assert [(i.record_id, i.action) for i in plan] == [(b, "shred"), (c, "shred"), (d, "shred")]


def test_extended_record_survives_its_old_key_bucket(local, tmp_path):
    v, clock = local, local.context.clock
    v.add_campaign(CLIENT, "optin", retention_days=730, retention_basis="consent-use")
    a = ingest(v, tmp_path, 1, campaign="optin")
    b = ingest(v, tmp_path, 2)
    assert row(v, a).kek_id == row(v, b).kek_id == KEK
    clock.now = T0 + timedelta(days=60)
    assert v.record_consent_use(CLIENT, PHONE, clock.now) == [a]
    new_until = T0 + timedelta(days=60 + 730)  # 2029-01-19
    clock.now = SWEEP_AT
    report = v.run_retention()
    assert report.shredded == [b] and report.purged == [b]
    assert report.rewrapped == 1
    assert report.keks_destroyed == [KEK]
    rec = row(v, a)
    assert rec.kek_id == f"local:{CLIENT}:exp-2029-01:1"
    [moved] = entries(v, "key.rewrapped")
    assert moved["body"] == {
        "from": KEK,
        "to": rec.kek_id,
        "records": 1,
        "reason": "rebucket",
    }
    assert v.show(a)["evidence"]["campaign"] == "optin"
    assert_clean(v)
    clock.now = new_until
    assert v.run_retention().shredded == [a]
    assert_clean(v)


# -- 3. the run, and reading shredded evidence --------------------------------------------


def test_run_shreds_what_expired_and_refuses_to_open_it(vault, tmp_path):
    clock = clocked(vault)
    old = ingest(vault, tmp_path, 1)
    clock.now = T0 + timedelta(days=6)
    young = ingest(vault, tmp_path, 2, recorded_at=RECORDED_AT + timedelta(days=5))
    clock.now = UNTIL + timedelta(days=1)
    report = vault.run_retention()
    assert report.shredded == [old]
    assert (report.purged, report.pending) == (
        ([], [purge_item(vault, old, "2028-11-20")]) if locked(vault) else ([old], [])
    )
    [shred] = entries(vault, "evidence.shredded")
    assert shred["record"] == old
    assert shred["time"] == "2028-11-20T09:30:00.000Z"
    assert shred["body"] == {
        "reason": "retention",
        "rule": RULE,
        "retain_until": "2028-11-19T09:30:00.000Z",
        "kek": KEK,
    }
    rec = row(vault, old)
    assert rec.wrapped_dek == b""
    assert (rec.phone_hash, rec.clip_fingerprint, rec.meta_fingerprint) == ("", "", "")
    assert row(vault, young).shredded_at is None
    assert vault.show(young)["evidence"]["order_ref"] == "ORD-2026-000002"
    assert_clean(vault)

    size = log_size(vault)
    out = tmp_path / "out"
    out.mkdir()
    for read in (
        lambda: vault.show(old),
        lambda: vault.write_audio(old, out / "a.wav"),
        lambda: vault.export_bundle(old, out / "b.zip"),
    ):
        with pytest.raises(Shredded) as exc:
            read()
        assert isinstance(exc.value, NotFound)
        assert "crypto-shredded on 2028-11-20" in exc.value.message
        assert f"under the retention rule '{RULE}'" in exc.value.message
    assert list(out.iterdir()) == []
    assert log_size(vault) == size  # a refused read is no access
    states = {h.record_id: h.state for h in vault.find(client=CLIENT)}
    assert states == {old: "shredded", young: "sealed"}
    assert [h.record_id for h in vault.find(phone=PHONE)] == [young]

    with pytest.raises(InvalidEvidence):
        ingest(vault, tmp_path, 1)  # the same call again: due for deletion on arrival
    # with a longer rule it would not be due, but shredded evidence is never sealed again
    vault.set_campaign_retention(CLIENT, CAMPAIGN, 1000)
    with pytest.raises(Conflict) as exc:
        ingest(vault, tmp_path, 1)
    assert f"record {old}" in exc.value.message and "crypto-shredded" in exc.value.message
    with pytest.raises(Conflict):
        vault.open_dispute(old, case_ref="CASE-9", reason="too late")
    # a second run finds nothing new to shred
    again = vault.run_retention()
    assert again.shredded == []
    assert len(entries(vault, "evidence.shredded")) == 1
    assert_clean(vault)


def test_held_record_outlives_its_date_and_its_key_bucket(vault, tmp_path):
    clock = clocked(vault)
    held = ingest(vault, tmp_path, 1)
    free = ingest(vault, tmp_path, 2)
    hold = vault.open_dispute(held, case_ref="CASE-1", reason="customer denies the order")
    clock.now = SWEEP_AT
    report = vault.run_retention()
    assert report.shredded == [free]
    assert [k.to_dict() for k in report.kept] == [
        {
            "record_id": held,
            "client": CLIENT,
            "retain_until": "2028-11-19T09:30:00.000Z",
            "rule": RULE,
            "action": "keep",
            "why": f"expired but on hold: hold {hold.id} (dispute, case CASE-1)",
        }
    ]
    # the held record's key moved to the current month; its bucket's KEK is gone
    assert report.rewrapped == 1 and report.keks_destroyed == [KEK]
    assert vault.context.keys.destroyed_at(KEK) == SWEEP_AT
    assert row(vault, held).kek_id == f"local:{CLIENT}:exp-2028-12:1"
    assert vault.show(held)["evidence"]["call_id"] == "dialer-7f3a-000001"
    assert_clean(vault)

    vault.add_person("admin-a", role="admin")
    vault.add_person("admin-b", role="admin")
    vault.release_hold(hold.id, admin="admin-a")
    with pytest.raises(PermissionDenied):
        vault.release_hold(hold.id, admin="admin-a")
    assert vault.run_retention().shredded == []  # requested is not released
    vault.release_hold(hold.id, admin="admin-b")
    clock.now = SWEEP_AT + timedelta(hours=1)
    report = vault.run_retention()
    assert report.shredded == [held] and report.kept == []
    with pytest.raises(Shredded):
        vault.show(held)
    assert_clean(vault)


@pytest.mark.parametrize("meanwhile", ["hold", "consent-use"])
def test_a_record_saved_between_plan_and_shred_is_left_alone(
    local, tmp_path, monkeypatch, meanwhile
):
    v, clock = local, local.context.clock
    v.add_campaign(CLIENT, "optin", retention_days=730, retention_basis="consent-use")
    rid = ingest(v, tmp_path, 1, campaign="optin")
    clock.now = UNTIL + timedelta(days=1)
    assert [(i.record_id, i.action) for i in v.retention_plan()] == [(rid, "shred")]
    real = retention_service.shred_record

    def after_a_concurrent_change(*a, **kw):
        if meanwhile == "hold":
            v.open_dispute(rid, case_ref="CASE-7", reason="disputed just now")
        else:
            v.record_consent_use(CLIENT, PHONE, clock.now)
        return real(*a, **kw)

    monkeypatch.setattr(retention_service, "shred_record", after_a_concurrent_change)
    assert v.run_retention() == RunReport()  # not shredded, so not "pending" either
    monkeypatch.setattr(retention_service, "shred_record", real)
    assert row(v, rid).shredded_at is None and entries(v, "evidence.shredded") == []
    assert v.show(rid)["evidence"]["campaign"] == "optin"
    assert [i.action for i in v.retention_plan()] == (["keep"] if meanwhile == "hold" else [])
    assert_clean(v)


def test_a_run_that_only_rewraps_signs_a_checkpoint(local, tmp_path):
    v, clock = local, local.context.clock
    rid = ingest(v, tmp_path, 1)
    v.place_hold(rid, case_ref="LEGAL-1", reason="court order")
    clock.now = SWEEP_AT
    report = v.run_retention()
    assert (report.shredded, len(report.kept), report.rewrapped) == ([], 1, 1)
    assert [e["type"] for e in entries(v)][-1] == "key.rewrapped"
    assert v.latest_checkpoint(CLIENT).size == log_size(v) == 3


# -- 4. shredding reaches backups ---------------------------------------------------------


def test_restored_objects_and_db_backup_cannot_open_shredded_evidence(local, tmp_path):
    v, clock = local, local.context.clock
    rid = ingest(v, tmp_path, 1)
    before = row(v, rid)
    objects = {k: read_object(v, k) for k in (before.clip_key, before.meta_key)}
    backup = WrappedKey(before.kek_id, bytes(before.wrapped_dek))  # a database backup
    assert before.kek_id == KEK
    context = {"record": rid}
    dek = v.context.keys.unwrap(backup, CLIENT, context)
    assert len(dek) == 32

    # shredded, objects deleted; the KEK lives until its month is over (+ 1 day)
    clock.now = SWEEP_AT - timedelta(seconds=1)
    report = v.run_retention()
    assert (report.shredded, report.purged, report.keks_destroyed) == ([rid], [rid], [])
    for key in objects:
        assert not v.context.store.exists(key)
    assert v.context.keys.destroyed_at(KEK) is None
    assert v.context.keys.unwrap(backup, CLIENT, context) == dek  # the documented window

    clock.now = SWEEP_AT
    report = v.run_retention()
    assert (report.shredded, report.purged, report.keks_destroyed) == ([], [], [KEK])
    assert v.context.keys.destroyed_at(KEK) == SWEEP_AT
    assert KEK not in v.context.keys.kek_ids(CLIENT)

    for key, data in objects.items():  # the object store restored from its backup
        write_object(v, key, data)
    for read in (lambda: v.show(rid), lambda: v.write_audio(rid, tmp_path / "x.wav")):
        with pytest.raises(Shredded):
            read()
    with pytest.raises(KeyUnavailable) as exc:
        v.context.keys.unwrap(backup, CLIENT, context)
    assert "destroyed on 2028-12-02" in exc.value.message
    with pytest.raises(KeyUnavailable):
        v.context.keys.unwrap(WrappedKey(KEK, bytes(row(v, rid).wrapped_dek)), CLIENT, context)
    assert row(v, rid).wrapped_dek == b""
    # restored ciphertext still hashes to what was sealed: the log is intact, nothing opens
    assert_clean(v)


# -- 5. a crash in the middle of a run ----------------------------------------------------


@pytest.mark.parametrize(
    "dies_in,shredded_by_crash",
    [
        ("shred_record", 1),  # before the 2nd record's transaction
        ("append_entries", 1),  # inside it: rolled back
        ("purge_objects", 2),  # after the 2nd record's commit, before its objects go
    ],
)
def test_crash_mid_run_leaves_records_whole_and_a_rerun_finishes(
    local, tmp_path, monkeypatch, dies_in, shredded_by_crash
):
    v, clock = local, local.context.clock
    ids = sorted(ingest(v, tmp_path, n) for n in (1, 2, 3))
    assert [i.record_id for i in v.retention_plan()] == []
    clock.now = SWEEP_AT + timedelta(days=30)
    assert [i.record_id for i in v.retention_plan()] == ids

    real = getattr(retention_service, dies_in)
    calls = []

    def dies_on_second_call(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("the process died here")
        return real(*a, **kw)

    monkeypatch.setattr(retention_service, dies_in, dies_on_second_call)
    with pytest.raises(ConnectionError):
        v.run_retention()
    monkeypatch.setattr(retention_service, dies_in, real)

    shredded_entries = [e["record"] for e in entries(v, "evidence.shredded")]
    assert shredded_entries == ids[:shredded_by_crash]
    for rid in ids:
        rec = row(v, rid)
        if rid in shredded_entries:
            assert rec.shredded_at is not None and rec.wrapped_dek == b""
            with pytest.raises(Shredded):
                v.show(rid)
        else:
            assert rec.shredded_at is None and len(rec.wrapped_dek) > 0
            assert v.show(rid)["evidence"]["call_id"] == rec.call_id
    assert row(v, ids[0]).purged_at is not None
    assert all(row(v, rid).purged_at is None for rid in ids[1:])
    assert v.context.keys.destroyed_at(KEK) is None  # the sweep never ran
    assert_clean(v)

    report = v.run_retention()
    assert report.shredded == ids[shredded_by_crash:]
    assert sorted(report.purged) == ids[1:]
    assert report.pending == [] and report.keks_destroyed == [KEK]
    assert [e["record"] for e in entries(v, "evidence.shredded")] == ids
    assert all(row(v, rid).purged_at is not None for rid in ids)
    assert_clean(v)

    size = log_size(v)
    assert v.run_retention() == RunReport()
    assert v.retention_plan() == []
    # a second runner acting on a plan taken before the records were shredded
    for rid in ids:
        assert not retention_service.shred_record(v.context, rid, reason="retention", rule=RULE)
    assert log_size(v) == size


# -- 6. Object Lock on a real S3 server ---------------------------------------------------


@pytest.fixture
def seaweed(seaweedfs, seaweedfs_bucket, tmp_path):
    """SeaweedFS + SQLite with an Object Lock bucket; the vault's clock at T0."""
    s3 = S3Settings(
        prefix="t-" + secrets.token_hex(6),
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        region="us-east-1",
        access_key_id=seaweedfs.access_key,
        secret_access_key=seaweedfs.secret_key,
        object_lock=True,
    )
    v = make_vault(tmp_path / "v", storage="s3", s3=s3, clock=Clock(T0))
    yield v
    v.close()


@pytest.mark.seaweedfs
def test_object_lock_outlasts_the_vaults_clock(seaweed, tmp_path):
    v, clock = seaweed, seaweed.context.clock
    assert v.context.store.supports_object_lock
    rid = ingest(v, tmp_path, 1)
    rec = row(v, rid)
    objects = {k: read_object(v, k) for k in (rec.clip_key, rec.meta_key)}
    for key in objects:
        with pytest.raises(ObjectLocked):
            v.context.store.delete(key, all_versions=True)
        assert v.context.store.get_retention(key) == UNTIL
    assert_clean(v)

    clock.now = datetime(2029, 3, 1, tzinfo=UTC)
    report = v.run_retention()
    assert report.shredded == [rid] and report.purged == []
    assert report.pending == [purge_item(v, rid, "2029-03-01")]
    assert report.keks_destroyed == [KEK]
    assert row(v, rid).purged_at is None and row(v, rid).wrapped_dek == b""
    assert {k: read_object(v, k) for k in objects} == objects
    with pytest.raises(ObjectLocked):  # the server's clock decides, not the vault's
        v.context.store.delete(rec.clip_key, all_versions=True)
    with pytest.raises(Shredded):
        v.show(rid)
    assert_clean(v)

    # the next run tries again, shreds nothing twice
    again = v.run_retention()
    assert again.shredded == [] and again.purged == []
    assert again.pending == [purge_item(v, rid, "2029-03-01")]
    assert [e["record"] for e in entries(v, "evidence.shredded")] == [rid]
    assert_clean(v)


# -- 7. erasure (GDPR Art. 17) ------------------------------------------------------------


def test_erasure_shreds_the_callees_records_except_held_ones(vault, tmp_path):
    clocked(vault)
    r1 = ingest(vault, tmp_path, 1)
    r2 = ingest(vault, tmp_path, 2)
    r3 = ingest(vault, tmp_path, 3)
    other = ingest(vault, tmp_path, 4, callee={"phone": OTHER_PHONE})
    hold = vault.open_dispute(r2, case_ref="CASE-1", reason="Kunde bestreitet den Vertrag")

    report = vault.erase(phone="+49 (151) 123 456 78", request_ref="REQ-2026-17")
    assert report.erased == [r1, r3]
    assert report.kept == [
        {
            "record_id": r2,
            "why": f"kept for legal claims (Art. 17(3)(e)): hold {hold.id} (dispute, case CASE-1)",
        }
    ]
    assert report.already_shredded == []
    assert report.objects_pending == ([r1, r3] if locked(vault) else [])
    rule = "GDPR Art. 17 request REQ-2026-17"
    shreds = entries(vault, "evidence.shredded")
    assert [(e["record"], e["body"]["reason"], e["body"]["rule"]) for e in shreds] == [
        (r1, "erasure", rule),
        (r3, "erasure", rule),
    ]
    assert shreds[0]["body"]["retain_until"] == "2028-11-19T09:30:00.000Z"
    with pytest.raises(Shredded) as exc:
        vault.show(r1)
    assert f"on an erasure request ({rule})" in exc.value.message
    assert "crypto-shredded on 2026-11-21" in exc.value.message
    with pytest.raises(Conflict):
        ingest(vault, tmp_path, 1)  # erased evidence is not taken back under its call
    assert vault.show(r2)["evidence"]["call_id"] == "dialer-7f3a-000002"
    assert vault.show(other)["evidence"]["call_id"] == "dialer-7f3a-000004"
    for rid in (r1, r3):
        purged_at = row(vault, rid).purged_at
        assert purged_at is None if locked(vault) else purged_at == T0
    if locked(vault):
        # erased before its date: the ciphertext stays until the lock lapses; a run lists it
        plan = vault.retention_plan()
        assert plan == [purge_item(vault, r1, "2026-11-21"), purge_item(vault, r3, "2026-11-21")]
    else:
        assert vault.retention_plan() == []
    assert_clean(vault)

    # by record id: a shredded one is reported as such, a held one kept, another erased
    again = vault.erase(record_id=r1)
    assert (again.erased, again.already_shredded, again.kept) == ([], [r1], [])
    assert vault.erase(record_id=r2).kept[0]["record_id"] == r2
    by_id = vault.erase(record_id=other)
    assert by_id.erased == [other]
    assert len(entries(vault, "evidence.shredded")) == 3
    # the phone is forgotten with the records: a second request finds nothing left
    assert vault.erase(phone=PHONE).to_dict() == {
        "erased": [],
        "kept": [{"record_id": r2, "why": report.kept[0]["why"]}],
        "already_shredded": [],
        "objects_pending": [],
    }
    assert_clean(vault)


def test_erasure_arguments(local, tmp_path):
    v = local
    rid = ingest(v, tmp_path, 1)
    for kwargs in ({}, {"phone": PHONE, "record_id": rid}):
        with pytest.raises(InvalidEvidence):
            v.erase(**kwargs)
    with pytest.raises(InvalidEvidence):
        v.erase(phone=PHONE, request_ref="ticket with spaces")
    with pytest.raises(InvalidEvidence):
        v.erase(phone="0151 12345678")  # no country code: cannot be matched
    with pytest.raises(NotFound):
        v.erase(record_id="no-such-record")
    with pytest.raises(NotFound):
        v.erase(record_id=rid, client="someone-else")
    assert row(v, rid).shredded_at is None
    assert entries(v, "evidence.shredded") == []


def test_erasing_for_an_unknown_client_changes_nothing(local, tmp_path):
    v = local
    rid = ingest(v, tmp_path, 1)
    keyring = v.context.keys.path.read_bytes()
    report = v.erase(phone=PHONE, client="ghost")
    assert report.to_dict() == {
        "erased": [],
        "kept": [],
        "already_shredded": [],
        "objects_pending": [],
    }
    assert v.context.keys.path.read_bytes() == keyring  # no index key made up for it
    assert row(v, rid).shredded_at is None
    assert v.erase(phone=PHONE, client=CLIENT).erased == [rid]


# -- 8. no personal data in what shredding and extension log ------------------------------


def test_shredding_and_extension_entries_carry_no_pii(local, tmp_path):
    v, clock = local, local.context.clock
    reason = "Herr Mustermann bestreitet die Bestellung vom 20.11."
    v.add_campaign(CLIENT, "optin", retention_days=730, retention_basis="consent-use")
    a = ingest(v, tmp_path, 1, campaign="optin")
    b = ingest(v, tmp_path, 2)
    c = ingest(v, tmp_path, 3)
    hold = v.open_dispute(c, case_ref="CASE-1", reason=reason)
    clock.now = T0 + timedelta(days=3)
    assert v.record_consent_use(CLIENT, PHONE) == [a]
    assert v.erase(record_id=b).erased == [b]
    v.add_person("admin-a", role="admin")
    v.add_person("admin-b", role="admin")
    v.release_hold(hold.id, admin="admin-a")
    v.release_hold(hold.id, admin="admin-b")
    clock.now = UNTIL + timedelta(days=5)
    assert v.run_retention().shredded == [c, a]

    with read_session(v.context.engine) as s:
        raws = {
            kind: [bytes(e) for e in s.exec(select(LogEntry.entry).where(LogEntry.type == kind))]
            for kind in ("evidence.shredded", "retention.extended", "hold.placed")
        }
    assert [len(raws[k]) for k in raws] == [3, 1, 1]
    exported = v.export_log(CLIENT, tmp_path / "log.jsonl").read_bytes()
    blobs = [*raws["evidence.shredded"], *raws["retention.extended"], *raws["hold.placed"]]
    for blob in [*blobs, exported]:
        for secret in (
            PHONE,
            PHONE[1:],
            "15112345678",
            "Max Mustermann",
            "Mustermann",
            "bestreitet",
            json.dumps(reason)[1:-1],
        ):
            assert secret.encode() not in blob
    # nor in the shredded rows: no lookup value derived from the callee survives
    for rid in (a, b, c):
        rec = row(v, rid)
        assert (rec.phone_hash, rec.clip_fingerprint, rec.meta_fingerprint) == ("", "", "")
    assert v.find(phone=PHONE) == []
    assert_clean(v)
