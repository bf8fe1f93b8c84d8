"""The escalation desk in a real browser against a real ``serve``: the whole escalation,
the player's regions and keyboard operation, and axe-core on every page."""

from __future__ import annotations

import re

import pytest

from tests.support.browser import assert_accessible, start_server
from tests.support.desk import PASSWORD, desk_vault

SECONDS = 12.0


@pytest.fixture
def desk_server(tmp_path):
    dv = desk_vault(tmp_path / "vault", seconds=SECONDS)
    records = list(dv.records)
    dv.vault.close()
    with start_server(tmp_path / "vault", tmp_path / "server.log") as server:
        server.records = records
        yield server


def _sign_in(page, url: str, handle: str) -> None:
    page.goto(url + "/desk/sign-in")
    page.fill("#handle", handle)
    page.fill("#password", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_load_state()


def _sign_out(page) -> None:
    page.click(".signout button")
    page.wait_for_url("**/desk/sign-in")


def _check_page(page, refused: int | None = None) -> None:
    """No console errors (CSP violations are some), nothing loaded off-site, then axe-core.

    ``refused``: the page itself answered with this status on purpose (its one console line).
    """
    if refused is not None:
        expected = f"the server responded with a status of {refused}"
        assert [e for e in page.errors if expected in e], page.errors
        page.errors[:] = [e for e in page.errors if expected not in e]
    assert page.errors == [], page.errors
    assert page.offsite == []
    assert_accessible(page)
    # axe-core itself sets inline styles while it measures (refused by the page's CSP,
    # harmlessly): what it causes is not the page's fault
    page.errors[:] = [e for e in page.errors if "Applying inline style" not in e]


def _open_record(page, order_ref: str) -> None:
    page.click(f"a >> text={order_ref}")
    page.wait_for_url("**/desk/records/*")
    _integrity_shown(page)


def _integrity_shown(page) -> list[str]:
    """The record page's integrity panel, once its checks have loaded (just after the page)."""
    page.wait_for_selector("#integrity[aria-busy=false] li.check", timeout=30000)
    return page.eval_on_selector_all("#integrity li.check", "els => els.map(e => e.className)")


def test_the_escalation_end_to_end(desk_server, page):
    url = desk_server.url
    page.goto(url + "/desk/sign-in")
    _check_page(page)
    page.fill("#handle", "carla")
    page.fill("#password", "wrong passphrase")
    page.click("form.card button[type=submit]")
    assert page.locator("[role=alert]").count() == 1
    _check_page(page, refused=401)
    _sign_in(page, url, "carla")
    assert page.url.endswith("/desk/search")
    _check_page(page)

    # search by order reference, then by phone number (a POST: never in the URL)
    page.fill("#order_ref", "ORD-2026-000001")
    page.click("form.search button[type=submit]")
    assert page.locator("table.results tbody tr").count() == 1
    _check_page(page)
    page.fill("#order_ref", "")
    page.fill("#phone", "+49 151 12345671")
    page.click("form.search button[type=submit]")
    assert page.locator("table.results tbody tr").count() == 1
    assert "12345671" not in page.url
    page.fill("#phone", "+49 151 99999999")
    page.click("form.search button[type=submit]")
    assert page.locator(".empty dl.criteria").count() == 1
    _check_page(page)
    page.fill("#phone", "+49 151 12345671")
    page.click("form.search button[type=submit]")
    _open_record(page, "ORD-2026-000001")
    assert page.locator("#player").count() == 0
    assert _integrity_shown(page) == ["check pass"] * 4
    _check_page(page)

    # a reason opens the evidence and the player
    page.select_option("#reason", "dispute")
    page.fill("#case", "CASE-2026-17")
    page.click("form.reason button[type=submit]")
    page.wait_for_selector("#player[data-ready=true]", timeout=30000)
    _integrity_shown(page)
    _check_page(page)
    regions = page.evaluate(
        "() => deskPlayer.regions.getRegions().map(r => [r.id, r.start, r.end])"
    )
    assert sorted(regions) == sorted(
        [
            ["consent", 0.2, 0.3],
            ["identity", 0.3, 0.9],
            ["intent", 1.0, 1.8],
            ["withdrawal", 1.85, 1.95],
        ]
    )
    page.click("#play-intent")
    at = page.evaluate("() => deskPlayer.ws.getCurrentTime()")
    assert 1.0 <= at < 1.8
    page.click("#play")  # pause (or stop) whatever plays
    page.select_option("#speed", "1.5")
    assert page.evaluate("() => deskPlayer.ws.getMediaElement().playbackRate") == 1.5

    # the opened page came as the answer to the form; its own address is in the history,
    # so a reload shows it again without posting (and logging) a second time
    assert page.url.endswith("#evidence") and "/open" not in page.url
    accesses = page.locator("#accesses tbody tr").count()
    page.reload()
    page.wait_for_selector("#player[data-ready=true]", timeout=30000)
    _integrity_shown(page)
    assert page.locator("#accesses tbody tr").count() == accesses

    # the access is on the page: person and reason
    row = page.locator("#accesses tbody tr").last
    assert "person:carla" in row.inner_text()
    assert "Customer disputes the order" in row.inner_text() and "CASE-2026-17" in row.inner_text()

    # open a dispute: the hold is listed
    page.fill("#case_ref", "DISP-2026-5")
    page.fill("#dispute_reason", "the customer denies the order")
    page.click("form.dispute button[type=submit]")
    assert "DISP-2026-5" in page.locator("#holds").inner_text()
    page.goto(url + "/desk/holds")
    assert "DISP-2026-5" in page.locator("table.holds").inner_text()
    _check_page(page)
    _sign_out(page)

    # four-eyes release: adam requests, adam again is refused, bea approves
    _sign_in(page, url, "adam")
    page.goto(url + "/desk/holds")
    _check_page(page)
    page.click("tr:has-text('DISP-2026-5') button")
    assert "requested by person:adam" in page.locator("table.holds").inner_text()
    page.click("tr:has-text('DISP-2026-5') button")
    assert "two different admins" in page.locator("[role=alert]").inner_text()
    _check_page(page, refused=403)
    _sign_out(page)
    _sign_in(page, url, "bea")
    page.goto(url + "/desk/holds")
    page.click("tr:has-text('DISP-2026-5') button")
    assert "DISP-2026-5" not in page.locator("main").inner_text()
    _check_page(page)


_PLAYING = (
    "() => String(deskPlayer.ws.isPlaying()) === '%s'"
    " && document.querySelector('#play').getAttribute('aria-pressed') === '%s'"
)


def test_the_player_by_keyboard_alone(desk_server, page):
    url = desk_server.url
    _sign_in(page, url, "chris")
    page.goto(url + f"/desk/records/{desk_server.records[0]}")
    page.select_option("#reason", "quality-audit")
    page.click("form.reason button[type=submit]")
    page.wait_for_selector("#player[data-ready=true]", timeout=30000)
    _integrity_shown(page)
    for _ in range(60):  # Tab through the page until the player's slider has the focus
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "waveform":
            break
    else:
        pytest.fail("the player cannot be reached with Tab")

    def now() -> tuple[str, str]:
        slider = page.locator("#waveform")
        return slider.get_attribute("aria-valuenow"), slider.get_attribute("aria-valuetext")

    page.keyboard.press("End")
    assert now() == ("12", "00:12")
    page.keyboard.press("Home")
    assert now() == ("0", "00:00")
    page.keyboard.press("ArrowRight")
    assert now() == ("5", "00:05")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    assert now() == ("5", "00:05")
    page.keyboard.press(" ")
    # wavesurfer reports isPlaying() a moment before its "play" event sets aria-pressed:
    # wait for both together, not for one and then read the other.
    page.wait_for_function(_PLAYING % ("true", "true"))
    page.keyboard.press(" ")
    page.wait_for_function(_PLAYING % ("false", "false"))
    assert page.evaluate("() => document.activeElement.id") == "waveform"
    # seek, play, then pause before playback has begun (keys pressed in one task): the
    # interrupted play() is the listener's own doing, not an uncaught error on the page
    page.evaluate(_PLAY_THEN_PAUSE_AT_ONCE)
    page.wait_for_function(_PLAYING % ("false", "false"))
    _check_page(page)


_PLAY_THEN_PAUSE_AT_ONCE = """async () => {
  const slider = document.getElementById("waveform");
  for (const key of ["ArrowRight", " ", " "]) {
    slider.dispatchEvent(new KeyboardEvent("keydown", { key }));
  }
  // the pending play() is rejected in a later task: give it the time to surface if unhandled
  await new Promise((settled) => setTimeout(settled, 250));
}"""


def test_german_pages_pass_axe_too(desk_server, page):
    url = desk_server.url
    page.goto(url + "/desk/sign-in")
    page.select_option("#lang", "de")
    page.click("form.lang button")
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "de"
    assert re.search("Anmelden", page.inner_text("main"))
    _check_page(page)
    _sign_in(page, url, "carla")
    assert "Nachweise suchen" in page.inner_text("main")
    # the record page in German: spans, dates, price, speeds in the locale; then axe
    page.goto(url + f"/desk/records/{desk_server.records[2]}")
    page.select_option("#reason", "complaint")
    page.click("form.reason button[type=submit]")
    page.wait_for_selector("#player[data-ready=true]", timeout=30000)
    assert _integrity_shown(page) == ["check pass"] * 4
    facts = page.inner_text("#evidence")
    assert "31.01.1980" in facts and "39,99\xa0€ pro Monat" in facts and "24 Monate" in facts
    assert "00:01\u2009–\u200900:01" in facts
    assert page.inner_text("#speed option:checked") == "1×"
    assert "1,25×" in page.inner_text("#speed")
    _check_page(page)
    page.goto(url + f"/desk/records/{desk_server.records[2]}/integrity")
    assert "Soeben geprüft" in page.inner_text("main")
    _check_page(page)
    page.goto(url + "/desk/records/01zzzzzzzzzzzzzzzzzzzzzzzz")
    assert "Nicht gefunden" in page.inner_text("main")
    _check_page(page, refused=404)
