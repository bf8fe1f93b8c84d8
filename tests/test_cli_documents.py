"""`evidence-vault attach`, `documents`, `campaign documents` and `retention plan
--pending-after`: human output, --json, exit codes."""

from __future__ import annotations

import json

from tests.support.textform import APPROVAL_SMS, EMAIL, pdf, write
from tests.support.vaults import CAMPAIGN, CLIENT, clip
from tests.test_cli import _meta_file, run  # noqa: F401  (the fixture)


def test_attach_list_get_and_pending(run, tmp_path):  # noqa: F811
    out = run("campaign", "documents", CAMPAIGN, "--client", CLIENT, "--require", "tkg-54")
    assert out.output.strip() == f"{CLIENT}/{CAMPAIGN}: requires contract-summary, approval"
    listed = json.loads(run("--json", "campaign", "list").output)
    assert listed[0]["required_documents"] == ["contract-summary", "approval"]
    rid = json.loads(
        run("--json", "ingest", str(clip(tmp_path)), "--meta", str(_meta_file(tmp_path))).output
    )["record_id"]
    [hit] = json.loads(run("--json", "find").output)
    assert hit["textform"] == "pending"

    summary = write(tmp_path, "summary.eml", EMAIL)
    human = run("attach", rid, str(summary), "--kind", "contract-summary").output
    assert human.startswith("sealed document d") and f"with record {rid}" in human
    again = json.loads(
        run("--json", "attach", rid, str(summary), "--kind", "contract-summary").output
    )
    assert again["duplicate"] is True and again["kind"] == "contract-summary"

    state = run("documents", rid).output
    assert "contract-summary" in state and "message/rfc822" in state
    assert state.rstrip().endswith("pending Textform: missing approval")

    got = tmp_path / "back.eml"
    run("documents", rid, "--get", again["document_id"], "-o", str(got), "--reason", "dispute")
    assert got.read_bytes() == EMAIL

    plan = json.loads(run("--json", "retention", "plan", "--pending-after", "0").output)
    assert plan["plan"] == []
    assert [(p["record_id"], p["missing"]) for p in plan["pending_textform"]] == [
        (rid, ["approval"])
    ]
    assert f"pending Textform {rid}" in run("retention", "plan", "--pending-after", "0").output
    assert "no record pending Textform after 30 days" in (
        run("retention", "plan", "--pending-after", "30").output
    )

    run("attach", rid, str(write(tmp_path, "ok.sms", APPROVAL_SMS)), "--kind", "approval")
    assert run("documents", rid).output.rstrip().endswith("Textform complete")
    assert json.loads(run("--json", "verify").output)["clean"] is True


def test_refusals_have_exit_codes(run, tmp_path):  # noqa: F811
    rid = json.loads(
        run("--json", "ingest", str(clip(tmp_path)), "--meta", str(_meta_file(tmp_path))).output
    )["record_id"]
    bad = write(tmp_path, "cut.pdf", pdf()[:-30])
    out = run("attach", rid, str(bad), "--kind", "approval", code=3)
    assert "the PDF has no %%EOF marker at its end: it is truncated" in out.output
    run("attach", "0" * 26, str(write(tmp_path, "a.pdf", pdf())), "--kind", "approval", code=4)
    run("attach", rid, str(bad), "--kind", "invoice", code=2)
    run("campaign", "documents", CAMPAIGN, "--client", CLIENT, code=2)
    run("campaign", "documents", CAMPAIGN, "--client", CLIENT, "--require", "invoice", code=3)
    run("documents", rid, "--get", "d" + "0" * 26, code=2)  # --get needs --output
