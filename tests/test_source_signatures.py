"""Source signatures (issue 11): dialer keys registered and revoked through the log, the
signed statement checked at upload, the signer's key id in the sealed entry, and
``verify`` judging signatures by the log alone (the database is only a cache)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlmodel import select

from cli.main import cli
from tests.support.tamper import sql
from tests.support.vaults import CAMPAIGN, CLIENT, clip, make_vault, order_meta, person_token
from vault.agent.config import load_config
from vault.agent.intake import intake
from vault.agent.signing import source_header
from vault.agent.uplink import Uplink
from vault.client import encode_metadata
from vault.db import LogEntry, read_session
from vault.db.engine import SCHEMA_HEAD
from vault.errors import BadSourceSignature, UnknownDialerKey
from vault.http.app import create_app
from vault.ledger.entry import parse_entry
from vault.sealing import SourceSigner, check_statement, encode_public_key, key_id_of
from vault.sealing.source import SourceSignature, metadata_digest, statement
from vault.services.dialers import check_source

V = json.loads(
    (Path(__file__).parent / "vectors" / "source_signature.json").read_text(encoding="utf-8")
)


# --- the format ---------------------------------------------------------------------------


def test_vector():
    signer = SourceSigner._from_seed(bytes.fromhex(V["seed"]))
    pub = signer.public_key
    assert encode_public_key(pub) == V["public_key"]
    assert key_id_of(pub) == signer.key_id == V["key_id"]
    clip_sha = bytes.fromhex(V["clip_sha256"])
    meta_sha = metadata_digest(V["meta_text"])
    assert meta_sha.hex() == V["meta_sha256"]
    made = statement(V["key_id"], clip_sha, meta_sha, V["recorded_at"])
    assert made.hex() == V["statement"]
    sig = signer.sign(clip_sha, meta_sha, V["recorded_at"])
    assert sig.hex() == V["signature"]  # Ed25519 is deterministic
    assert check_statement(pub, sig, clip_sha, meta_sha, V["recorded_at"])
    assert not check_statement(pub, sig, meta_sha, clip_sha, V["recorded_at"])
    assert not check_statement(pub, sig, clip_sha, meta_sha, "2026-11-22T09:14:03.001Z")
    assert SourceSignature(V["key_id"], sig).header() == V["header"]
    parsed = SourceSignature.parse(V["header"])
    assert (parsed.key_id, parsed.signature) == (V["key_id"], sig)


def test_keygen_writes_an_owner_only_key_and_prints_the_public_key(tmp_path):
    path = tmp_path / "dialer.key"
    out = CliRunner().invoke(cli, ["--json", "dialer", "keygen", str(path)])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    signer = SourceSigner.load(path)
    assert shown["key_id"] == signer.key_id
    assert shown["public_key"] == encode_public_key(signer.public_key)
    assert (tmp_path / "dialer.key.pub").read_text().strip() == shown["public_key"]
    again = CliRunner().invoke(cli, ["dialer", "keygen", str(path)])
    assert again.exit_code == 5 and "never overwritten" in again.output


# --- upload over HTTP ---------------------------------------------------------------------


@pytest.fixture
def env(tmp_path):
    v = make_vault(tmp_path / "v")
    v.require_source_signature(CLIENT, CAMPAIGN)
    _, dialer = person_token(v.context, "dialer", CLIENT)
    _, admin = person_token(v.context, "admin", CLIENT)
    with TestClient(create_app(v.context)) as tc:
        yield v, tc, {"Authorization": f"Bearer {dialer}"}, {"Authorization": f"Bearer {admin}"}
    v.close()


def _register(tc, admin: dict, signer: SourceSigner, label: str = "dialer-01") -> dict:
    body = {"public_key": encode_public_key(signer.public_key), "label": label}
    r = tc.post(f"/v1/clients/{CLIENT}/dialer-keys", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


def _post(tc, auth: dict, path: Path, meta: dict, signature: str | None):
    headers = {**auth, "Content-Type": "audio/wav", "Evidence-Metadata": encode_metadata(meta)}
    if signature is not None:
        headers["Evidence-Signature"] = signature
    return tc.post("/v1/records", content=path.read_bytes(), headers=headers)


def _sign(signer: SourceSigner, path: Path, meta: dict) -> str:
    import hashlib

    from vault.evidence import parse_evidence

    recorded = parse_evidence(json.dumps(meta).encode(), duration_ms=None).recorded_at
    return source_header(signer, hashlib.sha256(path.read_bytes()).hexdigest(), meta, recorded)


def _problem(r, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == f"/problems/{kind}" and body["hint"]
    return body


def _entry(v, seq: int) -> dict:
    with read_session(v.context.engine) as s:
        raw = s.exec(
            select(LogEntry.entry).where(LogEntry.client_id == CLIENT, LogEntry.seq == seq)
        ).one()
    return parse_entry(bytes(raw))


def test_refusals_and_a_good_signature(env, tmp_path):
    v, tc, dialer, admin = env
    host = SourceSigner.generate()
    path, meta = clip(tmp_path, seed=1), order_meta(1)

    _problem(_post(tc, dialer, path, meta, None), 403, "source-signature-required")
    body = _problem(
        _post(tc, dialer, path, meta, _sign(host, path, meta)), 403, "unknown-dialer-key"
    )
    assert "dialer register" in body["hint"]
    _problem(_post(tc, dialer, path, meta, "key=dk-1; sig=AAAA"), 422, "invalid-request")

    registered = _register(tc, admin, host)
    assert registered["key_id"] == host.key_id and registered["revoked_at"] is None
    # a signature over another clip (same metadata), or over other metadata
    (tmp_path / "o").mkdir()
    other = clip(tmp_path / "o", seed=2)
    _problem(_post(tc, dialer, path, meta, _sign(host, other, meta)), 422, "bad-source-signature")
    _problem(
        _post(tc, dialer, path, meta, _sign(host, path, order_meta(2))),
        422,
        "bad-source-signature",
    )
    assert v.find(client=CLIENT) == []  # nothing was sealed by any refusal

    good = _post(tc, dialer, path, meta, _sign(host, path, meta))
    assert good.status_code == 201, good.text
    entry = _entry(v, good.json()["seq"])
    source = entry["body"]["source"]
    assert source["key"] == host.key_id
    assert source["pub"] == encode_public_key(host.public_key)
    assert (
        base64.b64decode(source["sig"]) == SourceSignature.parse(_sign(host, path, meta)).signature
    )
    assert v.verify().clean

    r = tc.delete(f"/v1/clients/{CLIENT}/dialer-keys/{host.key_id}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"]
    path3, meta3 = clip(tmp_path, seed=3), order_meta(3)
    body = _problem(
        _post(tc, dialer, path3, meta3, _sign(host, path3, meta3)), 403, "revoked-dialer-key"
    )
    assert "keygen" in body["hint"]
    listed = tc.get(f"/v1/clients/{CLIENT}/dialer-keys", headers=admin).json()
    assert [(k["key_id"], bool(k["revoked_at"])) for k in listed] == [(host.key_id, True)]
    # revoking later does not undo what the key signed while it was valid
    assert v.verify().clean
    types = [e["type"] for e in map(lambda s: _entry(v, s), range(_head(v)))]
    assert types.count("dialer.registered") == 1 and types.count("dialer.revoked") == 1


def _head(v) -> int:
    with read_session(v.context.engine) as s:
        return len(s.exec(select(LogEntry.seq).where(LogEntry.client_id == CLIENT)).all())


def test_only_admins_register_keys(env):
    v, tc, dialer, _ = env
    body = {"public_key": encode_public_key(SourceSigner.generate().public_key)}
    _problem(
        tc.post(f"/v1/clients/{CLIENT}/dialer-keys", json=body, headers=dialer),
        403,
        "permission-denied",
    )
    bad = {"public_key": "bm90IGEga2V5"}
    _, admin = person_token(v.context, "admin", CLIENT, handle="adm2")
    r = tc.post(
        f"/v1/clients/{CLIENT}/dialer-keys", json=bad, headers={"Authorization": f"Bearer {admin}"}
    )
    assert _problem(r, 422, "invalid-request")["errors"][0]["field"] == "public_key"


def test_an_optional_campaign_still_checks_a_signature_sent(tmp_path):
    v = make_vault(tmp_path / "v")
    try:
        host = SourceSigner.generate()
        path, meta = clip(tmp_path, seed=4), order_meta(4)
        assert v.ingest(path, meta).record_id  # unsigned: fine where not required
        path5, meta5 = clip(tmp_path, seed=5), order_meta(5)
        sig = SourceSignature.parse(_sign(host, path5, meta5))
        with pytest.raises(UnknownDialerKey):
            v.ingest(path5, meta5, signature=sig)
        v.register_dialer_key(CLIENT, encode_public_key(host.public_key), label="h1")
        with pytest.raises(BadSourceSignature):
            v.ingest(path5, order_meta(6), signature=sig)
        receipt = v.ingest(path5, meta5, signature=sig)
        assert _entry(v, receipt.seq)["body"]["source"]["key"] == host.key_id
        assert v.verify().clean
        with pytest.raises(BadSourceSignature):  # the service refuses a statement mismatch
            check_source(
                v.context,
                CLIENT,
                required=False,
                signature=sig,
                clip_sha256=bytes(32),
                meta_sha256=bytes(32),
                recorded_at="2026-11-20T09:30:00.000Z",
            )
    finally:
        v.close()


# --- verify: the log is the authority -----------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def signed(request, tmp_path):
    """A vault with one registered key and one record it signed: (vault, signer, receipt);
    on SQLite and on PostgreSQL (the schema through migration 0013 on both)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    v = make_vault(tmp_path / "v", database_url=url)
    host = SourceSigner.generate()
    v.register_dialer_key(CLIENT, encode_public_key(host.public_key))
    path, meta = clip(tmp_path, seed=7), order_meta(7)
    receipt = v.ingest(path, meta, signature=SourceSignature.parse(_sign(host, path, meta)))
    assert v.verify().clean
    yield v, host, receipt
    v.close()


