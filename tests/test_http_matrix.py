"""Every endpoint of the HTTP contract (docs/api.md) × every role × own / other tenant.

One vault (local store, SQLite) for the module, with two tenants that hold one record
each. The caller is always a token of ``telco-de`` (or a global admin); "other" aims the
same call at ``energy-at``'s resource, and must answer exactly like a call at a resource
that does not exist: same status, type, title and (ids aside) detail — and never a byte
of the other tenant's evidence.
"""

from __future__ import annotations

import base64
import itertools
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.vaults import CAMPAIGN, CLIENT, clip, make_vault, order_meta, person_token
from vault import Vault
from vault.client import VaultApiError, VaultClient, VaultConnectionError
from vault.db import write_session
from vault.db.models import ApiToken
from vault.errors import Conflict, NotFound, PermissionDenied, Unauthenticated
from vault.http.app import create_app
from vault.results import Receipt
from vault.sealing import SourceSigner, encode_public_key
from vault.services import holds as hold_service
from vault.services.tokens import revoke_token

OTHER, OTHER_CAMPAIGN = "energy-at", "switch-2026"
OTHER_PHONE, OTHER_ORDER = "+436641234567", "ORD-AT-777001"
OWN_PHONE = "+4915112345678"
MISSING_CLIENT = "no-such-client"
MISSING_RECORD = "01JZZZZZZZZZZZZZZZZZZZZZZZ"
MISSING_HOLD = "h01JZZZZZZZZZZZZZZZZZZZZZZZ"
MISSING_TOKEN = "tk0000000000000000"

#: strings that must never appear in the body of a refused request
PII = (
    OTHER_PHONE,
    OTHER_PHONE[1:],
    "6641234567",
    OTHER_ORDER,
    OWN_PHONE,
    OWN_PHONE[1:],
    "15112345678",
    "Mustermann",
    "1980-01-31",
    "10115",
)

#: the token roles under test: four per tenant, plus an admin of every client ("root")
ROLES = ("dialer", "client", "auditor", "admin", "root")


@dataclass
class World:
    vault: Vault
    http: TestClient
    tokens: dict[str, str]  # role -> secret (telco-de, or global for "root")
    other_tokens: dict[str, str]  # role -> secret (energy-at)
    dead: dict[tuple[str, str], str]  # (revoked|expired, role) -> secret
    record: dict[str, str]  # own / other / missing -> record id
    seq: dict[str, int]  # own / other -> the record's log seq
    size: dict[str, int]  # own / other -> checkpoint size at setup
    clip_bytes: bytes
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    def client_of(self, target: str) -> str:
        return {"own": CLIENT, "other": OTHER, "missing": MISSING_CLIENT}[target]

    def fresh(self) -> int:
        return next(self.counter)


@dataclass
class Call:
    method: str
    url: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: identifiers the caller named: a refusal's detail may repeat them, nothing else
    ids: tuple[str, ...] = ()


def _meta_header(meta: dict) -> str:
    raw = json.dumps(meta).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# -- how each endpoint is called, for a resource of "own", "other" or "missing" ------------
def _upload(w: World, target: str) -> Call:
    n = w.fresh()
    client = w.client_of(target)
    campaign = {"own": CAMPAIGN, "other": OTHER_CAMPAIGN, "missing": "none"}[target]
    meta = order_meta(n, client=client, campaign=campaign)
    if target == "other":
        meta.update(order_ref=OTHER_ORDER, callee={"phone": OTHER_PHONE})
    return Call(
        "POST",
        "/v1/records",
        content=w.clip_bytes,
        headers={"Content-Type": "audio/wav", "Evidence-Metadata": _meta_header(meta)},
        ids=(client, campaign),
    )


def _record_get(suffix: str) -> Callable[[World, str], Call]:
    def make(w: World, target: str) -> Call:
        rid = w.record[target]
        return Call("GET", f"/v1/records/{rid}{suffix}", ids=(rid,))

    return make


