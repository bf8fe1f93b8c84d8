"""The desk shows "pending Textform" in search results and the documents on the record page,
in English and German."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.support.desk import CAMPAIGN, CLIENT, csrf_of, desk_vault, sign_in
from tests.support.textform import EMAIL, write
from vault.http.app import create_app


class Clock:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    home = tmp_path_factory.mktemp("desk-textform")
    dv = desk_vault(home / "v", records=2, clock=Clock())
    dv.vault.set_campaign_documents(CLIENT, CAMPAIGN, "tkg-54")
    dv.vault.attach(dv.records[0], write(home, "s.eml", EMAIL), kind="contract-summary")
    yield dv
    dv.vault.close()


@pytest.fixture
def client(desk):
    with TestClient(create_app(desk.ctx)) as tc:
        assert sign_in(tc, "carla").status_code == 303
        yield tc


def _language(c: TestClient, lang: str) -> str:
    """Switch the desk's language (a form with the session's CSRF token); the token."""
    csrf = csrf_of(c.get("/desk/search").text)
    r = c.post("/desk/language", data={"csrf": csrf, "lang": lang, "back": "/desk/search"})
    assert r.status_code == 200, r.text
    return csrf


def _search(c: TestClient, lang: str) -> str:
    csrf = _language(c, lang)
    return c.post("/desk/search", data={"csrf": csrf, "campaign": CAMPAIGN}).text


def test_search_marks_records_pending_textform(client, desk):
    page = _search(client, "en")
    assert page.count('data-textform="pending"') == 2
    assert "pending Textform: Approval of the contract</span>" in page
    assert "pending Textform: Contract summary, Approval of the contract</span>" in page
    page = _search(client, "de")
    assert "Textform ausstehend: Genehmigung des Vertrags</span>" in page
    assert "Textform ausstehend: Vertragszusammenfassung, Genehmigung des Vertrags" in page


def test_record_page_lists_the_documents_and_what_is_missing(client, desk):
    _language(client, "en")
    page = client.get(f"/desk/records/{desk.records[0]}").text
    assert 'id="textform"' in page and "Textform documents" in page
    assert "pending Textform: Approval of the contract" in page
    [doc] = desk.vault.documents(desk.records[0])
    assert f'data-document="{doc.document_id}"' in page and "message/rfc822" in page
    _language(client, "de")
    page = client.get(f"/desk/records/{desk.records[1]}").text
    assert "Textform-Dokumente" in page
    assert "Zu diesem Datensatz ist kein Textform-Dokument versiegelt." in page
