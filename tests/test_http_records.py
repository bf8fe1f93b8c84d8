"""HTTP records API: upload, receipts, reading (Range), bundles, disputes and holds."""

from __future__ import annotations

import base64
import functools
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from tests.support.vaults import CAMPAIGN, CLIENT, clip, make_vault, order_meta, person_token
from vault.bundle import verify_bundle
from vault.db import LogEntry, read_session
from vault.db.models import IdempotencyKey
from vault.http.app import create_app
from vault.ledger.entry import parse_entry
from vault.ledger.merkle import verify_inclusion
from vault.sealing.stream import SEGMENT_SIZE
from vault.services import idempotency, receipts

PII = ("+4915112345678", "4915112345678", "15112345678", "Mustermann", "1980-01-31")
OTHER, OTHER_CAMPAIGN = "acme-at", "winback-2026"


# --- helpers ------------------------------------------------------------------------------


def meta_header(meta: dict | bytes) -> str:
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


#: token secret -> token info, for the person and token the log records
_TOKENS: dict[str, Any] = {}


def auth(
    v, role: str, client: str | None = CLIENT, campaign: str | None = None, handle=None
) -> dict:
    """A token of a new person (or of person ``handle``, created the first time)."""
    info, secret = person_token(v.context, role, client, campaign=campaign, handle=handle)
    _TOKENS[secret] = info
    return {"Authorization": f"Bearer {secret}"}


def token_id(headers: dict) -> str:
    return _TOKENS[headers["Authorization"].removeprefix("Bearer ")].id


def person(headers: dict) -> str:
    """The principal name the log records for the holder of these headers."""
    return "person:" + _TOKENS[headers["Authorization"].removeprefix("Bearer ")].person


def upload(
    tc: TestClient,
    headers: dict,
    path: Path | bytes,
    meta: dict | bytes | None,
    *,
    media_type: str | None = "audio/wav",
    key: str | None = None,
    extra: dict | None = None,
):
    h = dict(headers)
    if meta is not None:
        h["Evidence-Metadata"] = meta_header(meta)
    if media_type is not None:
        h["Content-Type"] = media_type
    if key is not None:
        h["Idempotency-Key"] = key
    h.update(extra or {})
    body = path if isinstance(path, bytes) else path.read_bytes()
    return tc.post("/v1/records", content=body, headers=h)


def assert_problem(resp, status: int, kind: str) -> dict:
    shown = resp.text[:500] if resp.headers.get("content-type", "").endswith("json") else ""
    assert resp.status_code == status, shown
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["type"] == f"/problems/{kind}"
    assert body["status"] == status
    for value in PII:
        assert value not in resp.text
    return body


def accesses(v, record_id: str) -> list[dict]:
    with read_session(v.context.engine) as s:
        rows = s.exec(
            select(LogEntry.entry)
            .where(LogEntry.type == "evidence.accessed", LogEntry.record_id == record_id)
            .order_by(LogEntry.seq)
        )
        return [parse_entry(bytes(r))["body"] for r in rows]


@pytest.fixture
def local(tmp_path):
    v = make_vault(tmp_path / "v")
    yield v
    v.close()


@pytest.fixture
def api(local):
    with TestClient(create_app(local.context)) as tc:
        yield tc


@pytest.fixture
def sealed(local, api, tmp_path):
    """One record uploaded over HTTP: (record id, clip bytes, client headers)."""
    path = clip(tmp_path, seconds=3.0)
    resp = upload(api, auth(local, "dialer"), path, order_meta(1))
    assert resp.status_code == 201, resp.text
    return resp.json()["record_id"], path.read_bytes(), auth(local, "client")


# --- the round trip on every backend --------------------------------------------------------


