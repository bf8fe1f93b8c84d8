"""The HTTP API of the log (auditors) and of clients, campaigns and tokens (admins)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.vaults import CLIENT, clip, make_vault, order_meta, person_token
from vault.http.app import create_app
from vault.ledger.checkpoint import Checkpoint, open_note, parse_verifier_key
from vault.ledger.entry import entry_hash
from vault.ledger.merkle import verify_consistency, verify_inclusion
from vault.ledger.offline import audit_export
from vault.services.tokens import authenticate

OTHER, OTHER_CAMPAIGN = "other-co", "winter-2026"
PII = ("+4915112345678", "Mustermann", "1980-01-31", "10115")
PROBLEM = "application/problem+json"

LOG_PATHS = [
    "/v1/logs/{c}",
    "/v1/logs/{c}/entries",
    "/v1/logs/{c}/checkpoint",
    "/v1/logs/{c}/proofs/inclusion?seq=0",
    "/v1/logs/{c}/proofs/consistency?from=1",
    "/v1/logs/{c}/export",
    "/v1/logs/{c}/checkpoints/1/timestamps",
]


def problem(resp, status: int, kind: str | None = None) -> dict:
    """Assert an RFC 9457 answer of ``status`` (and ``kind``); return its body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    if kind:
        assert body["type"] == f"/problems/{kind}"
    if status == 401:
        assert resp.headers["www-authenticate"].startswith("Bearer")
    return body


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


#: the client's log: 7 sealed records, then 4 persons and a token of each (8 entries)
SIZE = 15


class Env:
    """A vault with two clients, their logs and a token for each role."""

    def __init__(self, home: Path, tmp: Path) -> None:
        self.vault = v = make_vault(home)
        self.ctx = v.context
        v.add_client(OTHER, "Other Co")
        v.add_campaign(OTHER, OTHER_CAMPAIGN, retention_days=365)
        for n in range(3):
            v.ingest(clip(tmp, seed=n), order_meta(n))
        self.cp1 = v.checkpoint(CLIENT)
        for n in range(3, 7):
            v.ingest(clip(tmp, seed=n), order_meta(n))
        v.ingest(clip(tmp, seed=9), order_meta(9, client=OTHER, campaign=OTHER_CAMPAIGN))
        self.http = TestClient(create_app(self.ctx))
        self.tok = {  # each a person.created and a token.created entry in its client's log
            "admin": self.token("admin", None),
            "tenant-admin": self.token("admin", CLIENT),
            "auditor": self.token("auditor", CLIENT),
            "other-auditor": self.token("auditor", OTHER),
            "dialer": self.token("dialer", CLIENT),
            "client": self.token("client", CLIENT),
        }
        self.cp2 = v.checkpoint(CLIENT)
        v.checkpoint(OTHER)

    def token(self, role: str, client: str | None, **kw) -> str:
        return person_token(self.ctx, role, client, **kw)[1]

    def person(self, handle: str, role: str, client: str | None) -> str:
        """Person ``handle`` (made by the operator the first time)."""
        if handle not in {p.handle for p in self.vault.persons()}:
            self.vault.add_person(handle, role=role, client=client)
        return handle

    def get(self, path: str, who: str = "auditor", **kw):
        return self.http.get(path, headers=bearer(self.tok[who]), **kw)

    def post(self, path: str, body: dict, who: str = "admin"):
        return self.http.post(path, json=body, headers=bearer(self.tok[who]))

    def delete(self, path: str, who: str = "admin"):
        return self.http.delete(path, headers=bearer(self.tok[who]))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("http-ledger")
    e = Env(tmp / "v", tmp)
    yield e
    e.http.close()
    e.vault.close()


@pytest.fixture(scope="module")
def admin_env(tmp_path_factory: pytest.TempPathFactory):
    """A vault of its own for the tests that create persons and tokens (log entries)."""
    tmp = tmp_path_factory.mktemp("http-admin")
    e = Env(tmp / "v", tmp)
    yield e
    e.http.close()
    e.vault.close()


def exported(env: Env, tmp: Path, client: str = CLIENT) -> list[dict]:
    out = env.vault.export_log(client, tmp / f"{client}.jsonl")
    return [json.loads(line) for line in out.read_text().splitlines()]


