"""HTTP Textform documents: attach (idempotent), list with the Textform state, read (logged),
scoped like records; on every backend for the round trip."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.textform import APPROVAL_SMS, EMAIL, pdf, write
from tests.support.vaults import CAMPAIGN, CLIENT, clip, order_meta
from tests.test_http_records import OTHER, accesses, assert_problem, auth, person, upload
from vault.http.app import create_app


def attach(tc, headers, rid, data: bytes, *, kind: str, media_type: str, key=None):
    h = {**headers, "Content-Type": media_type}
    if key is not None:
        h["Idempotency-Key"] = key
    return tc.post(f"/v1/records/{rid}/documents", params={"kind": kind}, content=data, headers=h)


@pytest.fixture
def api(vault):
    with TestClient(create_app(vault.context)) as tc:
        yield tc


@pytest.fixture
def rid(vault, api, tmp_path):
    resp = upload(api, auth(vault, "dialer"), clip(tmp_path), order_meta(1))
    assert resp.status_code == 201, resp.text
    return resp.json()["record_id"]


def test_attach_list_and_read_round_trip(vault, api, rid):
    vault.set_campaign_documents(CLIENT, CAMPAIGN, "tkg-54")
    dialer, reader = auth(vault, "dialer"), auth(vault, "client")
    listed = api.get(f"/v1/records/{rid}/documents", headers=reader).json()
    assert (listed["textform"], listed["missing"]) == ("pending", ["contract-summary", "approval"])
    [hit] = api.post("/v1/records/search", json={}, headers=reader).json()
    assert hit["textform"] == "pending" and hit["pending_documents"] == listed["missing"]

    summary = attach(api, dialer, rid, EMAIL, kind="contract-summary", media_type="message/rfc822")
    assert summary.status_code == 201, summary.text
    approval = attach(
        api, reader, rid, APPROVAL_SMS, kind="approval", media_type="text/plain; charset=utf-8"
    )
    assert approval.status_code == 201, approval.text
    assert approval.json()["media_type"] == "text/plain"
    again = attach(api, dialer, rid, EMAIL, kind="contract-summary", media_type="message/rfc822")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["document_id"] == summary.json()["document_id"]

    listed = api.get(f"/v1/records/{rid}/documents", headers=reader).json()
    assert listed["textform"] == "complete" and listed["missing"] == []
    assert [d["kind"] for d in listed["documents"]] == ["contract-summary", "approval"]
    [hit] = api.post("/v1/records/search", json={}, headers=reader).json()
    assert hit["textform"] == "complete" and hit["pending_documents"] == []
    assert accesses(vault, rid) == []  # listing is no access

    doc_id = summary.json()["document_id"]
    got = api.get(
        f"/v1/records/{rid}/documents/{doc_id}",
        params={"reason": "dispute", "case": "CASE-7"},
        headers=reader,
    )
    assert got.status_code == 200 and got.content == EMAIL
    assert got.headers["content-type"].startswith("message/rfc822")
    assert got.headers["cache-control"] == "no-store"
    [access] = accesses(vault, rid)
    assert access == {
        "principal": person(reader),
        "token": access["token"],
        "what": "document",
        "document": doc_id,
        "reason": "dispute",
        "case": "CASE-7",
    }
    assert vault.verify().findings == []


def test_idempotency_key_of_an_attach(vault, api, rid):
    dialer = auth(vault, "dialer")
    first = attach(
        api, dialer, rid, pdf(), kind="confirmation", media_type="application/pdf", key="doc-1"
    )
    assert first.status_code == 201
    retry = attach(
        api, dialer, rid, pdf(), kind="confirmation", media_type="application/pdf", key="doc-1"
    )
    assert retry.status_code == 200 and retry.json()["document_id"] == first.json()["document_id"]
    other = attach(
        api,
        dialer,
        rid,
        pdf("other"),
        kind="confirmation",
        media_type="application/pdf",
        key="doc-1",
    )
    problem = assert_problem(other, 409, "conflict")
    assert problem["errors"] == [
        {"field": "body", "message": "differs from the first request with this key"}
    ]
    assert len(vault.documents(rid)) == 1


def test_refusals_and_scope(vault, api, rid):
    dialer = auth(vault, "dialer")
    assert_problem(
        attach(api, dialer, rid, b"x", kind="approval", media_type="image/png"),
        415,
        "unsupported-media-type",
    )
    bad = attach(
        api, dialer, rid, b"%PDF-1.4\nno end", kind="approval", media_type="application/pdf"
    )
    body = assert_problem(bad, 422, "invalid-document")
    assert body["detail"] == "the PDF has no %%EOF marker at its end: it is truncated"
    assert_problem(
        attach(api, dialer, rid, pdf(), kind="invoice", media_type="application/pdf"),
        422,
        "invalid-evidence",
    )
    vault.add_client(OTHER, "Acme AT")
    foreign = auth(vault, "dialer", client=OTHER)
    assert_problem(
        attach(api, foreign, rid, pdf(), kind="approval", media_type="application/pdf"),
        404,
        "not-found",
    )
    vault.add_campaign(CLIENT, "optin-2026", retention_days=1827)
    scoped = auth(vault, "dialer", campaign="optin-2026")
    assert_problem(
        attach(api, scoped, rid, pdf(), kind="approval", media_type="application/pdf"),
        404,
        "not-found",
    )
    for role in ("auditor", "admin"):
        assert_problem(
            attach(
                api, auth(vault, role), rid, pdf(), kind="approval", media_type="application/pdf"
            ),
            403,
            "permission-denied",
        )
    doc = attach(api, dialer, rid, pdf(), kind="approval", media_type="application/pdf").json()
    path = f"/v1/records/{rid}/documents/{doc['document_id']}"
    assert_problem(api.get(path, headers=dialer), 403, "permission-denied")
    assert_problem(api.get(path, headers=auth(vault, "client", client=OTHER)), 404, "not-found")
    assert_problem(
        api.get(path, params={"reason": "curiosity"}, headers=auth(vault, "client")),
        422,
        "invalid-request",
    )
    assert accesses(vault, rid) == []


def test_python_client_attaches_lists_and_reads(vault, api, rid, tmp_path):
    from vault.client import VaultClient
    from vault.errors import InvalidDocument

    secret = auth(vault, "client")["Authorization"].removeprefix("Bearer ")
    client = VaultClient("", secret, http=api)
    path = write(tmp_path, "summary.pdf", pdf())
    info = client.attach(rid, path, kind="contract-summary")
    assert info.kind == "contract-summary" and not info.duplicate
    assert client.attach(rid, path, kind="contract-summary").duplicate
    assert client.documents(rid) == [info]
    listing = client.document_listing(rid)
    assert listing["textform"] == "complete" and listing["missing"] == []
    assert client.document(rid, info.document_id, reason="complaint") == pdf()
    with pytest.raises(InvalidDocument):
        client.attach(rid, write(tmp_path, "x.docx", b"PK"), kind="other")