def _rewrite_source(v, seq: int, change) -> None:
    entry = _entry(v, seq)
    change(entry["body"]["source"])
    import rfc8785

    sql(
        v,
        "UPDATE log_entry SET entry = :e WHERE client_id = :c AND seq = :s",
        e=rfc8785.dumps(entry),
        c=CLIENT,
        s=seq,
    )


def _signature_findings(report) -> list[tuple]:
    return [
        (f.kind, f.record, f.seq, f.detail) for f in report.findings if f.kind == "bad-signature"
    ]


def test_verify_finds_a_tampered_signature_in_an_entry_row(signed):
    v, host, receipt = signed

    def flip(source):
        sig = bytearray(base64.b64decode(source["sig"]))
        sig[0] ^= 1
        source["sig"] = base64.b64encode(bytes(sig)).decode()

    _rewrite_source(v, receipt.seq, flip)
    report = v.verify()
    assert _signature_findings(report) == [
        (
            "bad-signature",
            receipt.record_id,
            receipt.seq,
            f"the source signature of dialer key {host.key_id} does not verify over the "
            "entry's statement",
        )
    ]
    # the edit itself shows too: the row's tag no longer fits (no keyring, no new tag)
    assert ("unauthenticated", receipt.seq) in {(f.kind, f.seq) for f in report.findings}