def test_upload_and_read_round_trip(vault, tmp_path):
    path = clip(tmp_path, seconds=5.0)  # 160 000 bytes: three 64 KiB segments
    data = path.read_bytes()
    dialer, reader = auth(vault, "dialer"), auth(vault, "client")
    with TestClient(create_app(vault.context)) as tc:
        first = upload(tc, dialer, path, order_meta(1))
        assert first.status_code == 201, first.text
        receipt = first.json()
        assert receipt["client"] == CLIENT and receipt["campaign"] == CAMPAIGN
        assert receipt["duplicate"] is False
        again = upload(tc, dialer, path, order_meta(1))
        assert again.status_code == 200
        assert again.json()["record_id"] == receipt["record_id"]
        assert again.json()["duplicate"] is True
        rid = receipt["record_id"]

        got = tc.get(f"/v1/records/{rid}/receipt", headers=dialer)
        assert got.status_code == 200
        assert got.json()["entry_hash"] == receipt["entry_hash"]

        before = len(accesses(vault, rid))
        full = tc.get(f"/v1/records/{rid}/audio", headers=reader)
        assert full.status_code == 200
        assert full.content == data
        assert full.headers["content-type"] == "audio/wav"
        assert full.headers["accept-ranges"] == "bytes"
        assert len(accesses(vault, rid)) == before + 1

        total = len(data)
        for spec, lo, hi in [
            ("0-0", 0, 0),
            ("100-4195", 100, 4195),
            (f"{SEGMENT_SIZE - 10}-{SEGMENT_SIZE + 9}", SEGMENT_SIZE - 10, SEGMENT_SIZE + 9),
            (f"{SEGMENT_SIZE}-", SEGMENT_SIZE, total - 1),
            ("-1", total - 1, total - 1),
            (f"{total - 1}-{total + 500}", total - 1, total - 1),
        ]:
            part = tc.get(f"/v1/records/{rid}/audio", headers={**reader, "Range": f"bytes={spec}"})
            assert part.status_code == 206, spec
            assert part.headers["content-range"] == f"bytes {lo}-{hi}/{total}"
            assert part.content == data[lo : hi + 1], spec

        bad = tc.get(f"/v1/records/{rid}/audio", headers={**reader, "Range": f"bytes={total}-"})
        assert_problem(bad, 416, "range-not-satisfiable")
        assert bad.headers["content-range"] == f"bytes */{total}"

        before = len(accesses(vault, rid))
        doc = tc.get(f"/v1/records/{rid}", headers=reader)
        assert doc.status_code == 200
        assert doc.json()["evidence"]["order_ref"] == order_meta(1)["order_ref"]
        after = accesses(vault, rid)
        assert len(after) == before + 1
        assert after[-1] == {
            "principal": person(reader),
            "token": token_id(reader),
            "what": "metadata",
        }


# --- upload -------------------------------------------------------------------------------


def test_upload_receipt_carries_inclusion_proof_once_checkpointed(local, api, tmp_path):
    dialer = auth(local, "dialer")
    # the first entry of a log is checkpointed at once; the next one waits for the cadence
    upload(api, dialer, clip(tmp_path, seed=1), order_meta(1))
    resp = upload(api, dialer, clip(tmp_path, seed=2), order_meta(2))
    assert resp.status_code == 201
    receipt = resp.json()
    assert receipt["inclusion_proof"] is None
    local.checkpoint(CLIENT)
    got = api.get(f"/v1/records/{receipt['record_id']}/receipt", headers=dialer).json()
    proof = got["inclusion_proof"]
    assert proof["leaf_hash"] == receipt["entry_hash"] and proof["seq"] == receipt["seq"]
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        proof["seq"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root_hash"]),
    )


