"""Key lifecycle: KEK rotation and destruction, and the hand-over of the log signing key.

Rotation must never cost a record its readability, the log must explain every KEK a row
names, and an auditor who pinned the old log key must be led to the new one by the
co-signed hand-over checkpoint, and by nothing else.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from tests.support.tamper import sql
from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault.db import LogEntry, read_session
from vault.errors import Conflict, KeyUnavailable, NotFound
from vault.ledger import encode_entry, entry_hash, make_entry
from vault.ledger.checkpoint import (
    Checkpoint,
    NoteError,
    open_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from vault.ledger.merkle import MemoryNodes, root
from vault.ledger.offline import audit_export
from vault.sealing import LogSigner
from vault.services import keys as key_service
from vault.services.keys import DESTROY_GRACE
from vault.services.retrieve import get_record

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
BUCKET = "exp-2028-11"  # RECORDED_AT + 730 days = 2028-11-19
GEN1, GEN2, GEN3 = (f"local:{CLIENT}:{BUCKET}:{g}" for g in (1, 2, 3))


class Clock:
    """The vault's injectable clock (the keyring dates keys with it too)."""

    def __init__(self, vault, now: datetime = T0) -> None:
        self.now = now
        vault.context.clock = lambda: self.now


def entries(vault, kind: str | None = None, client: str = CLIENT) -> list[dict]:
    from vault.ledger.entry import parse_entry

    with read_session(vault.context.engine) as s:
        rows = s.exec(
            select(LogEntry.entry).where(LogEntry.client_id == client).order_by(LogEntry.seq)
        )
        parsed = [parse_entry(bytes(raw)) for raw in rows]
    return [e for e in parsed if kind is None or e["type"] == kind]


def kek_of(vault, record_id: str) -> str:
    return get_record(vault.context, record_id).kek_id


def seal(vault, tmp_path, n: int = 3):
    """n records of the same call month: all under GEN1; returns (receipt, clip) pairs."""
    out = []
    for i in range(n):
        path = clip(tmp_path, seed=i)
        out.append((vault.ingest(path, order_meta(i)), path))
    assert {kek_of(vault, r.record_id) for r, _ in out} == {GEN1}
    return out


def assert_readable(vault, sealed, tmp_path) -> None:
    for i, (receipt, path) in enumerate(sealed):
        doc = vault.show(receipt.record_id)
        assert doc["evidence"]["call_id"] == f"dialer-7f3a-{i:06d}"
        out = vault.write_audio(receipt.record_id, tmp_path / f"out-{i}.bin")
        assert out.read_bytes() == path.read_bytes()


def findings(report) -> list[tuple]:
    return sorted((f.kind, f.record or "", -1 if f.seq is None else f.seq) for f in report.findings)


@pytest.fixture
def local(tmp_path):
    """A local-sqlite vault for scenarios that do not depend on the backends."""
    with make_vault(tmp_path / "local") as v:
        yield v


# -- KEK rotation -------------------------------------------------------------------------


