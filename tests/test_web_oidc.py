"""Single sign-on against a real OpenID provider (npm oidc-provider on loopback).

The app runs in-process (TestClient, base ``http://testserver``); the provider is a real
node process, and the app's discovery, JWKS and token requests really go to it. The test
plays the browser at the provider (its login form), then brings the code back.
"""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlmodel import select

from cli.main import cli
from tests.attacks.attacker import Attacker
from tests.support.oidc import sign_in_at_provider, start_provider
from tests.support.vaults import CLIENT, make_vault, person_token
from vault.db import LogEntry, read_session
from vault.errors import Conflict, InvalidEvidence
from vault.http.app import create_app
from vault.ledger import parse_entry
from vault.services import people
from vault.web import oidc
from vault.web.oidc import OidcSettings, OpenIdProvider, SsoRefused

BACK = "http://testserver/sso/callback"
OPERATOR = people.operator("local:test-operator")


@pytest.fixture
def idp(oidc_modules, tmp_path):
    with start_provider(oidc_modules, [BACK], tmp_path / "idp.log") as running:
        yield running


@pytest.fixture
def vault(tmp_path):
    v = make_vault(tmp_path / "vault")
    yield v
    v.close()


@pytest.fixture
def desk(vault, idp):
    """The app with the SSO routes; sign-ins land in ``desk.signed_in`` (handles)."""
    app = create_app(vault.context)
    app.include_router(oidc.router)
    app.state.oidc_provider = OpenIdProvider(
        OidcSettings(issuer=idp.issuer, client_id=idp.client_id, client_secret=idp.client_secret)
    )
    signed_in = []

    def sign_in_person(request, response, person):
        signed_in.append(person.handle)
        response.set_cookie("desk_session", f"for-{person.handle}")

    app.dependency_overrides[oidc.get_sign_in] = lambda: sign_in_person
    with TestClient(app) as tc:
        tc.signed_in = signed_in
        yield tc


def _person(vault, handle, idp, subject, role="client"):
    person_token(vault.context, role, CLIENT, handle=handle)
    people.link_oidc(vault.context, handle, idp.issuer, subject, by=OPERATOR)