def test_idempotency_key(local, api, tmp_path):
    dialer = auth(local, "dialer")
    path = clip(tmp_path)
    first = upload(api, dialer, path, order_meta(1), key="batch-7/1")
    assert first.status_code == 201
    # a retry with the same key answers from the stored receipt, without sealing again
    retry = upload(api, dialer, path, order_meta(1), key="batch-7/1")
    assert retry.status_code == 200
    body = retry.json()
    assert body["record_id"] == first.json()["record_id"] and body["duplicate"] is True
    assert body["entry_hash"] == first.json()["entry_hash"]
    # the same key and metadata with another clip (or none): that clip was not sealed
    for other_clip in (clip(tmp_path, seed=3), b""):
        refused = upload(api, dialer, other_clip, order_meta(1), key="batch-7/1")
        problem = assert_problem(refused, 409, "conflict")
        assert problem["errors"] == [
            {"field": "body", "message": "differs from the first request with this key"}
        ]
        assert "different clip" in problem["detail"]
    reused = upload(api, dialer, clip(tmp_path, seed=3), order_meta(2), key="batch-7/1")
    problem = assert_problem(reused, 409, "conflict")
    assert [e["field"] for e in problem["errors"]] == ["header.Evidence-Metadata"]
    assert "different metadata" in problem["detail"]
    assert len(local.find(client=CLIENT)) == 1
    # keys are per token: another dialer's same key is a new key
    other = upload(api, auth(local, "dialer"), path, order_meta(1), key="batch-7/1")
    assert other.status_code == 200 and other.json()["duplicate"] is True
    for bad in ("k" * 201, "with space"):
        refused = assert_problem(
            upload(api, dialer, path, order_meta(1), key=bad), 422, "invalid-request"
        )
        assert [e["field"] for e in refused["errors"]] == ["header.Idempotency-Key"]


def test_a_new_key_is_stored_with_its_record(local, api, tmp_path, monkeypatch):
    # no transaction of its own: the key's row commits with the record's (so a crash
    # between the two can no longer leave a sealed record whose key is unknown)
    def separate(*args, **kwargs):
        raise AssertionError("a new key took a transaction of its own")

    monkeypatch.setattr(idempotency, "remember", separate)
    dialer = auth(local, "dialer")
    path = clip(tmp_path)
    first = upload(api, dialer, path, order_meta(1), key="call-1/seg-1")
    assert first.status_code == 201, first.text
    with read_session(local.context.engine) as s:
        rows = list(s.exec(select(IdempotencyKey)))
    assert [(r.key, r.record_id) for r in rows] == [("call-1/seg-1", first.json()["record_id"])]
    retry = upload(api, dialer, path, order_meta(1), key="call-1/seg-1")
    assert retry.status_code == 200 and retry.json()["record_id"] == first.json()["record_id"]
    monkeypatch.undo()
    # the same call segment under another key: an earlier record, the key remembered apart
    again = upload(api, dialer, path, order_meta(1), key="call-1/seg-1/again")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    with read_session(local.context.engine) as s:
        assert s.get(IdempotencyKey, (rows[0].token_id, "call-1/seg-1/again")) is not None


def test_a_fresh_uploads_opening_is_answered_without_reading_it_back(
    local, api, tmp_path, monkeypatch
):
    def read_back(*args, **kwargs):
        raise AssertionError("the fresh record was read back for its opening")

    monkeypatch.setattr(receipts, "get_record", read_back)
    dialer = auth(local, "dialer")
    path = clip(tmp_path)
    meta = meta_header(order_meta(4))
    headers = {**dialer, "Content-Type": "audio/wav", "Evidence-Metadata": meta}
    fresh = api.post("/v1/records?opening=true", content=path.read_bytes(), headers=headers)
    assert fresh.status_code == 201, fresh.text
    body = fresh.json()
    with read_session(local.context.engine) as s:
        row = s.exec(select(LogEntry).where(LogEntry.seq == body["seq"])).one()
    assert body["opening"]["entry"].encode() == bytes(row.entry)  # the entry as stored
    monkeypatch.undo()
    # a repeat is answered from the sealed record: entry and salt read back, the same
    repeat = api.post("/v1/records?opening=true", content=path.read_bytes(), headers=headers)
    assert repeat.status_code == 200 and repeat.json()["opening"] == body["opening"]