def test_kek_rotation_keeps_every_record_readable(vault, tmp_path):
    clock = Clock(vault)
    sealed = seal(vault, tmp_path)
    before = {r.record_id: get_record(vault.context, r.record_id).wrapped_dek for r, _ in sealed}

    clock.now = T0 + timedelta(hours=1)
    report = vault.rotate_kek(CLIENT)
    assert report.to_dict() == {"rotated": [{"from": GEN1, "to": GEN2}], "records": 3}
    assert vault.context.keys.kek_ids(CLIENT) == [GEN1, GEN2]
    assert vault.context.keys.kek_created_at(GEN2) == clock.now
    for receipt, _ in sealed:
        row = get_record(vault.context, receipt.record_id)
        assert row.kek_id == GEN2 and row.wrapped_dek != before[row.id]
    assert vault.key_status(CLIENT) == [
        {"kek": GEN1, "bucket": BUCKET, "live_records": 0},
        {"kek": GEN2, "bucket": BUCKET, "live_records": 3},
    ]
    [moved] = entries(vault, "key.rewrapped")
    assert moved["body"] == {"from": GEN1, "to": GEN2, "records": 3, "reason": "rotation"}
    # the sealed entries still name GEN1: the re-wrap entry explains the rows
    assert {e["body"]["kek"] for e in entries(vault, "evidence.sealed")} == {GEN1}
    assert_readable(vault, sealed, tmp_path)
    assert vault.verify(deep=True).clean

    # a new record of the bucket is sealed under the new generation
    path = clip(tmp_path, seed=9)
    late = vault.ingest(path, order_meta(9))
    assert kek_of(vault, late.record_id) == GEN2
    sealed.append((late, path))

    # the superseded KEK: not while an upload may still be sealing under it ...
    clock.now += DESTROY_GRACE - timedelta(seconds=1)
    with pytest.raises(Conflict, match="superseded less than"):
        vault.destroy_kek(GEN1)
    assert vault.context.keys.kek_ids(CLIENT) == [GEN1, GEN2]
    # ... then for good
    clock.now += timedelta(minutes=1)
    vault.destroy_kek(GEN1)
    assert vault.context.keys.kek_ids(CLIENT) == [GEN2]
    assert vault.context.keys.destroyed_at(GEN1) == clock.now
    assert_readable(vault, sealed[:3], tmp_path)
    assert vault.verify(deep=True).clean

    # the KEK live records need is refused
    with pytest.raises(Conflict, match="4 live record"):
        vault.destroy_kek(GEN2)
    assert vault.context.keys.kek_ids(CLIENT) == [GEN2]
    vault.destroy_kek(GEN1)  # destroying again is a no-op
    assert vault.verify().clean


def test_destroy_refusals_and_closed_buckets(local, tmp_path):
    clock = Clock(local)
    [(kept, _)] = seal(local, tmp_path, 1)
    # an October call: bucket exp-2028-10, erased at once, so its KEK guards nothing live
    october = local.ingest(
        clip(tmp_path, seed=5),
        order_meta(5, recorded_at=datetime(2026, 10, 5, 9, 0, tzinfo=UTC)),
    )
    oct_kek = f"local:{CLIENT}:exp-2028-10:1"
    assert kek_of(local, october.record_id) == oct_kek
    local.erase(record_id=october.record_id)
    assert local.key_status(CLIENT)[0] == {
        "kek": oct_kek,
        "bucket": "exp-2028-10",
        "live_records": 0,
    }
    # still the current key of an open bucket: new October evidence is sealed under it
    with pytest.raises(Conflict, match="is the current key of bucket exp-2028-10"):
        local.destroy_kek(oct_kek)
    with pytest.raises(Conflict, match="1 live record"):
        local.destroy_kek(GEN1)
    with pytest.raises(NotFound):
        local.destroy_kek(f"local:{CLIENT}:exp-2031-01:1")
    with pytest.raises(NotFound):
        local.destroy_kek(f"local:{CLIENT}:exp-2020-01:1")  # a closed bucket never used
    with pytest.raises(NotFound):
        local.rotate_kek(CLIENT, f"local:{CLIENT}:exp-2031-01:1")
    with pytest.raises(NotFound):
        local.rotate_kek("no-such-client")
    assert local.context.keys.kek_ids(CLIENT) == [oct_kek, GEN1]

    # once the bucket's month is over (plus the sweep's grace) it may go
    clock.now = datetime(2028, 11, 2, 1, 0, tzinfo=UTC)
    local.destroy_kek(oct_kek)
    assert local.context.keys.kek_ids(CLIENT) == [GEN1]
    local.destroy_kek(oct_kek)  # idempotent, also for a bucket with no key left
    assert local.show(kept.record_id)["evidence"]["call_id"] == "dialer-7f3a-000000"
    assert local.verify().clean