# -- the log ------------------------------------------------------------------------------


def test_log_info(env: Env) -> None:
    r = env.get(f"/v1/logs/{CLIENT}")
    assert r.status_code == 200
    body = r.json()
    assert body["origin"].endswith("/" + CLIENT)
    assert body["size"] == env.cp2.size == SIZE
    assert body["verifier_key"] == env.vault.log_key()


def test_entries_page_through_the_log_as_exported(env: Env, tmp_path: Path) -> None:
    want = [(x["seq"], x["entry"]) for x in exported(env, tmp_path) if x["kind"] == "entry"]
    got, start, pages = [], 0, 0
    while start is not None:
        r = env.get(f"/v1/logs/{CLIENT}/entries", params={"start": start, "limit": 3})
        assert r.status_code == 200
        page = r.json()
        assert page["size"] == len(want) and page["start"] == start
        for item in page["entries"]:
            assert item["hash"] == entry_hash(item["entry"].encode())
            got.append((item["seq"], item["entry"]))
        start, pages = page["next"], pages + 1
    assert got == want and pages == 5
    whole = env.get(f"/v1/logs/{CLIENT}/entries", params={"limit": 1000}).json()
    assert [(e["seq"], e["entry"]) for e in whole["entries"]] == want and whole["next"] is None
    assert not any(p in json.dumps(whole) for p in PII)


@pytest.mark.parametrize(
    "params",
    [{"limit": 1001}, {"limit": 0}, {"start": -1}, {"start": "x"}, {"start": 2**64}],
)
def test_entries_bad_paging_is_a_422_problem(env: Env, params: dict) -> None:
    body = problem(env.get(f"/v1/logs/{CLIENT}/entries", params=params), 422, "invalid-request")
    assert body["errors"] and body["errors"][0]["field"].startswith("query.")


def test_entries_past_the_end_are_an_empty_page(env: Env) -> None:
    page = env.get(f"/v1/logs/{CLIENT}/entries", params={"start": 2**62}).json()
    assert page["entries"] == [] and page["next"] is None and page["size"] == SIZE


def test_checkpoint_verifies_with_the_log_key(env: Env) -> None:
    body = env.get(f"/v1/logs/{CLIENT}/checkpoint").json()
    text, signers = open_note(body["note"].encode(), [parse_verifier_key(env.vault.log_key())])
    cp = Checkpoint.parse_body(text)
    assert len(signers) == 1
    assert cp.origin == env.get(f"/v1/logs/{CLIENT}").json()["origin"]
    assert (
        (cp.size, cp.root.hex()) == (body["size"], body["root_hash"]) == (SIZE, env.cp2.root_hash)
    )


def test_inclusion_proofs_verify(env: Env) -> None:
    entries = env.get(f"/v1/logs/{CLIENT}/entries").json()["entries"]
    key = env.vault.log_key()
    for tree_size in (None, env.cp1.size, env.cp2.size):
        for seq in range(tree_size or env.cp2.size):
            params = {"seq": seq} | ({"tree_size": tree_size} if tree_size else {})
            r = env.get(f"/v1/logs/{CLIENT}/proofs/inclusion", params=params)
            assert r.status_code == 200, r.text
            p = r.json()
            assert p["leaf_hash"] == entries[seq]["hash"]
            assert p["tree_size"] == (tree_size or env.cp2.size)
            assert verify_inclusion(
                bytes.fromhex(p["leaf_hash"]),
                seq,
                p["tree_size"],
                [bytes.fromhex(h) for h in p["hashes"]],
                bytes.fromhex(p["root_hash"]),
            )
            text, _ = open_note(p["checkpoint"].encode(), [parse_verifier_key(key)])
            assert Checkpoint.parse_body(text).root.hex() == p["root_hash"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"seq": SIZE}, 404),  # not in the latest checkpoint
        ({"seq": 3, "tree_size": 3}, 404),
        ({"seq": 0, "tree_size": 5}, 404),  # no checkpoint of that size
        ({"seq": 2**63 - 1}, 404),
        ({"seq": 0, "tree_size": 2**63 - 1}, 404),
        ({"seq": -1}, 422),
        ({"seq": 0, "tree_size": 0}, 422),
        ({"seq": 2**63}, 422),
        ({}, 422),
    ],
)
def test_inclusion_out_of_range_is_a_problem(env: Env, params: dict, status: int) -> None:
    problem(env.get(f"/v1/logs/{CLIENT}/proofs/inclusion", params=params), status)