def test_upload_refusals(local, api, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dialer = auth(local, "dialer")
    path = clip(tmp_path)

    for media_type in ("text/plain", None, "wav", "application/octet-stream"):
        resp = upload(api, dialer, path, order_meta(1), media_type=media_type)
        assert_problem(resp, 415, "unsupported-media-type")

    field = "header.Evidence-Metadata"
    missing = assert_problem(upload(api, dialer, path, None), 422, "invalid-request")
    assert [e["field"] for e in missing["errors"]] == [field]
    for garbage in ("not base64!", "QUJD=A", "A"):
        garbled = upload(api, dialer, path, None, extra={"Evidence-Metadata": garbage})
        assert [e["field"] for e in assert_problem(garbled, 422, "invalid-request")["errors"]] == [
            field
        ]
    not_json = assert_problem(upload(api, dialer, path, b"{nope"), 422, "invalid-evidence")
    assert [e["field"] for e in not_json["errors"]] == [field]
    broken = order_meta(1, callee={"phone": "015112345678"}, segment=0)
    fields = assert_problem(upload(api, dialer, path, broken), 422, "invalid-evidence")
    assert {"callee.phone", "segment"} <= {e["field"] for e in fields["errors"]}
    not_audio = upload(api, dialer, b"RIFF" + b"\0" * 400, order_meta(1))
    assert_problem(not_audio, 422, "invalid-audio")

    api.app.state.max_upload_bytes = 1000
    assert_problem(upload(api, dialer, path, order_meta(1)), 413, "too-large")
    streamed = api.post(  # no Content-Length: counted while streaming
        "/v1/records",
        content=iter([path.read_bytes()[:800], path.read_bytes()[800:1600]]),
        headers={
            **dialer,
            "Content-Type": "audio/wav",
            "Evidence-Metadata": meta_header(order_meta(1)),
        },
    )
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413, "too-large")
    del api.app.state.max_upload_bytes

    assert_problem(
        upload(api, auth(local, "client"), path, order_meta(1)), 403, "permission-denied"
    )
    assert_problem(upload(api, {}, path, order_meta(1)), 401, "unauthenticated")
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing in the system temp directory
    assert list((local.settings.home / "spool").iterdir()) == []  # nor in the vault's spool
    assert local.find(client=CLIENT) == []


def test_upload_scoped_to_the_tokens_client_and_campaign(local, api, tmp_path):
    local.add_client(OTHER, "Acme AT")
    local.add_campaign(OTHER, OTHER_CAMPAIGN, retention_days=730)
    local.add_campaign(CLIENT, "optin-2026", retention_days=1827)
    path = clip(tmp_path)

    foreign = upload(api, auth(local, "dialer", client=OTHER), path, order_meta(1))
    missing = upload(api, auth(local, "dialer"), path, order_meta(1, client="nobody"))
    # another tenant answers exactly like a client that does not exist
    assert assert_problem(foreign, 404, "not-found") == assert_problem(missing, 404, "not-found")

    scoped = auth(local, "dialer", campaign="optin-2026")
    # another campaign of its client is outside the token's scope, whether it exists or not
    outside = assert_problem(upload(api, scoped, path, order_meta(1)), 403, "permission-denied")
    assert "outside this token's scope" in outside["detail"]
    ghost = upload(api, scoped, path, order_meta(1, campaign="no-such-campaign"))
    assert assert_problem(ghost, 403, "permission-denied") == outside
    ok = upload(api, scoped, path, order_meta(1, campaign="optin-2026"))
    assert ok.status_code == 201 and ok.json()["campaign"] == "optin-2026"

    other_campaign = upload(api, auth(local, "dialer"), clip(tmp_path, seed=5), order_meta(2))
    rid = other_campaign.json()["record_id"]
    assert_problem(api.get(f"/v1/records/{rid}/receipt", headers=scoped), 404, "not-found")
    assert api.get(f"/v1/records/{ok.json()['record_id']}/receipt", headers=scoped).is_success
    other_dialer = auth(local, "dialer", client=OTHER)
    assert_problem(api.get(f"/v1/records/{rid}/receipt", headers=other_dialer), 404, "not-found")


# --- reading ------------------------------------------------------------------------------


def test_reads_are_scoped_and_role_checked(local, api, sealed):
    rid, _data, _reader = sealed
    local.add_client(OTHER, "Acme AT")
    foreign = auth(local, "client", client=OTHER)
    for suffix in ("", "/audio", "/bundle", "/receipt"):
        body = assert_problem(
            api.get(f"/v1/records/{rid}{suffix}", headers=foreign), 404, "not-found"
        )
        absent = api.get(f"/v1/records/nope{suffix}", headers=foreign).json()
        assert body["title"] == absent["title"] and body["hint"] == absent["hint"]
        for role in ("auditor", "admin"):
            resp = api.get(f"/v1/records/{rid}{suffix}", headers=auth(local, role))
            assert_problem(resp, 403, "permission-denied")
    assert_problem(
        api.get(f"/v1/records/{rid}", headers=auth(local, "dialer")), 403, "permission-denied"
    )
    assert accesses(local, rid) == []  # nothing was opened


