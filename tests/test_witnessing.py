"""Witness cosignatures (C2SP tlog-witness, tlog-cosignature/v1) end to end.

The witness is the independent Go implementation in ``tests/support/witness`` (on
golang.org/x/mod/sumdb), run on loopback; tests that need it skip when Go is missing.
Tamper tests edit real bundles and exports and assert the exact finding.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import types
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.bundles import detail, failed, members, rerender, rewrite
from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from tests.support.witness import Witness, go_missing
from vault import Vault
from vault.bundle import verify_bundle
from vault.config import WitnessingSettings, WitnessSettings, load_settings
from vault.db import read_session, write_session
from vault.db.models import WitnessCosignature, WitnessRefusal
from vault.errors import ConfigError
from vault.ledger.checkpoint import NoteError, parse_verifier_key, sign_note
from vault.ledger.cosignature import (
    INVALID,
    MISSING,
    VALID,
    WitnessKey,
    WitnessPolicy,
    add_checkpoint_request,
    check_witnesses,
    cosign,
    cosigned_message,
    open_cosignature,
    parse_size_answer,
    parse_witness_key,
)
from vault.ledger.offline import audit_export
from vault.sealing import LogSigner
from vault.services.checkpoints import CheckpointTimer, log_verifier_key
from vault.services.context import open_vault
from vault.services.logexport import export_stream
from vault.services.witnessing import (
    ALREADY,
    COSIGNED,
    REFUSED,
    ROLLED_BACK,
    UNREACHABLE,
    catch_up,
    witness_status,
)

VECTOR = json.loads((Path(__file__).parent / "vectors" / "witness_cosignature.json").read_text())
NOTE = VECTOR["checkpoint_note"].encode()
BODY = NOTE[: NOTE.rfind(b"\n\n") + 1]
LINE = VECTOR["cosignature_line"].encode()
NOTE_REQUEST = VECTOR["add_checkpoint_request"].encode()
needs_go = pytest.mark.skipif(go_missing() is not None, reason=go_missing() or "")


def signer(seed_hex: str) -> LogSigner:
    # tests only: the vault never holds a witness's private key, nor hands out its own
    return LogSigner(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex)))


#: the log key of the vectors (RFC 8032 TEST 1), to sign checkpoints the witness must refuse
LOG_SIGNER = signer(
    json.loads((Path(__file__).parent / "vectors" / "c2sp_note.json").read_text())["vault"]["seed"]
)


def other_witness(name: str = "witness.example/w2") -> tuple[WitnessKey, LogSigner]:
    s = LogSigner.generate()
    return WitnessKey.for_key(name, s.public_key_bytes()), s


# --- the format and the vector -------------------------------------------------------------


def test_vector_cosignature_is_reproduced_by_our_code():
    s = signer(VECTOR["witness_seed"])
    key = WitnessKey.for_key(VECTOR["witness_name"], s.public_key_bytes())
    assert key.key_id.hex() == VECTOR["witness_key_id"]
    assert key.key_string() == VECTOR["witness_verifier_key"]
    assert parse_witness_key(VECTOR["witness_verifier_key"]) == key
    t = VECTOR["timestamp"]
    assert cosigned_message(BODY, t).decode() == VECTOR["signed_message"]
    assert cosign(BODY, key.name, s, t) == LINE
    assert open_cosignature(BODY, LINE, key).timestamp == t
    request = add_checkpoint_request(0, [], NOTE)
    assert request.decode() == VECTOR["add_checkpoint_request"]


@needs_go
def test_vector_cosignature_is_what_the_go_witness_returns(tmp_path):
    logs = {"evidence-vault.example/telco-de": VECTOR["log_verifier_key"]}
    with Witness(
        tmp_path,
        logs,
        name=VECTOR["witness_name"],
        fixed_time=VECTOR["timestamp"],
        seed_hex=VECTOR["witness_seed"],
    ) as w:
        assert w.vkey == VECTOR["witness_verifier_key"]
        answer = httpx.post(f"{w.url}/add-checkpoint", content=VECTOR["add_checkpoint_request"])
    assert answer.status_code == 200
    assert answer.content == LINE


def test_a_witness_key_is_not_a_log_key():
    with pytest.raises(NoteError, match="not a cosignature/v1 key"):
        parse_witness_key(VECTOR["log_verifier_key"])
    with pytest.raises(NoteError, match="unsupported verifier key type 0x04"):
        parse_verifier_key(VECTOR["witness_verifier_key"])


def test_policy_quorum_met_unmet_and_invalid_lines():
    w1 = parse_witness_key(VECTOR["witness_verifier_key"])
    w2, s2 = other_witness()
    note = NOTE + LINE
    both = WitnessPolicy((w1, w2), 1)
    verdict = check_witnesses(note, both)
    assert [f.verdict for f in verdict.facts] == [VALID, MISSING] and verdict.ok
    assert verdict.facts[0].timestamp == VECTOR["timestamp"]
    assert not check_witnesses(note, WitnessPolicy((w1, w2), 2)).ok
    cosigned = note + cosign(BODY, w2.name, s2, 1767225700)
    assert check_witnesses(cosigned, WitnessPolicy((w1, w2), 2)).valid == 2
    # a line by a policy witness that does not verify fails the policy, whatever the count
    text = LINE.decode()
    flipped = (text[:-6] + ("A" if text[-6] != "A" else "B") + text[-5:]).encode()
    bad = check_witnesses(NOTE + flipped + cosign(BODY, w2.name, s2, 1767225700), both)
    assert [f.verdict for f in bad.facts] == [INVALID, VALID] and not bad.ok
    # a cosignature of another checkpoint, moved onto this one
    other_body = BODY.replace(b"\n2\n", b"\n3\n")
    moved = cosign(other_body, w2.name, s2, 1767225700)
    assert check_witnesses(NOTE + moved, WitnessPolicy((w2,), 1)).facts[0].verdict == INVALID
    with pytest.raises(NoteError, match="quorum of 3 cannot be met"):
        WitnessPolicy((w1, w2), 3)
    with pytest.raises(NoteError, match="listed twice"):
        WitnessPolicy((w1, w1), 1)


def test_listed_cosignatures_for_reports():
    from vault.ledger.cosignature import UNCHECKED, CosignatureFact, listed_cosignatures

    assert listed_cosignatures(NOTE) == []
    assert listed_cosignatures(NOTE + LINE) == [
        CosignatureFact("witness.example/w1", "04d2d833", UNCHECKED, 1767225600)
    ]


def test_protocol_text():
    proof = [bytes(32), bytes([1]) * 32]
    assert add_checkpoint_request(3, proof, NOTE).startswith(
        b"old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        b"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\n"
    )
    with pytest.raises(NoteError):
        add_checkpoint_request(0, proof, NOTE)
    assert parse_size_answer(b"12\n") == 12
    for bad in (b"012\n", b"12", b"-1\n", b"x\n"):
        with pytest.raises(NoteError):
            parse_size_answer(bad)


def test_witnessing_config(tmp_path):
    w1 = VECTOR["witness_verifier_key"]
    (tmp_path / "vault.toml").write_text(
        "[witnessing]\nquorum = 1\ntimeout = 2\n[[witnessing.witnesses]]\n"
        f'url = "http://127.0.0.1:1/"\nkey = "{w1}"\n'
    )
    got = load_settings(tmp_path, env={}).witnessing
    assert got == WitnessingSettings((WitnessSettings("http://127.0.0.1:1", w1),), 1, 2.0)
    assert load_settings(tmp_path, env={}).to_toml().count("[[witnessing.witnesses]]") == 1
    with pytest.raises(ConfigError, match="not a cosignature/v1 key"):
        WitnessSettings("http://w", VECTOR["log_verifier_key"])
    with pytest.raises(ConfigError, match="quorum 2 cannot be met"):
        WitnessingSettings((WitnessSettings("http://w", w1),), 2)


# --- the Go witness's refusals, by the protocol's status codes -----------------------------


@needs_go
def test_go_witness_status_codes(tmp_path):
    origin = "evidence-vault.example/telco-de"
    with Witness(tmp_path / "other", {"other/log": VECTOR["log_verifier_key"]}) as other:
        unknown = httpx.post(f"{other.url}/add-checkpoint", content=NOTE_REQUEST)
    assert unknown.status_code == 404  # an origin the witness does not follow

    with Witness(tmp_path, {origin: VECTOR["log_verifier_key"]}) as w:

        def post(body: bytes) -> httpx.Response:
            return httpx.post(f"{w.url}/add-checkpoint", content=body)

        other_key = NOTE.replace(b"DndZBwSy", b"DndZBwSz")  # another key id: unknown key
        bad_signature = NOTE.replace(b"DndZBwSytqGF", b"DndZBwSytqGG")  # the log's key id
        assert post(add_checkpoint_request(0, [], other_key)).status_code == 403
        assert post(add_checkpoint_request(0, [], bad_signature)).status_code == 403
        assert post(b"old 3\n\n" + NOTE).status_code == 400  # old size beyond the checkpoint
        assert post(add_checkpoint_request(0, [], NOTE)).status_code == 200
        conflict = post(add_checkpoint_request(0, [], NOTE))  # it has seen size 2 now
        assert conflict.status_code == 409 and conflict.content == b"2\n"
        assert conflict.headers["content-type"] == "text/x.tlog.size"
        # signed by the log key (RFC 8032 TEST 1), but inconsistent with size 2: refused
        fork = sign_note(BODY.replace(b"D0p5", b"E0p5"), "evidence-vault.example", LOG_SIGNER)
        assert post(add_checkpoint_request(2, [], fork)).status_code == 422  # same size
        grown = sign_note(BODY.replace(b"\n2\n", b"\n3\n"), "evidence-vault.example", LOG_SIGNER)
        assert post(add_checkpoint_request(2, [bytes(32)], grown)).status_code == 422  # bad proof
        empty = sign_note(BODY.replace(b"\n2\n", b"\n0\n"), "evidence-vault.example", LOG_SIGNER)
        assert post(b"old 0\n\n" + empty).status_code == 409  # it is at 2, not 0
    assert "refused (422): forked: same size, different root" in w.log_text()


# --- the vault with witnesses ---------------------------------------------------------------


@pytest.fixture
def witnesses(tmp_path):
    if go_missing():
        pytest.skip(go_missing() or "")
    started: list[Witness] = []

    def start(vault, n: int = 2, workdir: Path | None = None) -> list[Witness]:
        logs = {f"{vault.settings.name}/*": vault.log_key()}
        for i in range(n):
            w = Witness(workdir or tmp_path / "witnesses", logs, name=f"witness.test/w{i + 1}")
            started.append(w.start())
        return started[-n:]

    yield start
    for w in started:
        w.stop()


def configure(vault, ws: list[Witness], quorum: int | None = None, extra=()) -> None:
    entries = tuple(WitnessSettings(w.url, w.vkey) for w in ws) + tuple(extra)
    vault.context.settings = replace(
        vault.context.settings, witnessing=WitnessingSettings(entries, quorum, 5.0)
    )


@pytest.fixture
def local_vault(tmp_path):
    v = make_vault(tmp_path / "vault")
    yield v
    v.close()


def _ingest(vault, tmp_path, seeds) -> list:
    return [vault.ingest(clip(tmp_path, seed=i), order_meta(i)) for i in seeds]


def test_honest_cosigning_end_to_end(local_vault, witnesses, tmp_path):
    v = local_vault
    ws = witnesses(v)
    configure(v, ws)
    receipts = _ingest(v, tmp_path, range(3))
    first = v.checkpoint(CLIENT)
    got = catch_up(v.context)
    assert {(o.witness.split("+")[0], o.size, o.result) for o in got} == {
        ("witness.test/w1", first.size, COSIGNED),
        ("witness.test/w2", first.size, COSIGNED),
    }
    assert {o.result for o in catch_up(v.context)} == {ALREADY}
    assert catch_up(v.context, pending_only=True) == []  # the timer's tick: nothing to do
    receipts += _ingest(v, tmp_path, range(3, 6))
    second = v.checkpoint(CLIENT)
    # from the witnesses' last size, with a consistency proof the Go witness checks
    assert [o.result for o in catch_up(v.context, pending_only=True)] == [COSIGNED, COSIGNED]
    with read_session(v.context.engine) as s:
        rows = list(s.exec(WitnessCosignature.__table__.select()))
    assert sorted((r.size, r.witness.split("+")[0]) for r in rows) == [
        (first.size, "witness.test/w1"),
        (first.size, "witness.test/w2"),
        (second.size, "witness.test/w1"),
        (second.size, "witness.test/w2"),
    ]
    for r in rows:  # beside the checkpoint in object storage, the same line
        assert b"".join(v.context.store.get(r.object_key)) == bytes(r.line)
        assert r.object_key.startswith(f"{CLIENT}/_checkpoints/{r.size}.cosignature.")
    report = v.verify()  # the cosignature objects are not taken for checkpoints
    assert report.clean, report.findings
    # a stored cosignature edited in the database: verify names it
    w1 = parse_witness_key(ws[0].vkey)
    row = next(r for r in rows if r.witness == str(w1) and r.size == first.size)
    forged = moved_time(bytes(row.line).decode(), w1.name).encode()
    with write_session(v.context.engine) as s:
        s.get(WitnessCosignature, (CLIENT, first.size, str(w1))).line = forged
    assert [(f.kind, f.detail) for f in v.verify().findings] == [
        (
            "bad-signature",
            f"the cosignature by witness {w1} of checkpoint {first.size} does not verify",
        )
    ]
    with write_session(v.context.engine) as s:
        s.get(WitnessCosignature, (CLIENT, first.size, str(w1))).line = bytes(row.line)
    states = witness_status(v.context, CLIENT)
    assert [(s.cosigned_size, s.refusals) for s in states] == [(second.size, 0)] * 2

    bundle = v.export_bundle(receipts[1].record_id, tmp_path / "b.zip", principal="local:t")
    key = log_verifier_key(v.context)
    policy = WitnessPolicy.of([w.vkey for w in ws], 2)
    verdict = verify_bundle(bundle, key, witnesses=policy)
    assert verdict.ok, verdict.summary()
    assert detail(verdict, "witnesses").startswith("cosigned by 2 of 2 witnesses (2 required): ")
    assert [f.verdict for f in verdict.witnesses.facts] == [VALID, VALID]
    assert verdict.to_dict()["witnesses"]["valid"] == 2
    # no policy: consistent, the cosignatures listed as not checked
    plain = verify_bundle(bundle, key)
    assert plain.ok and detail(plain, "witnesses").startswith("no witness policy given")

    # the log export carries the cosignatures; log verify applies the policy. The export
    # signed a checkpoint covering its own access entry and had the witnesses cosign it
    head = v.latest_checkpoint(CLIENT)
    assert head.size > second.size
    lines = list(export_stream(v.context, CLIENT, head.size))
    report = audit_export(lines, parse_verifier_key(key), witnesses=policy)
    assert report.clean and report.witnessed_size == head.size

    # the HTTP API serves the checkpoint and proofs with the cosignatures received so far
    from fastapi.testclient import TestClient

    from tests.support.vaults import person_token
    from vault.http.app import create_app

    auditor = {"Authorization": f"Bearer {person_token(v.context, 'auditor', CLIENT)[1]}"}
    http = TestClient(create_app(v.context))
    note = http.get(f"/v1/logs/{CLIENT}/checkpoint", headers=auditor).json()["note"]
    assert check_witnesses(note.encode(), policy).ok
    proof = http.get(f"/v1/logs/{CLIENT}/proofs/inclusion?seq=1", headers=auditor).json()
    assert proof["checkpoint"] == note

    # a newer checkpoint not cosigned yet: a format 4 export signs a fresh checkpoint
    # (covering its own access entry) and has the witnesses cosign it there and then
    receipts += _ingest(v, tmp_path, range(6, 8))
    third = v.checkpoint(CLIENT)
    assert third.size > second.size
    later = v.export_bundle(receipts[1].record_id, tmp_path / "c.zip", principal="local:t")
    assert json.loads(members(later)["proof.json"])["tree_size"] == third.size + 1
    assert verify_bundle(later, key, witnesses=policy).ok
    assert verify_bundle(later, key, witnesses=policy).ok


def test_quorum_unmet_and_a_tampered_cosignature_in_a_bundle(local_vault, witnesses, tmp_path):
    v = local_vault
    ws = witnesses(v)
    configure(v, ws)
    receipts = _ingest(v, tmp_path, range(2))
    v.checkpoint(CLIENT)
    catch_up(v.context)
    bundle = v.export_bundle(receipts[0].record_id, tmp_path / "b.zip", principal="local:t")
    key = log_verifier_key(v.context)
    absent, _ = other_witness("witness.test/absent")
    three = [w.vkey for w in ws] + [absent.key_string()]
    assert verify_bundle(bundle, key, witnesses=WitnessPolicy.of(three, 2)).ok
    unmet = verify_bundle(bundle, key, witnesses=WitnessPolicy.of(three, 3))
    assert failed(unmet) == {"witnesses"}
    assert detail(unmet, "witnesses") == (
        "checkpoint.txt is cosigned by 2 of the witnesses the policy names, 3 required "
        f"(3 of 3 witness(es)); no cosignature by {absent}"
    )

    w1 = parse_witness_key(ws[0].vkey)

    def tamper(files):
        files["checkpoint.txt"] = moved_time(files["checkpoint.txt"].decode(), w1.name).encode()

    made = types.SimpleNamespace(path=bundle)
    forged = rewrite(made, tmp_path, lambda files: rerender(tamper, files))
    verdict = verify_bundle(forged, key, witnesses=WitnessPolicy.of([w.vkey for w in ws], 1))
    assert failed(verdict) == {"witnesses"}
    assert detail(verdict, "witnesses") == (
        f"checkpoint.txt holds a cosignature line by witness {w1} that does not verify: it "
        "was altered, or is not that witness's cosignature of this checkpoint"
    )
    # the log key's signature still holds, and without a policy the bundle stays consistent
    assert verify_bundle(forged, key).consistent
    assert members(forged)["checkpoint.txt"] != members(bundle)["checkpoint.txt"]


def moved_time(note: str, witness: str) -> str:
    """The note with the time of ``witness``'s cosignature moved by one second (the line
    stays well-formed; its signature no longer holds)."""
    lines = note.split("\n")
    i = next(n for n, line in enumerate(lines) if line.startswith(f"— {witness} "))
    dash, name, b64 = lines[i].split(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[11] ^= 1  # the last byte of the 8-byte timestamp, after the 4-byte key id
    lines[i] = f"{dash} {name} {base64.b64encode(bytes(blob)).decode()}"
    return "\n".join(lines)


def _fork(vault, tmp_path) -> Vault:
    """A second vault with the same log key, name and client, its log diverging from here
    on: what an operator who rewrites history would present."""
    home = Path(vault.settings.home)
    vault.log_key()  # the log key is made on first use: the same one in both
    vault.close()
    shutil.copytree(home, tmp_path / "fork")
    return Vault(open_vault(load_settings(tmp_path / "fork", env={})))


def test_witness_refuses_a_forked_and_a_rolled_back_log(tmp_path, witnesses):
    honest = make_vault(tmp_path / "vault")
    fork = _fork(honest, tmp_path)
    honest = Vault(open_vault(load_settings(tmp_path / "vault", env={})))
    try:
        (w,) = witnesses(honest, 1)
        configure(honest, [w])
        configure(fork, [w])
        _ingest(honest, tmp_path, range(3))
        _ingest(fork, tmp_path, range(10, 13))  # other records: same size, another root
        size = honest.checkpoint(CLIENT).size
        assert fork.checkpoint(CLIENT).size == size
        assert [o.result for o in catch_up(honest.context)] == [COSIGNED]
        (refused,) = catch_up(fork.context)
        assert (refused.result, refused.size) == (REFUSED, size)
        assert "forked or rewritten" in refused.detail
        assert catch_up(fork.context, pending_only=True) == []  # not asked again each tick
        with read_session(fork.context.engine) as s:
            (row,) = s.exec(WitnessRefusal.__table__.select()).all()
        assert (row.status, row.size, row.witness) == (422, size, str(parse_witness_key(w.vkey)))
        assert "refused (422): forked" in w.log_text()
        # the honest log grows and is cosigned; the fork, now behind, is a rollback
        _ingest(honest, tmp_path, range(3, 5))
        bigger = honest.checkpoint(CLIENT).size
        assert [o.result for o in catch_up(honest.context)] == [COSIGNED]
        (back,) = catch_up(fork.context)
        assert back.result == ROLLED_BACK
        assert back.detail == (
            f"the witness has cosigned {bigger} entries of this log, more than the "
            f"checkpoint's {size}: the log was rolled back"
        )
        assert witness_status(fork.context, CLIENT)[0].refusals == 2
        wk = parse_witness_key(w.vkey)
        assert [(f.kind, f.detail) for f in fork.verify().findings] == [
            (
                "forked",
                f"witness {wk} refused checkpoint {size}: the checkpoint is inconsistent with "
                "what the witness cosigned before: the log was forked or rewritten",
            ),
            ("truncated", f"witness {wk} refused checkpoint {size}: {back.detail}"),
        ]
        assert honest.verify().clean
        # the fork's bundles carry no cosignature: a witness policy rejects them
        rid = fork.find(client=CLIENT)[0].record_id
        bundle = fork.export_bundle(rid, tmp_path / "fork.zip", principal="local:t")
        verdict = verify_bundle(bundle, fork.log_key(), witnesses=WitnessPolicy.of([w.vkey], 1))
        assert failed(verdict) == {"witnesses"}
        assert "is cosigned by 0 of the witnesses the policy names, 1 required" in detail(
            verdict, "witnesses"
        )
    finally:
        honest.close()
        fork.close()


def test_witness_down_ingest_continues_and_cosigning_catches_up(local_vault, witnesses, tmp_path):
    v = local_vault
    (w,) = witnesses(v, 1, tmp_path / "w")
    configure(v, [w])
    w.stop()  # the witness is down
    _ingest(v, tmp_path, range(3))  # ingest does not wait for witnesses
    cp = v.checkpoint(CLIENT)
    (down,) = catch_up(v.context)
    assert (down.result, down.size) == (UNREACHABLE, cp.size)
    with read_session(v.context.engine) as s:
        assert not s.exec(WitnessCosignature.__table__.select()).all()
    # back (another port, same key and state): the serve timer catches up on its own
    w.start()
    configure(v, [w])
    timer = CheckpointTimer(v.context, 0.05).start()
    try:
        deadline = time.monotonic() + 60
        while not witness_status(v.context, CLIENT)[0].cosigned_size:
            assert time.monotonic() < deadline, w.log_text()
            time.sleep(0.05)
    finally:
        timer.stop()
    assert witness_status(v.context, CLIENT)[0].cosigned_size == cp.size
    # the witness restarts from its state file: it still knows the size it cosigned
    w.stop()
    w.start()
    configure(v, [w])
    state = json.loads(w.state_file.read_text())
    assert state[f"{v.settings.name}/{CLIENT}"]["size"] == cp.size
    _ingest(v, tmp_path, range(3, 5))
    later = v.checkpoint(CLIENT)
    (again,) = catch_up(v.context)
    assert (again.result, again.size) == (COSIGNED, later.size)


def test_log_verify_with_a_policy_finds_unwitnessed_and_bad_cosignatures(
    local_vault, witnesses, tmp_path
):
    v = local_vault
    (w,) = witnesses(v, 1)
    configure(v, [w])
    _ingest(v, tmp_path, range(2))
    cp = v.checkpoint(CLIENT)
    key = parse_verifier_key(log_verifier_key(v.context))
    policy = WitnessPolicy.of([w.vkey])
    before = audit_export(list(export_stream(v.context, CLIENT, cp.size)), key, witnesses=policy)
    assert [(f.kind, f.detail) for f in before.findings] == [
        (
            "unwitnessed",
            "no checkpoint is cosigned by 1 of 1 witness(es) of the witness policy: nothing "
            "shows that independent witnesses saw this history",
        )
    ]
    catch_up(v.context)
    lines = list(export_stream(v.context, CLIENT, cp.size))
    assert audit_export(lines, key, witnesses=policy).clean
    tampered = [_tamper_export_line(line, w.name) for line in lines]
    report = audit_export(tampered, key, witnesses=policy)
    assert [(f.kind, f.detail) for f in report.findings] == [
        (
            "bad-signature",
            f"exported checkpoint of size {cp.size}: the cosignature by witness "
            f"{parse_witness_key(w.vkey)} does not verify",
        ),
        (
            "unwitnessed",
            "no checkpoint is cosigned by 1 of 1 witness(es) of the witness policy: nothing "
            "shows that independent witnesses saw this history",
        ),
    ]


def _tamper_export_line(line: str, witness: str) -> str:
    obj = json.loads(line)
    if obj.get("kind") != "checkpoint" or f"— {witness} " not in obj["note"]:
        return line
    return json.dumps({**obj, "note": moved_time(obj["note"], witness)})


def test_cli_witness_cosign_status_and_verify_bundle_policy(tmp_path, witnesses, monkeypatch):
    from click.testing import CliRunner

    from cli.main import cli

    monkeypatch.delenv("EVIDENCE_VAULT_MASTER_KEY", raising=False)
    v = make_vault(tmp_path / "vault")
    (w,) = witnesses(v, 1)
    home = str(v.settings.home)
    receipt = v.ingest(clip(tmp_path, seed=1), order_meta(1))
    key = v.log_key()
    v.close()
    with (tmp_path / "vault" / "vault.toml").open("a") as fh:
        fh.write(f'\n[witnessing]\n[[witnessing.witnesses]]\nurl = "{w.url}"\nkey = "{w.vkey}"\n')

    def invoke(*args, code=0):
        result = CliRunner().invoke(cli, ["--vault", home, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    out = json.loads(invoke("witness", "cosign", "--json").output)
    assert [o["result"] for o in out["outcomes"]] == [COSIGNED]
    status = invoke("witness", "status", "--client", CLIENT).output
    assert status.startswith(f"{parse_witness_key(w.vkey)} ({w.url}): cosigned size 1 at ")
    bundle = tmp_path / "b.zip"
    invoke("export", receipt.record_id, "-o", str(bundle))
    ok = invoke("verify-bundle", str(bundle), "--key", key, "--witness", w.vkey)
    assert "[ok] witnesses: cosigned by 1 of 1 witnesses (1 required): " in ok.output
    absent, _ = other_witness("witness.test/absent")
    unmet = invoke(
        "verify-bundle",
        str(bundle),
        "--key",
        key,
        "--witness",
        w.vkey,
        "--witness",
        absent.key_string(),
        "--witness-quorum",
        "2",
        code=1,
    )
    assert "[FAIL] witnesses: checkpoint.txt is cosigned by 1 of the witnesses" in unmet.output
    bad = invoke("verify-bundle", str(bundle), "--witness-quorum", "1", code=2)
    assert "--witness-quorum needs at least one --witness KEY" in bad.output


class _Hostile:
    """A "witness" on loopback that answers every add-checkpoint with a fixed reply."""

    def __init__(self, status: int, body: bytes) -> None:
        import http.server
        import threading

        reply = (status, body)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(reply[0])
                self.send_header("Content-Length", str(len(reply[1])))
                self.end_headers()
                self.wfile.write(reply[1])

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (200, b"not a signature\n", "the witness's answer is not signature lines"),
        (200, b"", "the witness's answer does not end with a newline"),
        (500, b"oops\n", "HTTP status 500"),
        (409, b"many\n", "the witness's size answer is not a decimal number and a newline"),
        (200, b"\xe2\x80\x94 x " + b"A" * 200_000 + b"\n", "_Oversized"),
    ],
)
def test_a_misbehaving_witness_stores_nothing(local_vault, tmp_path, status, body, detail):
    v = local_vault
    key, _ = other_witness("witness.test/hostile")
    hostile = _Hostile(status, body)
    try:
        v.context.settings = replace(
            v.context.settings,
            witnessing=WitnessingSettings(
                (WitnessSettings(hostile.url, key.key_string()),), None, 5.0
            ),
        )
        _ingest(v, tmp_path, range(1))
        cp = v.checkpoint(CLIENT)
        (got,) = catch_up(v.context)
        assert (got.result, got.size, got.detail) == (UNREACHABLE, cp.size, detail)
    finally:
        hostile.close()
    with read_session(v.context.engine) as session:
        assert not session.exec(WitnessCosignature.__table__.select()).all()


def test_a_cosignature_by_another_key_is_not_stored(local_vault, tmp_path):
    v = local_vault
    key, _ = other_witness("witness.test/w1")
    _other, impostor = other_witness("witness.test/w1")  # same name, another key
    _ingest(v, tmp_path, range(1))
    cp = v.checkpoint(CLIENT)
    body = cp.note.split("\n\n")[0].encode() + b"\n"
    hostile = _Hostile(200, cosign(body, "witness.test/w1", impostor, 1767225600))
    try:
        v.context.settings = replace(
            v.context.settings,
            witnessing=WitnessingSettings(
                (WitnessSettings(hostile.url, key.key_string()),), None, 5.0
            ),
        )
        (got,) = catch_up(v.context)
    finally:
        hostile.close()
    assert (got.result, got.detail) == (UNREACHABLE, "the answer holds no valid cosignature")


def test_older_bundles_verify_as_before_and_get_the_witness_check_only_with_a_policy():
    v1 = Path(__file__).parent / "vectors" / "bundle-v1.zip"
    v1_key = "evidence-vault+9b74d488+AamEvUo/APZzykdLMS6/CWNGgb2aQqO1HQZ7BRcbe6AG"
    plain = verify_bundle(v1, key=v1_key)
    assert plain.ok and "witnesses" not in [c.name for c in plain.checks]
    assert plain.witnesses is None and "witnesses" not in plain.to_dict()
    policy = WitnessPolicy.of([VECTOR["witness_verifier_key"]])
    strict = verify_bundle(v1, key=v1_key, witnesses=policy)
    assert failed(strict) == {"witnesses"}
    assert detail(strict, "witnesses") == (
        "checkpoint.txt is cosigned by 0 of the witnesses the policy names, 1 required "
        "(1 of 1 witness(es)); no cosignature by witness.example/w1+04d2d833"
    )


# --- the tiled log carries the cosignatures ---------------------------------------------------


def test_the_tiled_logs_checkpoint_carries_the_cosignatures(local_vault, witnesses, tmp_path):
    """An auditor of the tiles holds the published checkpoint to a witness policy: the
    cosignatures are appended as the witnesses return them; a forged one is named."""
    from click.testing import CliRunner

    from cli.main import cli
    from tests.support.tiles import published_dir
    from vault.ledger.tiles import audit_tiles
    from vault.tlog import DirectorySource

    v = local_vault
    ws = witnesses(v)
    configure(v, ws)
    _ingest(v, tmp_path, range(2))
    cp = v.checkpoint(CLIENT)  # published at once, before any witness saw it
    key = parse_verifier_key(v.log_key())
    policy = WitnessPolicy.of([w.vkey for w in ws])
    d = published_dir(v)
    before = audit_tiles(DirectorySource(d), key, witnesses=policy)
    assert [(f.kind, f.detail) for f in before.findings] == [
        (
            "unwitnessed",
            f"the checkpoint of size {cp.size} is not cosigned by 2 of 2 witness(es) of the "
            "witness policy: nothing shows that independent witnesses saw this history (a new "
            "checkpoint gets its cosignatures within a tick of the vault's timer: try again, "
            "then ask the operator)",
        )
    ]
    assert audit_tiles(DirectorySource(d), key).clean  # no policy asked for: nothing to say

    assert {o.result for o in catch_up(v.context)} == {COSIGNED}
    note = (d / "checkpoint").read_text()
    assert note.startswith(cp.note) and note.count("\n— witness.test/w") == 2
    report = audit_tiles(DirectorySource(d), key, witnesses=policy)
    assert report.clean and report.witnessed_size == cp.size
    v.publish_tiles(CLIENT)  # publishing again keeps them (nothing new to add)
    assert (d / "checkpoint").read_text() == note

    runner = CliRunner()
    args = ["log", "verify", str(d), "--key", v.log_key()]
    for w in ws:
        args += ["--witness", w.vkey]
    ok = runner.invoke(cli, args)
    assert ok.exit_code == 0, ok.output
    assert f"witnessed by 2 of 2 witness(es): entries up to size {cp.size}" in ok.output

    # one cosignature line forged in the bucket: named, and the policy is no longer met
    w1 = parse_witness_key(ws[0].vkey)
    (d / "checkpoint").write_text(moved_time(note, w1.name))
    bad = runner.invoke(cli, args)
    assert bad.exit_code == 1, bad.output
    assert f"the cosignature by witness {w1} does not verify" in bad.output
    assert "[unwitnessed]" in bad.output
    # the vault's own verify names the forged line in its bucket too
    assert [(f.kind, f.detail) for f in v.verify().findings] == [
        (
            "bad-signature",
            f"published checkpoint _tlog/{CLIENT}/checkpoint: the cosignature by witness "
            f"{w1} does not verify",
        )
    ]
    # a policy of the other witness alone is met: lines of witnesses it does not name
    # are not its business (C2SP: unknown signatures are ignored)
    other = ["log", "verify", str(d), "--key", v.log_key(), "--witness", ws[1].vkey]
    assert runner.invoke(cli, other).exit_code == 0


def test_the_witnesses_are_asked_at_once(local_vault, tmp_path, monkeypatch):
    """An export waits for the slowest witness, not for the sum: each submission waits
    (up to 5 s) until the other one has started; asked one after the other, the first
    would give up waiting and say so."""
    import threading

    from vault.services import witnessing

    v = local_vault
    keys = [other_witness(f"witness.example/w{i}")[0] for i in (1, 2)]
    configure(
        v,
        [],
        extra=[
            WitnessSettings(f"http://127.0.0.1:9/w{i}", k.key_string()) for i, k in enumerate(keys)
        ],
    )
    both = threading.Barrier(2, timeout=5)
    seen: list[str] = []

    def submit(ctx, client, cp, settings, key, http):
        seen.append(str(key))
        try:
            both.wait()
        except threading.BrokenBarrierError:
            return witnessing.WitnessOutcome(client, cp.size, str(key), UNREACHABLE, "alone")
        return witnessing.WitnessOutcome(client, cp.size, str(key), REFUSED, "together")

    monkeypatch.setattr(witnessing, "_submit", submit)
    _ingest(v, tmp_path, range(1))
    got = witnessing.cosign_checkpoint(
        v.context, CLIENT, v.checkpoint(CLIENT), witnessing._http(5.0)
    )
    assert sorted(seen) == sorted(map(str, keys))
    # in the configured order, each asked while the other was waiting for its answer
    assert [(o.witness, o.result, o.detail) for o in got] == [
        (str(k), REFUSED, "together") for k in keys
    ]
