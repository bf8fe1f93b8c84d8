"""A real browser against a real server: Playwright driving Debian's chromium, and axe-core.

Fixtures (re-exported by ``tests/conftest.py``):

- ``live_server``: ``evidence-vault serve`` (uvicorn, one worker) on a free loopback port
  against a fresh vault in ``tmp_path``; yields a :class:`LiveServer` (``.url``, ``.home``,
  ``.log``). :func:`start_server` starts one on an existing vault home with extra env.
- ``browser``: one headless chromium per session (``/usr/bin/chromium``; tests skip with
  the reason when it is missing).
- ``page``: a fresh browser context and page per test. Requests that leave loopback are
  aborted and listed in ``page.offsite`` (a page must not reach a CDN); console errors
  (CSP violations among them) and uncaught exceptions are listed in ``page.errors``.

:func:`axe_violations` runs the vendored axe-core on a page; :func:`assert_accessible`
fails on any ``serious`` or ``critical`` violation, printing rule, help and nodes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from vault.web.assets import STATIC_DIR

CHROMIUM = Path(os.environ.get("EVIDENCE_VAULT_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_JS = STATIC_DIR / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def browser_missing() -> str | None:
    """None when the browser tests can run, else why not."""
    if not CHROMIUM.is_file():
        return f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``evidence-vault serve`` in its own session; its output goes to ``log``."""

    def __init__(self, home: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).parent / "evidence-vault"
        args = ["--vault", str(home), "serve", "--port", str(self.port), "--workers", "1"]
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [str(exe), *args],
            env={**os.environ, **(env or {})},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the server exited:\n" + self.tail()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError("the server did not become ready:\n" + self.tail())

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


@contextlib.contextmanager
def start_server(home: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """A ready server on the vault at ``home`` (closed by the caller beforehand or not)."""
    server = LiveServer(home, log, env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def live_server(tmp_path) -> Iterator[LiveServer]:
    from tests.support.vaults import make_vault

    make_vault(tmp_path / "vault").close()
    with start_server(tmp_path / "vault", tmp_path / "server.log") as server:
        yield server


# --- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.offsite = []
    page.errors = []

    def keep_on_loopback(route):
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            page.offsite.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", keep_on_loopback)
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda exc: page.errors.append(f"uncaught: {exc}"))
    try:
        yield page
    finally:
        context.close()


# --- accessibility --------------------------------------------------------------------------


def axe_violations(page, options: dict | None = None) -> list[dict]:
    """axe-core's violations on ``page`` as it is now (``options``: axe.run's options).

    The vendored ``axe.min.js`` is loaded from ``/static`` when the page's origin serves
    it (so a page's ``script-src 'self'`` policy allows it), else injected from the file.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
        served = origin + "/static/vendor/axe-core/axe.min.js"
        try:
            page.add_script_tag(url=served)
        except Exception:  # another origin, or one without our static files
            page.add_script_tag(path=str(AXE_JS))
    return page.evaluate(
        "async (options) => (await axe.run(document, options)).violations", options or {}
    )


def blocking(violations: list[dict], impacts: tuple[str, ...] = BLOCKING) -> list[dict]:
    return [v for v in violations if v.get("impact") in impacts]


def describe(violations: list[dict], nodes_each: int = 5) -> str:
    """One readable paragraph per violated rule: impact, rule, help, where."""
    out = []
    for v in violations:
        out.append(f"[{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:nodes_each]:
            target = " ".join(str(t) for t in node["target"])
            summary = " ".join(node.get("failureSummary", "").split())
            out.append(f"    at {target}: {summary}")
        if len(v["nodes"]) > nodes_each:
            out.append(f"    ... and {len(v['nodes']) - nodes_each} more")
    return "\n".join(out)


def assert_accessible(page, options: dict | None = None, impacts=BLOCKING) -> list[dict]:
    """Fail on any violation of ``impacts``; return all violations (minor ones included)."""
    violations = axe_violations(page, options)
    bad = blocking(violations, impacts)
    assert not bad, f"axe-core on {page.url}:\n" + describe(bad)
    return violations