def _search(w: World, target: str) -> Call:
    body = {
        "own": {"order_ref": "ORD-2026-000001"},
        "other": {"order_ref": OTHER_ORDER, "phone": OTHER_PHONE},
        "missing": {"order_ref": "ORD-NONE-000000", "phone": "+4930123456789"},
    }[target]
    return Call("POST", "/v1/records/search", json=body)


def _hold_body(suffix: str) -> Callable[[World, str], Call]:
    def make(w: World, target: str) -> Call:
        rid = w.record[target]
        body = {"case_ref": f"CASE-{w.fresh()}", "reason": "matrix test"}
        return Call("POST", f"/v1/records/{rid}/{suffix}", json=body, ids=(rid,))

    return make


def _release(w: World, target: str) -> Call:
    if target == "missing":
        hold_id = MISSING_HOLD
    else:
        hold_id = hold_service.place_hold(
            w.vault.context,
            w.record[target],
            kind="legal",
            case_ref=f"LIT-{w.fresh()}",
            reason="matrix test",
            principal="admin:setup",
        ).id
    return Call("POST", f"/v1/holds/{hold_id}/release", ids=(hold_id,))


def _holds_of_record(w: World, target: str) -> Call:
    rid = w.record[target]
    return Call("GET", f"/v1/holds?record={rid}", ids=(rid,))


def _log(suffix: str) -> Callable[[World, str], Call]:
    def make(w: World, target: str) -> Call:
        client = w.client_of(target)
        seq = w.seq.get(target, 1)
        size = w.size.get(target, 2)
        url = f"/v1/logs/{client}{suffix}".format(seq=seq, size=size)
        return Call("GET", url, ids=(client,))

    return make


def _plain(method: str, url: str, body: Any = None) -> Callable[[World, str], Call]:
    return lambda w, target: Call(method, url, json=body)


def _add_client(w: World, target: str) -> Call:
    return Call("POST", "/v1/clients", json={"id": f"tenant-{w.fresh()}", "retention_days": 365})


def _campaigns(w: World, target: str) -> Call:
    client = w.client_of(target)
    return Call("GET", f"/v1/clients/{client}/campaigns", ids=(client,))


def _add_campaign(w: World, target: str) -> Call:
    client = w.client_of(target)
    body = {"name": f"campaign-{w.fresh()}", "retention_days": 365}
    return Call("POST", f"/v1/clients/{client}/campaigns", json=body, ids=(client,))


def _create_token(w: World, target: str) -> Call:
    handle = {"own": "matrix-client", "other": "matrix-other", "missing": "matrix-nobody"}[target]
    return Call("POST", "/v1/tokens", json={"person": handle}, ids=(handle,))


def _add_person(w: World, target: str) -> Call:
    client = w.client_of(target)
    body = {"handle": f"person-{w.fresh()}", "role": "client", "client": client}
    return Call("POST", "/v1/persons", json=body, ids=(client,))


def _revoke_token(w: World, target: str) -> Call:
    if target == "missing":
        token_id = MISSING_TOKEN
    else:
        token_id = person_token(w.vault.context, "client", w.client_of(target))[0].id
    return Call("DELETE", f"/v1/tokens/{token_id}", ids=(token_id,))


def _dialer_keys(w: World, target: str) -> Call:
    client = w.client_of(target)
    return Call("GET", f"/v1/clients/{client}/dialer-keys", ids=(client,))


def _register_dialer_key(w: World, target: str) -> Call:
    client = w.client_of(target)
    body = {"public_key": encode_public_key(SourceSigner.generate().public_key)}
    return Call("POST", f"/v1/clients/{client}/dialer-keys", json=body, ids=(client,))


