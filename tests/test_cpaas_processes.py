"""The CPaaS webhook with `evidence-vault serve --workers 2` on PostgreSQL, as real processes.

A callback is accepted, a worker starts fetching (the media server holds the request),
the whole server is killed with SIGKILL mid-fetch, and a new server takes the job over once
the lease of the dead worker ends: the recording is sealed exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select

from tests.support.cpaas import SECRET, MediaServer, callback, configure, signature
from tests.support.vaults import CAMPAIGN, CLIENT, PgDatabase, clip, make_vault
from tests.support.vaults import postgres_available as _pg_reason
from tests.test_http_multiprocess import Server
from vault.db import read_session
from vault.db.models import PullJob

pytestmark = pytest.mark.postgres


def post(server: Server, form: dict[str, str]) -> httpx.Response:
    path = f"/v1/webhooks/twilio/{CLIENT}/{CAMPAIGN}"
    return httpx.post(
        server.url + path,
        content=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature(SECRET, server.url + path, form),
        },
        timeout=30,
    )


def job_states(vault) -> list[tuple[str, str | None]]:
    with read_session(vault.context.engine) as s:
        return [(j.state, j.record_id) for j in s.exec(select(PullJob)).all()]


def test_a_server_killed_mid_fetch_loses_no_callback(tmp_path: Path) -> None:
    reason = _pg_reason()
    if reason:
        pytest.skip(reason)
    pg = PgDatabase()
    media = MediaServer(clip(tmp_path).read_bytes(), not_ready=0, stall=True)
    vault = make_vault(tmp_path / "vault", database_url=pg.url)
    configure(vault.settings.home, media.origin, "lease_seconds = 3")
    server = Server(vault.settings.home, {}, tmp_path / "server1.log")
    try:
        server.wait_ready(timeout=240)  # a loaded machine: uvicorn restarts slow workers
        form = callback(media, sid="RE00000000000000000000000000000042", n=42)
        first = post(server, form)
        assert first.status_code == 202, first.text
        assert post(server, form).json() == {**first.json(), "duplicate": True}
        # another recording's callback, delivered 8 times at once over both workers
        burst = callback(media, sid="RE00000000000000000000000000000043", n=43)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(server, burst), range(8)))
        assert sorted(a.status_code for a in answers) == [200] * 7 + [202], server.tail()
        assert len({a.json()["job_id"] for a in answers}) == 1
        # a worker's pull thread is now fetching, and the media server holds the request
        assert media.stalled.wait(60), server.tail()
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        assert ("queued", None) in job_states(vault)
        server = Server(vault.settings.home, {}, tmp_path / "server2.log")
        server.wait_ready(timeout=240)  # a loaded machine: uvicorn restarts slow workers
        deadline = time.monotonic() + 90
        while any(st == "queued" for st, _ in job_states(vault)) and time.monotonic() < deadline:
            time.sleep(0.3)
        states = job_states(vault)
        assert [st for st, _ in states] == ["done", "done"], server.tail()
        hits = vault.find(client=CLIENT)
        assert sorted(h.record_id for h in hits) == sorted(r for _, r in states)
        assert sorted(h.call_id for h in hits) == ["CA0000000000000042", "CA0000000000000043"]
        assert media.hits >= 2  # the stalled fetch, then the new server's
    finally:
        server.stop()
        media.close()
        vault.close()
        pg.drop()