def test_consistency_proofs_verify(env: Env) -> None:
    for params, old, new in [
        ({"from": 3, "to": 7}, 3, 7),
        ({"from": 3}, 3, SIZE),
        ({"from": 1, "to": 6}, 1, 6),
        ({"from": 4, "to": 4}, 4, 4),
    ]:
        r = env.get(f"/v1/logs/{CLIENT}/proofs/consistency", params=params)
        assert r.status_code == 200, r.text
        p = r.json()
        assert (p["old_size"], p["new_size"]) == (old, new)
        assert verify_consistency(
            old,
            new,
            bytes.fromhex(p["old_root"]),
            bytes.fromhex(p["new_root"]),
            [bytes.fromhex(h) for h in p["hashes"]],
        )
    full = env.get(f"/v1/logs/{CLIENT}/proofs/consistency", params={"from": 3}).json()
    assert (full["old_root"], full["new_root"]) == (env.cp1.root_hash, env.cp2.root_hash)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"from": 5, "to": 3}, 404),
        ({"from": 1, "to": SIZE + 1}, 404),
        ({"from": SIZE + 1}, 404),
        ({"from": 2**63 - 1}, 404),
        ({"from": 0}, 422),
        ({"to": 3}, 422),
        ({"from": 1, "to": -1}, 422),
    ],
)
def test_consistency_out_of_range_is_a_problem(env: Env, params: dict, status: int) -> None:
    problem(env.get(f"/v1/logs/{CLIENT}/proofs/consistency", params=params), status)


def test_export_streams_the_cli_export_and_audits_clean(env: Env, tmp_path: Path) -> None:
    with env.http.stream(
        "GET", f"/v1/logs/{CLIENT}/export", headers=bearer(env.tok["auditor"])
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = list(r.iter_lines())
    assert [json.loads(x) for x in lines if x] == exported(env, tmp_path)
    trusted = env.get(f"/v1/logs/{CLIENT}/checkpoint").json()["note"].encode()
    report = audit_export(lines, parse_verifier_key(env.vault.log_key()), [trusted])
    assert report.clean, report.to_dict()
    # sizes 1 (the first ingest's cadence checkpoint), 3 and SIZE
    assert (report.entries, report.checkpoints, report.trusted) == (SIZE, 3, 1)
    assert not any(p in "\n".join(lines) for p in PII)


def test_log_keys_for_every_role(env: Env) -> None:
    for who in env.tok:
        r = env.get("/v1/log-keys", who)
        assert r.status_code == 200
        assert r.json() == [{"generation": 1, "verifier_key": env.vault.log_key(), "active": True}]
    problem(env.http.get("/v1/log-keys"), 401, "unauthenticated")


# -- who may see what ---------------------------------------------------------------------


def test_another_tenants_log_looks_missing(env: Env) -> None:
    for path in LOG_PATHS:
        theirs = problem(env.get(path.format(c=OTHER)), 404, "not-found")
        missing = problem(env.get(path.format(c="no-such-co")), 404, "not-found")
        assert set(theirs) == set(missing)
        assert theirs == {**missing, "detail": missing["detail"].replace("no-such-co", OTHER)}
        # a global admin sees the same for a missing client, and reads every log
        assert problem(env.get(path.format(c="no-such-co"), "admin"), 404) == missing
        assert env.get(path.format(c=OTHER), "admin").status_code == 200
        assert env.get(path.format(c=OTHER), "other-auditor").status_code == 200
        assert env.get(path.format(c=CLIENT), "tenant-admin").status_code == 200


@pytest.mark.parametrize("who", ["dialer", "client"])
def test_dialer_and_client_roles_may_not_read_the_log(env: Env, who: str) -> None:
    for path in LOG_PATHS:
        problem(env.get(path.format(c=CLIENT), who), 403, "permission-denied")
    for path in ["/v1/clients", f"/v1/clients/{CLIENT}/campaigns", "/v1/tokens"]:
        problem(env.get(path, who), 403, "permission-denied")
        problem(env.get(path, "auditor"), 403, "permission-denied")
    problem(env.post("/v1/tokens", {"person": "anyone"}, who), 403, "permission-denied")
    body = {"handle": "x", "role": "admin"}
    problem(env.post("/v1/persons", body, who), 403, "permission-denied")


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("evt1_" + "A" * 43), bearer("not-a-token"), {"Authorization": "Basic eDp5"}],
)
def test_unauthenticated_is_a_401_problem(env: Env, headers: dict) -> None:
    for path in [*(p.format(c=CLIENT) for p in LOG_PATHS), "/v1/clients", "/v1/tokens"]:
        problem(env.http.get(path, headers=headers), 401, "unauthenticated")
    problem(env.http.post("/v1/clients", json={"id": "x"}, headers=headers), 401)
    problem(env.http.delete("/v1/tokens/tk00", headers=headers), 401)