def test_audio_range_edge_cases(local, api, sealed):
    rid, data, reader = sealed
    total = len(data)
    url = f"/v1/records/{rid}/audio"
    before = len(accesses(local, rid))
    for spec in ("bytes=0-1,5-9", "items=0-1", "bytes=9-3", "bytes=x-"):
        resp = api.get(url, headers={**reader, "Range": spec})
        assert resp.status_code == 200 and resp.content == data, spec
    suffix = api.get(url, headers={**reader, "Range": f"bytes=-{total + 10}"})
    assert suffix.status_code == 206 and suffix.content == data
    assert len(accesses(local, rid)) == before + 5  # one entry per request
    for spec in ("bytes=-0", f"bytes={total + 1}-{total + 9}"):
        resp = api.get(url, headers={**reader, "Range": spec})
        assert_problem(resp, 416, "range-not-satisfiable")
    assert len(accesses(local, rid)) == before + 5  # a refused range opens nothing


def test_large_clip_streams_and_seeks_in_pieces(local, api, tmp_path):
    from vault.synth import write_large_wav

    path = write_large_wav(tmp_path / "long.wav", 2_500_000)  # > 2 upload and range pieces
    data = path.read_bytes()
    assert upload(api, auth(local, "dialer"), path, order_meta(1)).status_code == 201
    rid = local.find(client=CLIENT)[0].record_id
    reader = auth(local, "client")
    url = f"/v1/records/{rid}/audio"
    assert api.get(url, headers=reader).content == data
    for lo, hi in [(1000, len(data) - 1), (1024 * 1024 - 7, 2 * 1024 * 1024 + 7)]:
        part = api.get(url, headers={**reader, "Range": f"bytes={lo}-{hi}"})
        assert part.status_code == 206
        assert part.headers["content-length"] == str(hi - lo + 1)
        assert part.content == data[lo : hi + 1]


def test_search(local, api, sealed, tmp_path):
    rid, _data, reader = sealed
    local.add_client(OTHER, "Acme AT")
    hits = api.post("/v1/records/search", json={"phone": "+49 151 12345678"}, headers=reader)
    assert hits.status_code == 200
    assert [h["record_id"] for h in hits.json()] == [rid]
    assert not any(value in hits.text for value in PII)
    assert api.post("/v1/records/search", json={}, headers=reader).json()[0]["record_id"] == rid
    window = {"since": "2026-11-20T09:30:00Z", "until": "2026-11-20T09:31:00", "limit": 1}
    assert len(api.post("/v1/records/search", json=window, headers=reader).json()) == 1
    later = {"since": "2026-11-21T00:00:00+01:00"}
    assert api.post("/v1/records/search", json=later, headers=reader).json() == []
    foreign = auth(local, "client", client=OTHER)
    assert api.post("/v1/records/search", json={}, headers=foreign).json() == []

    bad = api.post("/v1/records/search", json={"phone": "0151 12345678"}, headers=reader)
    assert [e["field"] for e in assert_problem(bad, 422, "invalid-request")["errors"]] == ["phone"]
    # international form, but no valid number: no sealed record can have it
    assert api.post("/v1/records/search", json={"phone": "+0000"}, headers=reader).json() == []
    for body in (
        {"limit": 0},
        {"limit": 1001},
        {"limit": "5"},
        {"since": "yesterday"},
        {"until": 0},
        {"colour": "red"},
    ):
        assert_problem(
            api.post("/v1/records/search", json=body, headers=reader), 422, "invalid-request"
        )
    denied = api.post("/v1/records/search", json={}, headers=auth(local, "dialer"))
    assert_problem(denied, 403, "permission-denied")
    # not the record named "search": the path allows POST only
    other = api.get("/v1/records/search", headers=reader)
    assert_problem(other, 405, "method-not-allowed")
    assert other.headers["allow"] == "POST"