def test_rotation_of_one_kek(local, tmp_path):
    Clock(local)
    sealed = seal(local, tmp_path, 2)
    october = local.ingest(
        clip(tmp_path, seed=5),
        order_meta(5, recorded_at=datetime(2026, 10, 5, 9, 0, tzinfo=UTC)),
    )
    oct_kek = f"local:{CLIENT}:exp-2028-10:1"
    report = local.rotate_kek(CLIENT, GEN1)
    assert (report.rotated, report.records) == ([(GEN1, GEN2)], 2)
    assert kek_of(local, october.record_id) == oct_kek  # the other bucket is untouched
    assert local.context.keys.kek_ids(CLIENT) == [oct_kek, GEN1, GEN2]
    # all buckets: each gets a new generation
    report = local.rotate_kek(CLIENT)
    oct2 = f"local:{CLIENT}:exp-2028-10:2"
    assert (report.rotated, report.records) == ([(oct_kek, oct2), (GEN2, GEN3)], 3)
    assert [kek_of(local, r.record_id) for r, _ in sealed] == [GEN3, GEN3]
    assert kek_of(local, october.record_id) == oct2
    assert [e["body"] for e in entries(local, "key.rewrapped")] == [
        {"from": GEN1, "to": GEN2, "records": 2, "reason": "rotation"},
        {"from": oct_kek, "to": oct2, "records": 1, "reason": "rotation"},
        {"from": GEN2, "to": GEN3, "records": 2, "reason": "rotation"},
    ]
    assert_readable(local, sealed, tmp_path)
    assert local.verify(deep=True).clean


