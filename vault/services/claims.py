"""One upload at a time per call segment, across threads, workers and machines.

Two uploads of the same (campaign, call, segment) that overlap would both encrypt and
store their objects before the database's unique constraint picks the winner; under
Object Lock the loser's objects could then never be deleted (orphans). So an upload
first *claims* its call segment and keeps the claim until its commit: a duplicate waits,
then finds the committed record and answers with its receipt without uploading anything.

The claim is a PostgreSQL session-level advisory lock, held on a connection of a pool of
its own (so waiting uploads can never starve the commits of a connection, and no upload
pays for a fresh connection); if
the process dies, PostgreSQL drops the connection and the claim with it — a crashed
upload never blocks its retry. On SQLite (one process) a lock in process memory does.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text

from vault.db.engine import ping_when_idle

_mutex = threading.Lock()
_local: dict[int, list] = {}  # key -> [lock, users]
_lock_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


@contextmanager
def claim(engine: Engine, campaign_id: int, call_id: str, segment: int) -> Iterator[None]:
    """Hold the claim on one call segment for the body of the ``with``."""
    key = _key(campaign_id, call_id, segment)
    with _process_lock(key):
        if engine.dialect.name == "postgresql":
            with _advisory_lock(engine, key):
                yield
        else:
            yield


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """One holder of the lock ``name`` at a time, across threads, workers and machines:
    the same machinery as :func:`claim`, for work other than uploads (publishing a log)."""
    digest = hashlib.blake2b(f"evidence-vault/v1 lock\0{name}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    with _process_lock(key):
        if engine.dialect.name == "postgresql":
            with _advisory_lock(engine, key):
                yield
        else:
            yield


def _key(campaign_id: int, call_id: str, segment: int) -> int:
    digest = hashlib.blake2b(
        f"evidence-vault/v1 claim\0{campaign_id}\0{call_id}\0{segment}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)  # PostgreSQL's bigint


@contextmanager
def _process_lock(key: int) -> Iterator[None]:
    with _mutex:
        entry = _local.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _mutex:
            entry[1] -= 1
            if entry[1] == 0:
                del _local[key]


@contextmanager
def _advisory_lock(engine: Engine, key: int) -> Iterator[None]:
    with _mutex:
        locks = _lock_engines.get(engine)
        if locks is None:
            # unbounded overflow: a claim waits for its call segment, never for a connection
            # autocommit: a session-level lock needs no transaction, and one would cost
            # a BEGIN and a COMMIT round trip around the lock and again around the unlock
            locks = ping_when_idle(
                create_engine(
                    engine.url,
                    pool_size=4,
                    max_overflow=-1,
                    hide_parameters=True,
                    isolation_level="AUTOCOMMIT",
                )
            )
            _lock_engines[engine] = locks
    with locks.connect() as conn:
        conn.execute(_LOCK, {"k": key})
        try:
            yield
        finally:
            try:
                conn.execute(_UNLOCK, {"k": key})
            except Exception:
                # a pooled connection must never go back still holding a claim
                conn.invalidate()
                raise


_LOCK = text("SELECT pg_advisory_lock(:k)")
_UNLOCK = text("SELECT pg_advisory_unlock(:k)")