# -- admin --------------------------------------------------------------------------------


def test_global_admin_creates_a_client_campaign_and_a_working_token(admin_env: Env) -> None:
    env = admin_env  # persons and tokens are logged: the log tests' vault stays as it is
    r = env.post("/v1/clients", {"id": "acme", "display_name": "ACME", "retention_days": 400})
    assert r.status_code == 201
    assert r.json() | {"created_at": ""} == {
        "id": "acme",
        "display_name": "ACME",
        "retention_days": 400,
        "created_at": "",
    }
    problem(env.post("/v1/clients", {"id": "acme"}), 409, "conflict")
    body = problem(env.post("/v1/clients", {"id": "Not A Slug"}), 422, "invalid-request")
    assert body["errors"][0]["field"] == "id"
    problem(env.post("/v1/clients", {"id": "x", "retention_days": 0}), 422)
    assert "acme" in [c["id"] for c in env.get("/v1/clients", "admin").json()]

    r = env.post("/v1/clients/acme/campaigns", {"name": "spring", "retention_basis": "consent-use"})
    assert r.status_code == 201
    assert r.json() == {
        "client": "acme",
        "name": "spring",
        "retention_days": 400,
        "retention_basis": "consent-use",
        "client_default": True,
        "require_source_signature": False,
    }
    problem(env.post("/v1/clients/acme/campaigns", {"name": "spring"}), 409, "conflict")
    problem(env.post("/v1/clients/acme/campaigns", {"name": "x", "retention_basis": "y"}), 422)
    problem(env.post("/v1/clients/nope/campaigns", {"name": "x"}), 404, "not-found")
    problem(env.get("/v1/clients/nope/campaigns", "admin"), 404, "not-found")
    assert [c["name"] for c in env.get("/v1/clients/acme/campaigns", "admin").json()] == ["spring"]

    r = env.post("/v1/persons", {"handle": "kpmg-1", "role": "auditor", "client": "acme"})
    assert r.status_code == 201 and r.json()["status"] == "active"
    r = env.post("/v1/tokens", {"person": "kpmg-1", "label": "kpmg"})
    assert r.status_code == 201
    created = r.json()
    assert (created["person"], created["role"], created["client"]) == ("kpmg-1", "auditor", "acme")
    assert created["token"].startswith("evt1_") and created["revoked_at"] is None
    auditor = bearer(created["token"])
    # the auditor reads who made them, and who gave them this token
    made = env.http.get("/v1/logs/acme/entries", headers=auditor).json()["entries"]
    bodies = [(json.loads(e["entry"])["type"], json.loads(e["entry"])["body"]) for e in made]
    admin = authenticate(env.ctx, env.tok["admin"]).name
    assert bodies == [
        ("person.created", {"person": "kpmg-1", "role": "auditor", "by": admin, "approved": True}),
        (
            "token.created",
            {"token": created["id"], "person": "kpmg-1", "role": "auditor", "by": admin},
        ),
    ]
    assert "kpmg" not in json.dumps(bodies).replace("kpmg-1", "")  # the label stays out
    signed = env.http.get("/v1/logs/acme/checkpoint", headers=auditor).json()
    assert signed["size"] == 1  # the cadence signs a log's first entry at once
    problem(env.http.get(f"/v1/logs/{CLIENT}", headers=auditor), 404)

    listed = env.get("/v1/tokens", "admin", params={"client": "acme"}).json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert all("token" not in t for t in env.get("/v1/tokens", "admin").json())
    assert created["token"] not in env.get("/v1/tokens", "admin").text

    r = env.delete(f"/v1/tokens/{created['id']}")
    assert r.status_code == 200 and r.json()["revoked_at"]
    problem(env.http.get("/v1/logs/acme", headers=auditor), 401, "unauthenticated")
    assert env.delete(f"/v1/tokens/{created['id']}").json() == r.json()  # idempotent
    problem(env.delete("/v1/tokens/tk-nope"), 404, "not-found")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("persons", {"handle": "p1", "role": "root", "client": CLIENT}, 422),
        ("persons", {"handle": "p2", "role": "auditor"}, 422),  # needs a client
        ("persons", {"handle": "p3", "role": "auditor", "client": "no-such-co"}, 404),
        ("persons", {"handle": "Not A Handle", "role": "auditor", "client": CLIENT}, 422),
        ("persons", {"handle": "p4", "role": "auditor", "client": CLIENT}, 201),
        ("tokens", {"person": "aud", "campaign": "x"}, 422),
        ("tokens", {"person": "dia", "campaign": "no-such"}, 404),
        ("tokens", {"person": "no-such-person"}, 404),
        ("tokens", {"person": "aud", "expires_at": "2020-01-01T00:00:00Z"}, 422),
        ("tokens", {"person": "aud", "expires_at": "2099-01-01T00:00:00"}, 422),
        ("tokens", {"role": "auditor", "client": CLIENT}, 422),  # tokens belong to persons
    ],
)
def test_bad_person_and_token_requests_are_problems(
    admin_env: Env, path: str, body: dict, status: int
) -> None:
    env = admin_env
    env.person("aud", "auditor", CLIENT)
    env.person("dia", "dialer", CLIENT)
    r = env.post(f"/v1/{path}", body)
    if status == 201:
        assert r.status_code == 201, r.text
        return
    problem(r, status, "invalid-request" if status == 422 else None)


