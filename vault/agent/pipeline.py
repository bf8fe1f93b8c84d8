"""The running agent: one watcher thread, ``concurrency`` upload/proof threads, one checker.

Every job moves through the spool (:mod:`vault.agent.spool`): a thread claims a due job,
does one step (upload, or ask for the proof), and records the outcome before it looks at
the next. An upload's answer is checked by the checker thread (the clip read once more
and hashed, the receipt's commitments opened), so that the upload threads keep
``concurrency`` uploads in flight instead of pausing for each check. Nothing is held
only in memory: until the checker records the outcome the job stays ``uploading``, and
``kill -9`` at any point loses at most the steps in flight, which the next start repeats
under the same Idempotency-Keys.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from vault.agent.config import AgentConfig
from vault.agent.intake import (
    Checked,
    adopt_staged,
    check_pair,
    finish_files,
    intake_batch,
    quarantine,
)
from vault.agent.receipts import ReceiptBook, ReceiptMismatch, check_inclusion, check_opening
from vault.agent.retry import Backoff
from vault.agent.signing import load_signer, source_header
from vault.agent.spool import Job, Spool
from vault.agent.uplink import Uplink, UploadFailed
from vault.agent.watch import FolderEvents, Settler
from vault.errors import ConfigError, InvalidAudio, InvalidEvidence

if TYPE_CHECKING:
    from vault.agent.status import MetricsServer

log = logging.getLogger("vault.agent")

_Pair = tuple[Path, Path]  # a clip and its sidecar

#: pairs checked and staged per spool transaction (one commit, one fsync per folder)
_INTAKE_BATCH = 16


@dataclass(frozen=True)
class _Answered:
    """An upload the vault answered, for the checker: still ``uploading`` in the spool."""

    job: Job
    checked: Checked
    receipt: dict


def _lock(cfg: AgentConfig) -> int:
    """One agent per directory: a second one would release the first one's claims."""
    fd = os.open(cfg.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"another agent is running in {cfg.home}",
            hint="stop it first, or give this one its own directory",
        ) from None
    return fd


def lower_priority(nice: int) -> None:
    """Run at niceness ``nice`` at least (a nicer process stays as nice as it is).

    Call before any thread starts: Linux keeps a niceness per thread, and new threads
    inherit their creator's. A dialer's media handling is real-time work; the agent's
    hashing and checks can wait for it (and on a host shared with the vault, the vault's
    ingest comes first too: docs/performance.md, "The dialer agent").
    """
    if nice > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)


def _batches(pairs: list[_Pair], *, first: int) -> Iterator[list[_Pair]]:
    """``pairs`` in intake batches: the first uploads start while later pairs are checked,
    and the first batch fills the upload slots and no more, so they start soonest."""
    start = 0
    size = min(first, _INTAKE_BATCH)
    while start < len(pairs):
        yield pairs[start : start + size]
        start += size
        size = _INTAKE_BATCH


