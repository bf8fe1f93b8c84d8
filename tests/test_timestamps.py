"""RFC 3161 time-stamps of checkpoints, against a real TSA on loopback (``openssl ts``).

Honest tokens are stored (object storage and database), bundled and checked offline;
malformed, wrong-imprint, wrong-nonce, wrong-CA and wrong-EKU tokens are refused with the
check that failed; a TSA outage never blocks ingest and catch-up stamps later.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.support import tamper
from tests.support.bundles import detail, failed, members
from tests.support.tsa import LoopbackTsa, flip_gen_time, make_pki, needs_openssl, resign
from tests.support.vaults import CAMPAIGN, CLIENT, clip, order_meta
from vault import Vault
from vault.bundle import verify_bundle
from vault.config import TsaSettings, load_settings
from vault.db import read_session
from vault.db.models import CheckpointTimestamp
from vault.errors import ConfigError
from vault.ledger.checkpoint import parse_verifier_key
from vault.ledger.offline import audit_export
from vault.ledger.timestamps import check_checkpoint_timestamp, note_text
from vault.sealing.timestamps import TimestampError, TrustRoots, check_timestamp, read_timestamp
from vault.services.checkpoints import checkpoint_of_size, list_checkpoints
from vault.services.context import create_vault
from vault.services.timestamps import timestamp_key

pytestmark = needs_openssl
TSA = "test-tsa"


@pytest.fixture
def tsa(tmp_path) -> LoopbackTsa:
    server = LoopbackTsa(tmp_path / "tsa").start()
    yield server
    server.stop()


def tsa_vault(
    home: Path, tsa: LoopbackTsa, *, roots: Path | None = None, db: str = "", s3=None
) -> Vault:
    """A vault time-stamping with ``tsa``, trusting ``roots`` (default: the TSA's own CA)."""
    settings = load_settings(home, env={})
    settings = replace(
        settings,
        database_url=db,
        storage="s3" if s3 else "local",
        s3=s3,
        tsas=(TsaSettings(TSA, tsa.url, roots or tsa.pki.ca),),
        timestamp_timeout=5.0,
        checkpoint_every=2,
    )
    v = Vault(create_vault(settings))
    v.add_client(CLIENT, "Telco DE")
    v.add_campaign(CLIENT, CAMPAIGN, retention_days=730)
    return v


def ingest(v: Vault, tmp: Path, n: int) -> list[str]:
    return [v.ingest(clip(tmp, seed=i), order_meta(40 + i)).record_id for i in range(n)]


def rows(v: Vault) -> list[CheckpointTimestamp]:
    with read_session(v.context.engine) as s:
        from sqlmodel import select

        return list(s.exec(select(CheckpointTimestamp).order_by(CheckpointTimestamp.size)))


# --- the token check itself (vault.sealing.timestamps) ---------------------------------------


MESSAGE = b"evidence-vault/telco-de\n3\nD0p5AJLQe4os2bvxIxjWi1t7WaluMK8tL4ACkcktnig=\n"


def reason(token: bytes, roots: TrustRoots | None, message: bytes = MESSAGE, **kw) -> str:
    with pytest.raises(TimestampError) as caught:
        check_timestamp(token, message, roots, **kw)
    return f"{caught.value.reason}: {caught.value.message}"


def test_an_honest_token_checks_out(tsa):
    token = tsa.stamp(MESSAGE)
    facts = check_timestamp(token, MESSAGE, TrustRoots.from_files([tsa.pki.ca]))
    assert facts.signer == "CN=Test TSA" and facts.policy == "1.3.6.1.4.1.99999.1"
    assert facts.serial >= 1 and facts.gen_time.tzinfo is not None


def test_bad_tokens_fail_the_check_they_break(tsa, tmp_path):
    roots = TrustRoots.from_files([tsa.pki.ca])
    token = tsa.stamp(MESSAGE)
    assert reason(b"", roots) == "malformed: the time-stamp token is empty"
    assert reason(token[:-40], roots) == "malformed: not a DER RFC 3161 time-stamp response"
    assert reason(b"\x30\x03abc", roots) == "malformed: not a DER RFC 3161 time-stamp response"
    assert reason(token, roots, b"another checkpoint\n") == (
        "imprint: the token time-stamps another digest than the message's"
    )
    assert reason(token, roots, nonce=1) == (
        "nonce: the token answers another request (nonce mismatch)"
    )
    assert reason(flip_gen_time(token), roots) == (
        "signature: the token's signature does not hold over what it states "
        "(digest failure, signature failure)"
    )
    other = make_pki(tmp_path / "other", "Other")
    assert reason(token, TrustRoots.from_files([other.ca])) == (
        "signature: the token's signature or certificate chain does not hold against the "
        "trusted TSA roots (unable to get local issuer certificate)"
    )
    # the same TSTInfo signed by certificates that are no TSA's (openssl ts refuses them)
    no_eku = make_pki(tmp_path / "no-eku", "Plain", eku="none")
    assert reason(resign(token, no_eku, tmp_path), TrustRoots.from_files([no_eku.ca])) == (
        "eku: the signing certificate has no extended key usage id-kp-timeStamping"
    )
    soft = make_pki(tmp_path / "soft-eku", "Soft", eku="noncritical")
    assert reason(resign(token, soft, tmp_path), TrustRoots.from_files([soft.ca])).startswith(
        "eku: the signing certificate's extended key usage is not critical"
    )
    # re-signed by the real TSA key, the same TSTInfo is fine: the resigning itself is sound
    assert check_timestamp(resign(token, tsa.pki, tmp_path), MESSAGE, roots).serial >= 1


def test_trust_roots_must_be_pem(tmp_path):
    bad = tmp_path / "roots.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="holds no readable PEM certificate"):
        TrustRoots.from_files([bad])
    with pytest.raises(ConfigError, match="cannot read the TSA trust roots"):
        TrustRoots.from_files([tmp_path / "missing.pem"])


# --- settings --------------------------------------------------------------------------------


def test_tsas_are_configured_in_vault_toml(tmp_path):
    home = tmp_path / "v"
    home.mkdir()
    (home / "vault.toml").write_text(
        '[timestamping]\ninterval = 5\ntimeout = 3\n\n[[timestamping.tsa]]\nname = "dfn"\n'
        'url = "https://zeitstempel.dfn.de"\nroots = "tsa/dfn.pem"\n'
    )
    s = load_settings(home, env={})
    assert s.tsas == (TsaSettings("dfn", "https://zeitstempel.dfn.de", home / "tsa" / "dfn.pem"),)
    assert (s.timestamp_interval, s.timestamp_timeout) == (5.0, 3.0)
    assert '[[timestamping.tsa]]\nname = "dfn"' in s.to_toml()
    assert load_settings(home, env={}) == s


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[timestamping.tsa]]\nname = "a b"\nurl = "https://x"\nroots = "r"', "a TSA name is"),
        ('[[timestamping.tsa]]\nname = "a"\nurl = "ftp://x"\nroots = "r"', "url must be"),
        ('[[timestamping.tsa]]\nname = "a"\nurl = "https://x"', "needs roots"),
        ('[[timestamping.tsa]]\nname = "a"\nurl = "https://x"\nroots = "r"\nkey = 1', "unknown"),
        ("[timestamping]\ntimeout = 0", "timeout must be a positive number"),
    ],
)
def test_bad_tsa_settings_are_refused(tmp_path, toml, message):
    (tmp_path / "vault.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, env={})


# --- stamping, storing, catching up ----------------------------------------------------------


def test_checkpoints_are_stamped_stored_and_verified(tmp_path, tsa):
    v = tsa_vault(tmp_path / "v", tsa)
    ingest(v, tmp_path, 1)  # the first entry is signed on the way (size 1)
    assert rows(v) == []  # nothing was stamped on the ingest path
    report = v.timestamp_pending()
    assert [(t.client, t.size, t.tsa) for t in report.stamped] == [(CLIENT, 1, TSA)]
    assert report.failed == []
    (row,) = rows(v)
    key = timestamp_key(CLIENT, 1, TSA)
    assert row.object_key == key == f"{CLIENT}/_timestamps/1/{TSA}.tsr"
    assert tamper.read_object(v, key) == bytes(row.token)
    note = v.latest_checkpoint(CLIENT).note.encode()
    verdict = check_checkpoint_timestamp(
        TSA, bytes(row.token), note, TrustRoots.from_files([tsa.pki.ca])
    )
    assert verdict.status == "valid" and verdict.serial == row.serial
    assert v.timestamp_pending().stamped == []  # idempotent
    assert v.verify().clean


def test_a_tsa_outage_never_blocks_ingest_and_catch_up_stamps_later(tmp_path, tsa):
    v = tsa_vault(tmp_path / "v", tsa)
    tsa.stop()
    ids = ingest(v, tmp_path, 3)  # checkpoints of size 1 and 3 (every 2), the TSA down
    assert len(ids) == 3 and [cp.size for cp in list_checkpoints(v.context, CLIENT)] == [1, 3]
    report = v.timestamp_pending()
    assert report.stamped == []
    # the newest first; the TSA that failed is not asked again in the same run
    assert report.failed == [
        (TSA, CLIENT, 3, f"TSA {TSA} is unreachable (ConnectionRefusedError)"),
        ("*", CLIENT, 1, "every TSA failed in this run"),
    ]
    # an export meanwhile still works: a v4 bundle without a time-stamp
    bundle = v.export_bundle(ids[0], tmp_path / "b.zip", principal="local:test")
    assert not any(n.startswith("timestamps/") for n in members(bundle))
    tsa.start()
    # a format 4 export signs a checkpoint covering its own access entry (size 4)
    assert [t.size for t in v.timestamp_pending().stamped] == [4, 3, 1]
    assert v.timestamp_pending().stamped == [] and v.verify().clean


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("garbage", "unusable token (malformed: not a DER RFC 3161 time-stamp response)"),
        ("wrong-imprint", "unusable token (imprint: the token time-stamps another digest"),
        ("wrong-nonce", "unusable token (nonce: the token answers another request"),
        ("refuse", "answered HTTP 500"),
    ],
)
def test_a_misbehaving_tsa_gets_nothing_stored(tmp_path, tsa, mode, why):
    v = tsa_vault(tmp_path / "v", tsa)
    ingest(v, tmp_path, 1)
    tsa.mode = mode
    report = v.timestamp_pending()
    assert report.stamped == [] and len(report.failed) == 1
    assert why in report.failed[0][3]
    assert rows(v) == [] and list(v.context.store.list(f"{CLIENT}/_timestamps/")) == []