def test_bundle_download_verifies(local, api, sealed, tmp_path, monkeypatch):
    rid, _data, reader = sealed
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    resp = api.get(f"/v1/records/{rid}/bundle", headers=reader)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/zip"
    assert f'filename="{rid}.zip"' in resp.headers["content-disposition"]
    out = tmp_path / "bundle.zip"
    out.write_bytes(resp.content)
    verdict = verify_bundle(out, local.log_key())
    assert verdict.ok, verdict.summary()
    assert accesses(local, rid)[-1] == {
        "principal": person(reader),
        "token": token_id(reader),
        "what": "bundle",
    }
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary bundle is gone


def test_bundle_download_in_english_without_pdf(local, api, sealed, tmp_path):
    rid, _data, reader = sealed
    resp = api.get(f"/v1/records/{rid}/bundle?language=en&pdf=false", headers=reader)
    assert resp.status_code == 200
    out = tmp_path / "bundle.zip"
    out.write_bytes(resp.content)
    assert verify_bundle(out, local.log_key()).ok
    with zipfile.ZipFile(out) as zf:
        assert "report.pdf" not in zf.namelist()
        assert "Evidence report for record" in zf.read("report.html").decode()
    assert api.get(f"/v1/records/{rid}/bundle?language=fr", headers=reader).status_code == 422


def test_shredded_record_is_gone(local, api, sealed):
    rid, _data, reader = sealed
    local.erase(record_id=rid, request_ref="REQ-7")
    for suffix in ("", "/audio", "/bundle"):
        body = assert_problem(
            api.get(f"/v1/records/{rid}{suffix}", headers=reader), 410, "shredded"
        )
        assert "crypto-shredded" in body["detail"]
    # the receipt stays: the log still proves what was sealed and when
    assert api.get(f"/v1/records/{rid}/receipt", headers=reader).status_code == 200
    hit = api.post("/v1/records/search", json={}, headers=reader).json()
    assert hit[0]["state"] == "shredded"


# --- disputes and holds ---------------------------------------------------------------------


def test_disputes_holds_and_four_eyes_release(local, api, sealed):
    rid, _data, reader = sealed
    local.add_client(OTHER, "Acme AT")
    alice, bob = auth(local, "admin", None, handle="alice"), auth(local, "admin", handle="bob")
    alice_again = auth(local, "admin", None, handle="alice")  # her second token
    outsider = auth(local, "admin", client=OTHER)
    reason = {"case_ref": "CASE-2026/17", "reason": "Kunde Max Mustermann bestreitet den Auftrag"}

    dispute = api.post(f"/v1/records/{rid}/disputes", json=reason, headers=reader)
    assert dispute.status_code == 201
    assert dispute.json()["kind"] == "dispute"
    assert dispute.json()["placed_by"] == person(reader)
    assert_problem(
        api.post(f"/v1/records/{rid}/holds", json=reason, headers=reader), 403, "permission-denied"
    )
    assert_problem(
        api.post(f"/v1/records/{rid}/holds", json=reason, headers=outsider), 404, "not-found"
    )
    legal = api.post(f"/v1/records/{rid}/holds", json=reason, headers=alice)
    assert legal.status_code == 201 and legal.json()["kind"] == "legal"
    hold_id = legal.json()["id"]

    listed = api.get("/v1/holds", params={"record": rid}, headers=reader)
    assert {h["kind"] for h in listed.json()} == {"dispute", "legal"}
    assert api.get("/v1/holds", headers=outsider).json() == []
    assert_problem(api.get("/v1/holds", headers=auth(local, "dialer")), 403, "permission-denied")

    release = f"/v1/holds/{hold_id}/release"
    assert_problem(api.post(release, headers=reader), 403, "permission-denied")
    assert_problem(api.post(release, headers=outsider), 404, "not-found")
    first = api.post(release, headers=alice)
    assert first.status_code == 200
    assert first.json()["release_requested_by"] == "person:alice"
    assert first.json()["active"] is True
    assert_problem(api.post(release, headers=alice), 403, "permission-denied")  # four eyes
    # a second token of the same person is the same pair of eyes
    refused = assert_problem(api.post(release, headers=alice_again), 403, "permission-denied")
    assert "four-eyes" in refused["detail"]
    second = api.post(release, headers=bob)
    assert second.status_code == 200
    assert second.json()["released_by"] == "person:bob"
    assert second.json()["active"] is False
    assert_problem(api.post(release, headers=bob), 409, "conflict")
    assert [h["kind"] for h in api.get("/v1/holds", headers=alice).json()] == ["dispute"]
    assert_problem(api.post("/v1/holds/hnope/release", headers=alice), 404, "not-found")

    for body in (
        {"case_ref": "a case with spaces", "reason": "x"},
        {"case_ref": "C-1"},
        {"case_ref": "C-1", "reason": "  "},
    ):
        resp = api.post(f"/v1/records/{rid}/disputes", json=body, headers=reader)
        assert_problem(resp, 422, "invalid-request")
    assert [h.kind for h in local.holds(client=CLIENT)] == ["dispute"]