def test_tenant_admin_stays_in_its_client(admin_env: Env) -> None:
    env = admin_env
    who = "tenant-admin"
    assert [c["id"] for c in env.get("/v1/clients", who).json()] == [CLIENT]
    problem(env.post("/v1/clients", {"id": "mine"}, who), 403, "permission-denied")
    r = env.post(
        f"/v1/clients/{CLIENT}/campaigns", {"name": "by-tenant", "retention_days": 30}, who
    )
    assert r.status_code == 201 and r.json()["client_default"] is False
    names = [c["name"] for c in env.get(f"/v1/clients/{CLIENT}/campaigns", who).json()]
    assert "by-tenant" in names
    missing = problem(env.get("/v1/clients/no-such-co/campaigns", who), 404)
    theirs = problem(env.get(f"/v1/clients/{OTHER}/campaigns", who), 404)
    assert theirs == {**missing, "detail": missing["detail"].replace("no-such-co", OTHER)}
    problem(env.post(f"/v1/clients/{OTHER}/campaigns", {"name": "x"}, who), 404)

    # persons and tokens: only of its client, never a global admin
    theirs = env.person("other-aud", "auditor", OTHER)
    problem(env.post("/v1/tokens", {"person": theirs}, who), 404)
    body = {"handle": "t1", "role": "auditor", "client": OTHER}
    problem(env.post("/v1/persons", body, who), 404)
    problem(env.post("/v1/persons", {"handle": "t2", "role": "admin"}, who), 403)
    problem(env.post("/v1/persons", {"handle": "t3", "role": "admin", "client": None}, who), 403)
    assert theirs not in {p["handle"] for p in env.get("/v1/persons", who).json()}
    problem(env.get("/v1/persons", who, params={"client": OTHER}), 404)
    body = {"handle": "dialer-t", "role": "dialer", "client": CLIENT}
    r = env.post("/v1/persons", body, who)
    assert r.status_code == 201 and r.json()["status"] == "active"
    r = env.post("/v1/tokens", {"person": "dialer-t"}, who)
    assert r.status_code == 201 and r.json()["client"] == CLIENT
    own = r.json()

    listed = env.get("/v1/tokens", who).json()
    assert listed and {t["client"] for t in listed} == {CLIENT}
    assert own["id"] in [t["id"] for t in listed]
    problem(env.get("/v1/tokens", who, params={"client": OTHER}), 404)

    # it cannot revoke another client's token, nor a global one
    for t in env.get("/v1/tokens", "admin").json():
        if t["client"] != CLIENT:
            problem(env.delete(f"/v1/tokens/{t['id']}", who), 404, "not-found")
    assert env.get("/v1/clients", "admin").status_code == 200
    assert env.get(f"/v1/logs/{OTHER}", "other-auditor").status_code == 200
    assert env.delete(f"/v1/tokens/{own['id']}", who).status_code == 200


