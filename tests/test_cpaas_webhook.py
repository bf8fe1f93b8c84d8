"""CPaaS recording webhooks: signed callbacks, a durable job, a real loopback media server.

The media server is a real HTTP server on 127.0.0.1 that answers 404 until the recording
is "ready" (as a CPaaS does while it processes a call), then the clip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from tests.support.cpaas import (
    OTHER,
    OTHER_SECRET,
    PII,
    SECRET,
    MediaServer,
    callback,
    configure,
    custom,
    signature,
)
from tests.support.vaults import CAMPAIGN, CLIENT, clip, make_vault
from vault.config import load_settings
from vault.db import read_session
from vault.db.models import PullJob
from vault.facade import Vault
from vault.http.app import create_app
from vault.services import cpaas
from vault.services.context import open_vault


class Clock:
    def __init__(self, v: Vault) -> None:
        self.now = v.now()

    def __call__(self):
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Vault, MediaServer, Clock]]:
    v = make_vault(tmp_path / "v")
    v.add_client(OTHER, "Acme AT")
    v.add_campaign(OTHER, "winback", retention_days=365)
    body = clip(tmp_path).read_bytes()
    media = MediaServer(body, not_ready=1)
    configure(v.settings.home, media.origin)
    v.close()
    v = Vault(open_vault(load_settings(v.settings.home, env={})))
    clock = Clock(v)
    v.context.clock = clock
    yield v, media, clock
    media.close()
    v.close()


def post(tc: TestClient, client: str, form: dict[str, str], secret: bytes = SECRET, **kw):
    path = f"/v1/webhooks/twilio/{client}/{CAMPAIGN if client == CLIENT else 'winback'}"
    url = "http://testserver" + path
    sig = kw.pop("sig", None) or signature(secret, url, form)
    return tc.post(
        path,
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
    )


def api(v: Vault) -> TestClient:
    """The API without its lifespan: no worker thread; the test runs the jobs itself."""
    return TestClient(create_app(v.context))


def jobs(v: Vault) -> list[PullJob]:
    with read_session(v.context.engine) as s:
        return list(s.exec(select(PullJob)).all())


# --- the signature ------------------------------------------------------------------------


def test_signature_matches_an_independent_computation() -> None:
    form = {"CallSid": "CA1", "RecordingSid": "RE1", "Digits": "1234"}
    url = "https://vault.example/v1/webhooks/twilio/telco-de/c?x=1"
    assert cpaas.twilio_signature(b"12345", url, form.items()) == signature(b"12345", url, form)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.twilio.com/2010-04-01/Recordings/RE1", True),
        ("https://media.twiliocdn.com/x", True),
        ("http://api.twilio.com/x", False),  # scheme is part of the origin
        ("https://api.twilio.com:8443/x", False),
        ("https://api.twilio.com.evil.example/x", False),
        ("https://user@api.twilio.com/x", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("file:///etc/passwd", False),
    ],
)
def test_only_allowed_origins_are_fetched(url: str, ok: bool) -> None:
    allowed = ("https://api.twilio.com", "https://*.twiliocdn.com")
    assert cpaas.origin_allowed(url, allowed) is ok


# --- the webhook --------------------------------------------------------------------------


def test_404_then_200_is_ingested_exactly_once(setup, caplog) -> None:
    v, media, clock = setup
    caplog.set_level("DEBUG")
    tc = api(v)
    form = callback(media)
    first = post(tc, CLIENT, form)
    assert first.status_code == 202, first.text
    again = post(tc, CLIENT, form)  # the CPaaS delivers the callback twice
    assert again.status_code == 200 and again.json()["job_id"] == first.json()["job_id"]
    assert again.json()["duplicate"] is True
    # run the job here, step by step
    assert cpaas.run_due(v.context) == 1  # 404: not ready yet
    (job,) = jobs(v)
    assert (job.state, job.attempts, job.last_error) == ("queued", 1, "http-404")
    assert cpaas.run_due(v.context) == 0  # backing off
    clock.now += timedelta(minutes=6)
    assert cpaas.run_due(v.context) == 1
    (job,) = jobs(v)
    assert job.state == "done" and job.meta_sealed is None and job.wrapped_dek is None
    assert media.hits == 2
    (hit,) = v.find(client=CLIENT)
    assert hit.record_id == job.record_id and hit.call_id == "CA0000000000000000"
    doc = v.show(job.record_id)["evidence"]
    assert doc["callee"]["phone"] == "+4915112345678"
    assert doc["recorded_at"].startswith("2026-11-20T09:30:00")
    assert doc["intent"]["product"] == "Fibre 250"  # from the campaign's template
    # a third delivery after the job is done: still one record, nothing fetched again
    assert post(tc, CLIENT, form).json()["state"] == "done"
    assert cpaas.run_due(v.context) == 0 and len(v.find(client=CLIENT)) == 1
    assert media.hits == 2
    assert not any(p in caplog.text for p in PII)


def test_the_document_is_stored_sealed(setup) -> None:
    v, media, _ = setup
    with TestClient(create_app(v.context)) as tc:
        assert post(tc, CLIENT, callback(media)).status_code == 202
    (job,) = jobs(v)
    assert job.meta_sealed is not None
    assert not any(p.encode() in job.meta_sealed for p in PII)


def test_bad_signature_is_refused(setup) -> None:
    v, media, _ = setup
    with TestClient(create_app(v.context)) as tc:
        form = callback(media)
        bad = post(tc, CLIENT, form, sig=signature(SECRET, "http://testserver/other", form))
        assert bad.status_code == 403
        assert bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["type"] == "/problems/permission-denied"
        tampered = post(tc, CLIENT, form, sig=signature(SECRET, "x", form))
        assert tampered.status_code == 403
        # the signature of another form: a field changed in transit
        changed = dict(form, RecordingUrl=f"{media.origin}/rec/OTHER")
        resp = tc.post(
            f"/v1/webhooks/twilio/{CLIENT}/{CAMPAIGN}",
            content=urlencode(changed),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature(
                    SECRET, f"http://testserver/v1/webhooks/twilio/{CLIENT}/{CAMPAIGN}", form
                ),
            },
        )
        assert resp.status_code == 403
        unsigned = tc.post(
            f"/v1/webhooks/twilio/{CLIENT}/{CAMPAIGN}",
            content=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unsigned.status_code == 401
    assert jobs(v) == [] and media.hits == 0


def test_a_tenant_never_ingests_into_another(setup) -> None:
    v, media, _ = setup
    with TestClient(create_app(v.context)) as tc:
        # signed with tenant B's secret, sent to tenant A's URL: refused
        assert post(tc, CLIENT, callback(media), secret=OTHER_SECRET).status_code == 403
        # tenant B's own URL, but the metadata names tenant A
        meta = {"client": CLIENT, "order_ref": "ORD-1"}
        form = callback(media, EvidenceMetadata=custom(meta))
        resp = post(tc, OTHER, form, secret=OTHER_SECRET)
        assert resp.status_code == 403 and "another client" in resp.json()["detail"]
        # a client without a webhook looks like any missing one
        resp = post(tc, "nobody", callback(media))
        assert resp.status_code == 404
    assert jobs(v) == []


def test_a_recording_outside_the_allowed_origins_is_never_fetched(setup) -> None:
    v, media, _ = setup
    with TestClient(create_app(v.context)) as tc:
        form = callback(media, RecordingUrl="http://169.254.169.254/latest/meta-data/")
        resp = post(tc, CLIENT, form)
        assert resp.status_code == 403 and "allowed origin" in resp.json()["detail"]
    assert jobs(v) == []


def test_bad_metadata_is_refused_at_once(setup) -> None:
    v, media, _ = setup
    with TestClient(create_app(v.context)) as tc:
        form = callback(media, EvidenceMetadata=custom({"callee": {"phone": "12"}}))
        resp = post(tc, CLIENT, form)
        assert resp.status_code == 422
        assert "+49" not in resp.text and "12" not in resp.json()["detail"]
        resp = post(tc, CLIENT, callback(media, EvidenceMetadata="not json!"))
        assert resp.status_code == 422
    assert jobs(v) == []


def test_a_restart_loses_no_callback(setup) -> None:
    """Accepted by one server, fetched by the next one's worker thread."""
    v, media, _ = setup
    media.not_ready = 10**6  # not ready while the first server runs
    with TestClient(create_app(v.context)) as tc:
        assert post(tc, CLIENT, callback(media, n=7)).status_code == 202
    home = v.settings.home
    v.close()
    media.not_ready = 0
    again = Vault(open_vault(load_settings(home, env={})))
    try:
        with TestClient(create_app(again.context)):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                (job,) = jobs(again)
                if job.state != "queued":
                    break
                time.sleep(0.2)
        (job,) = jobs(again)
        assert job.state == "done", job.last_error
        assert [h.call_id for h in again.find(client=CLIENT)] == ["CA0000000000000007"]
    finally:
        again.close()