# --- rough edges --------------------------------------------------------------------------


def test_search_without_a_body_means_no_filters(local, api, sealed):
    rid, _, reader = sealed
    # no body and no Content-Type at all (curl -X POST)
    bare = api.post("/v1/records/search", headers=reader)
    assert bare.status_code == 200, bare.text
    assert [h["record_id"] for h in bare.json()] == [rid]
    json_type = {**reader, "Content-Type": "application/json"}
    empty = api.post("/v1/records/search", content=b"", headers=json_type)
    assert empty.status_code == 200 and empty.json() == bare.json()
    untyped = api.post("/v1/records/search", content=b"{}", headers=reader)
    assert untyped.status_code == 200 and untyped.json() == bare.json()
    # still role-checked and still validated when there is a body
    assert_problem(
        api.post("/v1/records/search", headers=auth(local, "dialer")), 403, "permission-denied"
    )
    bad = api.post("/v1/records/search", json={"limit": 0}, headers=reader)
    assert assert_problem(bad, 422, "invalid-request")["errors"][0]["field"] == "limit"


def test_malformed_json_is_a_body_level_error(local, api, sealed):
    rid, _, reader = sealed
    json_type = {"Content-Type": "application/json"}
    broken = b'{"agent": "agent-042", '
    resp = api.post("/v1/records/search", content=broken, headers={**reader, **json_type})
    body = assert_problem(resp, 422, "invalid-request")
    assert body["errors"] == [{"field": "body", "message": "request body is not valid JSON"}]
    admin = auth(local, "admin")
    resp = api.post(f"/v1/records/{rid}/holds", content=b"{", headers={**admin, **json_type})
    body = assert_problem(resp, 422, "invalid-request")
    assert body["errors"] == [{"field": "body", "message": "request body is not valid JSON"}]


def test_not_found_hints_give_http_advice(local, api, sealed):
    _, _, reader = sealed
    for suffix in ("", "/audio", "/receipt"):
        body = assert_problem(
            api.get(f"/v1/records/r-missing{suffix}", headers=reader), 404, "not-found"
        )
        assert "POST /v1/records/search" in body["hint"] and "evidence-vault" not in body["hint"]
    admin = auth(local, "admin")
    body = assert_problem(api.post("/v1/holds/h-missing/release", headers=admin), 404, "not-found")
    assert "GET /v1/holds" in body["hint"] and "evidence-vault" not in body["hint"]


def test_http_hint_rewrites_cli_advice():
    from vault.http.problems import http_hint

    assert http_hint("search with `evidence-vault find`") == "search with `POST /v1/records/search`"
    assert http_hint("another admin runs `evidence-vault person approve ops-1`") == (
        "another admin runs `POST /v1/persons/ops-1/approve`"
    )
    # what only the operator can do stays, marked as theirs
    assert http_hint("run `evidence-vault verify`") == (
        "ask the vault's operator: run `evidence-vault verify`"
    )
    assert http_hint("check 'client'") == "check 'client'"
    assert http_hint(None) is None


