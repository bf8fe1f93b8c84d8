"""The agent's durable job table: SQLite (WAL, ``synchronous=FULL``) in its own directory.

Every state change is one committed transaction that is on disk before the agent acts on
it, so a crash or a power cut leaves each job in a state the agent can resume from:

=============  ===========================================================================
queued         staged in ``jobs/``, waiting for its (next) upload attempt at ``next_try``
uploading      claimed by the process ``owner``; a dead owner's claim is released on start
waiting_proof  uploaded and its commitments checked; waiting for a checkpoint to cover it
done           the inclusion proof verified against the pinned key; the clip is gone/moved
quarantined    refused for good (locally or by the vault); files and reason in quarantine/
alert          the receipt did not match the local clip; the clip is kept for a person
=============  ===========================================================================

``last_error`` holds a kind and a short reason, never the metadata's values (no PII).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "uploading", "waiting_proof", "done", "quarantined", "alert")
#: states in which the agent still owes the job work
OPEN_STATES = ("queued", "uploading", "waiting_proof")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    clip TEXT NOT NULL,
    meta TEXT NOT NULL,
    media_type TEXT NOT NULL,
    clip_sha256 TEXT NOT NULL,
    client TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    owner TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    record_id TEXT,
    receipt TEXT,
    salt TEXT,
    clip_commitment TEXT
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, next_try);
"""

#: columns added since the first spools, each ``(name, SQL type)``: added on open
_ADDED_COLUMNS = (("salt", "TEXT"), ("clip_commitment", "TEXT"))


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    name: str  # the clip's file name as dropped (a dialer's name, no PII by contract)
    clip: Path  # the staged clip in the agent's jobs/ directory
    meta: Path  # the staged sidecar
    media_type: str
    clip_sha256: str
    client: str
    state: str
    attempts: int
    next_try: float
    last_error: str | None
    owner: str | None
    created: float
    updated: float
    record_id: str | None
    receipt: str | None  # the upload's answer, JSON text
    # the commitment salt proposed with the upload (hex) and the clip's commitment under
    # it, taken in the read that queued the clip; None in jobs queued by an older agent
    salt: str | None = None
    clip_commitment: str | None = None


@dataclass(frozen=True)
class NewJob:
    """A staged pair to queue."""

    key: str
    name: str
    clip: Path
    meta: Path
    media_type: str
    clip_sha256: str
    client: str
    salt: str | None = None
    clip_commitment: str | None = None


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    d["clip"], d["meta"] = Path(d["clip"]), Path(d["meta"])
    return Job(**d)