def test_a_tsa_outside_the_configured_roots_is_refused(tmp_path, tsa):
    other = make_pki(tmp_path / "other", "Other")
    v = tsa_vault(tmp_path / "v", tsa, roots=other.ca)
    ingest(v, tmp_path, 1)
    (failure,) = v.timestamp_pending().failed
    assert "(signature: the token's signature or certificate chain does not hold" in failure[3]
    assert rows(v) == []


def test_a_missing_roots_file_postpones_stamping_with_a_hint(tmp_path, tsa):
    missing = tmp_path / "nowhere.pem"
    v = tsa_vault(tmp_path / "v", tsa, roots=missing)
    assert len(ingest(v, tmp_path, 1)) == 1  # ingest does not read the roots
    (failure,) = v.timestamp_pending().failed
    assert failure[3] == f"cannot read the TSA trust roots {missing}: No such file or directory"
    result = CliRunner().invoke(
        cli, ["verify-bundle", str(tsa.pki.ca), "--tsa-roots", str(tsa.pki.key)]
    )
    assert result.exit_code == 6 and "holds no readable PEM certificate" in result.output


def test_verify_finds_a_tampered_stored_token(tmp_path, tsa):
    v = tsa_vault(tmp_path / "v", tsa)
    ingest(v, tmp_path, 1)
    v.timestamp_pending()
    key = timestamp_key(CLIENT, 1, TSA)
    tamper.edit_object(v, key, flip_gen_time)
    report = v.verify()
    assert [(f.kind, f.key) for f in report.findings] == [("bad-timestamp", key)]
    assert "stored copy: time-stamp by test-tsa: INVALID (signature)" in report.findings[0].detail


