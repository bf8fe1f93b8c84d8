"""The dialer agent's parts without processes: the spool's states and crash recovery,
the idempotency key, backoff and what counts as transient, the watch folder's notion of
a complete pair, local validation and quarantine, and the receipt checks against a real
vault's upload answer (``?opening=true``)."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.vaults import CLIENT, clip, make_vault, order_meta, person_token
from vault.agent.config import load_config
from vault.agent.intake import check_pair, intake, intake_batch
from vault.agent.jobkey import idempotency_key
from vault.agent.pipeline import _batches
from vault.agent.receipts import ReceiptMismatch, check_inclusion, check_opening
from vault.agent.retry import Backoff, is_transient, parse_retry_after
from vault.agent.spool import NewJob, Spool
from vault.agent.status import agent_status, prometheus_text
from vault.agent.uplink import Uplink, UploadFailed
from vault.agent.watch import FolderEvents, Settler, open_for_writing
from vault.client import encode_metadata
from vault.errors import ConfigError
from vault.http.app import create_app

SHA = "ab" * 32


# --- the spool ----------------------------------------------------------------------------


def _add(spool: Spool, key: str, tmp: Path):
    return spool.add(
        NewJob(
            key=key,
            name=f"{key}.wav",
            clip=tmp / f"{key}.wav",
            meta=tmp / f"{key}.json",
            media_type="audio/wav",
            clip_sha256=SHA,
            client=CLIENT,
        )
    )


def test_spool_claims_each_job_once_and_a_dead_claim_is_released(tmp_path):
    spool = Spool(tmp_path / "spool.db", owner="pid:1")
    a, b = _add(spool, "k1", tmp_path), _add(spool, "k2", tmp_path)
    assert _add(spool, "k1", tmp_path) is None  # the same key again: no second job
    first = spool.claim()
    assert (first.id, first.state, first.owner) == (a.id, "uploading", "pid:1")
    assert spool.claim().id == b.id and spool.claim() is None
    spool.retry_later(spool.get(b.id), "queued", 3600, "HTTP 503 storage-error: down")
    # the process dies holding job a; a new process on the same file releases it
    restarted = Spool(tmp_path / "spool.db", owner="pid:2")
    assert restarted.recover() == 1
    again = restarted.claim()
    assert (again.id, again.key, again.attempts) == (a.id, "k1", 0)
    assert restarted.claim() is None  # b waits for its next try
    assert restarted.get(b.id).attempts == 1
    assert restarted.last_error()[0].startswith("HTTP 503")
    restarted.uploaded(again, "rec-1", "{}")
    assert restarted.get(a.id).owner == "pid:2"  # held through the proof check
    restarted.proof_pending(restarted.get(a.id), 0)
    proving = restarted.claim()
    assert (proving.id, proving.state) == (a.id, "waiting_proof")
    restarted.finish(proving, "done")
    assert restarted.counts()["done"] == 1 and restarted.oldest_open() is not None


def test_status_and_metrics_read_the_spool(tmp_path):
    cfg = load_config(tmp_path, env={})
    spool = Spool(cfg.spool_path)
    _add(spool, "k1", tmp_path)
    job = _add(spool, "k2", tmp_path)
    spool.finish(job, "alert", "the entry does not commit to the local clip")
    cfg.quarantine.mkdir()
    (cfg.quarantine / "x.wav.reason.txt").write_text("refused")
    status = agent_status(cfg)
    assert (status["queued"], status["alert"], status["quarantined"]) == (1, 1, 1)
    assert status["last_error"] == "the entry does not commit to the local clip"
    text = prometheus_text(cfg)
    assert 'evidence_agent_jobs{state="queued"} 1' in text
    assert "evidence_agent_alert 1" in text


def test_the_operators_retry_per_state(tmp_path):
    spool = Spool(tmp_path / "spool.db", owner="pid:1")
    alert, waiting, flying, quarantined, done = (_add(spool, f"k{n}", tmp_path) for n in range(5))
    spool.finish(alert, "alert", "the entry does not commit to the local clip")
    spool.retry_later(waiting, "queued", 3600, "HTTP 503 storage-error: down")
    spool.finish(quarantined, "quarantined", "HTTP 422 invalid-evidence")
    spool.finish(done, "done")
    assert [j.id for j in spool.alerts()] == [alert.id]
    flying = spool.claim()  # waiting is not due for an hour: the claim takes another job
    assert flying.state == "uploading" and flying.id not in (alert.id, waiting.id)

    assert spool.requeue(alert.id) == "queued again"
    requeued = spool.get(alert.id)
    assert (requeued.state, requeued.last_error, requeued.key) == ("queued", None, alert.key)
    assert spool.requeue(waiting.id) == "due now"
    assert spool.get(waiting.id).next_try <= time.time()
    assert spool.requeue(quarantined.id).startswith("forgotten")
    assert spool.get(quarantined.id) is None and spool.by_key(quarantined.key) is None
    with pytest.raises(ValueError, match="in flight"):
        spool.requeue(flying.id)
    with pytest.raises(ValueError, match="done"):
        spool.requeue(done.id)
    with pytest.raises(KeyError):
        spool.requeue(999)
    assert spool.alerts() == []


def test_status_names_the_jobs_in_alert_and_a_look_takes_no_write_lock(tmp_path):
    cfg = load_config(tmp_path, env={})
    cfg.spool_path.touch()  # the agent's first moment: the file is there, no table yet
    assert agent_status(cfg)["queued"] == 0
    spool = Spool(cfg.spool_path)
    job = _add(spool, "k1", tmp_path)
    spool.finish(job, "alert", "the entry does not commit to the local clip")
    db = spool._db()
    db.execute("BEGIN IMMEDIATE")  # the agent in the middle of a write
    try:
        status = agent_status(cfg)  # would wait on the lock if it set up the schema
    finally:
        db.execute("ROLLBACK")
    assert status["alerts"] == [
        {
            "id": job.id,
            "name": "k1.wav",
            "reason": "the entry does not commit to the local clip",
            "clip": str(tmp_path / "k1.wav"),
        }
    ]


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["agent", "run"], "agent"),
        (["--json", "--vault", "/v", "upload", "x.wav"], "upload"),
        (["--vault=/v", "agent", "status"], "agent"),
        (["--vault", "agent", "verify"], "verify"),  # a vault directory named "agent"
        (["--help"], None),
        (["ingest", "agent"], "ingest"),
        ([], None),
    ],
)
def test_the_entry_point_sends_agent_commands_to_the_slim_tree(argv, command):
    import cli

    assert cli._command(argv) == command
    assert (command in cli.AGENT_COMMANDS) == (command in ("agent", "upload"))


# --- keys, retries ------------------------------------------------------------------------


def test_idempotency_key_follows_the_call_segment_and_the_clip():
    key = idempotency_key(CLIENT, "c", "call-1", 1, SHA)
    assert key == idempotency_key(CLIENT, "c", "call-1", 1, SHA)  # a retry: the same key
    assert key.startswith("eva1-") and "call-1" not in key
    others = {
        idempotency_key(CLIENT, "c", "call-2", 1, SHA),  # same audio, another call
        idempotency_key(CLIENT, "c", "call-1", 2, SHA),
        idempotency_key(CLIENT, "d", "call-1", 1, SHA),
        idempotency_key(CLIENT, "c", "call-1", 1, "cd" * 32),
    }
    assert key not in others and len(others) == 4


def test_backoff_is_full_jitter_capped_and_honours_retry_after():
    rng = random.Random(5)
    b = Backoff(base=1.0, cap=8.0)
    delays = [b.delay(n, rng=rng) for n in range(20)]
    assert all(0 <= d <= 8.0 for d in delays) and max(delays) > 4.0
    assert b.delay(0, retry_after=7, rng=rng) >= 7
    assert parse_retry_after("120") == 120 and parse_retry_after("soon") is None
    assert [is_transient(s) for s in (500, 503, 429, 408, 401)] == [True] * 5
    assert [is_transient(s) for s in (400, 403, 404, 409, 413, 415, 422)] == [False] * 7


def test_uplink_sorts_failures_and_reads_retry_after():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/receipt"):
            return httpx.Response(429, headers={"Retry-After": "9"}, json={"type": "x/busy"})
        raise httpx.ConnectError("refused")

    link = Uplink("http://vault", "t", transport=httpx.MockTransport(answer))
    with pytest.raises(UploadFailed) as busy:
        link.receipt("r1")
    assert busy.value.transient and busy.value.retry_after == 9
    with pytest.raises(UploadFailed) as down:
        link.upload(__file__, b"{}", media_type="audio/wav", key="k")
    assert down.value.transient and "ConnectError" in down.value.message


# --- the watch folder ---------------------------------------------------------------------


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_pair_is_ready_only_when_both_halves_stood_still(tmp_path):
    clock = _Clock()
    settler = Settler(tmp_path, 2.0, clock=clock, writers=lambda paths: set())
    (tmp_path / "a.wav").write_bytes(b"x" * 10)
    assert settler.scan() == []  # no sidecar yet
    (tmp_path / "a.json").write_text("{}")
    clock.now = 1.0
    assert settler.scan() == []  # first sight of the sidecar
    clock.now = 2.5
    assert settler.scan() == []  # the sidecar has stood still 1.5 s only
    with open(tmp_path / "a.wav", "ab") as fh:
        fh.write(b"more")
    clock.now = 3.5
    assert settler.scan() == []  # the clip grew: its clock starts again
    clock.now = 5.6
    assert settler.scan() == [(tmp_path / "a.wav", tmp_path / "a.json")]
    assert settler.scan() == []  # each pair once


def test_a_pair_renamed_in_counts_the_time_it_stood_still_before(tmp_path):
    clock = _Clock()
    watch, beside = tmp_path / "watch", tmp_path / "beside"
    watch.mkdir()
    beside.mkdir()
    settler = Settler(watch, 0.2, clock=clock, writers=lambda paths: set())
    (beside / "a.wav").write_bytes(b"x" * 10)
    (beside / "a.json").write_text("{}")
    time.sleep(0.25)  # written, then left alone longer than the settle time
    os.replace(beside / "a.json", watch / "a.json")
    os.replace(beside / "a.wav", watch / "a.wav")
    # taken at first sight: the rename moved the change time, not the modification time
    assert settler.scan() == [(watch / "a.wav", watch / "a.json")]
    assert settler.scan() == []  # once: still here, it is offered again a settle time later
    clock.now = 0.2
    assert settler.scan() == [(watch / "a.wav", watch / "a.json")]
    (watch / "a.wav").unlink()  # taken in, as intake would
    (watch / "a.json").unlink()

    # written and renamed in at once: no credit, the settle time is waited for
    (beside / "b.wav").write_bytes(b"x" * 10)
    (beside / "b.json").write_text("{}")
    os.replace(beside / "b.json", watch / "b.json")
    os.replace(beside / "b.wav", watch / "b.wav")
    assert settler.scan() == []
    clock.now = 0.45
    assert settler.scan() == [(watch / "b.wav", watch / "b.json")]


def test_only_both_halves_having_stood_still_make_a_renamed_pair_ready(tmp_path):
    clock = _Clock()
    settler = Settler(tmp_path, 2.0, clock=clock, writers=lambda paths: set())
    clip, meta = tmp_path / "c.wav", tmp_path / "c.json"
    clip.write_bytes(b"x" * 10)
    meta.write_text("{}")
    st = os.stat(clip)
    # the clip's modification time 5 s before its change time: it stood still 5 s
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))
    assert settler.scan() == []  # the sidecar was just written
    clock.now = 2.0
    assert settler.scan() == [(clip, meta)]


def test_intake_batches_fill_the_upload_slots_first():
    assert [len(b) for b in _batches(list(range(40)), first=4)] == [4, 16, 16, 4]
    assert [len(b) for b in _batches(list(range(3)), first=4)] == [3]
    assert [len(b) for b in _batches(list(range(40)), first=64)] == [16, 16, 8]
    assert list(_batches([], first=4)) == []
    pairs = list(range(37))
    assert [p for b in _batches(pairs, first=4) for p in b] == pairs


def test_a_file_open_for_writing_is_seen_as_busy(tmp_path):
    path = tmp_path / "b.wav"
    with open(path, "wb") as fh:
        fh.write(b"x")
        assert open_for_writing([path]) == {path}
    assert open_for_writing([path]) == set()
    with open(path, "rb"):
        assert open_for_writing([path]) == set()  # a reader is no writer


# --- intake: local validation, quarantine, repeats ----------------------------------------


def _config(tmp_path: Path):
    cfg = load_config(tmp_path / "agent", env={})
    for d in (cfg.watch, cfg.jobs_dir):
        d.mkdir(parents=True)
    return cfg


def test_intake_quarantines_bad_pairs_with_a_reason_and_queues_good_ones(tmp_path):
    cfg = _config(tmp_path)
    spool = Spool(cfg.spool_path)
    good = clip(tmp_path, seed=1).rename(cfg.watch / "good.wav")
    (cfg.watch / "good.json").write_text(json.dumps(order_meta(1)))
    bad = cfg.watch / "late.wav"
    bad.write_bytes(clip(tmp_path, seed=2, seconds=1.0).read_bytes())  # spans end at 1800 ms
    (cfg.watch / "late.json").write_text(json.dumps(order_meta(2)))

    assert intake(cfg, spool, bad, cfg.watch / "late.json") is None
    reason = (cfg.quarantine / "late.wav.reason.txt").read_text()
    assert "intent.span_ms[1]" in reason and "what to do" in reason
    assert (cfg.quarantine / "late.json").exists() and not bad.exists()

    data = good.read_bytes()
    job = intake(cfg, spool, good, cfg.watch / "good.json")
    assert job.state == "queued" and job.clip.read_bytes() == data
    # staged flat, as <key>.<name>; the job keeps the name it was dropped with
    assert job.clip == cfg.jobs_dir / f"{job.key}.good.wav" and not good.exists()
    assert job.meta == cfg.jobs_dir / f"{job.key}.good.json" and job.name == "good.wav"
    # dropped again while the first is queued: no second job; the copy is set aside
    (cfg.watch / "good.wav").write_bytes(data)
    (cfg.watch / "good.json").write_text(json.dumps(order_meta(1)))
    assert intake(cfg, spool, cfg.watch / "good.wav", cfg.watch / "good.json") is None
    assert len(spool.jobs()) == 1 and (cfg.done / "good.wav").exists()


def test_a_batch_is_queued_in_one_transaction_and_a_repeat_inside_it_is_set_aside(
    tmp_path, monkeypatch
):
    cfg = _config(tmp_path)
    spool = Spool(cfg.spool_path)
    pairs = []
    for n in range(4):
        c = clip(tmp_path, seed=10 + n).rename(cfg.watch / f"call{n}.wav")
        (cfg.watch / f"call{n}.json").write_text(json.dumps(order_meta(10 + n)))
        pairs.append((c, cfg.watch / f"call{n}.json"))
    # the same clip and call segment again under another name, in the same batch
    (cfg.watch / "again.wav").write_bytes(pairs[1][0].read_bytes())
    (cfg.watch / "again.json").write_text(json.dumps(order_meta(11)))
    pairs.insert(2, (cfg.watch / "again.wav", cfg.watch / "again.json"))
    bad = cfg.watch / "late.wav"
    bad.write_bytes(clip(tmp_path, seed=2, seconds=1.0).read_bytes())
    (cfg.watch / "late.json").write_text(json.dumps(order_meta(2)))
    pairs.insert(3, (bad, cfg.watch / "late.json"))

    commits = []
    tx = spool._tx
    monkeypatch.setattr(spool, "_tx", lambda **kw: commits.append(kw) or tx(**kw))
    jobs = intake_batch(cfg, spool, pairs)

    # the four calls: one durable transaction for those before the repeat, one after it
    assert [j.name for j in jobs] == [f"call{n}.wav" for n in range(4)]
    assert commits == [{}, {}]
    assert len(spool.jobs()) == 4 and all(j.state == "queued" for j in spool.jobs())
    assert all(j.clip.exists() and j.meta.exists() for j in jobs)
    assert (cfg.done / "again.wav").exists() and (cfg.quarantine / "late.wav").exists()
    assert sorted(p.name for p in cfg.watch.iterdir()) == []


def test_the_agents_own_reads_do_not_wake_the_watcher_but_arrivals_do(tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    there = folder / "call.wav"
    there.write_bytes(b"x" * 1000)
    events = FolderEvents(folder, poll=False, poll_interval=0.05).start()
    try:
        time.sleep(0.2)
        events.changed.clear()
        for _ in range(3):  # what intake does to a pair: open, read, close
            there.read_bytes()
        assert not events.changed.wait(0.5)
        (tmp_path / "new.json").write_text("{}")
        (tmp_path / "new.json").rename(folder / "call.json")  # moved in
        assert events.changed.wait(2)
        events.changed.clear()
        with (folder / "next.wav").open("wb") as fh:  # created, written, closed
            fh.write(b"y")
        assert events.changed.wait(2)
    finally:
        events.stop()


# --- receipts against a real vault's answer -----------------------------------------------


@pytest.fixture
def served(tmp_path):
    v = make_vault(tmp_path / "v")
    _, token = person_token(v.context, "dialer", CLIENT)
    with TestClient(create_app(v.context)) as tc:
        yield v, tc, {"Authorization": f"Bearer {token}"}
    v.close()


def _post(tc, auth, path: Path, meta: dict, opening: bool = True):
    headers = {**auth, "Content-Type": "audio/wav", "Evidence-Metadata": encode_metadata(meta)}
    url = "/v1/records?opening=true" if opening else "/v1/records"
    return tc.post(url, content=path.read_bytes(), headers=headers)


def test_the_opening_proves_the_entry_commits_to_the_local_clip_and_metadata(served, tmp_path):
    v, tc, auth = served
    path = clip(tmp_path, seed=3)
    meta_path = tmp_path / "m.json"
    meta_path.write_text(json.dumps(order_meta(3)))
    checked = check_pair(path, meta_path)
    first = _post(tc, auth, path, order_meta(3))
    assert first.status_code == 201, first.text
    receipt = first.json()
    check_opening(receipt, path, checked.document, checked.evidence)
    # a repeat is answered from the sealed record, its salt read back from the metadata
    repeat = _post(tc, auth, path, order_meta(3)).json()
    assert repeat["duplicate"] and repeat["opening"] == receipt["opening"]
    assert "opening" not in _post(tc, auth, path, order_meta(3), opening=False).json()
    later = tc.get(f"/v1/records/{receipt['record_id']}/receipt", headers=auth).json()
    assert later.get("opening") is None  # the salt only ever goes to the uploader

    queued = checked.clip_sha256
    check_opening(receipt, path, checked.document, checked.evidence, clip_sha256=queued)
    with pytest.raises(ReceiptMismatch, match="changed after it was queued"):
        check_opening(receipt, path, checked.document, checked.evidence, clip_sha256="00" * 32)
    other = clip(tmp_path, seed=4)
    with pytest.raises(ReceiptMismatch, match="local clip"):
        check_opening(receipt, other, checked.document, checked.evidence)
    changed = check_pair(path, _write(tmp_path / "n.json", order_meta(3, order_ref="ORD-X")))
    with pytest.raises(ReceiptMismatch, match="local metadata"):
        check_opening(receipt, path, changed.document, changed.evidence)
    forged = json.loads(json.dumps(receipt))
    forged["opening"]["salt"] = "11" * 32
    with pytest.raises(ReceiptMismatch):
        check_opening(forged, path, checked.document, checked.evidence)
    forged = json.loads(json.dumps(receipt))
    forged["entry_hash"] = "00" * 32
    with pytest.raises(ReceiptMismatch, match="entry_hash"):
        check_opening(forged, path, checked.document, checked.evidence)

    v.checkpoint(CLIENT)
    proof = tc.get(f"/v1/records/{receipt['record_id']}/receipt", headers=auth).json()[
        "inclusion_proof"
    ]
    entry = receipt["opening"]["entry"]
    assert check_inclusion(proof, entry, CLIENT, [v.log_key()])["tree_size"] == proof["tree_size"]
    from vault.ledger.checkpoint import verifier_key

    stranger = verifier_key("someone-else", bytes(32))
    with pytest.raises(ReceiptMismatch, match="pinned"):
        check_inclusion(proof, entry, CLIENT, [stranger])
    with pytest.raises(ReceiptMismatch, match="another client"):
        check_inclusion(proof, entry, "other-client", [v.log_key()])
    bent = {**proof, "hashes": ["00" * 32, *proof["hashes"]]}
    with pytest.raises(ReceiptMismatch, match="inclusion proof"):
        check_inclusion(bent, entry, CLIENT, [v.log_key()])


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_config_needs_url_token_and_a_pinned_key(tmp_path):
    (tmp_path / "agent.toml").write_text('[agent]\nurl = "http://v"\nconcurrency = 2\n')
    cfg = load_config(tmp_path, env={"EVIDENCE_VAULT_TOKEN": "t"})
    assert cfg.concurrency == 2 and cfg.watch == tmp_path / "inbox"
    with pytest.raises(ConfigError, match="pinned log key"):
        cfg.require_service()
    (tmp_path / "agent.toml").write_text("[agent]\nurll = 1\n")
    with pytest.raises(ConfigError, match="unknown"):
        load_config(tmp_path, env={})
    assert cfg.nice == 10  # below the dialer by default
    (tmp_path / "agent.toml").write_text("[agent]\nnice = 25\n")
    with pytest.raises(ConfigError, match="nice is 25, not 0 to 19"):
        load_config(tmp_path, env={})


# --- the pipeline's decisions, one step at a time -----------------------------------------


def _agent_with(tmp_path: Path, answer):
    from vault.agent.pipeline import Agent

    cfg = load_config(tmp_path / "agent", env={}, url="http://vault", token="t", log_keys=["k"])
    link = Uplink("http://vault", "t", transport=httpx.MockTransport(answer))
    agent = Agent(cfg, uplink=link)
    pair = clip(tmp_path, seed=9).rename(cfg.watch / "call.wav")
    (cfg.watch / "call.json").write_text(json.dumps(order_meta(9)))
    job = intake(cfg, agent.spool, pair, cfg.watch / "call.json")
    return agent, job


def test_a_busy_vault_is_retried_after_retry_after_and_a_refusal_is_quarantined(tmp_path):
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "30"}, json={"type": "x/storage-error"}),
            httpx.Response(
                422,
                json={
                    "type": "https://evidence-vault/problems/invalid-evidence",
                    "detail": "evidence metadata is invalid",
                    "errors": [{"field": "campaign", "message": "does not exist"}],
                    "hint": "check 'campaign'",
                },
            ),
        ]
    )
    agent, job = _agent_with(tmp_path, lambda request: next(answers))
    try:
        agent.step(agent.spool.claim())
        waiting = agent.spool.get(job.id)
        assert (waiting.state, waiting.attempts) == ("queued", 1)
        assert waiting.next_try >= time.time() + 25  # not before the vault's Retry-After
        assert agent.spool.claim() is None
        agent.spool.retry_later(waiting, "queued", -1, waiting.last_error)  # due now
        agent.step(agent.spool.claim())
        refused = agent.spool.get(job.id)
        assert refused.state == "quarantined" and "HTTP 422" in refused.last_error
        reason = (agent.cfg.quarantine / "call.wav.reason.txt").read_text()
        assert "campaign: does not exist" in reason and "check 'campaign'" in reason
        assert (agent.cfg.quarantine / "call.wav").exists() and not job.clip.exists()
    finally:
        agent.stop()


def test_a_second_agent_on_the_same_directory_is_refused(tmp_path):
    agent, _ = _agent_with(tmp_path, lambda request: httpx.Response(500))
    try:
        from vault.agent.pipeline import Agent

        with pytest.raises(ConfigError, match="another agent"):
            Agent(agent.cfg, uplink=agent.uplink)
    finally:
        agent.stop()


def test_one_uncovered_entry_spares_the_later_ones_a_receipt_request(tmp_path):
    from vault.agent.pipeline import Agent

    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        record = request.url.path.split("/")[3]  # /v1/records/rec-<seq>/receipt
        asked.append(record)
        return httpx.Response(200, json={"entry_hash": "h", "seq": int(record[4:])})  # no proof

    cfg = load_config(tmp_path / "agent", env={}, url="http://vault", token="t", log_keys=["k"])
    agent = Agent(cfg, uplink=Uplink("http://vault", "t", transport=httpx.MockTransport(answer)))
    try:
        ids = {}
        for seq in (7, 8, 9, 3):
            job = _add(agent.spool, f"k{seq}", tmp_path)
            receipt = json.dumps({"entry_hash": "h", "seq": seq})
            agent.spool.uploaded(job, f"rec-{seq}", receipt, proof_in=0)
            ids[seq] = job.id
        for seq in (7, 8, 9, 3):
            agent.step(agent.spool.get(ids[seq]))
        # 7 had no proof yet: 8 and 9 wait without a request; 3 comes before it and is asked
        assert asked == ["rec-7", "rec-3"]
        for job_id in ids.values():
            job = agent.spool.get(job_id)
            assert job.state == "waiting_proof" and job.owner is None
            assert job.next_try > time.time()  # each is asked for later, none given up
    finally:
        agent.stop()


def test_an_uncovered_entry_defers_the_later_ones_without_claiming_them(tmp_path):
    """Jobs waiting behind an uncovered entry are put back in one statement: none is
    claimed again (a write transaction each) before the interval is over."""
    from vault.agent.pipeline import Agent

    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        record = request.url.path.split("/")[3]
        asked.append(record)
        return httpx.Response(200, json={"entry_hash": "h", "seq": int(record[4:])})

    cfg = load_config(
        tmp_path / "agent",
        env={},
        url="http://vault",
        token="t",
        log_keys=["k"],
        proof_interval=60,
    )
    agent = Agent(cfg, uplink=Uplink("http://vault", "t", transport=httpx.MockTransport(answer)))
    try:
        ids = {}
        for seq in (5, 6, 7, 8, 2):
            job = _add(agent.spool, f"k{seq}", tmp_path)
            agent.spool.uploaded(
                job, f"rec-{seq}", json.dumps({"entry_hash": "h", "seq": seq}), proof_in=0
            )
            ids[seq] = job.id
        agent.step(agent.spool.claim())  # job of seq 5 (lowest id): no proof yet
        assert asked == ["rec-5"]
        # 6, 7 and 8 now wait out the interval unclaimed; 2 comes before 5 and is due
        due = agent.spool.claim()
        assert due is not None and due.id == ids[2]
        agent.step(due)
        assert asked == ["rec-5", "rec-2"]
        assert agent.spool.claim() is None
        later = [agent.spool.get(ids[s]) for s in (5, 6, 7, 8, 2)]
        assert all(j.state == "waiting_proof" and j.next_try > time.time() + 50 for j in later)
    finally:
        agent.stop()


def test_the_slim_tree_loads_no_database_layer_and_shows_errors_like_the_full_one(tmp_path):
    import subprocess
    import sys

    from click.testing import CliRunner

    from cli.agent import standalone

    probe = (
        "import sys\n"
        "sys.argv = ['evidence-vault', 'agent', 'run', '--help']\n"
        "import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'vault.facade', 'vault.db')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"

    runner = CliRunner()
    shown = runner.invoke(standalone, ["agent", "--dir", str(tmp_path), "status"])
    assert shown.exit_code == 6 and "no agent spool" in shown.output
    as_json = runner.invoke(standalone, ["--json", "agent", "--dir", str(tmp_path), "retry"])
    assert as_json.exit_code == 6
    assert json.loads(as_json.output)["error"]["kind"] == "config-error"


def _staged_path(cfg, layout: str, key: str, name: str) -> Path:
    """Where an agent stages a dropped file: flat (now) or in a directory per job (before)."""
    if layout == "flat":
        return cfg.jobs_dir / f"{key}.{name}"
    (cfg.jobs_dir / key).mkdir(parents=True, exist_ok=True)
    return cfg.jobs_dir / key / name


@pytest.mark.parametrize("layout", ["flat", "directory"])
def test_a_done_job_whose_files_did_not_move_is_finished_at_the_next_start(tmp_path, layout):
    from vault.agent.intake import adopt_staged

    cfg = _config(tmp_path)
    spool = Spool(cfg.spool_path)
    pair = clip(tmp_path, seed=21).rename(tmp_path / "call.wav")
    meta = _write(tmp_path / "call.json", order_meta(21))
    checked = check_pair(pair, meta)
    job = spool.add(
        NewJob(
            key=checked.key,
            name="call.wav",
            clip=pair.rename(_staged_path(cfg, layout, checked.key, "call.wav")),
            meta=meta.rename(_staged_path(cfg, layout, checked.key, "call.json")),
            media_type="audio/wav",
            clip_sha256=checked.clip_sha256,
            client=CLIENT,
        )
    )
    spool.finish(job, "done")  # the power went here: done on disk, the files still staged
    assert adopt_staged(cfg, spool) == 0  # nothing queued again
    assert (cfg.done / "call.wav").exists() and (cfg.done / "call.json").exists()
    assert list(cfg.jobs_dir.iterdir()) == [] and spool.get(job.id).state == "done"


@pytest.mark.parametrize("layout", ["flat", "directory"])
def test_staged_pairs_without_a_job_are_queued_at_the_next_start(tmp_path, layout):
    from vault.agent.intake import adopt_staged

    cfg = _config(tmp_path)
    spool = Spool(cfg.spool_path)
    pairs = {}
    for n, name in ((41, "a"), (42, "b")):
        wav = clip(tmp_path, seed=n).rename(tmp_path / f"{name}.wav")
        meta = _write(tmp_path / f"{name}.json", order_meta(n))
        pairs[name] = (wav, meta, check_pair(wav, meta).key)
    wav, meta, key = pairs["a"]  # the power went after both halves were staged
    wav.rename(_staged_path(cfg, layout, key, "a.wav"))
    meta.rename(_staged_path(cfg, layout, key, "a.json"))
    wav, meta, key = pairs["b"]  # ... after the sidecar's move, before the clip's
    meta.rename(_staged_path(cfg, layout, key, "b.json"))
    wav.rename(cfg.watch / "b.wav")

    assert adopt_staged(cfg, spool) == 2
    jobs = {j.name: j for j in spool.jobs()}
    assert sorted(jobs) == ["a.wav", "b.wav"]
    for name, job in jobs.items():
        assert job.key == pairs[name[0]][2] and job.state == "queued" and job.salt
        assert job.clip == _staged_path(cfg, layout, job.key, name)
        assert job.clip.exists() and job.meta.exists()
    assert list(cfg.watch.iterdir()) == []
    assert adopt_staged(cfg, spool) == 0  # nothing queued twice


def _served_agent(tmp_path: Path, served, concurrency: int = 1):
    """An agent whose uplink reaches the in-process vault of ``served``; the POSTs it made."""
    from vault.agent.pipeline import Agent

    v, tc, auth = served
    posts: list[str] = []

    class Counting(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                posts.append(request.url.path)
            return tc._transport.handle_request(request)

    token = auth["Authorization"].split()[1]
    cfg = load_config(
        tmp_path / "agent",
        env={},
        url="http://testserver",
        token=token,
        log_keys=[v.log_key()],
        concurrency=concurrency,
        settle_seconds=0.05,
        poll_interval=0.05,
    )
    agent = Agent(cfg, uplink=Uplink("http://testserver", token, transport=Counting()))
    return agent, posts


def _drop(agent, tmp_path: Path, n: int) -> None:
    cfg = agent.cfg
    pair = clip(tmp_path, seed=n).rename(cfg.watch / f"call{n}.wav")
    (cfg.watch / f"call{n}.json").write_text(json.dumps(order_meta(n)))
    assert intake(cfg, agent.spool, pair, cfg.watch / f"call{n}.json")


def test_a_staged_clip_changed_after_it_was_queued_raises_an_alert_and_is_kept(served, tmp_path):
    agent, _ = _served_agent(tmp_path, served)
    try:
        _drop(agent, tmp_path, 5)
        job = agent.spool.claim()
        data = bytearray(job.clip.read_bytes())
        data[-100] ^= 0xFF  # still a valid WAV: a sample changed
        job.clip.write_bytes(bytes(data))
        agent.step(job)
        flagged = agent.spool.get(job.id)
        assert flagged.state == "alert"
        assert flagged.last_error == "the staged clip changed after it was queued"
        assert flagged.receipt  # what the vault answered, kept for the person who looks
        assert job.clip.read_bytes() == bytes(data)  # the clip stays where it was staged
    finally:
        agent.stop()


def test_uploads_go_on_while_an_answer_is_being_checked(served, tmp_path, monkeypatch):
    import threading

    from vault.agent import pipeline

    release, checking = threading.Event(), threading.Event()
    real = pipeline.check_opening

    def slow_check(*args, **kwargs):
        checking.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "check_opening", slow_check)
    agent, posts = _served_agent(tmp_path, served, concurrency=1)
    try:
        for n in (11, 12, 13):
            _drop(agent, tmp_path, n)
        agent.start()
        assert checking.wait(30)
        deadline = time.monotonic() + 30
        # one upload thread: while the first answer's check waits, it sends the others
        while len(posts) < 3:
            assert time.monotonic() < deadline, posts
            time.sleep(0.02)
        assert agent.spool.counts()["waiting_proof"] == 0  # nothing checked yet
        release.set()
        while agent.spool.counts()["waiting_proof"] + agent.spool.counts()["done"] < 3:
            assert time.monotonic() < deadline, agent.spool.counts()
            time.sleep(0.02)
        assert len(posts) == 3  # each sent once
    finally:
        release.set()
        agent.stop()


# --- the commitment salt the agent proposes -----------------------------------------------


def test_a_proposed_salt_seals_the_record_and_its_opening_is_checked_without_a_read(
    served, tmp_path
):
    from vault.ledger.entry import entry_hash, parse_entry
    from vault.sealing import commitment

    _, tc, auth = served
    path = clip(tmp_path, seed=31)
    meta_path = _write(tmp_path / "m31.json", order_meta(31))
    salt = bytes(range(64, 96))
    checked = check_pair(path, meta_path, salt=salt)
    assert checked.salt == salt
    assert checked.clip_commitment == commitment(salt, "clip", path.read_bytes())
    headers = {**auth, "Content-Type": "audio/wav", "Idempotency-Key": "k-31"}
    headers["Evidence-Metadata"] = encode_metadata(order_meta(31))
    sent = tc.post(
        "/v1/records?opening=true",
        content=path.read_bytes(),
        headers={**headers, "Commitment-Salt": salt.hex()},
    )
    assert sent.status_code == 201, sent.text
    receipt = sent.json()
    assert receipt["opening"]["salt"] == salt.hex()
    body = parse_entry(receipt["opening"]["entry"].encode())["body"]
    assert body["commitments"]["clip"] == checked.clip_commitment
    queued = (salt.hex(), checked.clip_commitment)
    gone = tmp_path / "not-there.wav"  # proves that the clip is not read again
    entry = check_opening(
        receipt, gone, checked.document, checked.evidence, clip_sha256="00" * 32, queued=queued
    )
    assert entry["record"] == receipt["record_id"]
    # a commitment other than the queued one: the clip is read, which names what differs
    check_opening(receipt, path, checked.document, checked.evidence, queued=(salt.hex(), "00" * 32))
    with pytest.raises(ReceiptMismatch, match="changed after it was queued"):
        check_opening(
            receipt,
            path,
            checked.document,
            checked.evidence,
            clip_sha256="00" * 32,
            queued=(salt.hex(), "00" * 32),
        )
    # an answer rewritten on its way (entry_hash made to fit) does not pass as the queued one
    forged_entry = parse_entry(receipt["opening"]["entry"].encode())
    forged_entry["body"]["commitments"]["clip"] = "cd" * 32
    import rfc8785

    text = rfc8785.dumps(forged_entry).decode()
    forged = {**receipt, "entry_hash": entry_hash(text.encode())}
    forged["opening"] = {**receipt["opening"], "entry": text}
    with pytest.raises(ReceiptMismatch, match="does not commit to the local clip"):
        check_opening(forged, path, checked.document, checked.evidence, queued=queued)

    # a retry under the same key with another salt is answered with the record's
    again = tc.post(
        "/v1/records?opening=true",
        content=path.read_bytes(),
        headers={**headers, "Commitment-Salt": "ee" * 32},
    )
    assert again.status_code == 200 and again.json()["opening"]["salt"] == salt.hex()
    # so is a repeat of the call segment without the key
    del headers["Idempotency-Key"]
    repeat = tc.post(
        "/v1/records?opening=true",
        content=path.read_bytes(),
        headers={**headers, "Commitment-Salt": "ee" * 32},
    )
    assert repeat.json()["duplicate"] and repeat.json()["opening"]["salt"] == salt.hex()


@pytest.mark.parametrize(
    "bad",
    ["ab" * 31, "AB" * 32, "ab" * 33, "zz" * 32, "ab" * 31 + "a"],
    ids=["short", "upper-case", "long", "not-hex", "odd"],
)
def test_a_malformed_salt_is_refused_and_nothing_is_sealed(served, tmp_path, bad):
    v, tc, auth = served
    path = clip(tmp_path, seed=32)
    headers = {**auth, "Content-Type": "audio/wav", "Commitment-Salt": bad}
    headers["Evidence-Metadata"] = encode_metadata(order_meta(32))
    refused = tc.post("/v1/records", content=path.read_bytes(), headers=headers)
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("invalid-request")
    assert [e["field"] for e in refused.json()["errors"]] == ["header.Commitment-Salt"]
    assert bad not in refused.text  # the field is named, the value is not echoed
    assert v.find(client=CLIENT) == []


def test_the_services_refuse_a_salt_of_the_wrong_size(tmp_path):
    from vault.services.ingest import ingest

    v = make_vault(tmp_path / "v")
    try:
        path = clip(tmp_path, seed=33)
        with pytest.raises(ValueError, match="salt must be 32 bytes"):
            ingest(v.context, path, order_meta(33), salt=bytes(16))
        assert v.find(client=CLIENT) == []
        receipt = ingest(v.context, path, order_meta(33), salt=bytes(range(32)))
        assert not receipt.duplicate
    finally:
        v.close()


class _DropsSalt(httpx.BaseTransport):
    """An older vault: the proposed salt never reaches it, so it draws its own."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if "commitment-salt" in request.headers:
            del request.headers["commitment-salt"]
        return self.inner.handle_request(request)