def test_verify_finds_a_tampered_key_id_in_an_entry_row(signed):
    v, _, receipt = signed
    forger = SourceSigner.generate()
    _rewrite_source(v, receipt.seq, lambda s: s.update(key=forger.key_id))
    found = _signature_findings(v.verify())
    assert found == [
        (
            "bad-signature",
            receipt.record_id,
            receipt.seq,
            f"the source signature names dialer key {forger.key_id!r}, not registered in the "
            "log before",
        )
    ]


def test_a_key_slipped_into_the_database_alone_is_found(signed, tmp_path):
    """Someone with the database but not the keyring adds a key row and uploads with it:
    the upload passes the cache, but the log never registered the key."""
    v, _, _ = signed
    rogue = SourceSigner.generate()
    sql(
        v,
        "INSERT INTO dialer_key (client_id, key_id, public_key, label, registered_at, "
        "registered_seq) VALUES (:c, :k, :p, '', '2026-11-21 00:00:00', 0)",
        c=CLIENT,
        k=rogue.key_id,
        p=rogue.public_key,
    )
    path, meta = clip(tmp_path, seed=8), order_meta(8)
    receipt = v.ingest(path, meta, signature=SourceSignature.parse(_sign(rogue, path, meta)))
    found = _signature_findings(v.verify())
    assert [(k, r, s) for k, r, s, _ in found] == [
        ("bad-signature", receipt.record_id, receipt.seq)
    ]
    assert "not registered in the log before" in found[0][3]
    # an auditor with only the log's export sees it as well
    from vault.ledger.checkpoint import parse_verifier_key
    from vault.ledger.offline import audit_export

    v.checkpoint(CLIENT)
    lines = v.export_log(CLIENT, tmp_path / "log.jsonl").read_text().splitlines()
    offline = audit_export(lines, parse_verifier_key(v.log_key()))
    assert [(f.kind, f.seq) for f in offline.findings] == [("bad-signature", receipt.seq)]


