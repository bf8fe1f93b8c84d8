"""The desk's administration pages in a real browser: axe-core clean, no console errors,
in English and German, and a token's secret page."""

from __future__ import annotations

import pytest

from tests.support.browser import assert_accessible, start_server
from tests.support.desk import CLIENT, OP, PASSWORD, desk_vault
from vault.services import credentials, people


@pytest.fixture
def desk_server(tmp_path):
    dv = desk_vault(tmp_path / "vault", records=1)
    people.add_person(dv.ctx, "tara", role="admin", client=CLIENT, by=OP)
    credentials.set_password(dv.ctx, "tara", PASSWORD, by=OP)
    people.add_person(dv.ctx, "dina", role="dialer", client=CLIENT, by=OP)
    dv.vault.close()
    with start_server(tmp_path / "vault", tmp_path / "server.log") as server:
        yield server


def _clean(page) -> None:
    assert page.errors == [], page.errors
    assert page.offsite == []
    assert_accessible(page)
    page.errors[:] = [e for e in page.errors if "Applying inline style" not in e]


def test_admin_pages_are_accessible_in_both_languages(desk_server, page):
    url = desk_server.url
    page.goto(url + "/desk/sign-in")
    page.fill("#handle", "tara")
    page.fill("#password", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_load_state()
    page.goto(url + "/desk/admin")
    assert page.url.endswith(f"/desk/admin/{CLIENT}/people")
    for lang in ("en", "de"):
        page.select_option("#lang", lang)
        page.click("form.lang button[type=submit]")
        page.wait_for_load_state()
        for section in ("people", "campaigns", "tokens"):
            page.goto(f"{url}/desk/admin/{CLIENT}/{section}")
            _clean(page)
    page.fill("#label", "Halle 3")
    page.click("form.add button[type=submit]")
    page.wait_for_load_state()
    assert page.input_value("#secret").startswith("evt1_")
    _clean(page)
