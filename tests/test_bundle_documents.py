"""Bundle format 4: the Textform documents travel with the record and verify offline;
format 1-3 bundles keep verifying exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.bundles import Made, detail, failed, members, rerender, rewrite
from tests.support.textform import APPROVAL_SMS, EMAIL, pdf, write
from tests.support.vaults import CAMPAIGN, CLIENT, clip, make_vault, order_meta
from vault.bundle import CHECKS, REPORT_CHECKS, verify_bundle
from vault.bundle.layout import CHECKS_V4, DOCUMENTS_INDEX

VECTORS = Path(__file__).parent / "vectors"
V3_KEY = "evidence-vault+eb2aed9e+AfM4wOAptVfuaY21GjvsZn5O8+v+6YZuNIfY0q/1CvRF"
V1_KEY = "evidence-vault+9b74d488+AamEvUo/APZzykdLMS6/CWNGgb2aQqO1HQZ7BRcbe6AG"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Made:
    """A record of a TKG §54 campaign with its summary (e-mail) and a PDF, but no approval."""
    tmp = tmp_path_factory.mktemp("bundle-docs")
    v = make_vault(tmp / "vault")
    try:
        v.set_campaign_documents(CLIENT, CAMPAIGN, "tkg-54")
        rid = v.ingest(clip(tmp, seed=1), order_meta(1)).record_id
        v.ingest(clip(tmp, seed=2), order_meta(2))  # another record's entry in between
        v.attach(rid, write(tmp, "s.eml", EMAIL), kind="contract-summary")
        v.attach(rid, write(tmp, "o.pdf", pdf()), kind="other")
        return Made(
            path=v.export_bundle(rid, tmp / "bundle.zip", principal="local:lawyer"),
            key=v.log_key(),
            name=v.settings.name,
            record_id=rid,
            other_clip=b"",
            signer=v.context.keys.signing_key(),
        )
    finally:
        v.close()


def test_documents_are_bundled_and_verified(made):
    files = members(made.path)
    assert files["documents/3-contract-summary.eml"] == EMAIL
    assert files["documents/4-other.pdf"] == pdf()
    index = json.loads(files[DOCUMENTS_INDEX])
    assert index["required"] == ["contract-summary", "approval"]
    assert index["missing"] == ["approval"]
    assert [d["member"] for d in index["documents"]] == [
        "documents/3-contract-summary.eml",
        "documents/4-other.pdf",
    ]
    verdict = verify_bundle(made.path, made.key)
    assert verdict.ok, verdict.summary()
    assert [c.name for c in verdict.checks] == list(CHECKS_V4)
    assert detail(verdict, "documents") == (
        "2 document(s) sealed with the record (contract-summary, other); "
        "pending Textform: missing approval"
    )
    facts = verdict.textform
    assert facts is not None and facts.missing == ("approval",) and facts.pending
    assert [(d.seq, d.kind, d.media_type, d.verdict) for d in facts.documents] == [
        (3, "contract-summary", "message/rfc822", "ok"),
        (4, "other", "application/pdf", "ok"),
    ]
    assert verdict.to_dict()["textform"]["textform"] == "pending"


def test_a_replaced_document_fails_its_commitment(made, tmp_path):
    def replace(files):
        files["documents/4-other.pdf"] = pdf("a different summary")

    verdict = verify_bundle(rewrite(made, tmp_path, replace), made.key)
    assert failed(verdict) == {"documents", "report-pdf"}  # the PDF attaches documents/
    assert detail(verdict, "documents") == (
        "documents/4-other.pdf is not the size its entry seals"
        if len(pdf("a different summary")) != len(pdf())
        else "documents/4-other.pdf is not the document the vault sealed: its commitment "
        "differs from its entry's"
    )
    [bad] = [d for d in verdict.textform.documents if d.kind == "other"]
    assert bad.verdict != "ok"


def test_a_document_of_the_same_size_fails_its_commitment(made, tmp_path):
    def swap(files):
        data = bytearray(files["documents/3-contract-summary.eml"])
        data[-3] ^= 0x01
        files["documents/3-contract-summary.eml"] = bytes(data)

    verdict = verify_bundle(rewrite(made, tmp_path, swap), made.key)
    assert failed(verdict) == {"documents", "report-pdf"}  # the PDF attaches documents/
    assert detail(verdict, "documents") == (
        "documents/3-contract-summary.eml is not the document the vault sealed: its "
        "commitment differs from its entry's; missing in documents/index.json is not the "
        "required kinds the bundle lacks"
    )


def test_a_dropped_document_must_show_as_missing(made, tmp_path):
    def drop(files):
        del files["documents/3-contract-summary.eml"]
        index = json.loads(files[DOCUMENTS_INDEX])
        index["documents"] = index["documents"][1:]
        files[DOCUMENTS_INDEX] = json.dumps(index).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, drop), made.key)
    # the reports list the document, and the PDF attaches it
    assert failed(verdict) == {"documents", "report", "report-pdf"}
    assert detail(verdict, "documents") == (
        "missing in documents/index.json is not the required kinds the bundle lacks"
    )

    def drop_honestly(files):
        drop(files)
        index = json.loads(files[DOCUMENTS_INDEX])
        index["missing"] = ["contract-summary", "approval"]
        files[DOCUMENTS_INDEX] = json.dumps(index).encode()

    # consistent, and it says so: the summary is pending
    verdict = verify_bundle(
        rewrite(made, tmp_path, lambda files: rerender(drop_honestly, files)), made.key
    )
    assert verdict.ok
    assert verdict.textform.missing == ("contract-summary", "approval")


def test_a_forged_entry_or_proof_fails(made, tmp_path):
    def edit_entry(files):
        index = json.loads(files[DOCUMENTS_INDEX])
        entry = json.loads(index["documents"][1]["entry"])
        entry["body"]["kind"] = "approval"
        from vault.ledger.entry import encode_entry

        index["documents"][1]["entry"] = encode_entry(entry).decode()
        index["documents"][1]["member"] = "documents/4-approval.pdf"
        index["missing"] = []
        files["documents/4-approval.pdf"] = files.pop("documents/4-other.pdf")
        files[DOCUMENTS_INDEX] = json.dumps(index).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, edit_entry), made.key)
    # the reports show the kind, and the PDF attaches the document
    assert failed(verdict) == {"documents", "report", "report-pdf"}
    assert detail(verdict, "documents") == (
        "the inclusion proof of documents/4-approval.pdf does not lead from its entry to "
        "the root of checkpoint.txt; missing in documents/index.json is not the required "
        "kinds the bundle lacks"
    )

    def edit_proof(files):
        index = json.loads(files[DOCUMENTS_INDEX])
        hashes = index["documents"][0]["hashes"]
        hashes[0] = ("0" if hashes[0][0] != "0" else "1") + hashes[0][1:]
        files[DOCUMENTS_INDEX] = json.dumps(index).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, edit_proof), made.key)
    assert failed(verdict) == {"documents", "report-pdf"}  # the PDF attaches documents/
    assert detail(verdict, "documents").startswith(
        "the inclusion proof of documents/3-contract-summary.eml does not lead"
    )


def test_a_document_of_another_record_and_stray_files(made, tmp_path):
    def stray(files):
        files["documents/9-approval.txt"] = APPROVAL_SMS

    verdict = verify_bundle(rewrite(made, tmp_path, stray), made.key)
    # report.pdf does not carry the stray file either
    assert failed(verdict) == {"archive", "report-pdf"}
    assert detail(verdict, "archive") == "unexpected file documents/9-approval.txt"

    def other_record(files):
        index = json.loads(files[DOCUMENTS_INDEX])
        index["record_id"] = "0" * 26
        files[DOCUMENTS_INDEX] = json.dumps(index).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, other_record), made.key)
    assert detail(verdict, "documents") == (
        "documents/index.json is about another record than manifest.json names"
    )


def test_format_3_and_1_vectors_verify_exactly_as_before():
    v3 = verify_bundle(VECTORS / "bundle-v3.zip", V3_KEY)
    assert v3.ok, v3.summary()
    assert [c.name for c in v3.checks] == list(REPORT_CHECKS[3]) == list(CHECKS)
    assert v3.textform is None and "textform" not in v3.to_dict()
    v1 = verify_bundle(VECTORS / "bundle-v1.zip", V1_KEY)
    assert v1.ok and "documents" not in {c.name for c in v1.checks}


def test_documents_cannot_ride_along_in_a_format_3_bundle(made, tmp_path):
    def as_version_3(files):
        m = json.loads(files["manifest.json"])
        m["version"] = 3
        files["manifest.json"] = json.dumps(m).encode()

    verdict = verify_bundle(rewrite(made, tmp_path, as_version_3), made.key)
    assert "documents" not in {c.name for c in verdict.checks}
    assert "unexpected file documents/3-contract-summary.eml" in detail(verdict, "archive")
