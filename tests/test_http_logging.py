"""Server log lines carry no PII: paths with ids, never query strings, bodies or headers."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from tests.test_http_records import PII, auth, meta_header
from vault.http import create_app


def test_access_log_lines_hold_no_pii(tmp_path, caplog):
    v = make_vault(tmp_path / "v")
    api = TestClient(create_app(v.context))
    dialer, reader = auth(v, "dialer"), auth(v, "client")
    caplog.set_level(logging.DEBUG)

    meta = order_meta(1)
    ok = api.post(
        "/v1/records",
        content=clip(tmp_path).read_bytes(),
        headers={**dialer, "Content-Type": "audio/wav", "Evidence-Metadata": meta_header(meta)},
    )
    assert ok.status_code == 201
    rid = ok.json()["record_id"]
    bad = dict(meta, callee={"phone": "+49151123"})  # refused: its problem names the field
    refused = api.post(
        "/v1/records",
        content=clip(tmp_path, seed=2).read_bytes(),
        headers={**dialer, "Content-Type": "audio/wav", "Evidence-Metadata": meta_header(bad)},
    )
    assert refused.status_code == 422
    assert api.post("/v1/records/search", json={"phone": "+4915112345678"}, headers=reader).json()
    api.get(f"/v1/records/{rid}", headers=reader)
    api.get("/v1/records?phone=%2B4915112345678", headers=reader)  # not an endpoint: 405
    api.get(f"/v1/records/{rid}", headers={"Authorization": "Bearer evt1_Mustermann"})

    lines = [r.getMessage() for r in caplog.records if r.name == "vault.http"]
    assert len(lines) == 6
    # the caller is the person and the token: person:<handle>/tk...
    assert any("POST /v1/records 201 " in ln and " person:dialer-" in ln for ln in lines)
    assert any(f"GET /v1/records/{rid} 200 " in ln and " person:client-" in ln for ln in lines)
    assert all("/tk" in ln for ln in lines if " person:" in ln)
    # everything the server side logged (the test's own HTTP client logs its URLs)
    text = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    for value in (*PII, "Max", "Fibre 250", "+49151123", "ORD-2026-000001", "evt1_"):
        assert value not in text, value
    assert CLIENT not in "\n".join(lines)  # ids of records and tokens only, not tenant names
