"""Single sign-on in a real browser: chromium, the app under uvicorn, the real provider.

The app runs in a thread (uvicorn on a free loopback port) with the SSO routes and a
recording stand-in for the desk's ``sign_in_person``; chromium fills the provider's login
form and is sent back, signed in. The refusal page is checked with axe-core.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import uvicorn

from tests.support.browser import assert_accessible, free_port
from tests.support.oidc import start_provider
from tests.support.vaults import CLIENT, make_vault, person_token
from vault.http.app import create_app
from vault.services import people
from vault.web import oidc
from vault.web.oidc import OidcSettings, OpenIdProvider


@contextlib.contextmanager
def serving(app, port):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def site(oidc_modules, browser, tmp_path):
    port = free_port()
    back = f"http://127.0.0.1:{port}/sso/callback"
    vault = make_vault(tmp_path / "vault")
    with start_provider(oidc_modules, [back], tmp_path / "idp.log") as idp:
        app = create_app(vault.context)
        app.include_router(oidc.router)
        app.state.oidc_provider = OpenIdProvider(
            OidcSettings(idp.issuer, idp.client_id, idp.client_secret)
        )
        signed_in = []

        def sign_in_person(request, response, person):
            signed_in.append(person.handle)
            response.set_cookie("desk_session", f"for-{person.handle}", httponly=True)

        app.dependency_overrides[oidc.get_sign_in] = lambda: sign_in_person
        person_token(vault.context, "client", CLIENT, handle="ana")
        people.link_oidc(
            vault.context, "ana", idp.issuer, "ana-at-idp", by=people.operator("local:t")
        )
        with serving(app, port) as url:
            yield url, signed_in
    vault.close()


def _sign_in(page, url, login, next_="/healthz"):
    page.goto(f"{url}/sso/start?next={next_}")
    page.get_by_label("Login").fill(login)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_browser_signs_in_through_the_provider(site, page):
    url, signed_in = site
    _sign_in(page, url, "ana-at-idp")
    page.wait_for_url(f"{url}/healthz")
    assert signed_in == ["ana"]
    cookies = {c["name"]: c for c in page.context.cookies(url)}
    assert cookies["desk_session"]["value"] == "for-ana"
    assert oidc.STATE_COOKIE not in cookies  # spent
    assert page.offsite == []


def test_browser_refusal_page_is_accessible(site, page):
    url, signed_in = site
    _sign_in(page, url, "mallory")
    page.get_by_role("heading", name="Sign-in refused").wait_for()
    assert "unknown-identity" in page.content()
    assert signed_in == []
    assert_accessible(page)