def _revoke_dialer_key(w: World, target: str) -> Call:
    client = w.client_of(target)
    if target == "missing":
        key_id = "dk-" + "0" * 32
    else:
        public_key = encode_public_key(SourceSigner.generate().public_key)
        key_id = w.vault.register_dialer_key(client, public_key).key_id
    return Call("DELETE", f"/v1/clients/{client}/dialer-keys/{key_id}", ids=(client, key_id))


def _campaign_signatures(w: World, target: str) -> Call:
    client = w.client_of(target)
    campaign = CAMPAIGN if target == "own" else OTHER_CAMPAIGN
    url = f"/v1/clients/{client}/campaigns/{campaign}/require-source-signature"
    # required: false keeps the matrix's own uploads unsigned and accepted
    return Call("PUT", url, json={"required": False}, ids=(client, campaign))


# -- what a success looks like ----------------------------------------------------------
def _is_receipt(w: World, r: httpx.Response) -> None:
    body = r.json()
    assert body["client"] == CLIENT and body["record_id"] and body["entry_hash"]


def _is_summaries(w: World, r: httpx.Response) -> None:
    body = r.json()
    hits = body if isinstance(body, list) else body.get("records", body.get("items"))
    assert [h["record_id"] for h in hits] == [w.record["own"]]
    assert not any(p in r.text for p in PII), "search summaries must hold no PII"


def _is_document(w: World, r: httpx.Response) -> None:
    assert r.json()["evidence"]["order_ref"] == "ORD-2026-000001"


def _is_clip(w: World, r: httpx.Response) -> None:
    assert r.content == w.clip_bytes


def _is_zip(w: World, r: httpx.Response) -> None:
    assert zipfile.is_zipfile(BytesIO(r.content))