@pytest.mark.parametrize("vault_takes_the_salt", [True, False])
def test_the_agent_proposes_its_intake_salt_and_reads_the_clip_again_only_when_needed(
    served, tmp_path, monkeypatch, vault_takes_the_salt
):
    from vault.agent import receipts
    from vault.sealing import commitment

    agent, _ = _served_agent(tmp_path, served)
    if not vault_takes_the_salt:
        agent.uplink._http._transport = _DropsSalt(agent.uplink._http._transport)
    reads: list[Path] = []
    real_chunks = receipts._chunks

    def counted(p: Path):
        reads.append(p)
        return real_chunks(p)

    monkeypatch.setattr(receipts, "_chunks", counted)
    try:
        _drop(agent, tmp_path, 34)
        job = agent.spool.claim()
        assert job.salt and len(bytes.fromhex(job.salt)) == 32
        assert job.clip_commitment == commitment(
            bytes.fromhex(job.salt), "clip", job.clip.read_bytes()
        )
        agent.step(job)
        done = agent.spool.get(job.id)
        assert done.state == "waiting_proof", done.last_error
        sealed_salt = json.loads(done.receipt)["opening"]["salt"]
        assert (sealed_salt == job.salt) is vault_takes_the_salt
        assert reads == ([] if vault_takes_the_salt else [job.clip])
    finally:
        agent.stop()