def test_interrupted_kek_rotation_resumes_without_another_generation(local, tmp_path, monkeypatch):
    Clock(local)
    sealed = seal(local, tmp_path)

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(key_service, "rewrap", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        local.rotate_kek(CLIENT)
    monkeypatch.undo()
    # the new generation exists, but every key is still wrapped under the old one
    assert local.context.keys.kek_ids(CLIENT) == [GEN1, GEN2]
    assert {kek_of(local, r.record_id) for r, _ in sealed} == {GEN1}
    assert entries(local, "key.rewrapped") == []

    report = local.rotate_kek(CLIENT)
    assert (report.rotated, report.records) == ([(GEN1, GEN2)], 3)
    assert local.context.keys.kek_ids(CLIENT) == [GEN1, GEN2]  # no third generation
    assert {kek_of(local, r.record_id) for r, _ in sealed} == {GEN2}
    assert [e["body"] for e in entries(local, "key.rewrapped")] == [
        {"from": GEN1, "to": GEN2, "records": 3, "reason": "rotation"}
    ]
    assert_readable(local, sealed, tmp_path)
    assert local.verify(deep=True).clean

    # a rotation after a finished one is a new rotation
    report = local.rotate_kek(CLIENT)
    assert (report.rotated, report.records) == ([(GEN2, GEN3)], 3)
    assert local.context.keys.kek_ids(CLIENT) == [GEN1, GEN2, GEN3]
    assert {kek_of(local, r.record_id) for r, _ in sealed} == {GEN3}
    assert local.verify(deep=True).clean


# -- tampering with key rows and re-wrap entries ------------------------------------------------


def test_row_kek_not_reachable_through_rewraps_is_a_finding(local, tmp_path):
    Clock(local)
    (a, _), (b, _), _ = seal(local, tmp_path)
    october = local.ingest(
        clip(tmp_path, seed=5),
        order_meta(5, recorded_at=datetime(2026, 10, 5, 9, 0, tzinfo=UTC)),
    )
    local.rotate_kek(CLIENT, GEN1)
    assert local.verify().clean
    # a row sealed under GEN1 may name GEN2 (re-wrapped), or GEN1 itself ...
    sql(local, "UPDATE record SET kek_id = :k WHERE id = :i", k=GEN1, i=a.record_id)
    assert local.verify().clean
    # ... but not a KEK no re-wrap leads to
    oct_kek = f"local:{CLIENT}:exp-2028-10:1"
    sql(local, "UPDATE record SET kek_id = :k WHERE id = :i", k=oct_kek, i=b.record_id)
    # nor may the October record claim GEN2: that edge starts at GEN1, not its KEK
    sql(local, "UPDATE record SET kek_id = :k WHERE id = :i", k=GEN2, i=october.record_id)
    report = local.verify()
    assert findings(report) == sorted(
        [
            ("modified", b.record_id, 1),
            ("modified", october.record_id, 3),
        ]
    )
    assert {f.detail for f in report.findings} == {"record row disagrees with its log entry: kek"}


def test_deleted_rewrap_entry_is_detected(local, tmp_path):
    Clock(local)
    sealed = seal(local, tmp_path)
    local.rotate_kek(CLIENT)
    local.show(sealed[0][0].record_id)  # an entry after the re-wrap: the gap is in the middle
    [moved] = entries(local, "key.rewrapped")
    assert moved["seq"] == 3 and local.verify().clean
    sql(local, "DELETE FROM log_entry WHERE client_id = :c AND seq = 3", c=CLIENT)
    report = local.verify()
    assert findings(report) == sorted(
        [
            ("missing", "", 3),  # the chain has a hole
            ("modified", "", -1),  # the stored Merkle tree no longer matches
            *(("modified", r.record_id, i) for i, (r, _) in enumerate(sealed)),  # rows' KEK
        ]
    )
    [gap] = [f for f in report.findings if f.kind == "missing"]
    assert gap.detail == "entries 3..3 are missing"


def test_retyped_rewrap_entry_is_detected(local, tmp_path):
    """The type column of the re-wrap entry is changed: the entry stays, hidden from a query."""
    Clock(local)
    sealed = seal(local, tmp_path, 1)
    local.rotate_kek(CLIENT)
    sql(
        local,
        "UPDATE log_entry SET type = 'evidence.accessed' WHERE client_id = :c AND seq = 1",
        c=CLIENT,
    )
    report = local.verify()
    assert findings(report) == [("modified", "", 1), ("modified", sealed[0][0].record_id, 0)]
    assert "type or record_id column disagrees" in " ".join(f.detail for f in report.findings)


# -- the log signing key ----------------------------------------------------------------------


def export(vault, tmp_path, client: str = CLIENT, name: str = "log.jsonl") -> list[str]:
    return vault.export_log(client, tmp_path / name).read_text(encoding="utf-8").splitlines()


def test_log_key_rotation_hands_over_with_a_co_signed_checkpoint(vault, tmp_path):
    clock = Clock(vault)
    for i in range(2):
        vault.ingest(clip(tmp_path, seed=i), order_meta(i))
    vault.checkpoint(CLIENT)
    saved = vault.latest_checkpoint(CLIENT)  # what the auditor kept ...
    assert saved.size == 2
    old_key = vault.log_key()  # ... and the key they pinned
    old_v = parse_verifier_key(old_key)
    clock.now += timedelta(seconds=30)  # within checkpoint_seconds
    vault.ingest(clip(tmp_path, seed=2), order_meta(2))

    result = vault.rotate_log_key()
    new_key = result["new"]
    new_v = parse_verifier_key(new_key)
    assert result == {"old": old_key, "new": new_key, "clients": [CLIENT]}
    assert new_key != old_key and vault.log_key() == new_key
    assert [g.to_dict() for g in vault.log_keys()] == [
        {"generation": 1, "verifier_key": old_key, "active": False},
        {"generation": 2, "verifier_key": new_key, "active": True},
    ]
    # the old private key is gone; its public key stays for checking old checkpoints
    ring = vault.context.keys
    assert [(g, live) for g, _pub, live in ring.signing_keys("log")] == [(1, False), (2, True)]
    assert [pub for _g, pub, _live in ring.signing_keys("log")] == [
        old_v.public_key,
        new_v.public_key,
    ]
    with pytest.raises(KeyUnavailable):
        ring.signing_key_generation("log", 1)

    [rotated] = entries(vault, "log.key_rotated")
    assert (rotated["seq"], rotated["body"]) == (3, {"old": old_key, "new": new_key})
    handover = vault.latest_checkpoint(CLIENT)
    assert handover.size == 4  # covers the rotation entry
    text, signed = open_note(handover.note.encode(), [old_v, new_v])
    assert sorted(v.key_id for v in signed) == sorted([old_v.key_id, new_v.key_id])
    assert Checkpoint.parse_body(text).root.hex() == handover.root_hash

    # from now on only the new key signs
    vault.ingest(clip(tmp_path, seed=3), order_meta(3))
    later = vault.checkpoint(CLIENT)
    assert later.size == 5
    assert open_note(later.note.encode(), [old_v, new_v])[1] == [new_v]
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(later.note.encode(), [old_v])

    report = vault.verify()  # checks the checkpoints of both keys
    assert report.clean and report.checkpoints == 8  # 4 notes, each in the DB and the store

    # the auditor, knowing only the old key and the checkpoint they kept
    lines = export(vault, tmp_path)
    audit = audit_export(lines, old_v, trusted=[saved.note.encode()])
    assert audit.to_dict()["findings"] == []
    assert audit.clean and audit.keys == [old_key, new_key]
    assert (audit.entries, audit.trusted) == (5, 1)


def test_offline_audit_follows_genuine_hand_overs_only(local, tmp_path):
    clock = Clock(local)
    for i in range(2):
        local.ingest(clip(tmp_path, seed=i), order_meta(i))
    saved = local.checkpoint(CLIENT).note.encode()
    old_key = local.log_key()
    old_v = parse_verifier_key(old_key)
    clock.now += timedelta(seconds=30)  # within checkpoint_seconds
    local.ingest(clip(tmp_path, seed=2), order_meta(2))
    new_key = local.rotate_log_key()["new"]
    local.ingest(clip(tmp_path, seed=3), order_meta(3))
    local.checkpoint(CLIENT)
    lines = export(local, tmp_path)
    objs = [json.loads(line) for line in lines]
    notes = [o["note"] for o in objs if o["kind"] == "checkpoint"]
    sizes = [
        Checkpoint.parse_body(open_note(n.encode(), local_verifiers(local))[0]).size for n in notes
    ]
    assert sizes == [1, 2, 4, 5]  # after the first seal, saved, hand-over, after rotation

    good = audit_export(lines, old_v, trusted=[saved])
    assert good.clean and good.keys == [old_key, new_key]

    # a key the vault never had: nothing verifies
    stranger = verifier_key(local.settings.name, LogSigner.generate().public_key_bytes())
    report = audit_export(lines, parse_verifier_key(stranger), trusted=[saved])
    assert not report.clean and report.keys == [stranger]
    assert [f.kind for f in report.findings] == ["bad-signature"] * 5  # 4 exported + saved

    # the co-signed hand-over checkpoint is withheld: the new key is not learnt
    without = [ln for ln, o in zip(lines, objs, strict=True) if o.get("note") != notes[2]]
    report = audit_export(without, old_v, trusted=[saved])
    assert report.keys == [old_key]
    assert [(f.kind, f.detail) for f in report.findings] == [
        ("bad-signature", "exported checkpoint: no signature by a known key")
    ]

    # an attacker without the old key rewrites the hand-over to name their own key and
    # signs checkpoints over it: alone, and with the old key's line copied from the
    # genuine hand-over checkpoint
    attacker = LogSigner.generate()
    attacker_key = verifier_key(local.settings.name, attacker.public_key_bytes())
    forged_rows = rechain(objs, {3: {"old": old_key, "new": attacker_key}})
    leaves = [bytes.fromhex(entry_hash(r["entry"].encode())) for r in forged_rows]
    tree = MemoryNodes(leaves)
    origin = objs[0]["origin"]

    def forged_note(size: int) -> str:
        body = Checkpoint(origin=origin, size=size, root=root(tree, size)).body()
        return sign_note(body, local.settings.name, attacker).decode()

    old_line = [ln for ln in notes[2].splitlines() if _sig_key_id(ln) == old_key.split("+")[1]]
    assert len(old_line) == 1
    co_signed = forged_note(4) + old_line[0] + "\n"
    forged = [
        json.dumps(objs[0]),
        *(json.dumps(r) for r in forged_rows),
        *(json.dumps({"kind": "checkpoint", "note": n}) for n in notes[:2]),
        json.dumps({"kind": "checkpoint", "note": co_signed}),
        json.dumps({"kind": "checkpoint", "note": forged_note(5)}),
    ]
    report = audit_export(forged, old_v, trusted=[saved])
    assert report.keys == [old_key]
    assert report.entries == 5  # the forged chain itself is well-formed
    assert [(f.kind, f.detail) for f in report.findings] == [
        ("bad-signature", f"exported checkpoint: invalid signature by key {old_v}"),
        ("bad-signature", "exported checkpoint: no signature by a known key"),
    ]
    # the forgery itself is sound: pinned on the attacker's key, its own checkpoint verifies
    attackers_view = [forged[0], *forged[1:-4], forged[-1]]
    assert audit_export(attackers_view, parse_verifier_key(attacker_key)).clean


def local_verifiers(vault):
    from vault.services.checkpoints import log_verifiers

    return log_verifiers(vault.context)


def _sig_key_id(line: str) -> str:
    """The hex key id of a signature line ('— name base64(key id ‖ signature)')."""
    import base64

    if not line.startswith("— "):
        return ""
    return base64.b64decode(line.split(" ")[2])[:4].hex()


def rechain(objs: list[dict], bodies: dict[int, dict]) -> list[dict]:
    """The export's entry lines with the bodies of some entries replaced, re-hash-chained."""
    out, prev = [], "0" * 64
    for o in objs:
        if o["kind"] != "entry":
            continue
        e = json.loads(o["entry"])
        raw = encode_entry(
            make_entry(
                log=e["log"],
                seq=e["seq"],
                type=e["type"],
                time=datetime.fromisoformat(e["time"]),
                prev=prev,
                record=e.get("record"),
                body=bodies.get(e["seq"], e["body"]),
            )
        )
        prev = entry_hash(raw)
        out.append({"kind": "entry", "seq": e["seq"], "entry": raw.decode()})
    return out


def test_log_key_rotation_rerun_and_resume(local, tmp_path, monkeypatch):
    Clock(local)
    local.add_client("energy-at", "Energy AT")
    local.ingest(clip(tmp_path), order_meta(1))
    k1 = local.log_key()
    saved = local.latest_checkpoint(CLIENT).note.encode()

    k2 = local.rotate_log_key()["new"]
    # rerunning after a finished rotation starts a new one
    result = local.rotate_log_key()
    k3 = result["new"]
    assert result == {"old": k2, "new": k3, "clients": ["energy-at", CLIENT]}
    assert [(g.generation, g.verifier_key, g.active) for g in local.log_keys()] == [
        (1, k1, False),
        (2, k2, False),
        (3, k3, True),
    ]
    assert [e["body"] for e in entries(local, "log.key_rotated")] == [
        {"old": k1, "new": k2},
        {"old": k2, "new": k3},
    ]
    audit = audit_export(export(local, tmp_path), parse_verifier_key(k1), trusted=[saved])
    assert audit.clean and audit.keys == [k1, k2, k3]

    # a crash after the first client's hand-over
    real = key_service._hand_over
    handed: list[str] = []

    def crash_after_first(ctx, client, *args):
        if handed:
            raise RuntimeError("power cut")
        handed.append(client)
        return real(ctx, client, *args)

    monkeypatch.setattr(key_service, "_hand_over", crash_after_first)
    with pytest.raises(RuntimeError, match="power cut"):
        local.rotate_log_key()
    monkeypatch.setattr(key_service, "_hand_over", real)
    assert handed == ["energy-at"]
    ring = local.context.keys
    # generation 4 exists, generation 3 is not retired yet: its hand-over is unfinished
    assert [(g, live) for g, _p, live in ring.signing_keys("log")] == [
        (1, False),
        (2, False),
        (3, True),
        (4, True),
    ]
    k4 = local.log_key()
    assert len(entries(local, "log.key_rotated", "energy-at")) == 3
    assert len(entries(local, "log.key_rotated")) == 2

    result = local.rotate_log_key()
    assert result == {"old": k3, "new": k4, "clients": [CLIENT]}  # the same hand-over
    assert [(g, live) for g, _p, live in ring.signing_keys("log")] == [
        (1, False),
        (2, False),
        (3, False),
        (4, True),
    ]
    for client in ("energy-at", CLIENT):
        bodies = [e["body"] for e in entries(local, "log.key_rotated", client)]
        assert bodies == [
            {"old": k1, "new": k2},
            {"old": k2, "new": k3},
            {"old": k3, "new": k4},
        ]
        lines = export(local, tmp_path, client, f"{client}.jsonl")
        audit = audit_export(lines, parse_verifier_key(k1))
        assert audit.clean and audit.keys == [k1, k2, k3, k4], client
    assert local.verify().clean