def test_a_token_stored_before_a_crash_is_recorded_once_checked(tmp_path, tsa):
    v = tsa_vault(tmp_path / "v", tsa)
    ingest(v, tmp_path, 1)
    note = v.latest_checkpoint(CLIENT).note.encode()
    key = timestamp_key(CLIENT, 1, TSA)
    # a crash between the put and the row: the stored token is kept, not the new one
    earlier = tsa.stamp(note_text(note))
    v.context.store.put(key, [earlier])
    (stamp,) = v.timestamp_pending().stamped
    assert stamp.token == earlier == bytes(rows(v)[0].token)
    assert v.verify().clean


def test_a_planted_token_is_not_recorded(tmp_path, tsa):
    v = tsa_vault(tmp_path / "v", tsa)
    ingest(v, tmp_path, 1)
    key = timestamp_key(CLIENT, 1, TSA)
    v.context.store.put(key, [tsa.stamp(b"something else\n")])  # by someone with bucket access
    (failure,) = v.timestamp_pending().failed
    assert failure[3] == f"an invalid token is already stored at {key} (imprint)"
    assert rows(v) == []


def test_serve_s_timer_stamps_new_checkpoints(tmp_path, tsa):
    import time

    from vault.services.timestamps import TimestampTimer, unstamped

    v = tsa_vault(tmp_path / "v", tsa)
    timer = TimestampTimer(v.context, 0.05).start()
    try:
        ingest(v, tmp_path, 1)
        deadline = time.monotonic() + 60  # a generous bound on a loaded machine, not a figure
        while unstamped(v.context) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        timer.stop()
    assert unstamped(v.context) == [] and [r.size for r in rows(v)] == [1]


