"""The verifiable ledger end to end: checkpoints, proofs, the full audit and the offline audit.

Tamper cases change real rows, notes and exports and assert the exact finding.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.support.tamper import sql
from tests.support.vaults import CLIENT, clip, order_meta
from vault.db import write_session
from vault.db.log import EntryDraft, append_entries
from vault.ledger import encode_entry, entry_hash, make_entry
from vault.ledger.checkpoint import Checkpoint, open_note, parse_verifier_key, sign_note
from vault.ledger.merkle import verify_consistency, verify_inclusion
from vault.ledger.offline import audit_export
from vault.sealing import LogSigner

T = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _grow(vault, n: int, batch: int = 500) -> None:
    """Append n access entries quickly (group commit), as a busy log would have."""
    for start in range(0, n, batch):
        with write_session(vault.context.engine) as s:
            append_entries(
                s,
                CLIENT,
                [
                    EntryDraft("evidence.accessed", None, {"i": i})
                    for i in range(start, min(n, start + batch))
                ],
                T,
                vault.context.log_keys(CLIENT),
            )


def _note_checkpoint(vault, note: str) -> Checkpoint:
    body, _ = open_note(note.encode(), [parse_verifier_key(vault.log_key())])
    return Checkpoint.parse_body(body)


@pytest.fixture
def records(vault, tmp_path):
    return [vault.ingest(clip(tmp_path, seed=i), order_meta(i)) for i in range(3)]


def test_first_ingest_signs_a_checkpoint_and_cadence_follows(vault, tmp_path, records):
    cps = [cp.size for cp in _checkpoints(vault)]
    assert cps == [1]  # the first append of a log is checkpointed at once
    vault.context.settings = replace(vault.context.settings, checkpoint_every=3)
    for i in range(3, 8):
        vault.ingest(clip(tmp_path, seed=i), order_meta(i))
    assert [cp.size for cp in _checkpoints(vault)] == [1, 4, 7]
    cp = vault.checkpoint(CLIENT)
    assert cp.size == 8 and vault.checkpoint(CLIENT) == cp  # on demand, idempotent
    assert vault.verify().checkpoints == 2 * 4  # each in the database and in storage


def _latest_checkpoint_queries(engine) -> list[str]:
    """Collects the cadence's look-ups of a log's newest checkpoint while it is attached."""
    from sqlalchemy import event

    seen: list[str] = []

    def before(conn, cursor, statement, params, context, executemany):
        flat = " ".join(statement.lower().split())
        if flat.startswith("select") and "order by checkpoint.size desc" in flat:
            seen.append(flat)

    event.listen(engine, "before_cursor_execute", before)
    return seen


def test_the_cadence_after_an_ingest_asks_the_database_only_when_one_may_be_due(
    vault, tmp_path, records
):
    vault.context.settings = replace(vault.context.settings, checkpoint_every=3)
    asked = _latest_checkpoint_queries(vault.context.engine)
    looked = []
    for i in range(3, 8):
        before = len(asked)
        vault.ingest(clip(tmp_path, seed=i), order_meta(i))
        looked.append(len(asked) > before)
    # sizes 4 and 7 are due by the checkpoint this process last saw; 5, 6 and 8 are not
    assert looked == [True, False, False, True, False]
    assert [cp.size for cp in _checkpoints(vault)] == [1, 4, 7]


def test_the_cadence_by_time_still_signs_without_the_count(vault, tmp_path, records):
    now = [T]
    vault.context.clock = lambda: now[0]
    vault.context.settings = replace(
        vault.context.settings, checkpoint_every=1000, checkpoint_seconds=60
    )
    vault.ingest(clip(tmp_path, seed=3), order_meta(3))
    assert vault.checkpoint(CLIENT).size == 4  # signed on demand: the process saw it
    vault.ingest(clip(tmp_path, seed=4), order_meta(4))
    assert [cp.size for cp in _checkpoints(vault)] == [1, 4]  # 5 s is not 60
    now[0] = T.replace(minute=1, second=1)
    vault.ingest(clip(tmp_path, seed=5), order_meta(5))
    assert [cp.size for cp in _checkpoints(vault)] == [1, 4, 6]


def test_a_checkpoint_another_process_signed_is_found_before_signing_again(
    vault, tmp_path, records
):
    from tests.support.vaults import reopen

    vault.context.settings = replace(vault.context.settings, checkpoint_every=3)
    vault.ingest(clip(tmp_path, seed=3), order_meta(3))  # size 4: signed here, remembered
    other = reopen(vault)
    try:
        other.context.settings = vault.context.settings
        for i in range(4, 7):
            other.ingest(clip(tmp_path, seed=i), order_meta(i))  # signs size 7
        asked = _latest_checkpoint_queries(vault.context.engine)
        # due by what this process saw (8 - 4 >= 3), not by the newest (8 - 7): one look-up
        vault.ingest(clip(tmp_path, seed=7), order_meta(7))
        assert len(asked) == 1
        assert [cp.size for cp in _checkpoints(vault)] == [1, 4, 7]
    finally:
        other.close()


def _checkpoints(vault):
    from vault.services.checkpoints import list_checkpoints

    return list_checkpoints(vault.context, CLIENT)


def test_checkpoint_note_is_c2sp_and_signed_by_the_log_key(vault, records):
    cp = vault.checkpoint(CLIENT)
    body = cp.note.split("\n\n")[0] + "\n"
    assert body.splitlines()[:2] == [f"{vault.settings.name}/{CLIENT}", str(cp.size)]
    signature_line = cp.note.split("\n\n")[1]
    assert signature_line.startswith(f"\u2014 {vault.settings.name} ")
    assert _note_checkpoint(vault, cp.note).root.hex() == cp.root_hash
    stored = b"".join(vault.context.store.get(f"{CLIENT}/_checkpoints/{cp.size}"))
    assert stored.decode() == cp.note


def test_inclusion_proof_of_a_record(vault, records):
    r = records[1]
    p = vault.inclusion_proof(r.record_id)
    assert (p.seq, p.leaf_hash) == (r.seq, r.entry_hash)
    root = _note_checkpoint(vault, p.checkpoint).root
    assert verify_inclusion(
        bytes.fromhex(p.leaf_hash), p.seq, p.tree_size, [bytes.fromhex(h) for h in p.hashes], root
    )
    assert not verify_inclusion(
        bytes.fromhex(records[0].entry_hash),
        p.seq,
        p.tree_size,
        [bytes.fromhex(h) for h in p.hashes],
        root,
    )


def test_consistency_between_checkpoints_on_a_large_log(vault, records):
    """The clean case on thousands of entries, with proofs at many positions."""
    old = vault.checkpoint(CLIENT)
    _grow(vault, 3000)
    new = vault.checkpoint(CLIENT)
    p = vault.consistency_proof(CLIENT, old.size, new.size)
    assert verify_consistency(
        old.size,
        new.size,
        bytes.fromhex(old.root_hash),
        bytes.fromhex(new.root_hash),
        [bytes.fromhex(h) for h in p.hashes],
    )
    from vault.services.checkpoints import inclusion_at

    rng = random.Random(7)
    for seq in rng.sample(range(new.size), 25):
        ip = inclusion_at(vault.context, CLIENT, seq, new)
        assert verify_inclusion(
            bytes.fromhex(ip.leaf_hash),
            seq,
            new.size,
            [bytes.fromhex(h) for h in ip.hashes],
            bytes.fromhex(new.root_hash),
        )
    report = vault.verify(deep=True)
    assert report.clean, report.findings
    assert report.entries == new.size


def test_forged_checkpoint_signature(vault, records):
    cp = vault.checkpoint(CLIENT)
    forged = _flip_signature(cp.note)
    sql(
        vault,
        "UPDATE checkpoint SET note = :n WHERE client_id = :c AND size = :s",
        n=forged.encode(),
        c=CLIENT,
        s=cp.size,
    )
    [f] = vault.verify().findings
    assert f.kind == "bad-signature" and f"database checkpoint {cp.size}" in f.detail


def _flip_signature(note: str) -> str:
    body, sig = note.split("\n\n")
    prefix, b64 = sig.rstrip("\n").rsplit(" ", 1)
    import base64

    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 1
    return f"{body}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"


def test_checkpoint_signed_by_another_key(vault, records):
    intruder = LogSigner.generate()
    size = 3
    with write_session(vault.context.engine) as s:
        from vault.db.tree import StoredTree
        from vault.ledger.merkle import root

        tree_root = root(StoredTree(s, CLIENT), size)
    body = Checkpoint(origin=f"{vault.settings.name}/{CLIENT}", size=size, root=tree_root).body()
    note = sign_note(body, vault.settings.name, intruder)
    vault.context.store.put(f"{CLIENT}/_checkpoints/{size}", [note])
    findings = vault.verify().findings
    assert [f.kind for f in findings] == ["bad-signature"]
    assert "no signature by a known key" in findings[0].detail


def test_rolled_back_log_against_a_signed_checkpoint(vault, records):
    cp = vault.checkpoint(CLIENT)
    # an attacker with database access rolls the log back to 2 entries, consistently
    sql(vault, "DELETE FROM log_entry WHERE client_id = :c AND seq >= 2", c=CLIENT)
    sql(vault, "DELETE FROM merkle_node WHERE client_id = :c AND idx >= 1 AND level >= 1", c=CLIENT)
    sql(vault, "DELETE FROM merkle_node WHERE client_id = :c AND level = 0 AND idx >= 2", c=CLIENT)
    from vault.db import LogEntry, read_session

    with read_session(vault.context.engine) as s:
        last = s.get(LogEntry, (CLIENT, 1)).entry
    sql(
        vault,
        "UPDATE log_head SET size = 2, head_hash = :h WHERE client_id = :c",
        h=entry_hash(last),
        c=CLIENT,
    )
    sql(vault, "DELETE FROM checkpoint WHERE client_id = :c AND size > 2", c=CLIENT)
    sql(vault, "DELETE FROM record WHERE seq >= 2")
    found = {(f.kind, f.seq) for f in vault.verify().findings}
    # the note in object storage (WORM) still covers cp.size entries
    assert ("truncated", 2) in found
    assert cp.size > 2


def test_stored_merkle_node_edited(vault, records):
    sql(
        vault,
        "UPDATE merkle_node SET hash = :h WHERE client_id = :c AND level = 0 AND idx = 1",
        h=b"\x00" * 32,
        c=CLIENT,
    )
    findings = vault.verify().findings
    assert [(f.kind, f.seq, f.record) for f in findings] == [("modified", 1, records[1].record_id)]
    assert "stored Merkle leaf differs" in findings[0].detail
    sql(
        vault,
        "UPDATE merkle_node SET hash = :h WHERE client_id = :c AND level = 1 AND idx = 0",
        h=b"\x00" * 32,
        c=CLIENT,
    )
    assert any("stored Merkle tree nodes do not match" in f.detail for f in vault.verify().findings)


def test_deep_verify_opens_every_record(vault, records):
    assert vault.verify(deep=True).clean
    # give record 0 the wrapped data key of record 1: ciphertext hashes still match,
    # only opening the record shows it cannot be read
    from vault.services.retrieve import get_record

    other = get_record(vault.context, records[1].record_id)
    sql(
        vault,
        "UPDATE record SET wrapped_dek = :w WHERE id = :i",
        w=other.wrapped_dek,
        i=records[0].record_id,
    )
    assert vault.verify().clean
    [f] = vault.verify(deep=True).findings
    assert (f.kind, f.record) == ("modified", records[0].record_id)
    assert "cannot open the record" in f.detail and "belongs to another record" in f.detail


# -- the auditor's offline path ---------------------------------------------------------
def _export(vault, tmp_path) -> list[str]:
    path = vault.export_log(CLIENT, tmp_path / "log.jsonl")
    return path.read_text(encoding="utf-8").splitlines()


def test_export_has_no_pii_and_audits_clean(vault, tmp_path, records):
    vault.show(records[0].record_id)
    lines = _export(vault, tmp_path)
    text = "\n".join(lines)
    for secret in ("+4915112345678", "Mustermann", "1980-01-31", "abschließen"):
        assert secret not in text
    report = audit_export(lines, parse_verifier_key(vault.log_key()))
    assert report.clean and report.entries == 4


def test_rollback_is_caught_by_the_auditors_saved_checkpoint(vault, tmp_path, records):
    saved = vault.checkpoint(CLIENT).note.encode()
    objs = [json.loads(ln) for ln in _export(vault, tmp_path)]
    # the operator hands over a consistent-looking export of only the first 2 entries
    header = {**objs[0], "size": 2}
    entries = [o for o in objs if o["kind"] == "entry" and o["seq"] < 2]
    rolled_back = [json.dumps(o) for o in (header, *entries)]
    verifier = parse_verifier_key(vault.log_key())
    assert audit_export(rolled_back, verifier).clean  # nothing to see without history ...
    report = audit_export(rolled_back, verifier, [saved])  # ... the saved checkpoint sees it
    assert [(f.kind, f.seq) for f in report.findings] == [("truncated", 2)]


def test_forked_history_is_caught_by_the_auditors_saved_checkpoint(vault, tmp_path, records):
    """The operator rewrites entry 1 and re-signs everything with the real key."""
    saved = vault.checkpoint(CLIENT).note.encode()
    entries = [json.loads(ln) for ln in _export(vault, tmp_path)]
    header = entries[0]
    rows = [e for e in entries if e["kind"] == "entry"]
    forged, prev = [], "0" * 64
    for row in rows:
        e = json.loads(row["entry"])
        if e["seq"] == 1:
            e["body"]["duration_ms"] = 1  # the rewrite
        e["prev"] = prev
        raw = encode_entry(
            make_entry(
                log=e["log"],
                seq=e["seq"],
                type=e["type"],
                time=datetime.fromisoformat(e["time"]),
                prev=prev,
                record=e.get("record"),
                body=e["body"],
            )
        )
        prev = entry_hash(raw)
        forged.append(json.dumps({"kind": "entry", "seq": e["seq"], "entry": raw.decode()}))
    from vault.ledger.merkle import MemoryNodes, root

    tree = MemoryNodes([bytes.fromhex(entry_hash(json.loads(f)["entry"].encode())) for f in forged])
    body = Checkpoint(
        origin=header["origin"], size=len(forged), root=root(tree, len(forged))
    ).body()
    resigned = sign_note(body, vault.settings.name, vault.context.keys.signing_key())
    export = [
        json.dumps(header),
        *forged,
        json.dumps({"kind": "checkpoint", "note": resigned.decode()}),
    ]
    verifier = parse_verifier_key(vault.log_key())
    assert audit_export(export, verifier).clean  # self-consistent, validly signed ...
    report = audit_export(export, verifier, [saved])  # ... but not the history seen before
    assert [(f.kind, f.seq) for f in report.findings] == [("forked", len(forged) - 1)]
    assert "trusted checkpoint" in report.findings[0].detail


def test_offline_audit_with_the_wrong_key(vault, tmp_path, records):
    from vault.ledger.checkpoint import verifier_key

    lines = _export(vault, tmp_path)
    other = verifier_key(vault.settings.name, LogSigner.generate().public_key_bytes())
    report = audit_export(lines, parse_verifier_key(other))
    assert report.findings and {f.kind for f in report.findings} == {"bad-signature"}