def test_a_key_revoked_in_the_log_but_not_in_the_database_is_found(signed, tmp_path):
    """The revocation's entry stands; someone clears the cache row's revocation and
    uploads again with the revoked key."""
    v, host, _ = signed
    v.revoke_dialer_key(CLIENT, host.key_id)
    sql(
        v,
        "UPDATE dialer_key SET revoked_at = NULL, revoked_seq = NULL WHERE key_id = :k",
        k=host.key_id,
    )
    path, meta = clip(tmp_path, seed=9), order_meta(9)
    receipt = v.ingest(path, meta, signature=SourceSignature.parse(_sign(host, path, meta)))
    found = _signature_findings(v.verify())
    assert [(k, r, s) for k, r, s, _ in found] == [
        ("bad-signature", receipt.record_id, receipt.seq)
    ]
    assert f"dialer key {host.key_id}, revoked at seq" in found[0][3]


def _policy_entries(v) -> list[dict]:
    return [
        e["body"]
        for e in map(lambda s: _entry(v, s), range(_head(v)))
        if e["type"] == "campaign.policy"
    ]


def test_the_requirement_is_logged_and_a_cleared_flag_is_found(signed, tmp_path):
    """Someone with the database but not the keyring clears the campaign's flag and slips
    an unsigned clip in: ingest obeys the row, verify (and the export's auditor) the log."""
    v, _, _ = signed
    v.require_source_signature(CLIENT, CAMPAIGN)
    assert _policy_entries(v) == [{"campaign": CAMPAIGN, "source_signature": True}]
    assert v.verify().clean
    required_at = _head(v) - 1

    sql(v, "UPDATE campaign SET require_source_signature = :f WHERE name = :n", f=False, n=CAMPAIGN)
    report = v.verify()
    assert [(f.kind, f.detail) for f in report.findings] == [
        (
            "modified",
            f"campaign {CAMPAIGN!r} says source signatures are optional, its log says "
            "required: the row was changed outside the vault, or set before the vault logged "
            "it; set the intended one with "
            f"`evidence-vault campaign signatures {CAMPAIGN} --client {CLIENT} "
            "--required|--optional`",
        )
    ]
    path, meta = clip(tmp_path, seed=10), order_meta(10)
    unsigned = v.ingest(path, meta)  # the cleared row lets it in
    assert _signature_findings(v.verify()) == [
        (
            "bad-signature",
            unsigned.record_id,
            unsigned.seq,
            f"the clip carries no source signature, but the log requires one for campaign "
            f"{CAMPAIGN!r} since seq {required_at}: it was accepted with the requirement "
            "switched off outside the vault",
        )
    ]
    from vault.ledger.checkpoint import parse_verifier_key
    from vault.ledger.offline import audit_export

    v.checkpoint(CLIENT)
    lines = v.export_log(CLIENT, tmp_path / "log.jsonl").read_text().splitlines()
    offline = audit_export(lines, parse_verifier_key(v.log_key()))
    assert [(f.kind, f.seq) for f in offline.findings] == [("bad-signature", unsigned.seq)]