@pytest.mark.seaweedfs
def test_tokens_are_locked_like_checkpoints_on_s3(tmp_path, tsa, seaweedfs, seaweedfs_bucket):
    import secrets
    from datetime import timedelta

    from vault.config import S3Settings

    s3 = S3Settings(
        prefix="t-" + secrets.token_hex(6),
        bucket=seaweedfs_bucket,
        endpoint_url=seaweedfs.endpoint_url,
        region="us-east-1",
        access_key_id=seaweedfs.access_key,
        secret_access_key=seaweedfs.secret_key,
        object_lock=True,
    )
    v = tsa_vault(tmp_path / "v", tsa, s3=s3)
    try:
        ingest(v, tmp_path, 1)
        (stamp,) = v.timestamp_pending().stamped
        (row,) = rows(v)
        until = v.context.store.get_retention(row.object_key, version_id=row.object_version)
        assert until is not None and until - stamp.gen_time > timedelta(days=3640)
        assert v.verify().clean
        # an overwrite behind the vault's back stacks a version; the pinned one still checks
        tamper.edit_object(v, row.object_key, flip_gen_time)
        findings = v.verify().findings
        assert [(f.kind, f.key) for f in findings] == [("shadowed", row.object_key)]
    finally:
        v.close()


@pytest.mark.postgres
def test_stamping_and_catch_up_on_postgres(tmp_path, tsa, pg_url):
    v = tsa_vault(tmp_path / "v", tsa, db=pg_url)
    try:
        tsa.stop()
        ingest(v, tmp_path, 1)
        assert v.timestamp_pending().stamped == []
        tsa.start()
        assert [t.size for t in v.timestamp_pending().stamped] == [1]
        (row,) = rows(v)
        assert read_timestamp(bytes(row.token)).serial_hex == row.serial
        assert v.verify().clean
    finally:
        v.close()


# --- bundles ---------------------------------------------------------------------------------


@pytest.fixture
def stamped_bundle(tmp_path, tsa):
    v = tsa_vault(tmp_path / "v", tsa)
    ids = ingest(v, tmp_path, 3)  # checkpoints 1 and 3, stamped by nobody yet: export stamps 3
    path = v.export_bundle(ids[1], tmp_path / "bundle.zip", principal="local:lawyer")
    return path, v.log_key(), tsa


