"""Read sessions, write sessions and upload claims on the wire: what each costs PostgreSQL.

A read session never writes (a flush in one raises, on both databases); on PostgreSQL it
reads in autocommit, so it costs no BEGIN and no ROLLBACK round trip, and a claim holds
its session-level advisory lock on a connection that is not inside a transaction.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from vault.db import Client, migrate, open_engine, read_session, write_session
from vault.services.claims import claim


def _client(cid: str, name: str) -> Client:
    return Client(id=cid, display_name=name, created_at=datetime.now(UTC))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'vault.db'}"
    eng = open_engine(url)
    migrate(eng)
    with write_session(eng) as s:
        s.add(_client("telco-de", "Telco"))
    yield eng
    eng.dispose()


def test_a_read_session_refuses_to_write_and_writes_nothing(engine):
    refused = pytest.raises(RuntimeError, match="a read session must not write")
    with refused, read_session(engine) as s:
        s.add(_client("other", "Other"))
        s.flush()
    with refused, read_session(engine) as s:
        row = s.get(Client, "telco-de")
        row.display_name = "Changed"
        s.get(Client, "nobody")  # autoflush before the query
    with read_session(engine) as s:
        assert s.get(Client, "other") is None
        assert s.get(Client, "telco-de").display_name == "Telco"


@pytest.mark.postgres
def test_a_postgres_read_session_reads_outside_a_transaction(pg_url):
    from psycopg.pq import TransactionStatus

    engine = open_engine(pg_url)
    migrate(engine)
    try:
        with read_session(engine) as s:
            s.get(Client, "telco-de")
            dbapi = s.connection().connection.dbapi_connection
            assert dbapi.info.transaction_status == TransactionStatus.IDLE
        # the pooled connection goes back to transactions for the writers
        with write_session(engine) as s:
            s.add(_client("telco-at", "Telco AT"))
            s.flush()
            dbapi = s.connection().connection.dbapi_connection
            assert dbapi.info.transaction_status == TransactionStatus.INTRANS
        with read_session(engine) as s:
            assert s.get(Client, "telco-at") is not None
    finally:
        engine.dispose()


def _claim_holders(engine) -> list[str]:
    """The states of the backends holding an advisory lock (``idle``, ``idle in
    transaction``, ...)."""
    with read_session(engine) as s:
        rows = s.exec(  # type: ignore[call-overload]
            text(
                "SELECT a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
            )
        ).all()
    return [r[0] for r in rows]


@pytest.mark.postgres
def test_a_claim_is_held_outside_a_transaction_and_serialises_its_segment(pg_url):
    engine = open_engine(pg_url)
    migrate(engine)
    order: list[str] = []
    inside = threading.Event()
    try:

        def second() -> None:
            inside.wait(10)
            with claim(engine, 1, "call-1", 1):
                order.append("second")

        t = threading.Thread(target=second)
        with claim(engine, 1, "call-1", 1):
            order.append("first")
            # a lock held inside an open transaction would pin a snapshot for the upload
            assert _claim_holders(engine) == ["idle"]
            t.start()
            inside.set()
            time.sleep(0.3)  # the second claim waits, whatever its thread does meanwhile
            assert order == ["first"]
        t.join(10)
        assert order == ["first", "second"]
        assert _claim_holders(engine) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_connection_idle_past_the_window_is_pinged_and_a_dead_one_replaced(pg_url, monkeypatch):
    import vault.db.engine as engine_module

    engine = open_engine(pg_url)
    migrate(engine)
    pings: list[int] = []
    real_ping = engine.dialect.do_ping

    def counted(dbapi_conn):
        pings.append(1)
        return real_ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    try:
        with read_session(engine) as s:
            s.exec(text("SELECT 1"))  # type: ignore[call-overload]
            pid = s.exec(text("SELECT pg_backend_pid()")).one()[0]  # type: ignore[call-overload]
        # used a moment ago: handed out without a ping
        pings.clear()
        with read_session(engine) as s:
            assert s.exec(text("SELECT pg_backend_pid()")).one()[0] == pid  # type: ignore[call-overload]
        assert pings == []
        # the server drops it while it is idle in the pool (a restart, a proxy timeout)
        other = open_engine(pg_url)
        with read_session(other) as s:
            s.exec(text("SELECT pg_terminate_backend(:p)"), params={"p": pid})  # type: ignore[call-overload]
        other.dispose()
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.05)
        time.sleep(0.1)
        with read_session(engine) as s:
            # the ping found it dead: a fresh connection, and the read succeeds
            assert s.exec(text("SELECT pg_backend_pid()")).one()[0] != pid  # type: ignore[call-overload]
        assert pings
    finally:
        engine.dispose()
