"""A real OpenID Connect provider on loopback: npm ``oidc-provider`` run by Debian's node.

``package.json`` and ``package-lock.json`` here pin it; :func:`provider_modules` runs
``npm ci --ignore-scripts`` once into a cache directory keyed by the lock file's hash
(``$EVIDENCE_VAULT_TEST_CACHE`` or ``~/.cache/evidence-vault-tests``). Tests skip, with the
reason, when node or npm is missing.

:func:`start_provider` runs ``provider.js`` (one confidential client; any login of
``[a-z0-9-]`` is an account whose ``sub`` is that login) on a free port and waits for its
discovery document. :func:`sign_in_at_provider` plays the browser at the provider: follows
its redirects, fills the login form and returns the URL it sends the browser back to.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.support.browser import free_port

HERE = Path(__file__).parent
FILES = ("package.json", "package-lock.json", "provider.js")


def node_missing() -> str | None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y nodejs npm): no OpenID provider"
    return None


def provider_modules() -> Path:
    """A directory with provider.js and its node_modules (npm ci from the pinned lock)."""
    lock = (HERE / "package-lock.json").read_bytes()
    base = Path(
        os.environ.get("EVIDENCE_VAULT_TEST_CACHE") or Path.home() / ".cache/evidence-vault-tests"
    )
    where = base / f"oidc-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (where / "node_modules/oidc-provider/package.json").is_file():
        where.mkdir(parents=True, exist_ok=True)
        for name in FILES[:2]:
            shutil.copyfile(HERE / name, where / name)
        done = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci of the test OpenID provider failed:\n{done.stderr[-3000:]}")
    # the script beside its node_modules, so its imports resolve; copied each time: edits apply
    shutil.copyfile(HERE / "provider.js", where / "provider.js")
    return where


@dataclass
class RunningProvider:
    issuer: str
    client_id: str
    client_secret: str
    proc: subprocess.Popen
    log: Path


@contextlib.contextmanager
def start_provider(
    modules: Path, redirect_uris: list[str], log: Path, client_id: str = "evidence-vault-desk"
) -> Iterator[RunningProvider]:
    port = free_port()
    secret = "test-secret-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": secret,
        "REDIRECT_URIS": " ".join(redirect_uris),
    }
    out = log.open("wb")
    proc = subprocess.Popen(
        ["node", "provider.js"], cwd=modules, env=env, stdout=out, stderr=subprocess.STDOUT
    )
    provider = RunningProvider(f"http://127.0.0.1:{port}", client_id, secret, proc, log)
    try:
        _wait(provider)
        yield provider
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def _wait(provider: RunningProvider, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    url = provider.issuer + "/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        assert provider.proc.poll() is None, provider.log.read_text(errors="replace")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError("the OpenID provider did not start:\n" + provider.log.read_text())


def sign_in_at_provider(authorize_url: str, login: str, back_to: str) -> str:
    """Play the browser from the authorization URL until the provider redirects to a URL
    starting with ``back_to``; returns that URL (with its code and state)."""
    url = authorize_url
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        r = browser.get(url)
        for _ in range(20):
            if r.is_redirect:
                url = urljoin(url, r.headers["location"])
                if url.startswith(back_to):
                    return url
                r = browser.get(url)
            elif r.status_code == 200 and 'name="login"' in r.text:
                action = re.search(r'<form method="post" action="([^"]+)"', r.text)[1]
                url = urljoin(url, action)
                r = browser.post(url, data={"login": login})
            else:
                raise AssertionError(f"the provider answered {r.status_code}: {r.text[:500]}")
    raise AssertionError("the provider never sent the browser back")


@pytest.fixture(scope="session")
def oidc_modules() -> Path:
    reason = node_missing()
    if reason:
        pytest.skip(reason)
    return provider_modules()