def test_a_bundle_carries_its_checkpoint_s_token_and_verifies(stamped_bundle):
    path, key, tsa = stamped_bundle
    files = members(path)
    token = files[f"timestamps/{TSA}.tsr"]
    assert json.loads(files["manifest.json"])["version"] == 4
    text = note_text(files["checkpoint.txt"])
    assert check_timestamp(token, text, TrustRoots.from_files([tsa.pki.ca])).serial >= 1
    verdict = verify_bundle(path, key, tsa_roots=TrustRoots.from_files([tsa.pki.ca]))
    assert verdict.ok and failed(verdict) == set(), verdict.summary()
    (ts,) = verdict.timestamps
    # the export's own checkpoint: the three records and its access entry
    assert (ts.tsa, ts.size, ts.status, ts.signer) == (TSA, 4, "valid", "CN=Test TSA")
    assert detail(verdict, "timestamp") == str(ts)
    assert verdict.to_dict()["timestamps"][0]["gen_time"] == ts.gen_time


def test_without_trust_roots_a_bundle_s_token_is_unchecked(stamped_bundle):
    path, key, _tsa = stamped_bundle
    verdict = verify_bundle(path, key)
    assert verdict.ok and verdict.timestamps[0].status == "unchecked"
    unchecked = {u.member: u.detail for u in verdict.unchecked}
    assert "manifest.json" in unchecked
    assert "verify again with --tsa-roots FILE" in unchecked[f"timestamps/{TSA}.tsr"]


def test_a_token_of_an_untrusted_tsa_fails_the_bundle(stamped_bundle, tmp_path):
    path, key, _tsa = stamped_bundle
    other = make_pki(tmp_path / "other", "Other")
    verdict = verify_bundle(path, key, tsa_roots=TrustRoots.from_files([other.ca]))
    assert failed(verdict) == {"timestamp"}
    assert detail(verdict, "timestamp") == (
        f"timestamps/{TSA}.tsr: the token's signature or certificate chain does not hold "
        "against the trusted TSA roots (unable to get local issuer certificate) (signature)"
    )


def test_a_flipped_byte_in_a_bundled_token_is_found(stamped_bundle, tmp_path):
    path, key, tsa = stamped_bundle
    from tests.support.bundles import Made, rewrite

    made = Made(path, key, "", "", b"", None)  # type: ignore[arg-type]
    name = f"timestamps/{TSA}.tsr"

    def change(files):
        files[name] = flip_gen_time(files[name])

    forged = rewrite(made, tmp_path, change)  # the manifest brought in line, as a forger would
    verdict = verify_bundle(forged, key, tsa_roots=TrustRoots.from_files([tsa.pki.ca]))
    # the reports show genTime, and report.pdf carries the token: neither matches now
    assert failed(verdict) == {"timestamp", "report", "report-pdf"}
    assert detail(verdict, "timestamp") == (
        f"{name}: the token's signature does not hold over what it states "
        "(digest failure, signature failure) (signature)"
    )
    # a token of another checkpoint (here: of other text) is caught by its imprint
    other = tsa.stamp(b"another checkpoint\n")

    def swap(files):
        files[name] = other

    verdict = verify_bundle(rewrite(made, tmp_path, swap), key)
    assert failed(verdict) == {"timestamp", "report", "report-pdf"}
    assert "another digest than the message's (imprint)" in detail(verdict, "timestamp")


def test_two_tsas_one_down_then_both_in_the_bundle(tmp_path, tsa):
    second = LoopbackTsa(tmp_path / "second", label="Second").start()
    try:
        v = tsa_vault(tmp_path / "v", tsa)
        both = (*v.settings.tsas, TsaSettings("second", second.url, second.pki.ca))
        v.context.settings = replace(v.settings, tsas=both)
        second.stop()
        ids = ingest(v, tmp_path, 1)
        report = v.timestamp_pending()
        assert [(t.tsa, t.size) for t in report.stamped] == [(TSA, 1)]
        assert [(tsa_, size) for tsa_, _c, size, _why in report.failed] == [("second", 1)]
        second.start()
        assert [(t.tsa, t.size) for t in v.timestamp_pending().stamped] == [("second", 1)]
        path = v.export_bundle(ids[0], tmp_path / "b.zip", principal="local:lawyer")
        assert sorted(n for n in members(path) if n.startswith("timestamps/")) == [
            "timestamps/second.tsr",
            f"timestamps/{TSA}.tsr",
        ]
        roots = TrustRoots.from_files([tsa.pki.ca, second.pki.ca])
        verdict = verify_bundle(path, v.log_key(), tsa_roots=roots)
        assert verdict.ok and [(t.tsa, t.status) for t in verdict.timestamps] == [
            ("second", "valid"),
            (TSA, "valid"),
        ]
        # trusting one TSA only: the other's token does not chain to a trusted root
        verdict = verify_bundle(path, v.log_key(), tsa_roots=TrustRoots.from_files([tsa.pki.ca]))
        assert failed(verdict) == {"timestamp"}
        assert detail(verdict, "timestamp").startswith(
            "timestamps/second.tsr: the token's signature or certificate chain does not hold"
        )
    finally:
        second.stop()


