"""The dialer agent as a real process against a real `evidence-vault serve`, with real
faults on loopback: the vault down for a while, a vault worker killed with SIGKILL in the
middle of an upload's body, the agent killed with SIGKILL while the vault holds its
upload, the same pair dropped twice, a file still being written, a receipt rewritten on
the way (then retried by the operator), and a flaky network (seeded drops, stalls,
truncation).

After each: every clip sealed exactly once, and nothing deleted that was not proven.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from tests.support.netfaults import (
    DROP,
    HOLD,
    PASS,
    PAUSE,
    STALL,
    TRUNCATE,
    ReceiptRewriter,
    TcpProxy,
    wait_for,
)
from tests.support.vaults import (
    CLIENT,
    PgDatabase,
    clip,
    make_vault,
    order_meta,
    person_token,
    postgres_available,
)
from tests.test_http_multiprocess import (
    Server,
    assert_verified,
    free_port,
    holder,
    server_side_inode,
)
from vault.agent.config import load_config
from vault.agent.spool import Spool
from vault.agent.status import agent_status
from vault.db import Record, read_session

EXE = str(Path(sys.executable).parent / "evidence-vault")


# --- the vault --------------------------------------------------------------------------


class Vault:
    """A SQLite vault served by one `serve` process; checkpoints signed every second."""

    def __init__(
        self,
        home: Path,
        log_dir: Path,
        port: int | None = None,
        workers: int = 1,
        database_url: str | None = None,
    ) -> None:
        self.workers = workers
        self.vault = make_vault(home, database_url=database_url or "")
        toml = home / "vault.toml"
        text = toml.read_text().replace("checkpoint_every = 100", "checkpoint_every = 1000")
        toml.write_text(text.replace("checkpoint_seconds = 60", "checkpoint_seconds = 1"))
        _, self.token = person_token(self.vault.context, "dialer", CLIENT)
        self.log_key = self.vault.log_key()
        self.home, self.log_dir = home, log_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Server | None = None

    def start(self) -> None:
        server = Server.__new__(Server)
        log = self.log_dir / f"serve-{time.time_ns()}.log"
        Server.__init__(server, self.home, {}, log, self.workers)
        # Server picks a free port; ours must stay the same across restarts
        server.proc.kill()
        server.proc.wait()
        server._out.close()
        server.port, server.url = self.port, self.url
        server._out = server.log.open("ab")
        args = ["--vault", str(self.home), "serve", "--port", str(self.port)]
        args += ["--workers", str(self.workers)]
        server.proc = subprocess.Popen(
            [EXE, *args], stdout=server._out, stderr=subprocess.STDOUT, start_new_session=True
        )
        server.wait_ready()
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def records(self, call_prefix: str = "") -> list[Record]:
        with read_session(self.vault.context.engine) as s:
            rows = s.exec(select(Record)).all()
        return [r for r in rows if r.call_id.startswith(call_prefix)]

    def verify_clean(self) -> None:
        out = subprocess.run(
            [EXE, "--vault", str(self.home), "verify"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    home = tmp_path_factory.mktemp("vault")
    v = Vault(home / "v", home)
    v.start()
    try:
        yield v
    finally:
        v.stop()
        v.vault.close()


# --- the agent --------------------------------------------------------------------------


class Agent:
    """`evidence-vault agent run` in its own session, logging to a file."""

    def __init__(self, home: Path, url: str, vault: Vault, **settings) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        conf = {
            "url": url,
            "settle_seconds": 0.3,
            "poll_interval": 0.1,
            "concurrency": 2,
            "backoff_base": 0.1,
            "backoff_cap": 0.5,
            "proof_interval": 0.3,
            "timeout": 10.0,
            "log_keys": [vault.log_key],
            **settings,
        }
        lines = ["[agent]"] + [f"{k} = {json.dumps(v)}" for k, v in conf.items()]
        (home / "agent.toml").write_text("\n".join(lines) + "\n")
        self.env = {**os.environ, "EVIDENCE_VAULT_TOKEN": vault.token}
        self.cfg = load_config(home)
        self.proc: subprocess.Popen | None = None
        self.cfg.watch.mkdir(parents=True, exist_ok=True)

    def start(self) -> Agent:
        log = (self.home / "agent.log").open("ab")
        self.proc = subprocess.Popen(
            [EXE, "agent", "--dir", str(self.home), "run"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(lambda: self.cfg.spool_path.exists(), what="the agent's spool")
        return self

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()

    def status(self) -> dict:
        return agent_status(self.cfg)

    def jobs(self):
        spool = Spool(self.cfg.spool_path)
        try:
            return spool.jobs()
        finally:
            spool.close()

    def drop(self, tmp: Path, n: int, *, name: str | None = None, seconds: float = 2.0) -> Path:
        """Write a pair elsewhere, then move it in (as a well-behaved dialer does)."""
        src = clip(tmp, seconds=seconds, seed=n)
        name = name or f"call-{n}"
        meta = json.dumps(order_meta(n)).encode()
        staged = tmp / f"{name}.json"
        staged.write_bytes(meta)
        os.replace(staged, self.cfg.watch / f"{name}.json")
        target = self.cfg.watch / f"{name}.wav"
        shutil.move(src, target)
        return target

    def receipts(self) -> list[dict]:
        path = self.cfg.receipts_path
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def log(self) -> str:
        return (self.home / "agent.log").read_text(errors="replace")


def done_count(agent: Agent, n: int):
    def check():
        s = agent.status()
        assert s["alert"] == 0, agent.log()[-3000:]
        return s["done"] >= n

    return check


@pytest.fixture
def agents():
    started: list[Agent] = []
    yield started
    for a in started:
        a.stop()


def _agent(agents, *args, **kw) -> Agent:
    a = Agent(*args, **kw)
    agents.append(a)
    return a


# --- the tests --------------------------------------------------------------------------


def test_pairs_land_once_bad_ones_are_quarantined_and_status_tells(vault, tmp_path, agents):
    port = free_port()
    agent = _agent(agents, tmp_path / "agent", vault.url, vault, metrics_port=port).start()
    first = agent.drop(tmp_path, 1001)
    original = first.read_bytes()
    agent.drop(tmp_path, 1002)
    # a clip that is not audio, and a metadata document with a broken phone number
    (agent.cfg.watch / "broken.json").write_text(json.dumps(order_meta(1003)))
    (agent.cfg.watch / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    bad_meta = order_meta(1004)
    bad_meta["callee"]["phone"] = "+49 not a number"
    shutil.copy(clip(tmp_path, seed=4), agent.cfg.watch / "badmeta.wav")
    (agent.cfg.watch / "badmeta.json").write_text(json.dumps(bad_meta))
    wait_for(done_count(agent, 2), what="two jobs done")
    wait_for(lambda: agent.status()["quarantined"] >= 2, what="two quarantined")

    # the same pair dropped again after it was sealed: no second job, no second record
    again = tmp_path / "again"
    again.mkdir()
    (again / "call-1001.wav").write_bytes(original)
    (again / "call-1001.json").write_text(json.dumps(order_meta(1001)))
    os.replace(again / "call-1001.json", agent.cfg.watch / "call-1001.json")
    os.replace(again / "call-1001.wav", agent.cfg.watch / "call-1001.wav")
    wait_for(lambda: not list(agent.cfg.watch.iterdir()), what="the repeat taken in")

    assert len(vault.records("dialer-7f3a-00100")) == 2
    assert len(agent.jobs()) == 2
    q = agent.cfg.quarantine
    assert (q / "broken.wav").exists() and (q / "badmeta.wav").exists()
    assert "refused" in (q / "broken.wav.reason.txt").read_text()
    reason = (q / "badmeta.wav.reason.txt").read_text()
    assert "callee.phone" in reason and "not a number" not in reason  # the rule, not the value
    # proven clips went to done/, their receipts to receipts.jsonl
    assert (agent.cfg.done / "call-1001.wav").read_bytes() == original
    receipts = agent.receipts()
    assert sorted(r["name"] for r in receipts) == ["call-1001.wav", "call-1002.wav"]
    assert all(r["inclusion_proof"]["tree_size"] > r["seq"] for r in receipts)

    status = agent.status()
    assert (status["done"], status["quarantined"], status["alert"]) == (2, 2, 0)
    shown = subprocess.run(
        [EXE, "agent", "--dir", str(agent.home), "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["done"] == 2
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'evidence_agent_jobs{state="done"} 2' in metrics
    assert 'evidence_agent_jobs{state="quarantined"} 2' in metrics
    # every thread of the agent (uploads, checker, watcher, metrics) yields to the dialer
    # (10 by default; started nicer, it stays as nice as it was)
    assert thread_niceness(agent.proc.pid) == {max(10, os.getpriority(os.PRIO_PROCESS, 0))}


def thread_niceness(pid: int) -> set[int]:
    """The niceness of each thread of a process (/proc/PID/task/*/stat, field 19)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        found.add(int(fields[16]))
    return found


def test_vault_down_for_a_while_then_everything_lands(tmp_path, agents):
    down = Vault(tmp_path / "v", tmp_path)
    try:
        agent = _agent(agents, tmp_path / "agent", down.url, down).start()
        for n in range(2001, 2004):
            agent.drop(tmp_path, n)
        # the jobs wait and retry: attempts grow, the error says why, nothing is lost
        wait_for(
            lambda: all(j.attempts >= 2 for j in agent.jobs()) and len(agent.jobs()) == 3,
            what="retries while the vault is down",
        )
        status = agent.status()
        assert status["queued"] + status["in_flight"] == 3
        assert "ConnectError" in status["last_error"]
        down.start()
        wait_for(done_count(agent, 3), what="all three done once the vault is back")
        assert len(down.records()) == 3
        down.verify_clean()
    finally:
        down.stop()
        down.vault.close()


def test_a_vault_worker_killed_mid_upload_is_retried_and_stored_once(tmp_path, agents):
    if reason := postgres_available():
        pytest.skip(reason)  # two workers share the vault through PostgreSQL
    pg = PgDatabase()
    two = Vault(tmp_path / "v", tmp_path, workers=2, database_url=pg.url)
    two.start()
    faults = iter([PAUSE])  # the first connection stops in the middle of the body
    proxy = TcpProxy(two.port, lambda: next(faults, PASS))
    try:
        agent = _agent(agents, tmp_path / "agent", proxy.url, two).start()
        agent.drop(tmp_path, 3501, seconds=30.0)  # ~480 KB: more than the pause lets through
        victim = None

        def worker_in_the_body() -> bool:
            nonlocal victim
            if not proxy.upstreams:
                return False
            inode = server_side_inode(two.port, proxy.upstreams[0])
            victim = inode and holder(two.server.workers(), inode)
            return bool(victim)

        wait_for(worker_in_the_body, what="a worker receiving the upload")
        time.sleep(0.3)  # the worker reads the forwarded part of the body
        assert agent.status()["in_flight"] == 1 and two.records("dialer-7f3a-003501") == []
        os.kill(victim, signal.SIGKILL)
        wait_for(done_count(agent, 1), what="the job done after the retry")
    finally:
        proxy.close()
    try:
        [job] = agent.jobs()
        assert job.attempts >= 1 and len(proxy.upstreams) >= 2  # a failed try, then another
        [rec] = two.records("dialer-7f3a-003501")
        [receipt] = agent.receipts()
        assert receipt["record_id"] == rec.id and receipt["duplicate"] is False
        assert_verified(two.vault)  # the killed upload may leave an orphan object, no more
    finally:
        two.stop()
        two.vault.close()
        pg.drop()


def test_the_same_pair_dropped_twice_is_stored_once(tmp_path, agents):
    down = Vault(tmp_path / "v", tmp_path)  # not started yet: the first job stays owed
    try:
        agent = _agent(agents, tmp_path / "agent", down.url, down).start()
        agent.drop(tmp_path, 3601)
        wait_for(lambda: len(agent.jobs()) == 1, what="the first drop queued")
        [job] = agent.jobs()
        assert job.state in ("queued", "uploading")
        data, meta = job.clip.read_bytes(), json.dumps(order_meta(3601))
        # the dialer hands the same recording over again: under its name, and under another
        again = tmp_path / "again"
        again.mkdir()
        for name in ("call-3601", "call-3601-resent"):
            (again / f"{name}.wav").write_bytes(data)
            (again / f"{name}.json").write_text(meta)
            os.replace(again / f"{name}.json", agent.cfg.watch / f"{name}.json")
            os.replace(again / f"{name}.wav", agent.cfg.watch / f"{name}.wav")
        wait_for(lambda: not list(agent.cfg.watch.iterdir()), what="both copies taken in")
        assert len(agent.jobs()) == 1  # recognised by the key: no second job
        down.start()
        wait_for(done_count(agent, 1), what="the one job done")
        assert len(down.records("dialer-7f3a-003601")) == 1
        assert len(agent.receipts()) == 1
        kept = sorted(p.name for p in agent.cfg.done.iterdir() if p.suffix == ".wav")
        assert len(kept) == 3 and all((agent.cfg.done / n).read_bytes() == data for n in kept)
        down.verify_clean()
    finally:
        down.stop()
        down.vault.close()


def test_agent_killed_mid_upload_resumes_and_stores_once(vault, tmp_path, agents):
    proxy = TcpProxy(vault.port, lambda: HOLD)  # the vault seals, the answer never comes
    try:
        agent = _agent(agents, tmp_path / "agent", proxy.url, vault).start()
        agent.drop(tmp_path, 3001)
        wait_for(lambda: vault.records("dialer-7f3a-003001"), what="the vault sealing it")
        assert agent.status()["in_flight"] == 1
        agent.kill9()
    finally:
        proxy.close()
    again = _agent(agents, tmp_path / "agent", vault.url, vault).start()
    wait_for(done_count(again, 1), what="the job finished after the restart")
    assert len(vault.records("dialer-7f3a-003001")) == 1
    [receipt] = again.receipts()
    assert receipt["duplicate"] is True  # the retry was answered from the sealed record
    assert receipt["record_id"] == vault.records("dialer-7f3a-003001")[0].id


def test_a_file_still_being_written_is_not_picked_up_early(vault, tmp_path, agents):
    agent = _agent(agents, tmp_path / "agent", vault.url, vault).start()
    data = clip(tmp_path, seconds=2.0, seed=41).read_bytes()
    (agent.cfg.watch / "slow.json").write_text(json.dumps(order_meta(4001)))
    chunks = [data[i : i + len(data) // 5] for i in range(0, len(data), len(data) // 5)]
    with open(agent.cfg.watch / "slow.wav", "wb") as fh:  # open for writing throughout
        for chunk in chunks[:-1]:
            fh.write(chunk)
            fh.flush()
            time.sleep(3 * agent.cfg.settle_seconds)  # longer than the settle time
            assert agent.jobs() == [] and agent.status()["quarantined"] == 0
        fh.write(chunks[-1])
    wait_for(done_count(agent, 1), what="the finished file sealed")
    [rec] = vault.records("dialer-7f3a-004001")
    assert rec.clip_size == len(data)
    assert (agent.cfg.done / "slow.wav").read_bytes() == data


def test_a_pair_renamed_in_long_after_writing_is_taken_without_the_settle_wait(
    vault, tmp_path, agents
):
    # an hour's settle time: only the time a pair stood still before its rename takes it
    agent = _agent(agents, tmp_path / "agent", vault.url, vault, settle_seconds=3600.0).start()
    beside = tmp_path / "beside"
    beside.mkdir()
    for seq, written_ago in ((4101, 7200), (4102, 0)):
        wav, meta = beside / f"c{seq}.wav", beside / f"c{seq}.json"
        wav.write_bytes(clip(tmp_path, seed=seq).read_bytes())
        meta.write_text(json.dumps(order_meta(seq)))
        for path in (wav, meta):  # written two hours ago, as far as its times tell
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - written_ago * 10**9))
    for name in ("c4101.json", "c4101.wav", "c4102.json", "c4102.wav"):
        os.replace(beside / name, agent.cfg.watch / name)
    wait_for(done_count(agent, 1), what="the pair that stood still two hours", timeout=20)
    assert len(vault.records("dialer-7f3a-004101")) == 1
    # the pair written just now waits its hour, still in the watch folder
    assert vault.records("dialer-7f3a-004102") == []
    assert (agent.cfg.watch / "c4102.wav").exists() and agent.status()["done"] == 1


def test_a_rewritten_receipt_keeps_the_clip_and_raises_an_alert(vault, tmp_path, agents):
    def forge(receipt: dict) -> dict:
        # a self-consistent forgery: the entry commits to another clip, entry_hash follows
        from vault.ledger.entry import encode_entry, entry_hash

        entry = json.loads(receipt["opening"]["entry"])
        entry["body"]["commitments"]["clip"] = "00" * 32
        raw = encode_entry(entry)
        receipt["opening"]["entry"] = raw.decode()
        receipt["entry_hash"] = entry_hash(raw)
        return receipt

    proxy = ReceiptRewriter(vault.url, forge)
    try:
        agent = _agent(agents, tmp_path / "agent", proxy.url, vault).start()
        dropped = agent.drop(tmp_path, 5001)
        wait_for(lambda: agent.status()["alert"] == 1, what="the alert")
    finally:
        proxy.close()
    [job] = agent.jobs()
    assert job.state == "alert" and "does not commit to the local clip" in job.last_error
    assert job.clip.exists() and job.meta.exists()  # kept for a person to look at
    assert not (agent.cfg.done / dropped.name).exists() and agent.receipts() == []
    assert "evidence_agent_alert 1" in __import__(
        "vault.agent.status", fromlist=["x"]
    ).prometheus_text(agent.cfg)
    shown = subprocess.run(
        [EXE, "agent", "--dir", str(agent.home), "status"], capture_output=True, text=True
    )
    assert f"ALERT job {job.id}" in shown.stdout and f"agent retry {job.id}" in shown.stdout

    # the operator looks, finds the path to the vault was rewritten, fixes it and retries:
    # the upload is repeated under the same key and every check runs again
    agent.stop()
    fixed = _agent(agents, tmp_path / "agent", vault.url, vault).start()
    retried = subprocess.run(
        [EXE, "--json", "agent", "--dir", str(fixed.home), "retry"],
        capture_output=True,
        text=True,
    )
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {str(job.id): "queued again"}
    wait_for(done_count(fixed, 1), what="the retried job done")
    assert len(vault.records("dialer-7f3a-005001")) == 1
    [receipt] = fixed.receipts()
    assert receipt["duplicate"] is True  # answered from the record sealed the first time
    assert (fixed.cfg.done / dropped.name).exists()


def test_flaky_network_every_clip_sealed_exactly_once(vault, tmp_path, agents):
    weights = {PASS: 0.45, DROP: 0.2, STALL: 0.1, TRUNCATE: 0.25}
    proxy = TcpProxy.flaky(vault.port, seed=11, weights=weights)
    proxy.stall_seconds = 0.5
    try:
        agent = _agent(agents, tmp_path / "agent", proxy.url, vault, concurrency=3).start()
        calls = range(6001, 6009)
        for n in calls:
            agent.drop(tmp_path, n)
        wait_for(done_count(agent, len(calls)), timeout=180, what="all clips done")
    finally:
        proxy.close()
    assert {DROP, TRUNCATE} <= set(proxy.seen)  # the faults really happened
    records = vault.records("dialer-7f3a-0060")
    assert sorted(r.call_id for r in records) == [f"dialer-7f3a-{n:06d}" for n in calls]
    assert len({r.record_id if hasattr(r, "record_id") else r.id for r in records}) == 8
    assert sorted(r["record_id"] for r in agent.receipts()) == sorted(r.id for r in records)
    vault.verify_clean()


def test_one_shot_upload_checks_the_receipt_and_the_proof(vault, tmp_path):
    c = clip(tmp_path, seed=71)
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps(order_meta(7001)))
    env = {**os.environ, "EVIDENCE_VAULT_TOKEN": vault.token}
    args = [EXE, "--json", "upload", str(c), "--meta", str(meta), "--url", vault.url]
    args += ["--log-key", vault.log_key, "--wait", "30"]
    first = subprocess.run(args, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["duplicate"] is False and out["proven_in_tree"] > out["seq"]
    second = subprocess.run(args, env=env, capture_output=True, text=True)
    assert second.returncode == 0 and json.loads(second.stdout)["record_id"] == out["record_id"]
    assert len(vault.records("dialer-7f3a-007001")) == 1

    meta.write_text(json.dumps({**order_meta(7002), "segment": 0}))
    refused = subprocess.run(args, env=env, capture_output=True, text=True)
    assert refused.returncode == 3 and "segment" in refused.stdout + refused.stderr
    # another clip under the sealed call segment: the vault's 409, exit 5
    meta.write_text(json.dumps(order_meta(7001)))
    other = [*args]
    other[3] = str(clip(tmp_path, seed=72))
    conflict = subprocess.run(other, env=env, capture_output=True, text=True)
    assert conflict.returncode == 5, conflict.stdout + conflict.stderr


def test_one_shot_upload_signs_with_the_host_key(vault, tmp_path):
    """`dialer keygen` on the host, `dialer register` on the vault, `upload --key`: the
    sealed entry names the host's key, and verify (another process) is clean."""
    from vault.db import LogEntry
    from vault.ledger.entry import parse_entry

    key = tmp_path / "dialer.key"
    made = subprocess.run(
        [EXE, "--json", "dialer", "keygen", str(key)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout)
    registered = subprocess.run(
        [EXE, "--vault", str(vault.home), "dialer", "register", CLIENT, shown["public_key"]],
        capture_output=True,
        text=True,
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    c = clip(tmp_path, seed=81)
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps(order_meta(8001)))
    env = {**os.environ, "EVIDENCE_VAULT_TOKEN": vault.token}
    args = [EXE, "--json", "upload", str(c), "--meta", str(meta), "--url", vault.url]
    args += ["--log-key", vault.log_key, "--wait", "30", "--key", str(key)]
    out = subprocess.run(args, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    seq = json.loads(out.stdout)["seq"]
    with read_session(vault.vault.context.engine) as s:
        raw = s.exec(
            select(LogEntry.entry).where(LogEntry.client_id == CLIENT, LogEntry.seq == seq)
        ).one()
    assert parse_entry(bytes(raw))["body"]["source"]["key"] == shown["key_id"]
    vault.verify_clean()
