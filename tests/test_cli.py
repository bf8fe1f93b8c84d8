"""The `evidence-vault` command end to end: human output, --json, exit codes."""

from __future__ import annotations

import json
import zipfile

import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.support.tamper import edit_object, flip_byte
from tests.support.vaults import CAMPAIGN, CLIENT, clip, order_meta
from vault.ledger.checkpoint import verifier_key
from vault.sealing import LogSigner


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.delenv("EVIDENCE_VAULT_MASTER_KEY", raising=False)
    home = tmp_path / "vault"
    runner = CliRunner()

    def invoke(*args, code=0):
        result = runner.invoke(cli, ["--vault", str(home), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    invoke("init")
    invoke("client", "add", CLIENT, "--name", "Telco DE")
    invoke("campaign", "add", CAMPAIGN, "--client", CLIENT, "--retention-days", "730")
    return invoke


def _meta_file(tmp_path, n=1, **over):
    path = tmp_path / f"order-{n}.json"
    path.write_text(json.dumps(order_meta(n, **over)))
    return path


def test_ingest_find_show_audio_verify(run, tmp_path):
    src = clip(tmp_path, "flac", seconds=2.0)
    out = run("--json", "ingest", str(src), "--meta", str(_meta_file(tmp_path)))
    receipt = json.loads(out.output)
    assert receipt["seq"] == 0 and len(receipt["entry_hash"]) == 64
    rid = receipt["record_id"]

    human = run("ingest", str(src), "--meta", str(_meta_file(tmp_path))).output
    assert f"already sealed record {rid}" in human

    hits = json.loads(run("--json", "find", "--phone", "+49 151 12345678").output)
    assert [h["record_id"] for h in hits] == [rid]
    assert "ORD-2026-000001" in run("find", "--order-ref", "ORD-2026-000001").output
    assert "no matching records" in run("find", "--agent", "nobody").output

    shown = run("show", rid).output
    assert "Max Mustermann" in shown and "Fibre 250" in shown
    assert json.loads(run("--json", "show", rid).output)["evidence"]["order_ref"] == (
        "ORD-2026-000001"
    )

    run("audio", rid, "-o", str(tmp_path / "back.flac"))
    assert (tmp_path / "back.flac").read_bytes() == src.read_bytes()

    report = json.loads(run("--json", "verify").output)
    assert report["clean"] and report["records"] == 1 and report["entries"] == 4


def test_exit_codes_and_field_errors(run, tmp_path):
    src = clip(tmp_path)
    bad = _meta_file(tmp_path, 2, segment=0)
    result = run("ingest", str(src), "--meta", str(bad), code=3)
    assert "segment" in result.output
    err = json.loads(run("--json", "ingest", str(src), "--meta", str(bad), code=3).output)
    assert err["error"]["kind"] == "invalid-evidence"
    assert err["error"]["errors"][0]["field"] == "segment"
    assert "+4915112345678" not in result.output

    run("show", "no-such-record", code=4)
    run("ingest", str(src), "--meta", str(_meta_file(tmp_path, 3)))
    run("ingest", str(clip(tmp_path, seed=5)), "--meta", str(_meta_file(tmp_path, 3)), code=5)
    run("client", "add", "Bad Client!", code=3)


def test_verify_exit_code_names_the_record(run, tmp_path):
    from vault import Vault

    out = run("--json", "ingest", str(clip(tmp_path)), "--meta", str(_meta_file(tmp_path)))
    rid = json.loads(out.output)["record_id"]
    with Vault.open(tmp_path / "vault") as v:
        from vault.services.retrieve import get_record

        edit_object(v, get_record(v.context, rid).clip_key, flip_byte)
    report = json.loads(run("--json", "verify", code=1).output)
    assert [(f["kind"], f["record"]) for f in report["findings"]] == [("modified", rid)]
    assert f"record {rid}" in run("verify", code=1).output


def test_no_vault_is_a_config_error(tmp_path):
    result = CliRunner().invoke(cli, ["--vault", str(tmp_path / "none"), "find"])
    assert result.exit_code == 6
    assert "no vault in" in result.output and "evidence-vault init" in result.output


def test_init_refuses_an_existing_vault(run):
    assert "already exists" in run("init", code=6).output


def test_demo_runs(tmp_path):
    result = CliRunner().invoke(
        cli, ["demo", "--dir", str(tmp_path / "demo")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "byte-identical to the upload: True" in result.output
    assert "[modified]" in result.output and "clean = True" in result.output
    assert "bundle dispute.zip: VALID:" in result.output


def test_auditor_commands(run, tmp_path):
    out = run("--json", "ingest", str(clip(tmp_path)), "--meta", str(_meta_file(tmp_path)))
    rid = json.loads(out.output)["record_id"]
    key = run("log", "key").output.strip()
    name, key_id, _ = key.split("+", 2)
    assert name == "evidence-vault" and len(key_id) == 8

    note = run("checkpoint", "--client", CLIENT).output
    assert note.startswith(f"evidence-vault/{CLIENT}\n1\n")
    saved = tmp_path / "saved-checkpoint.txt"
    saved.write_text(note)  # what `checkpoint > saved.txt` would keep

    proof = json.loads(run("--json", "proof", rid).output)
    assert proof["seq"] == 0 and proof["tree_size"] == 1 and proof["hashes"] == []
    run("ingest", str(clip(tmp_path, seed=2)), "--meta", str(_meta_file(tmp_path, 2)))
    run("checkpoint", "--client", CLIENT)
    cons = json.loads(run("--json", "proof", "--client", CLIENT, "--from", "1").output)
    assert (cons["old_size"], cons["new_size"]) == (1, 2)
    run("proof", code=2)

    run("log", "export", "--client", CLIENT, "-o", str(tmp_path / "log.jsonl"))
    ok = run(
        "log",
        "verify",
        str(tmp_path / "log.jsonl"),
        "--key",
        key,
        "--trusted-checkpoint",
        str(saved),
    )
    assert "OK: the chain, the tree and every checkpoint agree" in ok.output
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:2]) + "\n")
    bad = run("--json", "log", "verify", str(tmp_path / "cut.jsonl"), "--key", key, code=1)
    assert "truncated" in {f["kind"] for f in json.loads(bad.output)["findings"]}
    refused = run("log", "verify", str(tmp_path / "log.jsonl"), "--key", "not-a-key", code=7)
    assert "verifier key" in refused.output


def test_export_and_verify_bundle(run, tmp_path):
    src = clip(tmp_path, "mp3", seconds=2.0)
    out = run("--json", "ingest", str(src), "--meta", str(_meta_file(tmp_path)))
    rid = json.loads(out.output)["record_id"]
    key = run("log", "key").output.strip()
    bundle = tmp_path / "bundle.zip"
    run("export", rid, "-o", str(bundle))
    ok = run("verify-bundle", str(bundle), "--key", key)
    assert ok.output.startswith("VALID")
    unpinned = run("verify-bundle", str(bundle), code=8)
    assert "VALID ONLY IF THE KEY IS GENUINE" in unpinned.output
    # "ok" means checked against a pinned key, never against the key inside the bundle
    as_json = json.loads(run("--json", "verify-bundle", str(bundle), code=8).output)
    assert (as_json["ok"], as_json["status"], as_json["consistent"]) == (False, "unpinned", True)
    as_json = json.loads(run("--json", "verify-bundle", str(bundle), "--key", key).output)
    assert (as_json["ok"], as_json["status"]) == (True, "valid")
    assert as_json["unchecked"][0]["member"] == "manifest.json"  # created_at
    wrong = verifier_key("evidence-vault", LogSigner.generate().public_key_bytes())
    as_json = json.loads(run("--json", "verify-bundle", str(bundle), "--key", wrong, code=1).output)
    assert (as_json["ok"], as_json["status"]) == (False, "invalid")
    # a smaller audio cap than the clip: refused unread, invalid
    capped = run("verify-bundle", str(bundle), "--key", key, "--max-audio-size", "100", code=1)
    assert "more than the 100 bytes a bundle's audio file may have" in capped.output
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    bad = json.loads(run("--json", "verify-bundle", str(junk), "--key", key, code=1).output)
    assert bad["checks"][0]["detail"] == "bundle is not a readable ZIP archive"


def test_json_after_the_command_name(run, tmp_path):
    src, meta = clip(tmp_path, seed=3), _meta_file(tmp_path, 4)
    receipt = json.loads(run("ingest", str(src), "--meta", str(meta), "--json").output)
    assert receipt["client"] == CLIENT
    assert json.loads(run("client", "list", "--json").output) == [
        {"client": CLIENT, "name": "Telco DE"}
    ]
    hits = json.loads(run("find", "--json", "--order-ref", "ORD-2026-000004").output)
    assert [h["record_id"] for h in hits] == [receipt["record_id"]]
    assert json.loads(run("log", "key", "--json").output)["verifier_key"]

    # an error of a command given --json is JSON too, with the documented exit code
    err = json.loads(run("show", "no-such-record", "--json", code=4).output)
    assert err["error"]["kind"] == "not-found"
    assert "--json" not in run("demo", "--help").output  # it prints no result


def test_command_modules_do_not_import_the_root_command():
    import subprocess
    import sys

    probe = (
        "import sys, cli.lifecycle, cli.service; "
        "assert 'cli.main' not in sys.modules, 'cli.main imported'"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_export_report_options(run, tmp_path):
    src = clip(tmp_path, "wav-pcm16", seconds=2.0)
    out = run("--json", "ingest", str(src), "--meta", str(_meta_file(tmp_path)))
    rid = json.loads(out.output)["record_id"]
    key = run("log", "key").output.strip()
    bundle = tmp_path / "en.zip"
    run("export", rid, "-o", str(bundle), "--language", "en", "--time-zone", "America/New_York")
    assert run("verify-bundle", str(bundle), "--key", key).output.startswith("VALID")
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        report = zf.read("report.html").decode()
        assert "report.pdf" in zf.namelist()
    assert (manifest["version"], manifest["language"]) == (4, "en")
    assert manifest["time_zone"] == "America/New_York"
    assert "Evidence report for record" in report and "(UTC-05:00)" in report
    plain = tmp_path / "plain.zip"
    run("export", rid, "-o", str(plain), "--no-pdf")
    with zipfile.ZipFile(plain) as zf:
        assert "report.pdf" not in zf.namelist()
        assert "Beweisbericht zum Datensatz" in zf.read("report.html").decode()
    refused = run("export", rid, "-o", str(tmp_path / "x.zip"), "--time-zone", "Mars/Base", code=3)
    assert "time_zone: unknown time zone 'Mars/Base'" in refused.output
    assert not (tmp_path / "x.zip").exists()


def test_export_writes_the_report_pdf_beside_the_bundle(run, tmp_path):
    src = clip(tmp_path, "wav-pcm16", seconds=2.0)
    out = run("--json", "ingest", str(src), "--meta", str(_meta_file(tmp_path)))
    rid = json.loads(out.output)["record_id"]
    bundle, pdf = tmp_path / "de.zip", tmp_path / "bericht.pdf"
    done = json.loads(
        run("--json", "export", rid, "-o", str(bundle), "--report-pdf", str(pdf)).output
    )
    assert done["report_pdf"] == str(pdf)
    with zipfile.ZipFile(bundle) as zf:
        assert pdf.read_bytes() == zf.read("report.pdf")
    assert pdf.read_bytes().startswith(b"%PDF-")
    refused = run(
        "export", rid, "-o", str(tmp_path / "y.zip"), "--no-pdf", "--report-pdf", str(pdf), code=2
    )
    assert "--report-pdf needs the PDF" in refused.output