def test_an_unsigned_clip_before_the_requirement_or_after_lifting_it_is_fine(signed, tmp_path):
    v, _, _ = signed
    before = v.ingest(clip(tmp_path, seed=11), order_meta(11))
    v.require_source_signature(CLIENT, CAMPAIGN)
    v.require_source_signature(CLIENT, CAMPAIGN, False)
    (tmp_path / "b").mkdir()
    after = v.ingest(clip(tmp_path / "b", seed=12), order_meta(12))
    assert before.seq < after.seq
    assert _policy_entries(v) == [
        {"campaign": CAMPAIGN, "source_signature": True},
        {"campaign": CAMPAIGN, "source_signature": False},
    ]
    assert v.verify().clean


def test_a_flag_set_in_the_database_alone_is_found(signed):
    v, _, _ = signed
    sql(v, "UPDATE campaign SET require_source_signature = :t WHERE name = :n", t=True, n=CAMPAIGN)
    found = [f.detail for f in v.verify().findings]
    assert (
        len(found) == 1
        and "says source signatures are required, its log says optional" in (found[0])
        and found[0].endswith("--optional`")
    )
    v.require_source_signature(CLIENT, CAMPAIGN)  # logged again although the row agreed
    assert v.verify().clean


def test_a_campaign_created_requiring_signatures_logs_it(tmp_path):
    v = make_vault(tmp_path / "v")
    v.add_campaign(CLIENT, "signed-only", 30, require_source_signature=True)
    v.add_campaign(CLIENT, "plain", 30)
    assert _policy_entries(v) == [
        {"campaign": "signed-only", "source_signature": True, "documents": []}
    ]
    assert v.verify().clean
    v.close()


# --- the CLI and the agent ----------------------------------------------------------------