def test_tenant_campaign_needs_a_rule(env: Env) -> None:
    # the client has no default: a campaign without its own period is invalid input
    body = problem(
        env.post(f"/v1/clients/{CLIENT}/campaigns", {"name": "no-rule"}, "tenant-admin"),
        422,
        "invalid-request",
    )
    assert body["detail"].startswith("the request is invalid: retention_days")
    assert body["errors"] == [{"field": "retention_days", "message": body["errors"][0]["message"]}]
    r = env.post(
        f"/v1/clients/{CLIENT}/campaigns", {"name": "ruled", "retention_days": 90}, "tenant-admin"
    )
    assert r.status_code == 201 and r.json()["retention_days"] == 90


def test_expired_token_is_rejected(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    now = env.ctx.clock()
    secret = env.token("auditor", CLIENT, expires_at=now + timedelta(hours=1))
    assert env.http.get(f"/v1/logs/{CLIENT}", headers=bearer(secret)).status_code == 200
    monkeypatch.setattr(env.ctx, "clock", lambda: now + timedelta(hours=2))
    body = problem(env.http.get(f"/v1/logs/{CLIENT}", headers=bearer(secret)), 401)
    assert "expired" in body["detail"]


def test_openapi_documents_problems_and_ndjson(env: Env) -> None:
    doc = env.http.get("/openapi.json").json()
    mine = {p: ops for p, ops in doc["paths"].items() if p.startswith(("/v1/logs", "/v1/log-"))}
    mine |= {p: ops for p, ops in doc["paths"].items() if p.startswith(("/v1/clients", "/v1/tok"))}
    assert len(mine) == 15  # 11 + the checkpoint time-stamps + 3 of dialer keys
    for ops in mine.values():
        for op in ops.values():
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(resp["content"]) == [PROBLEM], (status, op["operationId"])
            assert "401" in op["responses"] and "422" in op["responses"]
    export = doc["paths"]["/v1/logs/{client}/export"]["get"]["responses"]["200"]
    assert list(export["content"]) == ["application/x-ndjson"]


# -- every backend ------------------------------------------------------------------------


def test_round_trip_on_every_backend(vault, tmp_path: Path) -> None:
    secret = person_token(vault.context, "auditor", CLIENT)[1]  # entries 0 and 1
    for n in range(3):
        vault.ingest(clip(tmp_path, seed=n), order_meta(n))
    cp = vault.checkpoint(CLIENT)
    with TestClient(create_app(vault.context)) as http:
        h = bearer(secret)
        assert http.get(f"/v1/logs/{CLIENT}", headers=h).json()["size"] == 5
        entries = http.get(f"/v1/logs/{CLIENT}/entries", headers=h).json()["entries"]
        assert http.get(f"/v1/logs/{CLIENT}/checkpoint", headers=h).json()["note"] == cp.note
        p = http.get(f"/v1/logs/{CLIENT}/proofs/inclusion?seq=2", headers=h).json()
        assert verify_inclusion(
            bytes.fromhex(entries[2]["hash"]),
            2,
            5,
            [bytes.fromhex(x) for x in p["hashes"]],
            bytes.fromhex(cp.root_hash),
        )
        lines = http.get(f"/v1/logs/{CLIENT}/export", headers=h).text.splitlines()
    report = audit_export(lines, parse_verifier_key(vault.log_key()), [cp.note.encode()])
    assert report.clean and report.entries == 5