def test_receipt_wait_returns_once_a_checkpoint_covers_the_record(
    local, api, tmp_path, monkeypatch
):
    import threading

    from vault.services import receipts

    dialer = auth(local, "dialer")
    upload(api, dialer, clip(tmp_path, seed=1), order_meta(1))  # checkpointed at once
    receipt = upload(api, dialer, clip(tmp_path, seed=2), order_meta(2)).json()
    assert receipt["inclusion_proof"] is None
    url = f"/v1/records/{receipt['record_id']}/receipt"
    # without wait (or wait=0): the answer at once, still without a proof
    assert api.get(url, headers=dialer).json()["inclusion_proof"] is None
    assert api.get(url, params={"wait": 0}, headers=dialer).json()["inclusion_proof"] is None

    # the checkpoint is signed only after the waiting request has looked once and found none
    looked, answers = threading.Event(), []
    original = receipts.receipt_document

    def watched(ctx, r):
        body = original(ctx, r)
        answers.append(body["inclusion_proof"] is not None)
        looked.set()
        return body

    monkeypatch.setattr(receipts, "receipt_document", watched)

    def sign_when_looked():
        if looked.wait(30):
            local.checkpoint(CLIENT)

    signer = threading.Thread(target=sign_when_looked)
    signer.start()
    got = api.get(url, params={"wait": 60}, headers=dialer)
    signer.join()
    assert got.status_code == 200, got.text
    proof = got.json()["inclusion_proof"]
    assert answers[0] is False and answers[-1] is True
    assert proof["seq"] == receipt["seq"] and proof["leaf_hash"] == receipt["entry_hash"]
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        proof["seq"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root_hash"]),
    )


def test_receipt_wait_bounds_and_timeout(local, api, tmp_path):
    dialer = auth(local, "dialer")
    upload(api, dialer, clip(tmp_path, seed=1), order_meta(1))
    receipt = upload(api, dialer, clip(tmp_path, seed=2), order_meta(2)).json()
    url = f"/v1/records/{receipt['record_id']}/receipt"
    for bad in ("-1", "61", "soon"):
        body = assert_problem(
            api.get(url, params={"wait": bad}, headers=dialer), 422, "invalid-request"
        )
        assert body["errors"][0]["field"] == "query.wait"
    # no checkpoint comes within the wait: the receipt without a proof, not an error
    got = api.get(url, params={"wait": 1}, headers=dialer)
    assert got.status_code == 200 and got.json()["inclusion_proof"] is None
    # the record is looked up before any waiting: a missing one answers at once
    missing = api.get("/v1/records/r-missing/receipt", params={"wait": 60}, headers=dialer)
    assert_problem(missing, 404, "not-found")


# --- trips to the thread pool -------------------------------------------------------------


@pytest.fixture
def trips(monkeypatch) -> list[str]:
    """The names of the functions the app hands to the thread pool while it is attached."""
    import anyio.to_thread

    seen: list[str] = []
    real = anyio.to_thread.run_sync

    async def counting(func, *args, **kwargs):
        named = func
        while isinstance(named, functools.partial):  # run_in_threadpool wraps in one
            named = named.func
        seen.append(named.__name__)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return seen


def test_an_upload_and_a_receipt_take_the_fewest_trips_to_the_thread_pool(
    local, api, tmp_path, trips
):
    """Each trip waits for the interpreter lock behind the uploads being sealed: reading
    the vault's context is none, the caller's token one, the body's checks one, each MiB of
    the body one, the sealing one; a receipt, the token and the receipt."""
    headers = auth(local, "dialer")
    path = clip(tmp_path, seconds=3.0)  # under 1 MiB: one spool write
    resp = upload(api, headers, path, order_meta(1), key="trip-1")
    assert resp.status_code == 201
    assert trips == ["get_principal", "_before_the_body", "write_all", "_seal_received"]
    trips.clear()
    assert api.get(f"/v1/records/{resp.json()['record_id']}/receipt", headers=headers).is_success
    assert trips == ["get_principal", "_receipt_now"]
