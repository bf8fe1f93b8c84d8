"""``/docs`` runs offline: Swagger UI from the vendored swagger-ui-dist, no inline script.

Also checks the vendored tree against its README (every file listed is there, nothing else
is) so a hand-edited or half-refreshed vendor directory is noticed.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.support.vaults import make_vault
from vault.http.app import create_app
from vault.web.assets import STATIC_DIR

VENDOR = STATIC_DIR / "vendor"


@pytest.fixture
def api(tmp_path):
    v = make_vault(tmp_path / "v")
    try:
        with TestClient(create_app(v.context)) as tc:
            yield tc
    finally:
        v.close()


def _urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href|data-openapi-url)="([^"]*)"', html)


def test_docs_references_only_local_static_files(api):
    r = api.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"https?://", html), "a third-party URL on /docs"
    urls = _urls(html)
    assert "/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in urls
    assert "/static/vendor/swagger-ui-dist/swagger-ui.css" in urls
    assert "/openapi.json" in urls
    assert all(u.startswith("/static/") or u == "/openapi.json" for u in urls), urls
    # every <script> loads a file: no inline script, so script-src 'self' suffices
    assert re.findall(r"<script[^>]*>(.*?)</script>", html, re.S) == ["", ""]
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]


def test_docs_static_files_are_served_with_their_types(api):
    html = api.get("/docs").text
    expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    seen = set()
    for url in _urls(html):
        if not url.startswith("/static/"):
            continue
        r = api.get(url)
        assert r.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert r.headers["content-type"].split(";")[0] == expected[suffix], url
        local = STATIC_DIR / url.removeprefix("/static/")
        assert r.content == local.read_bytes()
        seen.add(suffix)
    assert seen == set(expected)


def test_fastapi_cdn_pages_are_gone(api):
    assert api.get("/redoc").status_code == 404
    assert api.get("/docs/oauth2-redirect").status_code == 404
    # the schema the page loads is still there
    assert api.get("/openapi.json").json()["info"]["title"] == "evidence-vault"


def test_static_paths_do_not_escape_the_static_directory(api):
    for path in ("/static/../app.py", "/static/%2e%2e/assets.py", "/static/vendor/nope.js"):
        assert api.get(path).status_code == 404, path


def test_vendor_tree_matches_its_readme():
    readme = (VENDOR / "README.md").read_text()
    listed = set()
    for line in readme.split("## Files copied", 1)[1].splitlines():
        m = re.match(r"- `([^`]+)/`:(.*)", line)
        if m:
            listed |= {f"{m[1]}/{f}" for f in re.findall(r"`([^`]+)`", m[2])}
    present = {
        p.relative_to(VENDOR).as_posix()
        for p in VENDOR.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert listed and listed == present
    for pkg in {p.split("/")[0] for p in present}:
        assert (VENDOR / pkg / "LICENSE").is_file(), pkg
        assert re.search(rf"\| `{re.escape(pkg)}` \| [0-9.]+ \| \S+ \| `sha512-", readme), pkg