class Spool:
    """The job table. Thread-safe: one connection per thread, writes serialised."""

    def __init__(self, path: Path, *, owner: str | None = None, reader: bool = False) -> None:
        """``reader``: only to look (``agent status``, /metrics): no schema set-up, so a
        look never takes the write lock from the running agent."""
        self.path = Path(path)
        self.owner = owner or f"pid:{os.getpid()}"
        self._local = threading.local()
        self._write = threading.Lock()
        if not reader or not self._has_table():  # a look the moment the agent starts
            with self._write:
                self._db().executescript(_SCHEMA)  # idempotent; commits on its own
                self._add_columns()

    # -- plumbing ---------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed state change survives a power cut, not only a crash
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    def _add_columns(self) -> None:
        """A spool made by an older agent gets the columns added since (nullable)."""
        db = self._db()
        have = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
        for name, kind in _ADDED_COLUMNS:
            if name not in have:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def _has_table(self) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
        return self._db().execute(sql).fetchone() is not None

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``durable=False`` skips the fsync of its commit: for
        changes whose loss a restart repairs anyway (a claim is released by
        :meth:`recover`; a proof that was not there yet is asked for again); the next
        durable commit flushes them with it."""
        db = self._db()
        with self._write:
            if not durable:
                db.execute("PRAGMA synchronous=NORMAL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                if not durable:
                    db.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- jobs ---------------------------------------------------------------------------
    def add(self, new: NewJob) -> Job | None:
        """A new queued job; None when a job with this key exists (the same drop again)."""
        jobs = self.add_many([new])
        return jobs[0] if jobs else None

    def add_many(self, new: list[NewJob]) -> list[Job]:
        """New queued jobs in one durable transaction; those whose key exists are skipped."""
        now = time.time()
        jobs = []
        with self._tx() as db:
            for j in new:
                cur = db.execute(
                    "INSERT OR IGNORE INTO jobs (key, name, clip, meta, media_type, clip_sha256,"
                    " client, salt, clip_commitment, state, created, updated)"
                    " VALUES (?,?,?,?,?,?,?,?,?,'queued',?,?)",
                    (
                        j.key,
                        j.name,
                        str(j.clip),
                        str(j.meta),
                        j.media_type,
                        j.clip_sha256,
                        j.client,
                        j.salt,
                        j.clip_commitment,
                        now,
                        now,
                    ),
                )
                if cur.rowcount:
                    jobs.append(self._get(db, cur.lastrowid))
        return jobs

    def get(self, job_id: int) -> Job | None:
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def by_key(self, key: str) -> Job | None:
        row = self._db().execute("SELECT * FROM jobs WHERE key = ?", (key,)).fetchone()
        return _job(row) if row else None

    @staticmethod
    def _get(db: sqlite3.Connection, job_id: int | None) -> Job:
        return _job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def claim(self, now: float | None = None) -> Job | None:
        """The next due job (queued or waiting for its proof), now owned by this process.

        A queued job becomes ``uploading``; a proof check keeps ``waiting_proof`` and only
        takes the ``owner`` column, so two threads never work on one job.
        """
        now = time.time() if now is None else now
        with self._tx(durable=False) as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE state IN ('queued', 'waiting_proof')"
                " AND owner IS NULL AND next_try <= ? ORDER BY next_try, id LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            state = "uploading" if row["state"] == "queued" else "waiting_proof"
            db.execute(
                "UPDATE jobs SET state = ?, owner = ?, updated = ? WHERE id = ?",
                (state, self.owner, now, row["id"]),
            )
            return self._get(db, row["id"])

    def next_due(self) -> float | None:
        """When the earliest unclaimed open job is due (None: nothing to do)."""
        row = (
            self._db()
            .execute(
                "SELECT min(next_try) FROM jobs WHERE state IN ('queued', 'waiting_proof')"
                " AND owner IS NULL"
            )
            .fetchone()
        )
        return row[0]

    def recover(self) -> int:
        """Release the claims of a dead agent (call once at start, holding the agent lock):
        an interrupted upload goes back to the queue, keeping its attempts and its key."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state = 'queued', owner = NULL, updated = ?"
                " WHERE state = 'uploading'",
                (now,),
            )
            db.execute("UPDATE jobs SET owner = NULL WHERE owner IS NOT NULL")
            return cur.rowcount

    def retry_later(self, job: Job, state: str, delay: float, error: str) -> None:
        """Back to ``state`` (queued or waiting_proof), due after ``delay`` seconds."""
        self._set(
            job,
            state,
            next_try=time.time() + delay,
            attempts=job.attempts + 1,
            last_error=error[:300],
        )

    def uploaded(
        self, job: Job, record_id: str, receipt: str, *, proof_in: float | None = None
    ) -> None:
        """The vault answered with a receipt whose commitments match: wait for the proof.

        ``proof_in`` None: the claim stays, for the same thread to check the proof that
        came with the answer; else the job is released, its proof asked for after that
        many seconds. Not fsync'd: a power cut that loses this change leaves the job
        ``uploading``, which the next start queues again and re-sends under the same key,
        and the vault answers that from the sealed record (nothing doubled, nothing lost).
        The clip is still staged then: the job is marked done (fsync'd) before its files
        move (:meth:`vault.agent.pipeline.Agent._verify`).
        """
        self._set(
            job,
            "waiting_proof",
            durable=False,
            owner=self.owner if proof_in is None else None,
            next_try=time.time() + (proof_in or 0.0),
            record_id=record_id,
            receipt=receipt,
            last_error=None,
        )

    def proof_pending(self, job: Job, delay: float) -> None:
        """No checkpoint covers the entry yet: ask again after ``delay`` (not an error)."""
        self._set(job, "waiting_proof", durable=False, next_try=time.time() + delay)

    def defer_proofs(self, client: str, from_seq: int, until: float) -> int:
        """No checkpoint covers ``client``'s entry ``from_seq`` yet, so none covers a later
        one: every unclaimed job waiting for such a proof waits until ``until``; how many.

        One statement, instead of each of them being claimed, found gated and put back
        once per interval (two write transactions per waiting job and interval, which
        took the write lock from the uploads). Not fsync'd: a lost deferral is an early ask.
        """
        with self._tx(durable=False) as db:
            cur = db.execute(
                "UPDATE jobs SET next_try = ?, updated = ? WHERE state = 'waiting_proof'"
                " AND owner IS NULL AND client = ? AND next_try < ?"
                " AND json_extract(receipt, '$.seq') >= ?",
                (until, time.time(), client, until, from_seq),
            )
            return cur.rowcount

    def finish(self, job: Job, state: str, error: str | None = None, **fields) -> None:
        """A final state: done, quarantined (with the reason) or alert."""
        self._set(job, state, last_error=error[:300] if error else None, **fields)

    def requeue(self, job_id: int) -> str:
        """The operator's retry of one job after looking at it; what was done.

        ``alert``: queued again, due now (its clip is still staged): the upload is repeated
        under the same key, the vault answers from the sealed record, and every check runs
        again. ``queued`` / ``waiting_proof`` not in flight: due now, the backoff skipped.
        ``quarantined``: the job is forgotten, so that the pair, corrected and dropped into
        the watch folder again, is taken as new (its files and reason stay in quarantine/).
        Raises KeyError (no such job) or ValueError (done, or in flight now)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT state, owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            state, owner = row
            if state == "alert":
                db.execute(
                    "UPDATE jobs SET state = 'queued', next_try = ?, updated = ?, owner = NULL,"
                    " last_error = NULL WHERE id = ?",
                    (now, now, job_id),
                )
                return "queued again"
            if state in ("queued", "waiting_proof") and owner is None:
                db.execute(
                    "UPDATE jobs SET next_try = ?, updated = ? WHERE id = ?", (now, now, job_id)
                )
                return "due now"
            if state == "quarantined":
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                return "forgotten: drop the corrected pair into the watch folder again"
            raise ValueError(f"job {job_id} is {'in flight' if owner else state}")

    def _set(self, job: Job, state: str, *, durable: bool = True, **fields) -> None:
        if state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        cols = {"state": state, "owner": None, "updated": time.time()} | fields
        sets = ", ".join(f"{c} = ?" for c in cols)
        with self._tx(durable=durable) as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*cols.values(), job.id))

    # -- reading ------------------------------------------------------------------------
    def jobs(self, state: str | None = None) -> list[Job]:
        if state is None:
            rows = self._db().execute("SELECT * FROM jobs ORDER BY id").fetchall()
        else:
            rows = (
                self._db()
                .execute("SELECT * FROM jobs WHERE state = ? ORDER BY id", (state,))
                .fetchall()
            )
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        found = dict(
            self._db().execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        )
        return {s: int(found.get(s, 0)) for s in STATES}

    def oldest_open(self) -> float | None:
        """``created`` of the oldest job the agent still owes work (None: none)."""
        marks = ",".join("?" * len(OPEN_STATES))
        row = (
            self._db()
            .execute(f"SELECT min(created) FROM jobs WHERE state IN ({marks})", OPEN_STATES)
            .fetchone()
        )
        return row[0]

    def alerts(self, limit: int = 20) -> list[Job]:
        """The jobs in ``alert``, oldest first: what a person has to look at."""
        rows = (
            self._db()
            .execute("SELECT * FROM jobs WHERE state = 'alert' ORDER BY id LIMIT ?", (limit,))
            .fetchall()
        )
        return [_job(r) for r in rows]

    def last_error(self) -> tuple[str, float] | None:
        row = (
            self._db()
            .execute(
                "SELECT last_error, updated FROM jobs WHERE last_error IS NOT NULL"
                " ORDER BY updated DESC LIMIT 1"
            )
            .fetchone()
        )
        return (row[0], row[1]) if row else None