def test_a_failed_job_is_listed_and_a_new_callback_tries_it_afresh(setup, tmp_path) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    v, media, _ = setup
    audio, media.body, media.not_ready = media.body, b"RIFF but no audio", 0
    tc = api(v)
    form = callback(media, n=3)
    job_id = post(tc, CLIENT, form).json()["job_id"]
    assert cpaas.run_due(v.context) == 1
    (job,) = jobs(v)
    assert job.state == "failed" and job.last_error.startswith("invalid-audio")
    assert job.meta_sealed is None  # nothing kept of a failed job's document
    listed = CliRunner().invoke(cli, ["--vault", str(v.settings.home), "cpaas", "jobs", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert (row["id"], row["state"], row["recording_sid"]) == (job_id, "failed", job.source_key)
    # the recording is fixed at the source and the callback sent again: a fresh attempt
    media.body = audio
    again = post(tc, CLIENT, form)
    assert again.status_code == 202 and again.json() == {
        "job_id": job_id,
        "duplicate": False,
        "state": "queued",
    }
    assert cpaas.run_due(v.context) == 1
    (job,) = jobs(v)
    assert job.state == "done" and len(v.find(client=CLIENT)) == 1


def test_a_recording_never_ready_is_given_up(setup) -> None:
    v, media, clock = setup
    media.not_ready = 10**6
    tc = api(v)
    assert post(tc, CLIENT, callback(media)).status_code == 202
    assert cpaas.run_due(v.context) == 1
    clock.now += timedelta(hours=25)  # past give_up_hours (24)
    assert cpaas.run_due(v.context) == 1
    (job,) = jobs(v)
    assert (job.state, job.last_error) == ("failed", "gave up: http-404")
    assert v.find(client=CLIENT) == []


def test_a_redirect_outside_the_allowed_origins_is_not_followed(setup) -> None:
    v, media, _ = setup
    elsewhere = MediaServer(media.body, not_ready=0)
    try:
        media.redirect = f"{elsewhere.origin}/rec/x"
        tc = api(v)
        assert post(tc, CLIENT, callback(media)).status_code == 202
        assert cpaas.run_due(v.context) == 1
        (job,) = jobs(v)
        assert job.state == "failed" and "allowed origins" in job.last_error
        assert elsewhere.hits == 0 and media.hits == 1
    finally:
        elsewhere.close()


def test_a_redirect_within_the_allowed_origins_is_followed(setup) -> None:
    v, media, _ = setup
    media.not_ready = 0
    media.redirect = f"{media.origin}/media/RE0123456789abcdef.wav"
    tc = api(v)
    assert post(tc, CLIENT, callback(media)).status_code == 202
    assert cpaas.run_due(v.context) == 1
    (job,) = jobs(v)
    assert job.state == "done" and media.hits == 2


def test_the_vectors_of_formats_md() -> None:
    from vault.services.s3import import pair_key

    text = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()
    url = (
        "https://vault.example.com/v1/webhooks/twilio/telco-de/fibre-upsell-2026q4"
        "?EvidenceMetadata=eyJvcmRlcl9yZWYiOiJPUkQtMSJ9"
    )
    form = {
        "CallSid": "CA0042",
        "RecordingSid": "RE0042",
        "AccountSid": "AC0123",
        "RecordingStatus": "completed",
        "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC0123/Recordings/RE0042",
    }
    sig = cpaas.twilio_signature(b"12345", url, form.items())
    assert sig == "goqiXcTT2tgF+eJ7E9bAjAH+DnQ=" and f"X-Twilio-Signature: {sig}" in text
    key = pair_key("recordings", "calls/c1.wav", "e1", "calls/c1.json", "e2")
    assert key == "165250f1c4bd825a74eb73ee341a28a84af1c04dd0416b911ff4e6bca2b24388" and key in text