class Agent:
    def __init__(self, cfg: AgentConfig, *, uplink: Uplink | None = None) -> None:
        cfg.require_service()
        for folder in (cfg.home, cfg.watch, cfg.quarantine, cfg.jobs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if cfg.after_done == "move":
            cfg.done.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self._lock_fd = _lock(cfg)
        self.spool = Spool(cfg.spool_path)
        self.book = ReceiptBook(cfg.receipts_path)
        self.backoff = Backoff(cfg.backoff_base, cfg.backoff_cap)
        self.uplink = uplink or Uplink(cfg.url, cfg.token or "", timeout=cfg.timeout)
        self.signer = load_signer(cfg.signing_key)
        self.stopping = threading.Event()
        self._work = threading.Event()
        self._threads: list[threading.Thread] = []
        self.metrics: MetricsServer | None = None
        #: per client log: (seq, until) — no checkpoint covered ``seq`` when last asked, so
        #: no entry from ``seq`` on is asked for its proof again before ``until``
        self._uncovered: dict[str, tuple[int, float]] = {}
        self._uncovered_lock = threading.Lock()
        #: answered uploads waiting for the checker; bounded, so uploads never run far
        #: ahead of their checks
        self._answered: queue.Queue[_Answered] = queue.Queue(max(2, 2 * cfg.concurrency))
        self._uploaders: list[threading.Thread] = []

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> Agent:
        released = self.spool.recover()
        adopted = adopt_staged(self.cfg, self.spool)
        if released or adopted:
            log.info("resumed: %d interrupted upload(s), %d staged pair(s)", released, adopted)
        self._spawn("watch", self._watch_loop)
        for n in range(max(1, self.cfg.concurrency)):
            self._uploaders.append(self._spawn(f"upload-{n}", self._work_loop))
        self._spawn("check", self._check_loop)  # last: it drains the uploaders' answers
        if self.cfg.metrics_port:
            from vault.agent.status import MetricsServer

            self.metrics = MetricsServer(self.cfg, self.cfg.metrics_port).start()
        log.info("agent started: watching %s", self.cfg.watch)
        return self

    def _spawn(self, name: str, target) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        self._work.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.metrics is not None:
            self.metrics.stop()
        self.uplink.close()
        self.spool.close()
        os.close(self._lock_fd)

    # -- the watch folder ---------------------------------------------------------------
    def _watch_loop(self) -> None:
        cfg = self.cfg
        settler = Settler(cfg.watch, cfg.settle_seconds)
        events = FolderEvents(cfg.watch, poll=cfg.poll, poll_interval=cfg.poll_interval).start()
        try:
            while not self.stopping.is_set():
                ready = settler.scan()
                for batch in _batches(ready, first=cfg.concurrency):
                    try:
                        if intake_batch(cfg, self.spool, batch):
                            self._work.set()
                    except Exception as exc:  # a bad batch never stops the watcher
                        log.error("intake of %d pair(s) failed: %s", len(batch), type(exc).__name__)
                busy = settler.pending()
                step = min(cfg.poll_interval, max(cfg.settle_seconds / 4, 0.05))
                # inotify wakes us on changes; while files settle, look again soon
                events.wait(step if busy or cfg.poll else 5.0)
        finally:
            events.stop()

    # -- uploads and proofs -------------------------------------------------------------
    def _work_loop(self) -> None:
        while not self.stopping.is_set():
            job = self.spool.claim()
            if job is None:
                due = self.spool.next_due()
                wait = 1.0 if due is None else min(1.0, max(0.01, due - time.time()))
                self._work.wait(wait)
                self._work.clear()
                continue
            try:
                # the answer goes to the checker thread; put waits while it is behind
                self._step(job, self._answered.put)
            except Exception as exc:  # an unexpected fault: the job waits, the thread lives
                self._fault(job, exc)

    def _check_loop(self) -> None:
        """Check answered uploads until the agent stops and the uploaders are gone."""
        while True:
            try:
                answered = self._answered.get(timeout=0.2)
            except queue.Empty:
                if self.stopping.is_set() and not any(t.is_alive() for t in self._uploaders):
                    return
                continue
            try:
                self._check(answered)
            except Exception as exc:
                self._fault(answered.job, exc)

    def _fault(self, job: Job, exc: Exception) -> None:
        """An unexpected fault: the job waits (its step is repeated), the thread lives."""
        log.error("job %d: %s", job.id, type(exc).__name__)
        state = "queued" if job.state == "uploading" else "waiting_proof"
        delay = self.backoff.delay(job.attempts)
        self.spool.retry_later(job, state, delay, f"agent fault: {type(exc).__name__}")

    def step(self, job: Job) -> None:
        """One step of a claimed job, its check included."""
        self._step(job, self._check)

    def _step(self, job: Job, check: Callable[[_Answered], None]) -> None:
        if job.state != "uploading":
            self._prove(job)
        elif (answered := self._upload(job)) is not None:
            check(answered)

    def _upload(self, job: Job) -> _Answered | None:
        """Send the clip; the vault's answer for :meth:`_check` (None: nothing to check)."""
        try:
            # the clip is checked against its queued hash after the answer (_check): one
            # read of it less here
            checked = check_pair(job.clip, job.meta, clip_sha256=job.clip_sha256)
        except (InvalidAudio, InvalidEvidence) as exc:
            self._quarantine(job, f"{exc.kind}: {exc.message}")
            return None
        if checked.key != job.key:
            self._alert(job, "the staged metadata changed after it was queued")
            return None
        signature = None
        if self.signer is not None:
            # signed over the hash the job was queued with: a clip changed since is caught
            # by _check (and the vault refuses the signature over another clip)
            signature = source_header(
                self.signer, job.clip_sha256, checked.meta, checked.evidence.recorded_at
            )
        try:
            receipt = self.uplink.upload(
                job.clip,
                checked.meta,
                media_type=job.media_type,
                key=job.key,
                signature=signature,
                salt=job.salt,
            )
        except UploadFailed as exc:
            if exc.transient:
                delay = self.backoff.delay(job.attempts, exc.retry_after)
                self.spool.retry_later(job, "queued", delay, exc.message)
            else:
                self._quarantine(job, exc.message, exc)
            return None
        return _Answered(job, checked, receipt)

    def _check(self, answered: _Answered) -> None:
        """The receipt commits to the queued clip and the local metadata: wait for the proof."""
        job, checked, receipt = answered.job, answered.checked, answered.receipt
        try:
            check_opening(
                receipt,
                job.clip,
                checked.document,
                checked.evidence,
                clip_sha256=job.clip_sha256,
                queued=(job.salt, job.clip_commitment)
                if job.salt and job.clip_commitment
                else None,
            )
        except ReceiptMismatch as exc:
            self._alert(job, exc.message, receipt)
            return
        text = json.dumps(receipt, separators=(",", ":"))
        proof = receipt.get("inclusion_proof")
        wait = None if proof else self.cfg.proof_interval
        self.spool.uploaded(job, str(receipt["record_id"]), text, proof_in=wait)
        log.info(
            "job %d sealed as record %s (seq %s)", job.id, receipt["record_id"], receipt["seq"]
        )
        if proof:
            self._verify(self.spool.get(job.id), receipt, proof)
        self._work.set()

    def _prove(self, job: Job) -> None:
        stored = json.loads(job.receipt or "{}")
        seq = int(stored["seq"])
        wait = self._not_covered_yet(job.client, seq)
        if wait > 0:  # a later entry than one just found uncovered: no need to ask now
            self.spool.proof_pending(job, wait)
            return
        try:
            fresh = self.uplink.receipt(str(job.record_id))
        except UploadFailed as exc:
            if exc.transient:
                delay = self.backoff.delay(job.attempts, exc.retry_after)
                self.spool.retry_later(job, "waiting_proof", delay, exc.message)
            else:
                self._alert(job, f"the vault no longer gives this record's receipt: {exc.message}")
            return
        if (fresh.get("entry_hash"), fresh.get("seq")) != (stored["entry_hash"], stored["seq"]):
            self._alert(job, "the vault now names another entry for this record")
            return
        proof = fresh.get("inclusion_proof")
        if not proof:
            gate, until = self._uncovered_from(job.client, seq)
            self.spool.defer_proofs(job.client, gate, until)
            self.spool.proof_pending(job, self.cfg.proof_interval)
            return
        self._verify(job, stored, proof)

    # The vault's checkpoints cover a log's entries in order: when entry ``seq`` has no
    # proof yet, no later entry has one either. Asking only once per ``proof_interval``
    # for all of them spares the vault a receipt request per waiting job and interval
    # (six per clip in bench/agent.py before); each job still gets and checks its own proof.
    def _not_covered_yet(self, client: str, seq: int) -> float:
        with self._uncovered_lock:
            gate = self._uncovered.get(client)
        if gate is None or seq < gate[0]:
            return 0.0
        return gate[1] - time.time()

    def _uncovered_from(self, client: str, seq: int) -> tuple[int, float]:
        """Entry ``seq`` has no proof yet: the gate for the client's log, (seq, until)."""
        until = time.time() + self.cfg.proof_interval
        with self._uncovered_lock:
            gate = self._uncovered.get(client)
            if gate is not None and gate[1] > time.time():
                seq = min(seq, gate[0])
            self._uncovered[client] = (seq, until)
        return seq, until

    def _verify(self, job: Job, stored: dict, proof: dict) -> None:
        try:
            tree = check_inclusion(proof, stored["opening"]["entry"], job.client, self.cfg.log_keys)
        except ReceiptMismatch as exc:
            self._alert(job, exc.message)
            return
        self.book.add(
            {
                "name": job.name,
                "clip_sha256": job.clip_sha256,
                "idempotency_key": job.key,
                **{k: stored.get(k) for k in ("record_id", "client", "campaign", "seq")},
                **{k: stored.get(k) for k in ("entry_hash", "sealed_at", "duplicate")},
                "entry": stored["opening"]["entry"],
                "salt": stored["opening"]["salt"],
                "inclusion_proof": {
                    "tree_size": tree["tree_size"],
                    "root_hash": tree["root_hash"],
                    "hashes": proof.get("hashes"),
                    "checkpoint": proof.get("checkpoint"),
                },
                "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        # done is on disk before the files move: a power cut that lost the (unsynced)
        # upload outcome can then never find the clip gone from a job it would re-send;
        # a stop between the two leaves the files staged, moved at the next start
        self.spool.finish(job, "done")
        try:
            finish_files(self.cfg, job.clip, job.meta, name=job.name)
        except OSError as exc:
            log.error("job %d done; its files stay staged until the next start: %s", job.id, exc)
        log.info(
            "job %d done: record %s proven in tree %d", job.id, job.record_id, tree["tree_size"]
        )

    def _quarantine(self, job: Job, reason: str, exc: UploadFailed | None = None) -> None:
        lines = [f"refused: {reason}"]
        cause = exc.cause if exc is not None else None
        lines += [f"  - {fe.field}: {fe.message}" for fe in getattr(cause, "errors", [])]
        if cause is not None and cause.hint:
            lines.append(f"what to do: {cause.hint}")
        quarantine(self.cfg, job.clip, job.meta, "\n".join(lines) + "\n", name=job.name)
        self.spool.finish(job, "quarantined", reason)
        log.warning("job %d quarantined: %s", job.id, reason[:120])

    def _alert(self, job: Job, reason: str, receipt: dict | None = None) -> None:
        fields = {}
        if receipt is not None:
            fields = {
                "record_id": str(receipt.get("record_id")),
                "receipt": json.dumps(receipt, separators=(",", ":")),
            }
        self.spool.finish(job, "alert", reason, **fields)
        log.error("job %d ALERT (clip kept as %s): %s", job.id, job.clip, reason)