def _start(desk, next_="/"):
    r = desk.get("/sso/start", params={"next": next_}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["location"]


def _callback(desk, back_url):
    parts = urlsplit(back_url)
    return desk.get(f"{parts.path}?{parts.query}", follow_redirects=False)


def test_linked_person_signs_in(desk, vault, idp):
    _person(vault, "ana", idp, "ana-at-idp")
    authorize = _start(desk, "/records?page=2")
    q = parse_qs(urlsplit(authorize).query)
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43
    assert q["client_id"] == [idp.client_id] and q["redirect_uri"] == [BACK]
    assert q["state"][0] and q["nonce"][0] and q["state"] != q["nonce"]
    r = _callback(desk, sign_in_at_provider(authorize, "ana-at-idp", BACK))
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/records?page=2"
    assert desk.signed_in == ["ana"]
    assert r.cookies.get("desk_session") == "for-ana"
    # the state cookie is spent: the same answer from the provider again is refused
    assert oidc.STATE_COOKIE not in desk.cookies


def test_unknown_identity_is_refused(desk, vault, idp):
    _person(vault, "ana", idp, "ana-at-idp")
    authorize = _start(desk)
    r = _callback(desk, sign_in_at_provider(authorize, "mallory", BACK))
    assert r.status_code == 403 and "<code>unknown-identity</code>" in r.text
    assert desk.signed_in == []


def test_same_subject_at_another_issuer_is_refused(desk, vault, idp):
    person_token(vault.context, "client", CLIENT, handle="ana")
    people.link_oidc(vault.context, "ana", "https://other-idp.example", "ana-at-idp", by=OPERATOR)
    r = _callback(desk, sign_in_at_provider(_start(desk), "ana-at-idp", BACK))
    assert r.status_code == 403 and "<code>unknown-identity</code>" in r.text
    assert desk.signed_in == []


def test_disabled_person_is_refused(desk, vault, idp):
    _person(vault, "ana", idp, "ana-at-idp")
    people.disable_person(vault.context, "ana", by=OPERATOR)
    r = _callback(desk, sign_in_at_provider(_start(desk), "ana-at-idp", BACK))
    assert r.status_code == 403 and "<code>person-inactive</code>" in r.text
    assert desk.signed_in == []


def test_tampered_state_is_refused(desk, vault, idp):
    _person(vault, "ana", idp, "ana-at-idp")
    back = sign_in_at_provider(_start(desk), "ana-at-idp", BACK)
    state = parse_qs(urlsplit(back).query)["state"][0]
    forged = back.replace(
        f"state={state}", "state=" + ("A" if state[0] != "A" else "B") + state[1:]
    )
    assert forged != back
    r = _callback(desk, forged)
    assert r.status_code == 403 and "<code>state</code>" in r.text
    assert desk.signed_in == []


def test_tampered_or_missing_state_cookie_is_refused(desk, vault, idp):
    _person(vault, "ana", idp, "ana-at-idp")
    back = sign_in_at_provider(_start(desk), "ana-at-idp", BACK)
    sealed = desk.cookies[oidc.STATE_COOKIE]
    flipped = sealed[:-6] + ("AAAAAA" if sealed[-6:] != "AAAAAA" else "BBBBBB")
    desk.cookies.set(oidc.STATE_COOKIE, flipped, path="/sso")
    assert _callback(desk, back).status_code == 403
    desk.cookies.clear()
    r = _callback(desk, back)  # a callback the browser did not start (login CSRF)
    assert r.status_code == 403 and "<code>state</code>" in r.text
    assert desk.signed_in == []


def test_provider_error_and_foreign_next_are_handled(desk, vault, idp):
    _person(vault, "ana", idp, "ana-at-idp")
    authorize = _start(desk, "//evil.example/x")
    r = _callback(desk, sign_in_at_provider(authorize, "ana-at-idp", BACK))
    assert r.status_code == 303 and r.headers["location"] == "/"
    authorize = _start(desk)
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    r = desk.get("/sso/callback", params={"state": state, "error": "access_denied"})
    assert r.status_code == 403 and "<code>provider-error</code>" in r.text


# -- the ID token and the code, checked one by one --------------------------------------------


@pytest.fixture
def issued(desk, vault, idp):
    """A real code's exchange: the provider object, the ID token and its nonce."""
    _person(vault, "ana", idp, "ana-at-idp")
    back = sign_in_at_provider(_start(desk), "ana-at-idp", BACK)
    provider = desk.app.state.oidc_provider
    state = oidc._open_state(provider.settings, desk.cookies[oidc.STATE_COOKIE])
    code = parse_qs(urlsplit(back).query)["code"][0]
    with pytest.raises(SsoRefused, match="token-exchange"):  # PKCE: the verifier is checked
        provider.exchange(code, BACK, "x" * 64)
    back = sign_in_at_provider(_start(desk), "ana-at-idp", BACK)  # that code is now spent
    state = oidc._open_state(provider.settings, desk.cookies[oidc.STATE_COOKIE])
    code = parse_qs(urlsplit(back).query)["code"][0]
    token = provider.exchange(code, BACK, state["verifier"])
    with pytest.raises(SsoRefused, match="token-exchange"):  # a code works once
        provider.exchange(code, BACK, state["verifier"])
    return provider, token, state["nonce"]


def _claims(token):
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def test_id_token_checks(issued):
    provider, token, nonce = issued
    claims = provider.identity(token, nonce)
    assert claims["sub"] == "ana-at-idp" and claims["aud"] == provider.settings.client_id
    with pytest.raises(SsoRefused, match="id-token-claims"):
        provider.identity(token, "another-nonce")
    with pytest.raises(SsoRefused, match="id-token-claims"):
        provider.identity(token, nonce, now=claims["exp"] + 3600)
    other = OpenIdProvider(
        OidcSettings(provider.settings.issuer, "another-client", "s"), provider._http
    )
    with pytest.raises(SsoRefused, match="id-token-claims"):  # audience
        other.identity(token, nonce)
    head, body, sig = token.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    with pytest.raises(SsoRefused, match="id-token-signature"):
        provider.identity(f"{head}.{body}.{flipped}", nonce)
    # the same claims signed by a key that is not the provider's (same kid)
    forger = RSAKey.generate_key(2048, parameters={"kid": "test-rs256"})
    forged = jwt.encode({"alg": "RS256", "kid": "test-rs256"}, _claims(token), forger)
    with pytest.raises(SsoRefused, match="id-token-signature"):
        provider.identity(forged, nonce)
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(SsoRefused, match="id-token-signature"):
        provider.identity(f"{unsigned}.{body}.", nonce)


# -- configuration and linking ----------------------------------------------------------------


def test_configured_from_the_environment(vault, idp, monkeypatch, tmp_path):
    secret = tmp_path / "client-secret"
    secret.write_text(idp.client_secret + "\n")
    monkeypatch.setenv("EVIDENCE_VAULT_OIDC_ISSUER", idp.issuer)
    monkeypatch.setenv("EVIDENCE_VAULT_OIDC_CLIENT_ID", idp.client_id)
    monkeypatch.setenv("EVIDENCE_VAULT_OIDC_CLIENT_SECRET_FILE", str(secret))
    _person(vault, "ana", idp, "ana-at-idp")
    app = create_app(vault.context)
    app.include_router(oidc.router)
    with TestClient(app) as tc:
        r = tc.get("/sso/start", follow_redirects=False)
        assert r.headers["location"].startswith(idp.issuer + "/auth?")
        back = sign_in_at_provider(r.headers["location"], "ana-at-idp", BACK)
        r = _callback(tc, back)
        # the provider and the person check passed; no session module yet: refused, not 500
        if oidc.get_sign_in() is None:
            assert r.status_code == 503 and "<code>sessions-unavailable</code>" in r.text
        else:
            assert r.status_code == 303


def test_not_configured_is_404(vault, monkeypatch):
    for key in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET_FILE"):
        monkeypatch.delenv(f"EVIDENCE_VAULT_OIDC_{key}", raising=False)
    app = create_app(vault.context)
    app.include_router(oidc.router)
    with TestClient(app) as tc:
        assert tc.get("/sso/start", follow_redirects=False).status_code == 404


def test_link_is_logged_unique_and_checked(vault):
    ctx = vault.context
    person_token(ctx, "client", CLIENT, handle="ana")
    person_token(ctx, "client", CLIENT, handle="bo")
    people.link_oidc(ctx, "ana", "https://idp.example", "sub-1", by=OPERATOR)
    assert oidc.resolve_oidc_person(ctx, "https://idp.example", "sub-1").handle == "ana"
    assert oidc.resolve_oidc_person(ctx, "https://idp.example", "sub-2") is None
    assert oidc.resolve_oidc_person(ctx, "https://idp.example/", "sub-1") is None
    with pytest.raises(Conflict):
        people.link_oidc(ctx, "bo", "https://idp.example", "sub-1", by=OPERATOR)
    for issuer, subject in [("idp.example", "s"), ("https://idp.example#x", "s"),
                            ("https://idp.example?q", "s"), ("https://idp.example", ""),
                            ("https://idp.example", "s\n")]:  # fmt: skip
        with pytest.raises(InvalidEvidence):
            people.link_oidc(ctx, "bo", issuer, subject, by=OPERATOR)
    with read_session(ctx.engine) as s:
        rows = s.exec(select(LogEntry.entry).where(LogEntry.type == "person.oidc_linked"))
        bodies = [parse_entry(bytes(r))["body"] for r in rows]
    assert len(bodies) == 1 and bodies[0]["person"] == "ana"
    assert "sub-1" not in json.dumps(bodies)  # the subject itself stays out of the log
    # a tenant's client person cannot link anyone
    reader = people.acting(ctx, "bo")
    with pytest.raises(Exception, match="cannot"):
        people.link_oidc(ctx, "ana", "https://idp.example", "sub-9", by=reader)


def test_cli_link_oidc(vault, tmp_path):
    person_token(vault.context, "client", CLIENT, handle="ana")
    home = str(vault.settings.home)
    result = CliRunner().invoke(
        cli,
        ["--vault", home, "person", "link-oidc", "ana", "--issuer", "https://idp.example",
         "--subject", "248289761001"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "linked person ana" in result.output
    assert oidc.resolve_oidc_person(vault.context, "https://idp.example", "248289761001")


def test_a_link_written_straight_into_the_database_signs_nobody_in(desk, vault, idp):
    """A database writer moves an admin's link to their own identity: the admin's log has
    no entry tagged under the log key for that link, so the sign-in is refused."""
    _person(vault, "ops-1", idp, "ops-1-at-idp", role="admin")
    attacker = Attacker(vault.settings.resolved_database_url, vault.settings.home)
    try:
        link = f"{idp.issuer}#mallory"
        attacker.run("UPDATE person SET oidc_subject = ? WHERE handle = 'ops-1'", link)
        r = _callback(desk, sign_in_at_provider(_start(desk), "mallory", BACK))
        assert r.status_code == 403 and "<code>link-not-logged</code>" in r.text
        # an entry for the new link, without the log key: untagged, then with a replayed tag
        body = {
            "person": "ops-1",
            "by": "local:test-operator",
            "issuer": idp.issuer,
            "link_sha256": hashlib.sha256(link.encode()).hexdigest(),
        }
        honest = attacker.seqs(CLIENT, "person.oidc_linked")[-1]
        attacker.append(CLIENT, "person.oidc_linked", None, body)
        attacker.append(CLIENT, "person.oidc_linked", None, body, tag=attacker.tag(CLIENT, honest))
    finally:
        attacker.close()
    r = _callback(desk, sign_in_at_provider(_start(desk), "mallory", BACK))
    assert r.status_code == 403 and "<code>link-not-logged</code>" in r.text
    assert desk.signed_in == []
    found = [f.detail for f in vault.verify().findings if "single sign-on link" in f.detail]
    assert found == [
        "person ops-1's single sign-on link is not the one its log names: it was changed "
        "outside the vault; link it again with `evidence-vault person link-oidc`"
    ]
    # an honest link (a tagged entry) signs in again
    people.link_oidc(vault.context, "ops-1", idp.issuer, "mallory", by=OPERATOR)
    r = _callback(desk, sign_in_at_provider(_start(desk), "mallory", BACK))
    assert r.status_code == 303 and desk.signed_in == ["ops-1"]
    assert not [f for f in vault.verify().findings if "single sign-on link" in f.detail]
