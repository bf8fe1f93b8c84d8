"""Engines for SQLite (embedded, WAL) and PostgreSQL, and serialised write transactions.

Appends to a client's log must never fork. On PostgreSQL the log head row is locked with
``SELECT ... FOR UPDATE``; on SQLite a write transaction starts with ``BEGIN IMMEDIATE``,
which takes the database's single write lock up front (a deferred ``BEGIN`` would let two
writers both read the same head and then fail, or worse, on upgrade to a write lock).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlmodel import Session

from vault.errors import ConfigError

log = logging.getLogger("vault.db")

MIGRATIONS = Path(__file__).parent / "migrations"
#: the newest migration; tests check it against Alembic's own head
SCHEMA_HEAD = "0016"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: ``session.info`` key of the callables a write session runs after its commit
AFTER_COMMIT = "vault_after_commit"
#: statement parameters hold names, birth dates, phone hashes and hold reasons: an error's
#: text (logged with its traceback) must show the statement, never its values
_QUIET = {"hide_parameters": True}


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql"):
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return ping_when_idle(create_engine(url, pool_size=5, max_overflow=5, **_QUIET))
    raise ConfigError(
        "unsupported database URL scheme",
        hint="use sqlite:///path/vault.db or postgresql+psycopg://user@host/db",
    )


#: a pooled PostgreSQL connection used within this many seconds is handed out unpinged
PING_AFTER_IDLE_SECONDS = 0.5


def ping_when_idle(engine: Engine) -> Engine:
    """Check a pooled connection's liveness at checkout only when it sat idle for longer
    than :data:`PING_AFTER_IDLE_SECONDS` (HikariCP's rule): a ping per checkout was a
    quarter of an ingest's round trips.

    A dead connection found by the ping is replaced before anyone uses it (a database
    restart takes longer than the window, so the first request after one gets a live
    connection). One that died within the window fails its first statement: SQLAlchemy
    then invalidates the pool, that request answers 503 (retryable), the next ones
    reconnect.
    """

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:
        last = record.info.get(_LAST_CHECKIN)
        if last is not None and time.monotonic() - last < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)  # what pool_pre_ping sends: one round trip
        except Exception as exc:
            if not engine.dialect.is_disconnect(exc, dbapi_conn, None):
                raise
            raise DisconnectionError("a pooled connection was closed") from exc

    @event.listens_for(engine, "checkin")
    def _used(_dbapi_conn, record) -> None:
        record.info[_LAST_CHECKIN] = time.monotonic()

    return engine


_LAST_CHECKIN = "vault_last_checkin"


def _sqlite_engine(url: str) -> Engine:
    _private_database_files(make_url(url).database)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **_QUIET)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself, so we choose its kind.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        immediate = conn.get_execution_options().get("vault_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _private_database_files(database: str | None) -> None:
    """The database file 0600 from its first byte; an existing one (and its WAL, SHM and
    journal) tightened to 0600 with a warning. SQLite gives the WAL and SHM files the
    database file's mode when it creates them."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists() and path.parent.is_dir():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = Path(f"{path}{suffix}")
        try:
            mode = part.stat().st_mode & 0o777
            if mode & 0o077:
                os.chmod(part, 0o600)
                log.warning(
                    "tightened %s from %o to 600: it holds the vault's metadata", part, mode
                )
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot tighten %s to 600 (%s): others may read it", part, exc.strerror)


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A transaction that holds the write lock on SQLite; commits on success, else rolls back."""
    hooks: list = []
    with engine.connect() as conn:
        conn = conn.execution_options(vault_write=True)
        with conn.begin(), Session(bind=conn, expire_on_commit=False) as session:
            yield session
            session.flush()
            hooks = session.info.get(AFTER_COMMIT, [])
    # committed: e.g. the log head is anchored outside the database (vault.db.log)
    for hook in hooks:
        hook()


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session that only reads; a flush in it (an added or changed object) raises.

    On PostgreSQL it reads in autocommit: each statement sees the data committed when it
    starts, as it would in a READ COMMITTED transaction, without the BEGIN and ROLLBACK
    round trips (and the ROLLBACK would drop psycopg's prepared statements). On SQLite it
    is one deferred transaction: one snapshot for all its statements.
    """
    with _ReadSession(_reading(engine), expire_on_commit=False) as session:
        yield session


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection that only reads, read as :func:`read_session` reads.

    For the upload's hot path: a statement of columns on it costs about two thirds of the
    same query through a session (no ORM compile state, no objects built). Issue SELECTs
    only; nothing guards it against a write, as the session's flush guard does.
    """
    with _reading(engine).connect() as conn:
        yield conn


class _ReadSession(Session):
    """The session :func:`read_session` hands out (its flush guard is registered once)."""


def _reading(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        return engine
    reader = _readers.get(engine)
    if reader is None:
        # a view on the same pool; a connection's isolation level is reset on check-in
        reader = _readers[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return reader


_readers: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def _refuse_writes(session: Session, _context, _instances) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a read session must not write: use write_session")


event.listen(_ReadSession, "before_flush", _refuse_writes)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent).

    Opening an up-to-date vault costs one query; Alembic is loaded only to migrate.
    """
    if _current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise ConfigError(
            f"cannot reach or migrate the metadata database: {exc.orig}",
            hint="check the database URL and that the server is running",
        ) from exc


def _current_revision(engine: Engine) -> str | None:
    # a database that cannot be reached raises here: an outage, not a new database
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError:
            return None  # a new database: no version table yet
        except Exception as exc:
            if "alembic_version" in str(exc):
                return None
            raise
