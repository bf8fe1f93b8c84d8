"""Screenshots of the escalation desk for the docs: German, 1280×800, PNG.

A throwaway vault seeded like the browser tests (tests/support/desk.py: a few records of
two tenants, persons with passwords), ``evidence-vault serve`` on it, and Debian's
chromium driven by Playwright. Writes into ``docs/screenshots/``:

- ``desk-search.png``: the search page with the hits of an order reference
- ``desk-record.png``: the record page with the evidence opened (reason given)
- ``desk-integrity.png``: the record page's integrity panel
- ``desk-admin.png``: an admin's people page of a tenant

Run from the repository root: ``python scripts/screenshots.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, start_server  # noqa: E402
from tests.support.desk import CLIENT, OP, PASSWORD, desk_vault  # noqa: E402

SIZE = {"width": 1280, "height": 800}


def seed(home: Path) -> None:
    from vault.services import credentials, people

    dv = desk_vault(home, records=4, seconds=12.0)
    people.add_person(dv.ctx, "tara", role="admin", client=CLIENT, by=OP)
    credentials.set_password(dv.ctx, "tara", PASSWORD, by=OP)
    people.add_person(dv.ctx, "dialer-hall-3", role="dialer", client=CLIENT, by=OP)
    dv.vault.close()


def sign_in(page, url: str, handle: str) -> None:
    page.goto(url + "/desk/sign-in")
    page.fill("#handle", handle)
    page.fill("#password", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_load_state()


def shoot(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport=SIZE, locale="de-DE", timezone_id="Europe/Berlin", device_scale_factor=1
        )
        context.add_cookies([{"name": "desk_lang", "value": "de", "url": url}])
        page = context.new_page()
        sign_in(page, url, "carla")
        page.fill("#order_ref", "ORD-2026-000001")
        page.click("form.search button[type=submit]")
        page.wait_for_selector("table.results")
        written.append(_png(page, out / "desk-search.png"))

        page.click("a >> text=ORD-2026-000001")
        page.wait_for_url("**/desk/records/*")
        page.select_option("#reason", "dispute")
        page.fill("#case", "FALL-2026-17")
        page.click("form.reason button[type=submit]")
        page.wait_for_selector("#player[data-ready=true]", timeout=30000)
        # the panel's checks load just after the page
        page.wait_for_selector("#integrity[aria-busy=false] li.check", timeout=30000)
        written.append(_png(page, out / "desk-record.png"))

        panel = page.locator("#integrity")
        panel.scroll_into_view_if_needed()
        written.append(_png(page, out / "desk-integrity.png"))

        page.click(".signout button")
        sign_in(page, url, "tara")
        page.goto(f"{url}/desk/admin/{CLIENT}/people")
        written.append(_png(page, out / "desk-admin.png"))
        browser.close()
    return written


def _png(page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="desk-shots-") as tmp:
        home = Path(tmp) / "vault"
        seed(home)
        with start_server(home, Path(tmp) / "server.log") as server:
            for path in shoot(server.url, args.out):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