def test_a_v3_bundle_does_not_take_time_stamps(stamped_bundle, tmp_path):
    # a file under timestamps/ in an older bundle is just an unexpected file
    path, key, _tsa = stamped_bundle
    from tests.support.bundles import Made, rewrite

    def older(files):
        manifest = json.loads(files["manifest.json"])
        manifest["version"] = 3
        files["manifest.json"] = json.dumps(manifest).encode()

    made = Made(path, key, "", "", b"", None)  # type: ignore[arg-type]
    verdict = verify_bundle(rewrite(made, tmp_path, older), key)
    assert "timestamp" not in {c.name for c in verdict.checks} and verdict.timestamps is None
    assert f"unexpected file timestamps/{TSA}.tsr" in detail(verdict, "archive")


# --- the log export and `log verify` -------------------------------------------------------


def test_log_export_carries_tokens_and_log_verify_checks_them(tmp_path, tsa):
    v = tsa_vault(tmp_path / "v", tsa)
    ingest(v, tmp_path, 3)
    v.timestamp_pending()
    out = v.export_log(CLIENT, tmp_path / "log.jsonl")
    lines = out.read_text().splitlines()
    stamps = [json.loads(ln) for ln in lines if '"kind": "timestamp"' in ln]
    assert [(s["size"], s["tsa"]) for s in stamps] == [(1, TSA), (3, TSA)]
    verifier = parse_verifier_key(v.log_key())
    roots = TrustRoots.from_files([tsa.pki.ca])
    report = audit_export(lines, verifier, (), roots)
    assert report.clean and [t.status for t in report.timestamps] == ["valid", "valid"]
    assert [t.status for t in audit_export(lines, verifier).timestamps] == ["unchecked"] * 2
    # a token moved to another checkpoint no longer stamps it
    forged = [
        ln.replace('"size": 3', '"size": 1') if '"kind": "timestamp"' in ln else ln for ln in lines
    ]
    report = audit_export(forged, verifier, (), roots)
    assert [(f.kind, f.seq) for f in report.findings] == [("bad-timestamp", 1)]
    assert "INVALID (imprint)" in report.findings[0].detail
    # the CLI: --tsa-roots, exit 1 on a bad token
    runner = CliRunner()
    args = ["log", "verify", str(out), "--key", v.log_key(), "--tsa-roots", str(tsa.pki.ca)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "2 time-stamp(s)" in result.output and "time-stamp by test-tsa: genTime" in result.output
    bad = tmp_path / "forged.jsonl"
    bad.write_text("\n".join(forged) + "\n")
    result = runner.invoke(cli, ["log", "verify", str(bad), "--key", v.log_key()])
    assert result.exit_code == 1 and "[bad-timestamp]" in result.output


# --- the CLI -------------------------------------------------------------------------------


def test_cli_checkpoint_timestamp_and_verify_bundle(tmp_path, tsa, monkeypatch):
    monkeypatch.delenv("EVIDENCE_VAULT_MASTER_KEY", raising=False)
    home = tmp_path / "v"
    v = tsa_vault(home, tsa)
    rid = ingest(v, tmp_path, 1)[0]
    (home / "vault.toml").write_text(
        v.settings.to_toml()
    )  # the TSA in the file, as an operator configures it
    v.close()
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(cli, ["--vault", str(home), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    out = json.loads(run("--json", "checkpoint", "--client", CLIENT, "--timestamp"))
    assert out["size"] == 1 and [t["tsa"] for t in out["timestamps"]] == [TSA]
    assert "nothing to stamp" in run("timestamp")
    bundle = tmp_path / "b.zip"
    run("export", rid, "-o", str(bundle))
    key = run("log", "key").strip()
    out = run("verify-bundle", str(bundle), "--key", key, "--tsa-roots", str(tsa.pki.ca))
    assert "[ok] timestamp: time-stamp by test-tsa: genTime" in out
    args = ("--json", "verify-bundle", str(bundle), "--key", key, "--tsa-roots", str(tsa.pki.ca))
    (stamp,) = json.loads(run(*args))["timestamps"]
    assert (stamp["tsa"], stamp["status"], stamp["signer"]) == (TSA, "valid", "CN=Test TSA")
    tsa.stop()
    # a second export appends its access entry (3) and signs checkpoint 3, whose stamp is
    # postponed; the second verify-bundle's access is entry 4: checkpoint 4, not stamped
    run("export", rid, "-o", str(tmp_path / "c.zip"))
    out = run("checkpoint", "--client", CLIENT, "--timestamp", code=1)
    assert out.startswith(f"evidence-vault/{CLIENT}\n")
    assert "NOT time-stamped: checkpoint" in out and f"TSA {TSA} is unreachable" in out


def test_an_auditor_fetches_a_checkpoint_s_tokens_over_http(tmp_path, tsa):
    from fastapi.testclient import TestClient

    from tests.support.vaults import person_token
    from vault.http.app import create_app

    v = tsa_vault(tmp_path / "v", tsa)
    ingest(v, tmp_path, 1)
    v.timestamp_pending()
    auditor = {"Authorization": f"Bearer {person_token(v.context, 'auditor', CLIENT)[1]}"}
    with TestClient(create_app(v.context)) as http:
        got = http.get(f"/v1/logs/{CLIENT}/checkpoints/1/timestamps", headers=auditor)
        assert got.status_code == 200, got.text
        (stamp,) = got.json()
        assert (stamp["tsa"], stamp["size"], stamp["serial"]) == (TSA, 1, rows(v)[0].serial)
        note = checkpoint_of_size(v.context, CLIENT, 1).note.encode()
        token = base64.b64decode(stamp["token"])
        roots = TrustRoots.from_files([tsa.pki.ca])
        assert check_checkpoint_timestamp(TSA, token, note, roots).status == "valid"
        missing = http.get(f"/v1/logs/{CLIENT}/checkpoints/7/timestamps", headers=auditor)
        assert missing.status_code == 404
        assert missing.json()["detail"] == f"client {CLIENT!r} has no checkpoint of size 7"


def test_cli_timestamp_without_a_tsa(tmp_path, monkeypatch):
    monkeypatch.delenv("EVIDENCE_VAULT_MASTER_KEY", raising=False)
    home = str(tmp_path / "v")
    runner = CliRunner()
    assert runner.invoke(cli, ["--vault", home, "init"]).exit_code == 0
    result = runner.invoke(cli, ["--vault", home, "timestamp"])
    assert result.exit_code == 0
    assert result.output.startswith("no TSA is configured ([[timestamping.tsa]] in vault.toml)")


def test_committed_token_vector_checks_out():
    """tests/vectors/timestamp: a token of the loopback TSA, its CA and the note it stamps."""
    here = Path(__file__).parent / "vectors" / "timestamp"
    vector = json.loads((here / "vector.json").read_text())
    note = (here / "checkpoint.txt").read_bytes()
    token = (here / f"{vector['tsa']}.tsr").read_bytes()
    roots = TrustRoots.from_files([here / "ca.pem"])
    assert base64.b64encode(note_text(note)).decode() == vector["text_base64"]
    verdict = check_checkpoint_timestamp(vector["tsa"], token, note, roots)
    assert verdict.to_dict() == vector["verdict"]
    assert read_timestamp(token).imprint.hex() == vector["imprint_sha256"]
    # the text is what is stamped: the note with one signature line only holds too
    plain = json.loads((here.parent / "c2sp_note.json").read_text())["vault"]["note"].encode()
    assert check_checkpoint_timestamp(vector["tsa"], token, plain, roots).status == "valid"
    other = plain.replace(b"\n2\n", b"\n3\n")
    assert check_checkpoint_timestamp(vector["tsa"], token, other, roots).reason == "imprint"
