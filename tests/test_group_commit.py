"""Group commit: concurrent uploads of one client share a transaction, each stays whole.

The queue itself (:mod:`vault.services.commits`) is tested on its own first; then many
threads ingest into one vault on SQLite and PostgreSQL. Batches are forced where a test
needs a particular batch: a *blocker* upload holds the lane (its commit waits inside the
transaction) until the uploads under test are all queued behind it, so they form the next
batch together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from tests.support.vaults import CLIENT, RECORDED_AT, clip, make_vault, order_meta, person_token
from vault.db import LogEntry, LogHead, Record, read_session
from vault.db.models import IdempotencyKey
from vault.ledger import GENESIS_PREV, entry_hash, parse_entry
from vault.ledger.entry import format_time
from vault.services import ingest as ingest_mod
from vault.services.commits import GroupCommit
from vault.services.idempotency import IdempotencyMismatch, NewKey, request_hash
from vault.services.ingest import commit_queue

THREADS = 16
BLOCK_AT = RECORDED_AT - timedelta(minutes=7)  # the blocker's recording time marks it
POISON_AT = RECORDED_AT - timedelta(minutes=13)  # a commit of this recording fails


# --- the queue on its own -----------------------------------------------------------------


class Recorder:
    """A commit function that records its batches; ``gate`` holds the first batch open."""

    def __init__(self, fail_on=None, split_error=None):
        self.batches: list[list] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail_on, self.split_error = fail_on, split_error

    def __call__(self, handle, items):
        self.batches.append(list(items))
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(10)
        if self.split_error and self.split_error in items and len(items) > 1:
            raise KeyError("duplicate in batch")
        if self.split_error and items == [self.split_error]:
            raise KeyError("the duplicate itself")
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("injected")
        return [f"ok:{i}" for i in items]


def _queued(q: GroupCommit, key, n: int) -> None:
    deadline = time.monotonic() + 10
    while q.pending(key) < n:
        assert time.monotonic() < deadline, f"only {q.pending(key)} of {n} queued"
        time.sleep(0.002)


def _submit_all(q: GroupCommit, key, items) -> dict:
    out: dict = {}

    def run(i):
        try:
            out[i] = q.submit(key, i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in items]
    for t in threads:
        t.start()
    return {"threads": threads, "out": out}


def _join(started) -> dict:
    for t in started["threads"]:
        t.join(10)
        assert not t.is_alive(), "a submitter never woke up"
    return started["out"]


def test_a_lone_commit_runs_at_once_without_a_window():
    rec = Recorder()
    rec.entered.set()  # no gate
    q = GroupCommit(rec, window=5.0)  # a window this long would show
    t0 = time.monotonic()
    assert [q.submit("c", i) for i in range(3)] == ["ok:0", "ok:1", "ok:2"]
    assert time.monotonic() - t0 < 1.0
    assert rec.batches == [[0], [1], [2]]
    assert q.stats.waited == 0 and q.stats.max_batch == 1


def test_waiters_form_one_batch_and_each_gets_its_own_result():
    rec = Recorder()
    q = GroupCommit(rec, window=0.002)
    first = _submit_all(q, "c", ["lead"])
    assert rec.entered.wait(10)
    rest = _submit_all(q, "c", list(range(10)))
    _queued(q, "c", 10)
    other_key = q.submit("other", "x")  # another client's lane is not blocked by this one
    assert other_key == "ok:x"
    rec.gate.set()
    out = {**_join(first), **_join(rest)}
    assert out == {"lead": "ok:lead", **{i: f"ok:{i}" for i in range(10)}}
    assert sorted(rec.batches[-1]) == list(range(10))  # all ten in one batch
    assert q.stats.max_batch == 10
    assert q.pending("c") == 0


def test_max_batch_caps_a_batch_and_the_rest_follows():
    rec = Recorder()
    q = GroupCommit(rec, window=0, max_batch=4)
    first = _submit_all(q, "c", ["lead"])
    assert rec.entered.wait(10)
    rest = _submit_all(q, "c", list(range(10)))
    _queued(q, "c", 10)
    rec.gate.set()
    out = {**_join(first), **_join(rest)}
    assert all(out[i] == f"ok:{i}" for i in range(10))
    assert [len(b) for b in rec.batches[1:]] == [4, 4, 2]


def test_an_error_reaches_every_member_of_its_batch_and_nobody_else():
    rec = Recorder(fail_on=3)
    q = GroupCommit(rec, window=0)
    first = _submit_all(q, "c", ["lead"])
    assert rec.entered.wait(10)
    rest = _submit_all(q, "c", list(range(6)))
    _queued(q, "c", 6)
    rec.gate.set()
    out = {**_join(first), **_join(rest)}
    assert out["lead"] == "ok:lead"
    assert all(isinstance(out[i], RuntimeError) for i in range(6))
    # the lane is free again: no deadlock after a failed batch
    assert q.submit("c", 7) == "ok:7"


def test_a_split_error_reruns_each_member_alone():
    rec = Recorder(split_error=2)
    q = GroupCommit(rec, window=0, split_on=(KeyError,))
    first = _submit_all(q, "c", ["lead"])
    assert rec.entered.wait(10)
    rest = _submit_all(q, "c", list(range(5)))
    _queued(q, "c", 5)
    rec.gate.set()
    out = {**_join(first), **_join(rest)}
    assert isinstance(out[2], KeyError)
    assert all(out[i] == f"ok:{i}" for i in (0, 1, 3, 4))
    assert q.stats.splits == 1


def test_a_leader_interrupted_while_collecting_strands_nobody():
    """A BaseException in the leader's own thread: its batch gets the error, the lane
    passes on."""
    calls = []

    def commit(handle, items):
        calls.append(list(items))
        if "boom" in items:
            raise SystemExit("leader interrupted")
        return list(items)

    q = GroupCommit(commit, window=0)
    with pytest.raises(SystemExit):
        q.submit("c", "boom")
    assert q.submit("c", "after") == "after"


def test_many_threads_many_batches_no_lost_wakeup():
    """Random commit times and failures: everyone gets exactly its own outcome, in time."""
    import random

    rng = random.Random(3)
    committed: list[int] = []

    def commit(handle, items):
        time.sleep(rng.random() / 1000)
        if any(i % 97 == 0 for i in items):
            raise RuntimeError("unlucky batch")
        committed.extend(items)
        return [i * 2 for i in items]

    q = GroupCommit(commit, window=0.0005, max_batch=8)
    out: dict = {}

    def run(t):
        for i in range(t * 1000, t * 1000 + 60):
            try:
                out[i] = q.submit("c", i)
            except RuntimeError as exc:
                out[i] = exc

    threads = [threading.Thread(target=run, args=(t,)) for t in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a submitter never woke up"
    assert len(out) == 24 * 60
    ok = {i for i, r in out.items() if not isinstance(r, Exception)}
    assert all(out[i] == 2 * i for i in ok)
    assert sorted(committed) == sorted(ok)  # a failed batch committed none of its items
    assert q.stats.items == len(out) and q.stats.max_batch > 1
    assert q.pending("c") == 0


# --- group commit of sealed records ---------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def vault(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    v = make_vault(tmp_path / "vault", database_url=url)
    yield v
    v.close()


def _ingest_concurrently(vault, jobs, *, barrier=True):
    """``jobs`` = (clip, meta) pairs, one thread each; receipt or exception per job."""
    out: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs)) if barrier else None

    def run(i, path, meta):
        if start:
            start.wait()
        try:
            out[i] = vault.ingest(path, meta)
        except Exception as exc:
            out[i] = exc

    threads = [
        threading.Thread(target=run, args=(i, p, m), name=f"ingest-{i}")
        for i, (p, m) in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    return threads, out


def _finish(threads, out):
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    return out


class Blocker:
    """Wraps the commit's ``append_entries``: the blocker's commit waits inside its
    transaction until released; a batch holding the poisoned recording time raises."""

    def __init__(self, monkeypatch):
        self.inside = threading.Event()
        self.release = threading.Event()
        real = ingest_mod.append_entries

        def wrapped(session, client, drafts, now, writer):
            times = {d.body.get("recorded_at") for d in drafts}
            if format_time(BLOCK_AT) in times:
                self.inside.set()
                assert self.release.wait(60)
            if format_time(POISON_AT) in times:
                raise RuntimeError("injected failure in the batch")
            return real(session, client, drafts, now, writer)

        monkeypatch.setattr(ingest_mod, "append_entries", wrapped)

    def start(self, vault, tmp_path):
        meta = order_meta(990_000, recorded_at=BLOCK_AT)
        threads, out = _ingest_concurrently(vault, [(clip(tmp_path, seed=990), meta)])
        assert self.inside.wait(60)
        return threads, out


def _wait_queued(vault, n):
    q = commit_queue(vault.context.engine)
    deadline = time.monotonic() + 60
    while q.pending(CLIENT) < n:
        assert time.monotonic() < deadline, f"{q.pending(CLIENT)} of {n} uploads queued"
        time.sleep(0.005)


def assert_linear(vault, expected_entries: int) -> list[LogEntry]:
    with read_session(vault.context.engine) as s:
        rows = list(
            s.exec(select(LogEntry).where(LogEntry.client_id == CLIENT).order_by(LogEntry.seq))
        )
        head = s.get(LogHead, CLIENT)
    assert [r.seq for r in rows] == list(range(expected_entries))  # no gap, no duplicate
    prev = GENESIS_PREV
    for r in rows:  # one chain: no fork
        entry = parse_entry(r.entry)
        assert entry["seq"] == r.seq and entry["prev"] == prev
        prev = entry_hash(r.entry)
    assert (head.size, head.head_hash) == (expected_entries, prev)
    report = vault.verify()
    assert report.clean, [f.to_dict() for f in report.findings]
    return rows


def records(vault) -> list[Record]:
    with read_session(vault.context.engine) as s:
        return list(s.exec(select(Record).order_by(Record.seq)))


def test_threads_ingest_concurrently_in_batches(vault, tmp_path):
    per_thread = 3
    jobs = [
        [(clip(tmp_path, seed=t * 100 + j), order_meta(t * 100 + j)) for j in range(per_thread)]
        for t in range(THREADS)
    ]
    out: list = [None] * THREADS
    start = threading.Barrier(THREADS)

    def run(t):
        start.wait()
        try:
            out[t] = [vault.ingest(p, m) for p, m in jobs[t]]
        except Exception as exc:
            out[t] = exc

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    n = THREADS * per_thread
    receipts = [r for rs in out for r in rs]  # an exception here fails the test: fine
    assert len(receipts) == n and not any(r.duplicate for r in receipts)
    stored = records(vault)
    assert len(stored) == n
    assert {r.call_id for r in stored} == {m["call_id"] for js in jobs for _, m in js}
    by_id = {r.id: r for r in stored}
    rows = assert_linear(vault, n)
    for receipt in receipts:  # each caller got its own seq and entry hash
        assert by_id[receipt.record_id].seq == receipt.seq
        assert entry_hash(rows[receipt.seq].entry) == receipt.entry_hash
        assert by_id[receipt.record_id].sealed_at == receipt.sealed_at
    stats = commit_queue(vault.context.engine).stats
    assert stats.items == n
    assert stats.max_batch > 1, stats  # batches really formed
    assert stats.batches < n


def test_duplicates_racing_in_one_batch_become_one_record(vault, tmp_path, monkeypatch):
    # the call-segment claim keeps duplicates out of one batch; without it (the second line
    # of defence) the unique constraint still decides, and only the duplicates fail
    monkeypatch.setattr(ingest_mod, "claim", lambda *a: contextlib.nullcontext())
    blocker = Blocker(monkeypatch)
    held = blocker.start(vault, tmp_path)
    dup_clip, dup_meta = clip(tmp_path, seed=7), order_meta(7)
    jobs = [(dup_clip, dup_meta)] * 5 + [(clip(tmp_path, seed=8), order_meta(8))]
    threads, out = _ingest_concurrently(vault, jobs)
    _wait_queued(vault, len(jobs))  # all sealed, all queued behind the blocker
    blocker.release.set()
    _finish(*held)
    out = _finish(threads, out)
    assert not [r for r in out if isinstance(r, Exception)], out
    dups = out[:5]
    assert len({r.record_id for r in dups}) == 1
    assert sorted(r.duplicate for r in dups) == [False, True, True, True, True]
    assert len({(r.seq, r.entry_hash) for r in dups}) == 1
    assert not out[5].duplicate
    stats = commit_queue(vault.context.engine).stats
    assert stats.max_batch >= len(jobs) and stats.splits == 1, stats
    assert [r.call_id for r in records(vault)].count(dup_meta["call_id"]) == 1
    assert len(records(vault)) == 3  # blocker, the duplicate's one record, call 8
    assert_linear(vault, 3)


def test_a_failure_in_a_batch_fails_that_batch_only(vault, tmp_path, monkeypatch):
    vault.ingest(clip(tmp_path, seed=1), order_meta(1))  # before
    blocker = Blocker(monkeypatch)
    held = blocker.start(vault, tmp_path)
    batch = [(clip(tmp_path, seed=10 + i), order_meta(10 + i)) for i in range(4)]
    batch.append((clip(tmp_path, seed=19), order_meta(19, recorded_at=POISON_AT)))
    threads, out = _ingest_concurrently(vault, batch)
    _wait_queued(vault, len(batch))
    blocker.release.set()
    _finish(*held)
    out = _finish(threads, out)
    assert all(isinstance(r, RuntimeError) for r in out), out  # the whole batch failed
    after = vault.ingest(clip(tmp_path, seed=2), order_meta(2))  # the lane still works
    stored = {r.call_id for r in records(vault)}
    assert stored == {order_meta(n)["call_id"] for n in (1, 990_000, 2)}
    assert after.seq == 2
    assert_linear(vault, 3)
    # the failed uploads' objects were discarded: nothing stored but the 3 records' objects
    objects = [k for k in vault.context.store.list("") if "/_" not in k and not k.startswith("_")]
    assert len(objects) == 3 * 2


def test_consent_uses_within_one_batch_extend_as_if_one_by_one(vault, tmp_path, monkeypatch):
    days = 1826
    vault.add_campaign(CLIENT, "optin", retention_days=days, retention_basis="consent-use")
    a = vault.ingest(clip(tmp_path, seed=1), order_meta(1, campaign="optin"))
    blocker = Blocker(monkeypatch)
    held = blocker.start(vault, tmp_path)
    b_at, c_at = RECORDED_AT + timedelta(days=1), RECORDED_AT + timedelta(days=2)
    jobs = [
        (clip(tmp_path, seed=2), order_meta(2, campaign="optin", recorded_at=b_at)),
        (clip(tmp_path, seed=3), order_meta(3, campaign="optin", recorded_at=c_at)),
    ]
    # one after the other, so the batch order (b, then c) is known
    threads, out = _ingest_concurrently(vault, jobs[:1])
    _wait_queued(vault, 1)
    more, out_c = _ingest_concurrently(vault, jobs[1:])
    _wait_queued(vault, 2)
    blocker.release.set()
    _finish(*held)
    b, c = _finish(threads, out)[0], _finish(more, out_c)[0]
    assert commit_queue(vault.context.engine).stats.max_batch == 2
    rows = {r.id: r for r in records(vault)}
    until = c_at + timedelta(days=days)
    assert rows[a.record_id].retain_until == until
    assert rows[b.record_id].retain_until == until
    assert rows[c.record_id].retain_until == until
    with read_session(vault.context.engine) as s:
        ext = [
            parse_entry(e.entry)
            for e in s.exec(
                select(LogEntry).where(LogEntry.type == "retention.extended").order_by(LogEntry.seq)
            )
        ]
    # b extends a; then c extends a and b (b is already in the batch, like a committed row)
    assert [e["record"] for e in ext] == [a.record_id, a.record_id, b.record_id]
    assert b.seq == 2 and c.seq == b.seq + 2  # b's sealed entry, a's extension, then c
    # blocker's record, a, b, c and the three extensions
    assert_linear(vault, 4 + 3)


def test_racing_duplicates_upload_nothing_twice(vault, tmp_path):
    """With the claim, a duplicate in flight waits and answers from the committed record:
    its objects are never written, so nothing is left behind (not even under Object Lock)."""
    dup_clip, dup_meta = clip(tmp_path, seed=7), order_meta(7)
    threads, out = _ingest_concurrently(vault, [(dup_clip, dup_meta)] * 6)
    out = _finish(threads, out)
    assert not [r for r in out if isinstance(r, Exception)], out
    assert len({r.record_id for r in out}) == 1
    assert sorted(r.duplicate for r in out) == [False, True, True, True, True, True]
    objects = [k for k in vault.context.store.list("") if "/_" not in k and not k.startswith("_")]
    assert len(objects) == 2
    assert vault.verify().clean


# --- Idempotency-Keys stored in the sealing transaction -------------------------------------


def _new_key(token_id: str, key: str, path, meta) -> NewKey:
    raw = json.dumps(meta).encode()
    return NewKey(token_id, key, hashlib.sha256(raw).hexdigest(), _file_sha(path))


def _file_sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _entries(vault) -> int:
    with read_session(vault.context.engine) as s:
        head = s.get(LogHead, CLIENT)
    return 0 if head is None else head.size


def _key_rows(vault) -> dict[str, IdempotencyKey]:
    with read_session(vault.context.engine) as s:
        return {r.key: r for r in s.exec(select(IdempotencyKey))}


def test_keys_commit_with_their_records_and_a_taken_key_seals_nothing(
    vault, tmp_path, monkeypatch
):
    info, _ = person_token(vault.context, "dialer", CLIENT)
    before = len(assert_linear(vault, _entries(vault)))  # the person's and token's entries
    blocker = Blocker(monkeypatch)
    held = blocker.start(vault, tmp_path)
    jobs = [(clip(tmp_path, seed=30 + i), order_meta(30 + i)) for i in range(4)]
    # a fifth upload under the first one's key, for another call: two requests that both
    # found the key unused (the HTTP layer looks first), racing into one batch
    jobs.append((clip(tmp_path, seed=39), order_meta(39)))
    keys = [_new_key(info.id, f"k-{i}", p, m) for i, (p, m) in enumerate(jobs[:4])]
    keys.append(_new_key(info.id, "k-0", *jobs[4]))
    out: list = [None] * len(jobs)

    def run(i):
        try:
            out[i] = ingest_mod.ingest(
                vault.context, jobs[i][0], jobs[i][1], idempotency_key=keys[i]
            )
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads[:4]:
        t.start()
    _wait_queued(vault, 4)
    threads[4].start()  # queued last: when the batch splits, the first holder of k-0 wins
    _wait_queued(vault, len(jobs))
    blocker.release.set()
    _finish(*held)
    _finish(threads, out)
    sealed = out[:4]
    assert all(not isinstance(r, Exception) and not r.duplicate for r in sealed), out
    assert isinstance(out[4], IdempotencyMismatch), out[4]  # its metadata differs
    rows = _key_rows(vault)
    assert sorted(rows) == ["k-0", "k-1", "k-2", "k-3"]
    for i, receipt in enumerate(sealed):
        assert rows[f"k-{i}"].record_id == receipt.record_id
        assert rows[f"k-{i}"].request_hash == request_hash(keys[i].meta_sha, keys[i].clip_sha)
    assert commit_queue(vault.context.engine).stats.splits == 1
    assert order_meta(39)["call_id"] not in {r.call_id for r in records(vault)}
    assert_linear(vault, before + 5)  # the blocker and the four: nothing of the loser
    objects = [k for k in vault.context.store.list("") if "/_" not in k and not k.startswith("_")]
    assert len(objects) == 5 * 2  # the loser's objects were discarded


def test_a_record_and_its_key_fail_together(vault, tmp_path, monkeypatch):
    info, _ = person_token(vault.context, "dialer", CLIENT)
    path, meta = clip(tmp_path, seed=41), order_meta(41)
    key = _new_key(info.id, "k-41", path, meta)

    def broken(session, client, drafts, now, writer):
        raise RuntimeError("injected failure after the rows went in")

    monkeypatch.setattr(ingest_mod, "append_entries", broken)
    with pytest.raises(RuntimeError):
        ingest_mod.ingest(vault.context, path, meta, idempotency_key=key)
    assert _key_rows(vault) == {} and records(vault) == []
    monkeypatch.undo()
    receipt = ingest_mod.ingest(vault.context, path, meta, idempotency_key=key)
    assert _key_rows(vault)["k-41"].record_id == receipt.record_id