def test_a_spool_of_an_older_agent_gets_the_salt_columns_and_its_jobs_still_run(tmp_path):
    import sqlite3

    path = tmp_path / "spool.db"
    db = sqlite3.connect(path)
    db.executescript(
        """CREATE TABLE jobs (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL, clip TEXT NOT NULL, meta TEXT NOT NULL, media_type TEXT NOT NULL,
        clip_sha256 TEXT NOT NULL, client TEXT NOT NULL, state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0,
        last_error TEXT, owner TEXT, created REAL NOT NULL, updated REAL NOT NULL,
        record_id TEXT, receipt TEXT);"""
    )
    db.execute(
        "INSERT INTO jobs (key, name, clip, meta, media_type, clip_sha256, client, state,"
        " created, updated) VALUES ('old', 'a.wav', '/x/a.wav', '/x/a.json', 'audio/wav', ?,"
        " ?, 'queued', 0, 0)",
        (SHA, CLIENT),
    )
    db.commit()
    db.close()
    assert Spool(path, reader=True).jobs()[0].salt is None  # a look changes nothing
    spool = Spool(path)
    old = spool.claim()
    assert (old.key, old.salt, old.clip_commitment) == ("old", None, None)
    new = spool.add(
        NewJob(
            key="new",
            name="b.wav",
            clip=tmp_path / "b.wav",
            meta=tmp_path / "b.json",
            media_type="audio/wav",
            clip_sha256=SHA,
            client=CLIENT,
            salt="11" * 32,
            clip_commitment="22" * 32,
        )
    )
    assert (new.salt, new.clip_commitment) == ("11" * 32, "22" * 32)
    assert Spool(path).get(new.id) == new  # opening it again adds nothing twice