def _is_ndjson(w: World, r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert lines and not any(p in r.text for p in PII)


def _no_other_tenant(w: World, r: httpx.Response) -> None:
    assert OTHER not in r.text, "a tenant's listing shows another tenant"


@dataclass(frozen=True)
class Endpoint:
    name: str
    roles: frozenset[str]
    make: Callable[[World, str], Call]
    ok: tuple[int, ...] = (200,)
    #: what an allowed role sees for another tenant's resource (None: no such variant)
    other: int | None = 404
    check: Callable[[World, httpx.Response], None] | None = None

    def allows(self, role: str) -> bool:
        return role in self.roles or (role == "root" and "admin" in self.roles)


def _ep(name, roles, make, **kw) -> Endpoint:
    return Endpoint(name, frozenset(roles.split()), make, **kw)


ENDPOINTS = [
    _ep("upload", "dialer", _upload, ok=(201,), check=_is_receipt),
    _ep("receipt", "dialer client", _record_get("/receipt"), check=_is_receipt),
    _ep("search", "client", _search, other=200, check=_is_summaries),
    _ep("record", "client", _record_get(""), check=_is_document),
    _ep("audio", "client", _record_get("/audio"), check=_is_clip),
    _ep("bundle", "client", _record_get("/bundle"), check=_is_zip),
    _ep("dispute", "client", _hold_body("disputes"), ok=(201,)),
    _ep("hold", "admin", _hold_body("holds"), ok=(201,)),
    _ep("release", "admin", _release),
    _ep("holds", "client admin", _plain("GET", "/v1/holds"), other=None),
    # a filter of a list: another tenant's record lists nothing, as a missing one does
    _ep("holds-of-record", "client admin", _holds_of_record, other=200),
    _ep("log-info", "auditor admin", _log("")),
    _ep("log-entries", "auditor admin", _log("/entries?start=0&limit=10")),
    _ep("log-checkpoint", "auditor admin", _log("/checkpoint")),
    _ep("log-inclusion", "auditor admin", _log("/proofs/inclusion?seq={seq}")),
    _ep("log-consistency", "auditor admin", _log("/proofs/consistency?from=1&to={size}")),
    _ep("log-export", "auditor admin", _log("/export"), check=_is_ndjson),
    _ep("log-keys", "dialer client auditor admin", _plain("GET", "/v1/log-keys"), other=None),
    _ep("clients", "admin", _plain("GET", "/v1/clients"), other=None),
    # a new tenant is every client's business: only an admin of every client adds one
    _ep("add-client", "root", _add_client, ok=(201,), other=None),
    _ep("campaigns", "admin", _campaigns),
    _ep("add-campaign", "admin", _add_campaign, ok=(201,)),
    _ep("tokens", "admin", _plain("GET", "/v1/tokens"), other=None),
    _ep("create-token", "admin", _create_token, ok=(201,)),
    _ep("persons", "admin", _plain("GET", "/v1/persons"), other=None),
    _ep("add-person", "admin", _add_person, ok=(201,)),
    _ep("revoke-token", "admin", _revoke_token, ok=(200, 204)),
    _ep("dialer-keys", "admin", _dialer_keys),
    _ep("register-dialer-key", "admin", _register_dialer_key, ok=(201,)),
    _ep("revoke-dialer-key", "admin", _revoke_dialer_key),
    _ep("campaign-signatures", "admin", _campaign_signatures),
]
BY_NAME = {ep.name: ep for ep in ENDPOINTS}


# -- the vault ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("http-matrix")
    v = make_vault(tmp / "vault")
    ctx = v.context
    v.add_client(OTHER, "Energie AT")
    v.add_campaign(OTHER, OTHER_CAMPAIGN, retention_days=730)
    clip_path = clip(tmp)
    own = v.ingest(clip_path, order_meta(1))
    other = v.ingest(
        clip(tmp, seed=1),
        order_meta(
            2,
            client=OTHER,
            campaign=OTHER_CAMPAIGN,
            order_ref=OTHER_ORDER,
            callee={"phone": OTHER_PHONE},
        ),
    )
    for rid in (own.record_id, other.record_id):
        v.place_hold(rid, case_ref="LIT-1", reason="setup", principal="admin:setup")
    size = {"own": v.checkpoint(CLIENT).size, "other": v.checkpoint(OTHER).size}

    def secret(role: str, client: str | None) -> str:
        return person_token(ctx, role, client, label=f"matrix {role}")[1]

    v.add_person("matrix-client", role="client", client=CLIENT)
    v.add_person("matrix-other", role="client", client=OTHER)

    tokens = {r: secret(r, CLIENT) for r in ROLES[:4]} | {"root": secret("admin", None)}
    other_tokens = {r: secret(r, OTHER) for r in ROLES[:4]}
    dead: dict[tuple[str, str], str] = {}
    for role in ROLES:
        client = None if role == "root" else CLIENT
        real = "admin" if role == "root" else role
        info, dead["revoked", role] = person_token(ctx, real, client)
        revoke_token(ctx, info.id, by=v.operator())
        info, dead["expired", role] = person_token(
            ctx, real, client, expires_at=ctx.clock() + timedelta(hours=1)
        )
        with write_session(ctx.engine) as s:
            row = s.get(ApiToken, info.id)
            row.expires_at = datetime.now(UTC) - timedelta(days=1)
            s.add(row)
    with TestClient(create_app(ctx)) as http:
        yield World(
            vault=v,
            http=http,
            tokens=tokens,
            other_tokens=other_tokens,
            dead=dead,
            record={"own": own.record_id, "other": other.record_id, "missing": MISSING_RECORD},
            seq={"own": own.seq, "other": other.seq},
            size=size,
            clip_bytes=clip_path.read_bytes(),
        )
    v.close()


def send(w: World, call: Call, token: str | None) -> httpx.Response:
    headers = dict(call.headers)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return w.http.request(
        call.method, call.url, json=call.json, content=call.content, headers=headers
    )


def assert_problem(r: httpx.Response, status: int, kind: str | None = None) -> dict:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"].startswith("/problems/")
    if kind:
        assert body["type"] == f"/problems/{kind}", body
    assert_no_pii(r)
    return body


def assert_no_pii(r: httpx.Response) -> None:
    leaked = [p for p in PII if p in r.text]
    assert not leaked, f"refused request {r.status_code} leaks {leaked}: {r.text[:300]}"


def _normalised(body: dict, ids: tuple[str, ...]) -> dict:
    detail = str(body.get("detail", ""))
    for i in ids:
        detail = detail.replace(i, "<id>")
    return {"type": body.get("type"), "title": body.get("title"), "status": body.get("status"),
            "detail": detail, "hint": body.get("hint")}  # fmt: skip


# -- the matrix ---------------------------------------------------------------------------
CASES = [
    pytest.param(ep, role, target, id=f"{ep.name}-{role}-{target}")
    for ep in ENDPOINTS
    for role in ROLES
    for target in ("own", "other")
    if target == "own" or ep.other is not None
]


@pytest.mark.parametrize(("ep", "role", "target"), CASES)
def test_matrix(world: World, ep: Endpoint, role: str, target: str) -> None:
    token = world.tokens[role]
    call = ep.make(world, target)
    r = send(world, call, token)
    allowed = ep.allows(role)
    if target == "own" or role == "root":
        if not allowed:
            assert_problem(r, 403, "permission-denied")
            return
        assert r.status_code in ep.ok, f"{r.status_code}: {r.text[:500]}"
        if ep.check:
            ep.check(world, r)
        if ep.name in ("clients", "tokens", "persons", "holds") and role != "root":
            _no_other_tenant(world, r)
        return

    # another tenant's resource: indistinguishable from a missing one
    missing = ep.make(world, "missing")
    m = send(world, missing, token)
    if allowed and ep.other != 404:
        assert r.status_code == m.status_code == ep.other
        assert r.json() == m.json(), "another tenant's data differs from none at all"
        return
    expected = 404 if allowed else m.status_code
    assert m.status_code in ((404,) if allowed else (403, 404)), m.text[:300]
    got = assert_problem(r, expected)
    assert_problem(m, expected)
    assert _normalised(got, call.ids) == _normalised(m.json(), missing.ids)
    for secret in (world.record["other"], OTHER_CAMPAIGN):
        if secret not in call.ids:
            assert secret not in r.text


AUTH_CASES = [
    pytest.param(ep, how, id=f"{ep.name}-{how}")
    for ep in ENDPOINTS
    for how in ("none", "basic", "malformed", "unknown", "revoked", "expired")
]


@pytest.mark.parametrize(("ep", "how"), AUTH_CASES)
def test_unauthenticated(world: World, ep: Endpoint, how: str) -> None:
    role = next(r for r in ROLES if ep.allows(r))
    token = {
        "none": None,
        "basic": None,
        "malformed": "not-a-token",
        "unknown": "evt1_" + "A" * 43,
        "revoked": world.dead.get(("revoked", role)),
        "expired": world.dead.get(("expired", role)),
    }[how]
    call = ep.make(world, "own")
    if how == "basic":  # another scheme, with a valid token in it
        call.headers["Authorization"] = f"Basic {world.tokens[role]}"
    r = send(world, call, token)
    body = assert_problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "evt1_" not in body["detail"], "the token is never echoed"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_needs_no_token(world: World, path: str) -> None:
    r = world.http.get(path)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_unknown_path_and_method_are_problems(world: World) -> None:
    r = world.http.get(
        "/v1/nothing-here", headers={"Authorization": f"Bearer {world.tokens['root']}"}
    )
    assert_problem(r, 404)
    r = world.http.put("/v1/log-keys", headers={"Authorization": f"Bearer {world.tokens['root']}"})
    assert_problem(r, 405)


@pytest.mark.parametrize("role", ["client", "admin"])
def test_holds_list_shows_own_tenant_only(world: World, role: str) -> None:
    r = world.http.get("/v1/holds", headers={"Authorization": f"Bearer {world.tokens[role]}"})
    assert r.status_code == 200
    records = {h["record_id"] for h in r.json()}
    assert world.record["own"] in records and world.record["other"] not in records


def test_other_tenant_token_sees_its_own(world: World) -> None:
    """The mirror image: energy-at's tokens reach energy-at's record and not telco-de's."""
    auth = {"Authorization": f"Bearer {world.other_tokens['client']}"}
    assert world.http.get(f"/v1/records/{world.record['other']}", headers=auth).status_code == 200
    r = world.http.get(f"/v1/records/{world.record['own']}", headers=auth)
    assert_problem(r, 404, "not-found")
    auth = {"Authorization": f"Bearer {world.other_tokens['auditor']}"}
    assert world.http.get(f"/v1/logs/{OTHER}", headers=auth).status_code == 200
    assert_problem(world.http.get(f"/v1/logs/{CLIENT}", headers=auth), 404, "not-found")


@pytest.mark.parametrize("suffix", ["", "/audio", "/bundle"])
def test_shredded_is_gone_for_its_tenant_and_missing_for_others(
    world: World, tmp_path: Path, suffix: str
) -> None:
    """410 names date and rule to the record's own client; another tenant sees a 404."""
    v = world.vault
    own = v.ingest(clip(tmp_path, seed=11), order_meta(world.fresh())).record_id
    other = v.ingest(
        clip(tmp_path, seed=12),
        order_meta(world.fresh(), client=OTHER, campaign=OTHER_CAMPAIGN, order_ref=OTHER_ORDER),
    ).record_id
    for rid in (own, other):
        assert v.erase(record_id=rid, request_ref="REQ-1").erased == [rid]
    auth = {"Authorization": f"Bearer {world.tokens['client']}"}
    body = assert_problem(world.http.get(f"/v1/records/{own}{suffix}", headers=auth), 410)
    assert body["type"] == "/problems/shredded" and "REQ-1" in body["detail"]
    r = world.http.get(f"/v1/records/{other}{suffix}", headers=auth)
    m = world.http.get(f"/v1/records/{MISSING_RECORD}{suffix}", headers=auth)
    assert_problem(r, 404, "not-found")
    assert _normalised(r.json(), (other,)) == _normalised(m.json(), (MISSING_RECORD,))


def test_campaign_scoped_dialer(world: World) -> None:
    """A dialer token of one campaign: uploads elsewhere are refused, others' receipts
    look missing."""
    ctx = world.vault.context
    world.vault.add_campaign(CLIENT, "side-campaign", retention_days=365)
    _, secret = person_token(ctx, "dialer", CLIENT, campaign="side-campaign")
    auth = {"Authorization": f"Bearer {secret}"}
    call = _upload(world, "own")  # into CAMPAIGN, not the token's campaign
    r = world.http.post(call.url, content=call.content, headers={**call.headers, **auth})
    assert_problem(r, 403, "permission-denied")
    meta = order_meta(world.fresh(), campaign="side-campaign")
    headers = {**auth, "Content-Type": "audio/wav", "Evidence-Metadata": _meta_header(meta)}
    r = world.http.post("/v1/records", content=world.clip_bytes, headers=headers)
    assert r.status_code == 201, r.text
    mine = r.json()["record_id"]
    assert world.http.get(f"/v1/records/{mine}/receipt", headers=auth).status_code == 200
    r = world.http.get(f"/v1/records/{world.record['own']}/receipt", headers=auth)
    m = world.http.get(f"/v1/records/{MISSING_RECORD}/receipt", headers=auth)
    assert_problem(r, 404, "not-found")
    assert _normalised(r.json(), (world.record["own"],)) == _normalised(m.json(), (MISSING_RECORD,))


def test_four_eyes_release(world: World) -> None:
    """The first admin requests, the same admin again is refused, a second admin releases."""
    hold = world.vault.place_hold(
        world.record["own"], case_ref=f"LIT-{world.fresh()}", reason="x", principal="admin:x"
    )
    url = f"/v1/holds/{hold.id}/release"
    first = {"Authorization": f"Bearer {world.tokens['admin']}"}
    second = {"Authorization": f"Bearer {world.tokens['root']}"}
    r = world.http.post(url, headers=first)
    assert r.status_code == 200 and r.json()["active"] is True, r.text
    assert_problem(world.http.post(url, headers=first), 403, "permission-denied")
    r = world.http.post(url, headers=second)
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    assert_problem(world.http.post(url, headers=second), 409, "conflict")


# -- the Python client over the same app --------------------------------------------------
@pytest.fixture
def api(world: World) -> Callable[[str], VaultClient]:
    return lambda role: VaultClient("", world.tokens[role], http=world.http)


def test_client_upload_search_read(world: World, api, tmp_path: Path) -> None:
    dialer, client = api("dialer"), api("client")
    path = clip(tmp_path, seed=7)
    meta = order_meta(world.fresh())
    key = f"k-{meta['call_id']}"
    receipt = dialer.upload(path, meta, idempotency_key=key)
    assert receipt.client == CLIENT and receipt.duplicate is False
    again = dialer.upload(path, meta, idempotency_key=key)
    assert again.record_id == receipt.record_id and again.duplicate is True
    assert again["record_id"] == receipt.record_id  # a field as the JSON names it, too
    same = dialer.upload(path, json.dumps(meta).encode())  # the same segment, no key
    assert same.record_id == receipt.record_id and same.duplicate is True
    with pytest.raises(Conflict):  # the key again, for another request
        dialer.upload(path, order_meta(world.fresh()), idempotency_key=key)
    assert dialer.receipt(receipt.record_id).record_id == receipt.record_id

    hits = client.search(order_ref=meta["order_ref"])
    assert [h.record_id for h in hits] == [receipt.record_id]
    assert client.search(phone=OWN_PHONE, since=datetime(2026, 1, 1, tzinfo=UTC))
    assert client.record(receipt["record_id"])["evidence"]["call_id"] == meta["call_id"]
    data = path.read_bytes()
    assert client.audio(receipt["record_id"]) == data
    assert client.audio(receipt["record_id"], start=10, end=99) == data[10:100]
    out = client.download_audio(receipt["record_id"], tmp_path / "out.wav")
    assert out.read_bytes() == data
    bundle = client.bundle(receipt["record_id"], tmp_path / "b.zip")
    assert zipfile.is_zipfile(bundle)


def test_client_errors_are_vault_errors(world: World, api, tmp_path: Path) -> None:
    client = api("client")
    with pytest.raises(NotFound) as e:
        client.record(world.record["other"])
    assert isinstance(e.value, VaultApiError) and e.value.status == 404
    assert e.value.kind == "not-found" and "Mustermann" not in str(e.value)
    with pytest.raises(PermissionDenied):
        client.log_info(CLIENT)
    with pytest.raises(Unauthenticated):
        VaultClient("", None, http=world.http).holds()
    with pytest.raises(VaultApiError) as e:
        api("dialer").upload(clip(tmp_path), {"client": CLIENT})
    assert e.value.status == 422 and e.value.errors
    path = clip(tmp_path, seed=8)
    meta = order_meta(world.fresh())
    api("dialer").upload(path, meta)
    with pytest.raises(Conflict):  # a different clip under the same call segment
        api("dialer").upload(clip(tmp_path, seed=9), meta)


def test_client_ledger_and_admin(world: World, api, tmp_path: Path) -> None:
    auditor, root = api("auditor"), api("root")
    info = auditor.log_info(CLIENT)
    assert info["size"] >= 1 and info["verifier_key"]
    assert auditor.entries(CLIENT, start=0, limit=2)
    cp = auditor.checkpoint(CLIENT)
    assert auditor.inclusion(CLIENT, world.seq["own"]).seq == world.seq["own"]
    assert auditor.consistency(CLIENT, 1, cp.size).new_size == cp.size
    assert auditor.export_log(CLIENT, tmp_path / "log.jsonl").stat().st_size > 0
    assert auditor.log_keys()

    name = f"tenant-{world.fresh()}"
    root.add_client(name, "A tenant", retention_days=365)
    assert name in {c.id for c in root.clients()}
    root.add_campaign(name, "spring", 365)
    assert [c.name for c in root.campaigns(name)] == ["spring"]
    root.add_person(f"{name}-auditor", "auditor", name, display_name="An auditor")
    assert f"{name}-auditor" in {p.handle for p in root.persons(name)}
    made = root.create_token(f"{name}-auditor", label="client test")
    assert made.secret.startswith("evt1_")
    assert made.info.id in {t.id for t in root.tokens()}
    assert "evt1_" not in json.dumps([t.to_dict() for t in root.tokens()])
    assert root.revoke_token(made.info.id).revoked_at is not None
    with pytest.raises(Unauthenticated):
        VaultClient("", made.secret, http=world.http).log_info(name)

    hold = api("client").open_dispute(world.record["own"], "CASE-X", "client test")
    assert hold.record_id == world.record["own"] and hold.active
    assert any(h.id == hold.id for h in api("client").holds(world.record["own"]))
    legal = root.place_hold(world.record["own"], "LIT-X", "client test")
    root.release_hold(legal.id)
    with pytest.raises(PermissionDenied):  # four-eyes: the same admin cannot release
        root.release_hold(legal.id)
    assert VaultClient("", None, http=world.http).health()["status"] == "ok"
    assert VaultClient("", None, http=world.http).ready()["status"] == "ok"


def test_client_without_a_server(tmp_path: Path) -> None:
    """Errors that are not problem documents, a 503 readiness, a refused connection."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/readyz":
            return httpx.Response(503, json={"status": "unavailable", "checks": {"db": "X"}})
        if request.url.path == "/v1/records":
            assert request.headers["content-length"] == str(path.stat().st_size)
            receipt = Receipt("r1", CLIENT, "c", 1, "ab", datetime(2026, 1, 1, tzinfo=UTC))
            return httpx.Response(201, json=receipt.to_dict())
        return httpx.Response(502, text="<html>Bad gateway: +4915112345678</html>")

    class Streamed(httpx.MockTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/records":  # an iterator over the file, not its bytes
                assert not isinstance(request.stream, httpx.ByteStream), "the clip is streamed"
            return super().handle_request(request)

    path = clip(tmp_path)
    with VaultClient("http://vault.test/", "evt1_x", transport=Streamed(handler)) as c:
        assert "evt1_x" not in repr(c)
        assert c.ready()["checks"] == {"db": "X"}
        assert c.upload(path, {"client": CLIENT, "name": "é"}).record_id == "r1"
        header = seen[-1].headers["evidence-metadata"]
        assert "=" not in header and "+" not in header and "/" not in header
        assert json.loads(base64.urlsafe_b64decode(header + "==")) == {
            "client": CLIENT,
            "name": "é",
        }
        assert seen[-1].headers["content-type"] == "audio/wav"
        with pytest.raises(VaultApiError) as e:
            c.record("r1")
        assert e.value.status == 502 and e.value.kind == "http-502"
        assert "4915112345678" not in str(e.value)
        with pytest.raises(VaultApiError):
            c.download_audio("r1", tmp_path / "never.wav")
        assert not (tmp_path / "never.wav").exists()
        assert not list(tmp_path.glob(".never.wav-*")), "no temporary file is left behind"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with VaultClient("http://vault.test", "evt1_x", transport=httpx.MockTransport(refuse)) as c:
        with pytest.raises(VaultConnectionError) as e:
            c.health()
        assert e.value.kind == "connection-error" and "vault.test" in (e.value.hint or "")
