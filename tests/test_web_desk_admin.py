"""The desk's administration pages: people, campaigns and dialers' tokens of one tenant,
through the services as the signed-in admin (four-eyes, logging), never another tenant's."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import select

from tests.support.desk import CLIENT, OP, OTHER_CLIENT, PASSWORD, csrf_of, desk_vault, sign_in
from vault.db import read_session, write_session
from vault.db.models import Credential, LogEntry, WebSession
from vault.errors import Unauthenticated
from vault.http.app import create_app
from vault.ledger.entry import parse_entry
from vault.services import admin as _admin
from vault.services import credentials, people, tokens

#: a tenant admin of CLIENT and of OTHER_CLIENT, a dialer of each (besides desk_vault's)
EXTRA = {
    "tara": ("admin", CLIENT),
    "uwe": ("admin", CLIENT),
    "otto": ("admin", OTHER_CLIENT),
    "dina": ("dialer", CLIENT),
    "olaf": ("dialer", OTHER_CLIENT),
}


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    dv = desk_vault(tmp_path_factory.mktemp("desk-admin") / "v", records=1)
    for handle, (role, client) in EXTRA.items():
        people.add_person(dv.ctx, handle, role=role, client=client, by=OP)
        credentials.set_password(dv.ctx, handle, PASSWORD, by=OP)
    yield dv
    dv.vault.close()


@pytest.fixture
def app(desk):
    with write_session(desk.ctx.engine) as s:
        s.exec(text("DELETE FROM signin_throttle"))
    with TestClient(create_app(desk.ctx)) as tc:
        yield tc


def _as(app, handle: str) -> TestClient:
    c = TestClient(app.app)
    assert sign_in(c, handle).status_code == 303
    return c


def _post(c: TestClient, page: str, action: str, **data):
    csrf = csrf_of(c.get(page).text)
    return c.post(action, data={"csrf": csrf, **data}, follow_redirects=True)


def _entries(desk, log: str, kind: str) -> list[dict]:
    with read_session(desk.ctx.engine) as s:
        rows = s.exec(select(LogEntry).where(LogEntry.type == kind)).all()
    return [parse_entry(bytes(r.entry))["body"] for r in rows]


PEOPLE = f"/desk/admin/{CLIENT}/people"
CAMPAIGNS = f"/desk/admin/{CLIENT}/campaigns"
TOKENS = f"/desk/admin/{CLIENT}/tokens"


def test_a_tenant_admin_lands_on_its_client_and_a_global_admin_picks_one(app):
    tara = _as(app, "tara")
    r = tara.get("/desk/admin", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == PEOPLE
    adam = _as(app, "adam")
    page = adam.get("/desk/admin").text
    assert f"/desk/admin/{CLIENT}/people" in page and f"/desk/admin/{OTHER_CLIENT}/people" in page
    assert "_vault" not in page
    assert (
        "carla" in adam.get(PEOPLE).text
        and "olga" in adam.get(f"/desk/admin/{OTHER_CLIENT}/people").text
    )


def test_another_tenants_people_campaigns_and_tokens_are_never_shown(app, desk):
    tokens.create_token(desk.ctx, person="olaf", by=OP, label="olaf's line")
    tara = _as(app, "tara")
    pages = [tara.get(p).text for p in (PEOPLE, CAMPAIGNS, TOKENS)]
    for page in pages:
        for theirs in ("olga", "otto", "olaf", "switch-2026", OTHER_CLIENT):
            assert theirs not in page
        assert "adam" not in page.replace("person:adam", "")  # global admins are not listed
    for section in ("people", "campaigns", "tokens"):
        r = tara.get(f"/desk/admin/{OTHER_CLIENT}/{section}")
        assert r.status_code == 404
        unknown = tara.get(f"/desk/admin/no-such-client/{section}")
        assert r.text.replace(OTHER_CLIENT, "no-such-client") == unknown.text  # but the path
    # nor can the tenant admin act there, or on their person through its own client's path
    csrf = csrf_of(tara.get(PEOPLE).text)
    assert (
        tara.post(f"/desk/admin/{OTHER_CLIENT}/people/olga/disable", data={"csrf": csrf})
    ).status_code == 404
    assert tara.post(f"{PEOPLE}/olga/disable", data={"csrf": csrf}).status_code == 404
    assert tara.post(f"{PEOPLE}/adam/disable", data={"csrf": csrf}).status_code == 404
    olaf_token = next(t for t in tokens.list_tokens(desk.ctx, OTHER_CLIENT))
    assert tara.post(f"{TOKENS}/{olaf_token.id}/revoke", data={"csrf": csrf}).status_code == 404
    r = tara.post(TOKENS, data={"csrf": csrf, "person": "olaf"})
    assert r.status_code == 422 and "evt1_" not in r.text
    assert people.find_person(desk.ctx, "olga", OP).disabled_at is None
    assert tokens.list_tokens(desk.ctx, OTHER_CLIENT)[0].revoked_at is None


def test_a_client_person_is_refused_every_admin_page_and_form(app):
    carla = _as(app, "carla")
    csrf = csrf_of(carla.get("/desk/search").text)
    for path in ("/desk/admin", PEOPLE, CAMPAIGNS, TOKENS):
        r = carla.get(path)
        assert r.status_code == 403 and "Not allowed" in r.text, path
    for action, data in (
        (PEOPLE, {"handle": "mallory", "role": "admin"}),
        (f"{PEOPLE}/chris/disable", {}),
        (CAMPAIGNS, {"name": "sneaky", "retention_days": "1"}),
        (TOKENS, {"person": "dina"}),
    ):
        r = carla.post(action, data={"csrf": csrf, **data})
        assert r.status_code == 403 and "evt1_" not in r.text, action
    assert "Administration" not in carla.get("/desk/search").text


def test_every_admin_form_needs_its_csrf_token(app, desk):
    tara = _as(app, "tara")
    tara.get(PEOPLE)
    for action, data in (
        (PEOPLE, {"handle": "csrf-less", "role": "client"}),
        (f"{PEOPLE}/chris/disable", {}),
        (CAMPAIGNS, {"name": "csrf-less", "retention_days": "30"}),
        (TOKENS, {"person": "dina"}),
    ):
        for csrf in ({}, {"csrf": "0" * 32}):
            assert tara.post(action, data={**csrf, **data, "go": "1"}).status_code == 403, action
    assert "csrf-less" not in tara.get(PEOPLE).text + tara.get(CAMPAIGNS).text
    assert people.find_person(desk.ctx, "chris", OP).disabled_at is None


def test_invite_a_person_and_four_eyes_for_a_new_admin(app, desk):
    tara, uwe = _as(app, "tara"), _as(app, "uwe")
    r = _post(tara, PEOPLE, PEOPLE, handle="nina", role="client", display_name="Nina N")
    assert r.status_code == 200 and 'data-person="nina"' in r.text
    nina = people.find_person(desk.ctx, "nina", OP)
    assert (nina.role, nina.client_id, nina.created_by) == ("client", CLIENT, "person:tara")
    assert nina.approved_at is not None
    # a new admin is pending; its creator cannot approve it, a second admin can
    _post(tara, PEOPLE, PEOPLE, handle="alex", role="admin")
    assert people.find_person(desk.ctx, "alex", OP).approved_at is None
    r = _post(tara, PEOPLE, f"{PEOPLE}/alex/approve")
    assert r.status_code == 403 and "second admin must approve" in r.text
    r = _post(uwe, PEOPLE, f"{PEOPLE}/alex/approve")
    assert r.status_code == 200
    assert people.find_person(desk.ctx, "alex", OP).approved_by == "person:uwe"
    created = {b["person"]: b for b in _entries(desk, CLIENT, "person.created")}
    assert created["nina"]["by"] == "person:tara" and created["alex"]["approved"] is False
    assert {"person": "alex", "by": "person:uwe", "created_by": "person:tara"} in _entries(
        desk, CLIENT, "person.approved"
    )
    # a taken handle, a bad role: the page says so, nothing is made
    r = _post(tara, PEOPLE, PEOPLE, handle="nina", role="client")
    assert r.status_code == 409 and "taken" in r.text
    r = _post(tara, PEOPLE, PEOPLE, handle="zed", role="overlord")
    assert r.status_code == 422 and "Role" in r.text
    assert 'data-person="zed"' not in tara.get(PEOPLE).text


def test_changing_a_role_is_explained_not_offered(app):
    page = _as(app, "tara").get(PEOPLE).text
    assert "role cannot be changed" in page
    assert "/role" not in page


def test_disable_and_reset_second_factor(app, desk):
    tara = _as(app, "tara")
    people.add_person(desk.ctx, "dora", role="client", client=CLIENT, by=OP)
    credentials.set_password(desk.ctx, "dora", PASSWORD, by=OP)
    credentials.enrol_totp(desk.ctx, "dora", by=OP)
    dora = TestClient(app.app)
    assert sign_in(dora, "dora").status_code == 303  # to the code step: a session exists
    dora_id = people.find_person(desk.ctx, "dora", OP).id
    with read_session(desk.ctx.engine) as s:
        assert s.exec(select(WebSession).where(WebSession.person_id == dora_id)).first()
    r = _post(tara, PEOPLE, f"{PEOPLE}/dora/reset-factor")
    assert r.status_code == 200
    with read_session(desk.ctx.engine) as s:
        assert s.exec(select(WebSession).where(WebSession.person_id == dora_id)).first() is None
        assert s.get(Credential, dora_id).totp_sealed is None
    changes = _entries(desk, CLIENT, "person.credential")
    assert {"person": "dora", "change": "totp-reset", "by": "person:tara"} in changes
    r = _post(tara, PEOPLE, f"{PEOPLE}/dora/disable")
    assert r.status_code == 200
    assert people.find_person(desk.ctx, "dora", OP).disabled_by == "person:tara"
    assert {"person": "dora", "by": "person:tara"} in _entries(desk, CLIENT, "person.disabled")
    assert sign_in(TestClient(app.app), "dora").status_code != 303


def test_add_a_campaign_with_its_retention(app, desk):
    tara = _as(app, "tara")
    r = _post(tara, CAMPAIGNS, CAMPAIGNS, name="winter-2027", retention_days="400")
    assert r.status_code == 200 and 'data-campaign="winter-2027"' in r.text
    assert "400" in r.text
    made = {c.name: c for c in _admin.list_campaigns(desk.ctx, CLIENT)}["winter-2027"]
    assert (made.retention_days, made.retention_basis) == (400, "recorded")
    r = _post(
        tara,
        CAMPAIGNS,
        CAMPAIGNS,
        name="spring-2027",
        retention_days="90",
        retention_basis="consent-use",
    )
    assert {c.name: c for c in _admin.list_campaigns(desk.ctx, CLIENT)}[
        "spring-2027"
    ].retention_basis == ("consent-use")
    for bad in (
        {"name": "Bad Name!", "retention_days": "30"},
        {"name": "ok", "retention_days": "x"},
    ):
        r = _post(tara, CAMPAIGNS, CAMPAIGNS, **bad)
        assert r.status_code == 422, bad
    r = _post(tara, CAMPAIGNS, CAMPAIGNS, name="winter-2027", retention_days="30")
    assert r.status_code == 409
    assert "ok" not in {c.name for c in _admin.list_campaigns(desk.ctx, CLIENT)}


def test_a_token_secret_is_shown_once_and_never_again(app, desk):
    tara = _as(app, "tara")
    page = tara.get(TOKENS).text
    assert '<option value="dina">' in page and '<option value="carla">' not in page
    r = _post(tara, TOKENS, TOKENS, person="dina", label="hall 3")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    secret = re.search(r'value="(evt1_[A-Za-z0-9_-]{43})"', r.text)[1]
    token_id = re.search(r"Token (\S+) of dina", r.text)[1]
    # the secret works at the API, as dina
    assert tokens.authenticate(desk.ctx, secret).person == "dina"
    later = [tara.get(p).text for p in ("/desk/admin", PEOPLE, CAMPAIGNS, TOKENS)]
    later.append(_as(app, "adam").get(TOKENS).text)
    for page in later:
        assert secret not in page and "evt1_" not in page
    assert f'data-token="{token_id}"' in later[3] and "hall 3" in later[3]
    created = [b for b in _entries(desk, CLIENT, "token.created") if b["token"] == token_id]
    assert created == [{"token": token_id, "person": "dina", "role": "dialer", "by": "person:tara"}]
    # revoke: the token stops working, the page says so
    r = _post(tara, TOKENS, f"{TOKENS}/{token_id}/revoke")
    assert r.status_code == 200 and "revoked" in r.text
    with pytest.raises(Unauthenticated):
        tokens.authenticate(desk.ctx, secret)
    assert {"token": token_id, "person": "dina", "by": "person:tara"} in _entries(
        desk, CLIENT, "token.revoked"
    )


def test_tokens_only_for_dialers_at_the_desk(app, desk):
    tara = _as(app, "tara")
    for handle in ("carla", "uwe", "nobody"):
        r = _post(tara, TOKENS, TOKENS, person=handle)
        assert r.status_code == 422 and "evt1_" not in r.text, handle
    assert not [t for t in tokens.list_tokens(desk.ctx, CLIENT) if t.person in ("carla", "uwe")]


def test_admin_pages_are_german_with_the_cookie(app):
    tara = _as(app, "tara")
    tara.cookies.set("desk_lang", "de")
    for path, words in (
        (PEOPLE, ("Personen von", "Person hinzufügen", "Rolle")),
        (CAMPAIGNS, ("Kampagnen von", "Aufbewahrung in Tagen")),
        (TOKENS, ("API-Tokens von", "Token erstellen")),
    ):
        page = tara.get(path).text
        for w in words:
            assert w in page, (path, w)