def test_dialer_commands(tmp_path, monkeypatch):
    home = tmp_path / "v"
    make_vault(home).close()
    monkeypatch.setenv("EVIDENCE_VAULT_HOME", str(home))
    runner = CliRunner()
    host = SourceSigner.generate()
    pub = encode_public_key(host.public_key)
    out = runner.invoke(cli, ["--json", "dialer", "register", CLIENT, pub, "--label", "h1"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["key_id"] == host.key_id
    again = runner.invoke(cli, ["dialer", "register", CLIENT, pub])
    assert again.exit_code == 5  # conflict: already registered
    listed = runner.invoke(cli, ["dialer", "list", CLIENT])
    assert host.key_id in listed.output and "active" in listed.output
    out = runner.invoke(cli, ["dialer", "revoke", CLIENT, host.key_id])
    assert out.exit_code == 0, out.output
    assert "revoked" in runner.invoke(cli, ["dialer", "list", CLIENT]).output
    out = runner.invoke(cli, ["--json", "campaign", "signatures", CAMPAIGN, "--client", CLIENT])
    assert out.exit_code == 0 and json.loads(out.output)["require_source_signature"] is True
    missing = runner.invoke(cli, ["dialer", "revoke", CLIENT, "dk-" + "0" * 32])
    assert missing.exit_code == 4


def test_the_agent_signs_end_to_end(env, tmp_path):
    from vault.agent.pipeline import Agent

    v, tc, dialer, admin = env
    key_path = tmp_path / "agent" / "dialer.key"
    key_path.parent.mkdir()
    host = SourceSigner.generate()
    host.save(key_path)
    _register(tc, admin, host)
    cfg = load_config(
        tmp_path / "agent",
        env={},
        url="http://testserver",
        token=dialer["Authorization"].removeprefix("Bearer "),
        log_keys=[v.log_key()],
        signing_key="dialer.key",
    )
    link = Uplink("http://testserver", cfg.token or "", transport=tc._transport)
    agent = Agent(cfg, uplink=link)
    try:
        pair = clip(tmp_path, seed=11).rename(cfg.watch / "call.wav")
        (cfg.watch / "call.json").write_text(json.dumps(order_meta(11)))
        job = intake(cfg, agent.spool, pair, cfg.watch / "call.json")
        agent.step(agent.spool.claim())
        done = agent.spool.get(job.id)
        assert done.state in ("waiting_proof", "done"), done.last_error
        record = json.loads(done.receipt or "{}")
        entry = _entry(v, record["seq"])
        assert entry["body"]["source"]["key"] == host.key_id
        assert v.verify().clean
    finally:
        agent.stop()


def test_an_unsigned_agent_upload_to_a_signing_campaign_is_quarantined(env, tmp_path):
    from vault.agent.pipeline import Agent

    v, tc, dialer, _ = env
    cfg = load_config(
        tmp_path / "agent",
        env={},
        url="http://testserver",
        token=dialer["Authorization"].removeprefix("Bearer "),
        log_keys=[v.log_key()],
    )
    agent = Agent(cfg, uplink=Uplink("http://testserver", cfg.token or "", transport=tc._transport))
    try:
        pair = clip(tmp_path, seed=12).rename(cfg.watch / "call.wav")
        (cfg.watch / "call.json").write_text(json.dumps(order_meta(12)))
        job = intake(cfg, agent.spool, pair, cfg.watch / "call.json")
        agent.step(agent.spool.claim())
        refused = agent.spool.get(job.id)
        assert refused.state == "quarantined" and "HTTP 403" in refused.last_error
        reason = (cfg.quarantine / "call.wav.reason.txt").read_text()
        assert "signed by a registered dialer key" in reason
    finally:
        agent.stop()


def test_uplink_sends_the_signature_header():
    seen = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        return httpx.Response(201, json={})

    link = Uplink("http://vault", "t", transport=httpx.MockTransport(answer))
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".wav") as fh:
        fh.write(b"x")
        fh.flush()
        link.upload(fh.name, b"{}", media_type="audio/wav", key="k", signature=V["header"])
    assert seen["evidence-signature"] == V["header"]


# --- the migration ------------------------------------------------------------------------


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_migration_0013_down_and_up_on_a_vault_with_records(db, request, tmp_path):
    """0013 adds the campaign column in place: a rebuild of the campaign table would trip
    over the records' foreign keys (SQLite) once a vault holds evidence."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect, text

    from vault.db.engine import MIGRATIONS, migrate

    url = request.getfixturevalue("pg_url") if db == "postgres" else ""
    v = make_vault(tmp_path / "v", database_url=url)
    try:
        v.ingest(clip(tmp_path, seed=1), order_meta(1))
        engine = v.context.engine
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0014")
        columns = {c["name"] for c in inspect(engine).get_columns("campaign")}
        assert not inspect(engine).has_table("dialer_key")
        assert "require_source_signature" not in columns
        migrate(engine)
        with engine.connect() as conn:
            flags = conn.execute(text("SELECT require_source_signature FROM campaign")).all()
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert [bool(f) for (f,) in flags] == [False] and head == SCHEMA_HEAD
        assert inspect(engine).has_table("dialer_key")
        assert v.verify().clean
    finally:
        v.close()


# --- the bundle ---------------------------------------------------------------------------


def test_the_bundle_shows_and_checks_the_dialer_host(signed, tmp_path):
    from vault.bundle import verify_bundle

    v, host, receipt = signed
    v.checkpoint(CLIENT)
    from vault.ledger.checkpoint import parse_verifier_key
    from vault.ledger.offline import audit_export

    lines = v.export_log(CLIENT, tmp_path / "log.jsonl").read_text().splitlines()
    assert audit_export(lines, parse_verifier_key(v.log_key())).clean  # signed and registered
    out = tmp_path / "bundle.zip"
    v.export_bundle(receipt.record_id, out)
    verdict = verify_bundle(out, v.log_key())
    assert verdict.ok, verdict.summary()
    [check] = [c for c in verdict.checks if c.name == "source-signature"]
    assert check.ok and f"dialer key {host.key_id} signed" in check.detail
    import zipfile

    with zipfile.ZipFile(out) as zf:
        report = zf.read("report.html").decode()
    # the format 4 dispute report (German by default) names the signing host's key
    assert f"<th>Signiert vom Wählsystem</th><td>Schlüssel {host.key_id} (Ed25519" in report
    # an unsigned record's bundle has no such check
    plain = v.ingest(clip(tmp_path, seed=21), order_meta(21))
    v.checkpoint(CLIENT)
    v.export_bundle(plain.record_id, tmp_path / "plain.zip")
    names = [c.name for c in verify_bundle(tmp_path / "plain.zip", v.log_key()).checks]
    assert "source-signature" not in names and "entry" in names
