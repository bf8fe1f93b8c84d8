"""The escalation desk, server side: sign-in, sessions, CSRF, throttling, expiry, isolation,
reason-gated evidence, the access history, disputes and the four-eyes queue, headers."""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import select

from tests.support.desk import PASSWORD, csrf_of, desk_vault, sign_in
from vault.db import read_session, write_session
from vault.db.models import LogEntry, WebSession
from vault.http.app import create_app
from vault.ledger.entry import parse_entry
from vault.sealing.credentials import session_digest, totp_code
from vault.services import credentials
from vault.web import records as desk_records
from vault.web.sessions import COOKIE

CSP = (
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    clock = Clock()
    dv = desk_vault(tmp_path_factory.mktemp("desk") / "v", clock=clock)
    dv.clock = clock
    yield dv
    dv.vault.close()


@pytest.fixture
def app(desk):
    with write_session(desk.ctx.engine) as s:  # every test starts unthrottled
        s.exec(text("DELETE FROM signin_throttle"))
    with TestClient(create_app(desk.ctx)) as tc:
        yield tc


def _client(app) -> TestClient:
    return TestClient(app.app)


def _signed_in(app, handle: str = "carla") -> TestClient:
    c = _client(app)
    r = sign_in(c, handle)
    assert r.status_code == 303, r.text
    return c


def _open(c: TestClient, record_id: str, reason: str = "dispute", case: str = "C-77"):
    page = c.get(f"/desk/records/{record_id}")
    return c.post(
        f"/desk/records/{record_id}/open",
        data={"csrf": csrf_of(page.text), "reason": reason, "case": case},
        follow_redirects=False,
    )


def _accesses(desk, record_id: str) -> list[dict]:
    with read_session(desk.ctx.engine) as s:
        rows = s.exec(
            select(LogEntry).where(
                LogEntry.record_id == record_id, LogEntry.type == "evidence.accessed"
            )
        ).all()
    return [parse_entry(bytes(r.entry))["body"] for r in rows]


# -- headers ------------------------------------------------------------------------------


def _assert_secure(r) -> None:
    csp = r.headers["content-security-policy"]
    for directive in CSP:
        assert directive in csp, (r.url, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"


def _assert_no_inline(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), "inline script"
    assert all(body == "" for body in re.findall(r"<script[^>]*>(.*?)</script>", html, re.S))
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"https?://", html), "a third-party URL"


def test_every_desk_answer_has_the_security_headers(app, desk):
    anon = _client(app)
    for r in (
        anon.get("/desk/sign-in"),
        anon.get("/desk/search", follow_redirects=False),
        anon.get(f"/desk/records/{desk.records[0]}", follow_redirects=False),
    ):
        _assert_secure(r)
    c = _signed_in(app)
    _open(c, desk.records[0])
    pages = [
        c.get("/desk/search"),
        c.get(f"/desk/records/{desk.records[0]}"),
        c.get("/desk/holds"),
        c.get("/desk/records/nope"),
        c.get(f"/desk/records/{desk.records[0]}/audio"),
        c.get(f"/desk/records/{desk.records[0]}/accesses.csv"),
    ]
    for r in pages:
        _assert_secure(r)
    for r in pages[:4]:
        _assert_no_inline(r.text)


def test_the_player_style_nonce_is_the_one_in_the_header(app, desk):
    c = _signed_in(app)
    _open(c, desk.records[0])
    r = c.get(f"/desk/records/{desk.records[0]}")
    nonce = re.search(r'data-nonce="([^"]+)"', r.text)[1]
    assert f"style-src 'self' 'nonce-{nonce}'" in r.headers["content-security-policy"]
    assert nonce != re.search(r'data-nonce="([^"]+)"', c.get(r.url).text)[1]  # per response


# -- signing in ---------------------------------------------------------------------------


def _failure_text(r) -> str:
    main = r.text.split('<main id="main">', 1)[1].split("</main>", 1)[0]
    return re.sub(r'value="[^"]*"', "", main)


def test_sign_in_errors_never_say_whether_the_handle_exists(app):
    c = _client(app)
    unknown = sign_in(c, "nobody-here")
    wrong = sign_in(c, "carla", "not the passphrase")
    assert unknown.status_code == wrong.status_code == 401
    assert _failure_text(unknown) == _failure_text(wrong)
    assert COOKIE not in unknown.cookies and COOKIE not in wrong.cookies


def test_session_cookie_flags_and_only_its_hash_is_stored(app, desk):
    c = _client(app)
    r = sign_in(c, "carla")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http, secure_cookie = "auto"
    secret = c.cookies[COOKIE]
    with read_session(desk.ctx.engine) as s:
        hashes = [h for (h,) in s.exec(text("SELECT id_hash FROM web_session"))]
    assert session_digest(secret) in hashes and secret not in hashes
    https = TestClient(app.app, base_url="https://testserver")
    assert "Secure" in sign_in(https, "carla").headers["set-cookie"]


def test_sign_in_form_needs_its_token(app):
    c = _client(app)
    c.get("/desk/sign-in")
    r = c.post("/desk/sign-in", data={"handle": "carla", "password": PASSWORD})
    assert r.status_code == 400 and COOKIE not in c.cookies


def test_throttling_locks_after_five_failures_even_for_the_right_password(app, desk):
    c = _client(app)
    for _ in range(credentials.FREE_FAILURES):
        assert sign_in(c, "chris", "wrong passphrase!").status_code == 401
    locked = sign_in(c, "chris")
    assert locked.status_code == 429 and COOKIE not in c.cookies
    # the lock is in the database: a second app (another worker) sees it
    with TestClient(create_app(desk.ctx)) as other:
        assert sign_in(other, "chris").status_code == 429
    desk.clock.now += timedelta(hours=2)
    assert sign_in(c, "chris").status_code == 303


def _peer(desk, monkeypatch, proxies: tuple[str, ...], peer: str, forwarded: dict) -> TestClient:
    """A client whose connection comes from ``peer`` with ``forwarded`` headers, on a vault
    that trusts ``proxies`` (``[web] trusted_proxies``)."""
    from dataclasses import replace

    monkeypatch.setattr(
        desk.ctx, "settings", replace(desk.ctx.settings, web_trusted_proxies=proxies)
    )
    return TestClient(create_app(desk.ctx), client=(peer, 50000), headers=forwarded)


def _lock_out(c: TestClient) -> None:
    """Five failures under five unknown handles: only the address's counter reaches five."""
    for i in range(credentials.FREE_FAILURES):
        assert sign_in(c, f"nobody{i}", "wrong passphrase!").status_code == 401


def test_behind_a_trusted_proxy_the_lock_is_per_forwarded_address(app, desk, monkeypatch):
    """Behind a reverse proxy every connection comes from the proxy: without believing its
    X-Forwarded-For, five failures from anyone would lock everyone out."""
    proxy = ("127.0.0.1",)
    guesser = _peer(desk, monkeypatch, proxy, "127.0.0.1", {"X-Forwarded-For": "203.0.113.5"})
    _lock_out(guesser)
    assert sign_in(guesser, "carla").status_code == 429  # this address is locked
    colleague = _peer(
        desk, monkeypatch, proxy, "127.0.0.1", {"X-Forwarded-For": "192.0.2.9, 203.0.113.6"}
    )
    assert sign_in(colleague, "carla").status_code == 303  # another client, behind the proxy


def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(app, desk, monkeypatch):
    """Without the peer in trusted_proxies, a client cannot pick its address (and escape
    the lock) by sending X-Forwarded-For itself."""
    for i in range(credentials.FREE_FAILURES):
        c = _peer(desk, monkeypatch, (), "198.51.100.7", {"X-Forwarded-For": f"203.0.113.{i}"})
        assert sign_in(c, f"nobody{i}", "wrong passphrase!").status_code == 401
    again = _peer(desk, monkeypatch, (), "198.51.100.7", {"X-Forwarded-For": "203.0.113.99"})
    assert sign_in(again, "carla").status_code == 429
    # a trusted list that does not name this peer changes nothing either
    other = _peer(
        desk, monkeypatch, ("10.0.0.0/8",), "198.51.100.7", {"X-Forwarded-For": "203.0.113.98"}
    )
    assert sign_in(other, "carla").status_code == 429


def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(app, desk, monkeypatch):
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    behind = _peer(desk, monkeypatch, ("10.0.0.0/8",), "10.1.2.3", https)
    assert "Secure" in sign_in(behind, "carla").headers["set-cookie"]
    spoofed = _peer(desk, monkeypatch, ("10.0.0.0/8",), "198.51.100.8", https)
    assert "Secure" not in sign_in(spoofed, "carla").headers["set-cookie"]


def test_csrf_token_is_checked_on_every_post(app, desk):
    c = _signed_in(app)
    csrf = csrf_of(c.get("/desk/search").text)
    rid = desk.records[0]
    for path, data in (
        ("/desk/search", {"order_ref": "ORD-2026-000000"}),
        (f"/desk/records/{rid}/open", {"reason": "dispute"}),
        (f"/desk/records/{rid}/dispute", {"case_ref": "X-1", "reason": "r"}),
        (f"/desk/records/{rid}/bundle", {"go": "1"}),
        ("/desk/sign-out", {"go": "1"}),
    ):
        assert c.post(path, data=data).status_code == 403, path
        assert c.post(path, data={**data, "csrf": "0" * 64}).status_code == 403, path
    assert c.post("/desk/search", data={"csrf": csrf, "order_ref": "x"}).status_code == 200
    assert _accesses(desk, rid) == [] or all(a.get("reason") for a in _accesses(desk, rid))


def test_sign_out_deletes_the_session_row(app, desk):
    c = _signed_in(app)
    secret = c.cookies[COOKIE]
    csrf = csrf_of(c.get("/desk/search").text)
    assert c.post("/desk/sign-out", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    with read_session(desk.ctx.engine) as s:
        assert s.get(WebSession, session_digest(secret)) is None
    replay = _client(app)
    replay.cookies.set(COOKIE, secret)
    r = replay.get("/desk/search", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/desk/sign-in"


def test_idle_and_absolute_expiry(app, desk):
    c = _signed_in(app)
    desk.clock.now += timedelta(minutes=29)
    assert c.get("/desk/search").status_code == 200
    desk.clock.now += timedelta(minutes=31)
    assert c.get("/desk/search", follow_redirects=False).status_code == 303  # idle
    c = _signed_in(app)
    signed_at = desk.clock.now
    for _ in range(12 * 3 + 1):  # active every 20 minutes: idle never ends it ...
        desk.clock.now += timedelta(minutes=20)
        if c.get("/desk/search", follow_redirects=False).status_code != 200:
            break
    else:
        pytest.fail("the session outlived its absolute lifetime")
    # ... the absolute 12 hours do
    assert desk.clock.now - signed_at == timedelta(hours=12, minutes=20)


def test_totp_second_step(app, desk):
    ctx = desk.ctx
    uri = credentials.enrol_totp(ctx, "chris", by=credentials_op())
    secret = _totp_secret(desk, "chris")
    assert uri.startswith("otpauth://")
    c = _client(app)
    r = sign_in(c, "chris")
    assert r.status_code == 303 and r.headers["location"] == "/desk/sign-in/code"
    # half signed in: no page but the code page
    assert c.get("/desk/search", follow_redirects=False).headers["location"] == "/desk/sign-in"
    page = c.get("/desk/sign-in/code")
    token = re.search(r'name="token" value="([^"]+)"', page.text)[1]
    bad = c.post("/desk/sign-in/code", data={"token": token, "code": "12345x"})
    assert bad.status_code == 401
    good = c.post(
        "/desk/sign-in/code",
        data={"token": token, "code": totp_code(secret, desk.clock.now)},
        follow_redirects=False,
    )
    assert good.status_code == 303
    assert c.get("/desk/search").status_code == 200
    credentials.reset_factor(ctx, "chris", by=credentials_op())
    # resetting a factor ended the session
    assert c.get("/desk/search", follow_redirects=False).status_code == 303


def credentials_op():
    from tests.support.desk import OP

    return OP


def _totp_secret(desk, handle: str) -> bytes:
    from vault.db.models import Credential, Person

    with read_session(desk.ctx.engine) as s:
        person = s.exec(select(Person).where(Person.handle == handle)).one()
        cred = s.get(Credential, person.id)
    return credentials.seal(desk.ctx).open_totp(person.id, bytes(cred.totp_sealed))


def test_api_bearer_tokens_still_work_beside_the_desk(app, desk):
    from tests.support.vaults import person_token

    _, secret = person_token(desk.ctx, "client", "telco-de")
    r = app.post(
        "/v1/records/search",
        json={"order_ref": "ORD-2026-000000"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 200 and len(r.json()) == 1


# -- search -------------------------------------------------------------------------------


def test_search_by_order_ref_and_by_phone_without_the_phone_in_urls_or_logs(app, desk, caplog):
    c = _signed_in(app)
    csrf = csrf_of(c.get("/desk/search").text)
    r = c.post("/desk/search", data={"csrf": csrf, "order_ref": "ORD-2026-000001"})
    assert r.status_code == 200 and f"/desk/records/{desk.records[1]}" in r.text
    assert f"/desk/records/{desk.records[0]}" not in r.text
    with caplog.at_level(logging.INFO, logger="vault"):
        r = c.post("/desk/search", data={"csrf": csrf, "phone": "+49 151 12345672"})
    assert f"/desk/records/{desk.records[2]}" in r.text
    assert f"/desk/records/{desk.records[1]}" not in r.text
    assert "12345672" not in caplog.text and "/desk/search" in caplog.text
    assert all("12345672" not in str(u) for u in (r.url, *[h.url for h in r.history]))


def test_empty_result_says_what_was_searched(app):
    c = _signed_in(app)
    csrf = csrf_of(c.get("/desk/search").text)
    r = c.post(
        "/desk/search",
        data={"csrf": csrf, "order_ref": "ORD-NOPE", "phone": "+4915199999999", "state": "held"},
    )
    assert r.status_code == 200
    assert "ORD-NOPE" in r.text and "No records match" in r.text
    assert "+4915199999999" not in r.text.split("<main", 1)[1].split("<form", 1)[0]
    assert "+49" + "•" * 8 + "999" in r.text  # masked in the summary


def test_search_refuses_a_bad_phone_and_a_bad_date(app):
    c = _signed_in(app)
    csrf = csrf_of(c.get("/desk/search").text)
    r = c.post("/desk/search", data={"csrf": csrf, "phone": "0151 123", "since": "2026-13-40"})
    assert r.status_code == 422 and "Phone number" in r.text and "Recorded from" in r.text


def test_search_pages_and_filters_by_state_and_date(app, desk, monkeypatch):
    monkeypatch.setattr(desk_records, "PAGE_SIZE", 2)
    c = _signed_in(app)
    csrf = csrf_of(c.get("/desk/search").text)
    form = {"csrf": csrf, "campaign": "fibre-upsell-2026q4", "since": "2026-11-20"}
    first = c.post("/desk/search", data=form)
    assert first.text.count('href="/desk/records/') == 2 and "Next page" in first.text
    second = c.post("/desk/search", data={**form, "page": "1"})
    assert second.text.count('href="/desk/records/') == 1 and "Previous page" in second.text
    assert (
        c.post("/desk/search", data={**form, "since": "2026-11-21"}).text.count(
            'href="/desk/records/'
        )
        == 0
    )


# -- records ------------------------------------------------------------------------------


def test_another_tenants_record_looks_exactly_like_an_unknown_one(app, desk):
    c = _signed_in(app)
    other = c.get(f"/desk/records/{desk.other_record}")
    unknown = c.get("/desk/records/01zzzzzzzzzzzzzzzzzzzzzzzz")
    assert other.status_code == unknown.status_code == 404
    assert _failure_text(other) == _failure_text(unknown)
    for path in ("audio", "accesses.csv"):
        assert c.get(f"/desk/records/{desk.other_record}/{path}").status_code == 404
    csrf = csrf_of(c.get("/desk/search").text)
    r = c.post(f"/desk/records/{desk.other_record}/open", data={"csrf": csrf, "reason": "dispute"})
    assert r.status_code == 404 and _accesses(desk, desk.other_record) == []


def test_evidence_and_audio_open_only_with_a_reason_which_is_logged(app, desk):
    rid = desk.records[1]
    c = _signed_in(app)
    before = c.get(f"/desk/records/{rid}")
    assert "Max Mustermann" not in before.text and 'id="player"' not in before.text
    assert c.get(f"/desk/records/{rid}/audio").status_code == 403
    csrf = csrf_of(before.text)
    assert (
        c.post(f"/desk/records/{rid}/open", data={"csrf": csrf, "reason": "curious"}).status_code
        == 422
    )
    r = c.post(
        f"/desk/records/{rid}/open", data={"csrf": csrf, "reason": "dispute", "case": "bad case!"}
    )
    assert r.status_code == 422
    n = len(_accesses(desk, rid))
    opened = _open(c, rid, "complaint", "CASE-9")
    # the answer is the opened page itself (no redirect), naming its own address for the
    # history; its language switch returns to the record, not to the form's target
    assert opened.status_code == 200 and 'id="player"' in opened.text
    assert f'data-canonical="/desk/records/{rid}#evidence"' in opened.text
    assert f'name="back" value="/desk/records/{rid}"' in opened.text
    logged = _accesses(desk, rid)[n:]
    assert logged == [
        {"principal": "person:carla", "what": "evidence", "reason": "complaint", "case": "CASE-9"}
    ]
    page = c.get(f"/desk/records/{rid}")
    assert 'data-canonical="' not in page.text
    assert "Max Mustermann" in page.text and "Fibre 250" in page.text
    assert "+4915112345671" not in page.text and "671" in page.text  # masked
    assert 'data-start="1.000"' in page.text  # the intent span, for the player
    assert "person:carla" in page.text.split('id="accesses"', 1)[1]
    # another person's session has no grant of its own
    assert _signed_in(app, "chris").get(f"/desk/records/{rid}/audio").status_code == 403


def test_audio_streams_with_range_and_matches_the_upload(app, desk):
    rid = desk.records[0]
    c = _signed_in(app)
    _open(c, rid)
    whole = c.get(f"/desk/records/{rid}/audio")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.content[:4] == b"RIFF"
    part = c.get(f"/desk/records/{rid}/audio", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == whole.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(whole.content)}"
    beyond = c.get(f"/desk/records/{rid}/audio", headers={"Range": "bytes=999999999-"})
    assert beyond.status_code == 416


def test_access_history_csv(app, desk):
    rid = desk.records[2]
    c = _signed_in(app)
    _open(c, rid, "quality-audit", "=HYPERLINK")  # refused: not a case reference
    _open(c, rid, "quality-audit", "QA-2026-1")
    r = c.get(f"/desk/records/{rid}/accesses.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[-1]["principal"] == "person:carla"
    assert rows[-1]["reason"] == "quality-audit" and rows[-1]["case"] == "QA-2026-1"
    assert all(not row["case"].startswith("=") for row in rows)


def test_bundle_download_is_logged_with_the_reason(app, desk):
    rid = desk.records[0]
    c = _signed_in(app)
    csrf = csrf_of(c.get(f"/desk/records/{rid}").text)
    assert c.post(f"/desk/records/{rid}/bundle", data={"csrf": csrf}).status_code == 403
    _open(c, rid, "authority-request", "AZ-4711")
    r = c.post(f"/desk/records/{rid}/bundle", data={"csrf": csrf})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    last = _accesses(desk, rid)[-1]
    assert last == {
        "principal": "person:carla",
        "what": "bundle",
        "reason": "authority-request",
        "case": "AZ-4711",
    }


def test_integrity_panel_names_each_check_and_fails_on_a_changed_object(app, desk):
    rid = desk.records[2]
    c = _signed_in(app)
    record_page = c.get(f"/desk/records/{rid}").text
    # the record page shows the evidence at once; its panel loads the checks from here
    assert f'data-checks="/desk/records/{rid}/integrity"' in record_page
    assert 'data-check="' not in record_page
    page = c.get(f"/desk/records/{rid}/integrity").text
    checks = dict(re.findall(r'class="check (pass|fail)" data-check="(\w+)"', page))
    assert set(re.findall(r'data-check="(\w+)"', page)) == {
        "row",
        "objects",
        "inclusion",
        "signature",
    }
    assert "fail" not in checks
    from vault.db.models import Record

    with read_session(desk.ctx.engine) as s:
        rec = s.get(Record, rid)
    stored = desk.vault.settings.resolved_objects_dir / rec.clip_key
    original = stored.read_bytes()
    try:
        stored.chmod(0o600)
        stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        page = c.get(f"/desk/records/{rid}/integrity").text  # checked again: not cached
        assert re.search(r'class="check fail" data-check="objects"', page)
        assert re.search(r'class="check pass" data-check="signature"', page)
    finally:
        stored.write_bytes(original)
    page = c.get(f"/desk/records/{rid}/integrity").text
    assert not re.search(r'class="check fail"', page)
    # another tenant's record: the same page as an unknown one
    r = c.get(f"/desk/records/{desk.other_record}/integrity")
    assert r.status_code == 404 and 'data-check="' not in r.text


# -- disputes and holds -------------------------------------------------------------------


def test_dispute_holds_and_four_eyes_release(app, desk):
    rid = desk.records[1]
    c = _signed_in(app)
    csrf = csrf_of(c.get(f"/desk/records/{rid}").text)
    r = c.post(
        f"/desk/records/{rid}/dispute",
        data={"csrf": csrf, "case_ref": "DISP-1", "reason": "customer says no"},
        follow_redirects=True,
    )
    assert r.status_code == 200 and "DISP-1" in r.text
    assert "DISP-1" in c.get("/desk/holds").text
    # the other tenant's person does not see it
    assert "DISP-1" not in _signed_in(app, "olga").get("/desk/holds").text
    # clients have no release button and cannot post one
    hold_id = re.search(r'data-hold="([^"]+)"', c.get("/desk/holds").text)[1]
    assert c.post(f"/desk/holds/{hold_id}/release", data={"csrf": csrf}).status_code == 403
    adam, bea = _signed_in(app, "adam"), _signed_in(app, "bea")
    page = adam.get("/desk/holds").text
    assert "Request release" in page
    csrf_a = csrf_of(page)
    assert adam.post(f"/desk/holds/{hold_id}/release", data={"csrf": csrf_a}).status_code == 200
    again = adam.post(f"/desk/holds/{hold_id}/release", data={"csrf": csrf_a})
    assert again.status_code == 403 and "two different admins" in again.text
    csrf_b = csrf_of(bea.get("/desk/holds").text)
    assert "requested by person:adam" in bea.get("/desk/holds").text
    assert bea.post(f"/desk/holds/{hold_id}/release", data={"csrf": csrf_b}).status_code == 200
    assert hold_id not in bea.get("/desk/holds").text
    # admins do not read evidence at the desk
    assert adam.get(f"/desk/records/{rid}").status_code == 403


def test_unsigned_requests_go_to_sign_in(app, desk):
    anon = _client(app)
    for path in ("/desk", "/desk/search", "/desk/holds", f"/desk/records/{desk.records[0]}/audio"):
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/desk/sign-in", path


def _lang_token(html: str) -> str:
    m = re.search(r'class="lang"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"', html)
    assert m, "no token in the language switch"
    return m[1]


def test_language_switch_and_accept_language(app):
    c = _client(app)
    page = c.get("/desk/sign-in", headers={"Accept-Language": "de-AT"})
    assert "Anmelden" in page.text
    token = _lang_token(page.text)
    r = c.post(
        "/desk/language",
        data={"csrf": token, "lang": "de", "back": "/desk/sign-in"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/desk/sign-in"
    page = c.get("/desk/sign-in", headers={"Accept-Language": "en"})
    assert '<html lang="de">' in page.text and "Kennung" in page.text
    for back in ("https://evil.example/", "//evil.example/desk", "/desk\\..", "/other"):
        r = c.post(
            "/desk/language",
            data={"csrf": token, "lang": "en", "back": back},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/desk", back
    assert 'lang="en"' in c.get("/desk/sign-in").text


def test_the_record_page_is_localised_in_german_and_english(app, desk):
    """Spans as the locale's mm:ss, dates, prices, terms and numbers per locale; the sealed
    text stays machine-readable beside them (``<data value>``, ``<time datetime>``)."""
    rid = desk.records[0]
    c = _signed_in(app)
    assert _open(c, rid).status_code == 200
    pages = {}
    for lang in ("en", "de"):
        c.cookies.set("desk_lang", lang)
        pages[lang] = c.get(f"/desk/records/{rid}").text
    de, en = pages["de"], pages["en"]
    assert '<time datetime="1980-01-31">31.01.1980</time>' in de
    assert '<time datetime="1980-01-31">Jan 31, 1980</time>' in en
    assert '<data value="39.99 EUR/month">39,99\xa0€ pro Monat</data>' in de
    assert '<data value="39.99 EUR/month">€39.99 per month</data>' in en
    assert '<data value="24 months">24 Monate</data>' in de
    assert "Name, Geburtsdatum und Postleitzahl" in de or "Name, Geburtsdatum und PLZ" in de
    assert "00:01\u2009–\u200900:01" in de  # the intent span (1,000-1,800 ms)
    assert ">1,25×</option>" in de and ">1.25×</option>" in en
    assert "dialer-7f3a-000000, Abschnitt 1" in de
    for page in (de, en):
        assert "39.99 EUR/month</dd>" not in page and "1980-01-31</dd>" not in page
    c.cookies.delete("desk_lang")


def test_language_switch_refuses_a_cross_site_post(app):
    """Before and after sign-in: without the page's token (as another site's form would
    post it) the switch is refused and the language stays."""
    anon = _client(app)
    page = anon.get("/desk/sign-in")
    for data in ({"lang": "de"}, {"lang": "de", "csrf": "x" * 43}):
        r = anon.post("/desk/language", data={**data, "back": "/desk"}, follow_redirects=False)
        assert r.status_code == 403 and "desk_lang" not in r.headers.get("set-cookie", "")
    # a cross-site browser sends no SameSite=Strict cookie: the right token alone fails too
    bare = _client(app)
    r = bare.post(
        "/desk/language",
        data={"lang": "de", "csrf": _lang_token(page.text), "back": "/desk"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    c = _signed_in(app)
    search = c.get("/desk/search")
    assert _lang_token(search.text) == csrf_of(search.text)  # the session's token
    r = c.post("/desk/language", data={"lang": "de", "back": "/desk"}, follow_redirects=False)
    assert r.status_code == 403
    assert 'lang="en"' in c.get("/desk/search").text
    r = c.post(
        "/desk/language",
        data={"lang": "de", "back": "/desk/search", "csrf": csrf_of(search.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and 'lang="de"' in c.get("/desk/search").text


def test_a_database_writer_cannot_make_or_repoint_a_session(app, desk):
    """Sessions are tagged under the keyring: an inserted row, or one moved to another
    person, signs nobody in."""
    from vault.db.models import Person

    with read_session(desk.ctx.engine) as s:
        ids = {p.handle: p.id for p in s.exec(select(Person))}
    # an inserted row for a secret the attacker chose
    secret = "ab" * 32
    now = desk.clock.now
    with write_session(desk.ctx.engine) as s:
        s.add(
            WebSession(
                id_hash=session_digest(secret),
                person_id=ids["carla"],
                stage="full",
                csrf="0" * 64,
                created_at=now,
                last_seen_at=now,
                tag=b"\0" * 32,
            )
        )
    forged = _client(app)
    forged.cookies.set(COOKIE, secret)
    assert forged.get("/desk/search", follow_redirects=False).status_code == 303
    # a real session re-pointed at another tenant's person
    c = _signed_in(app, "chris")
    own = session_digest(c.cookies[COOKIE])
    with write_session(desk.ctx.engine) as s:
        s.exec(
            text("UPDATE web_session SET person_id = :p WHERE id_hash = :h"),
            params={"p": ids["olga"], "h": own},
        )
    assert c.get("/desk/search", follow_redirects=False).status_code == 303


def test_a_database_writer_cannot_grant_evidence_without_a_logged_reason(app, desk):
    from vault.db.models import DeskGrant

    rid = desk.records[0]
    c = _signed_in(app, "chris")
    own = session_digest(c.cookies[COOKIE])
    n = len(_accesses(desk, rid))
    with write_session(desk.ctx.engine) as s:
        s.add(
            DeskGrant(
                session_hash=own,
                record_id=rid,
                reason="dispute",
                case_ref="",
                granted_at=desk.clock.now,
                tag=b"\1" * 32,
            )
        )
    assert c.get(f"/desk/records/{rid}/audio").status_code == 403
    assert "Max Mustermann" not in c.get(f"/desk/records/{rid}").text
    assert len(_accesses(desk, rid)) == n
    # a real grant made for one record does not open another
    _open(c, rid)
    with write_session(desk.ctx.engine) as s:
        s.exec(
            text("UPDATE desk_grant SET record_id = :r WHERE session_hash = :h"),
            params={"r": desk.records[2], "h": own},
        )
    assert c.get(f"/desk/records/{desk.records[2]}/audio").status_code == 403


def test_secure_cookie_when_configured_behind_a_proxy(app, desk):
    from dataclasses import replace

    before = desk.ctx.settings
    desk.ctx.settings = replace(before, web_secure_cookie="always")
    try:
        c = _client(app)  # plain http, as behind a TLS proxy
        page = c.get("/desk/sign-in")
        assert "Secure" in page.headers["set-cookie"]
        token = re.search(r'name="token" value="([^"]+)"', page.text)[1]
        c.cookies.set("desk_signin", token)  # the browser, on https, sends it back
        r = c.post(
            "/desk/sign-in",
            data={"token": token, "handle": "carla", "password": PASSWORD},
            follow_redirects=False,
        )
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
    finally:
        desk.ctx.settings = before


def test_single_sign_on_is_offered_only_when_configured(app, monkeypatch):
    assert "/sso/start" not in _client(app).get("/desk/sign-in").text
    assert _client(app).get("/sso/start", follow_redirects=False).status_code == 404
    monkeypatch.setenv("EVIDENCE_VAULT_OIDC_ISSUER", "https://login.example.com")
    monkeypatch.setenv("EVIDENCE_VAULT_OIDC_CLIENT_ID", "desk")
    with TestClient(create_app(app.app.state.ctx)) as configured:
        assert 'href="/sso/start?next=/desk"' in configured.get("/desk/sign-in").text


def test_sessions_nobody_came_back_to_are_swept_at_the_next_sign_in(app, desk):
    c = _signed_in(app)
    left = session_digest(c.cookies[COOKIE])
    desk.clock.now += timedelta(hours=12, minutes=1)
    _signed_in(app, "chris")
    with read_session(desk.ctx.engine) as s:
        assert s.get(WebSession, left) is None
