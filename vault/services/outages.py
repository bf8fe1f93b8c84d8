"""Outages of the database and the object store: answered as retryable, logged once.

A database that is unreachable, restarting or out of connections raises SQLAlchemy's (or
the driver's) connection errors; the object store's outages arrive as
:class:`~vault.errors.BackendUnavailable` from :mod:`vault.storage.s3`. Both become a
``BackendUnavailable`` here, so every caller (the API's 503 with ``Retry-After``, the
command's exit code 10) answers them alike and none shows a statement, its values or an
address.

:class:`OutageLog` keeps the operator's log quiet: one line when a backend goes down and
one when it is back (found by a probe that runs while it is down), per process; the
requests in between log one line each where they are answered.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from sqlalchemy import exc as sa_exc

from vault.errors import BackendUnavailable, OutcomeUnknown
from vault.services.context import VaultContext, ready_checks

log = logging.getLogger("vault.outages")

#: how often a backend that went down is probed until it answers again
PROBE_SECONDS = 0.5

#: the database's transient failures: no connection, a broken one, a full pool
_DATABASE_DOWN: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


def _database_down() -> tuple[type[BaseException], ...]:
    """:data:`_DATABASE_DOWN` and the driver's own, where it raises outside SQLAlchemy.

    psycopg's types only once psycopg is loaded (by a PostgreSQL engine): an exception of
    theirs cannot exist before, and importing the driver costs a SQLite vault ~9 MiB."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return _DATABASE_DOWN
    return (*_DATABASE_DOWN, psycopg.OperationalError, psycopg.InterfaceError)


def unavailable(exc: BaseException) -> BackendUnavailable | None:
    """The :class:`BackendUnavailable` that ``exc`` stands for, or None for other failures."""
    if isinstance(exc, BackendUnavailable):
        return exc
    if isinstance(exc, _database_down()) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    ):
        # the type only: the driver's message may quote the statement or a value
        return BackendUnavailable(
            f"the database is unavailable ({type(exc).__name__})", backend="database"
        )
    return None


def outcome_unknown(exc: BaseException) -> OutcomeUnknown | None:
    """For an outage that hit an upload once sealing began: the answer that says so."""
    down = unavailable(exc)
    if down is None:
        return None
    return OutcomeUnknown(
        f"the {down.backend} became unavailable while the upload was being sealed; "
        "it may or may not have been sealed",
        hint="retry the same upload with the same Idempotency-Key (or the same call "
        "segment): a sealed one answers with its receipt, never a second record",
        backend=down.backend,
        retry_after=down.retry_after,
    )


class OutageLog:
    """One line when a backend goes down, one when it is back; per process.

    ``probe(backend)`` says whether a backend answers again (``ready_checks``); it runs in
    a daemon thread while a backend is down, never in a request.
    """

    def __init__(self, probe: Callable[[str], bool], interval: float = PROBE_SECONDS) -> None:
        self._probe = probe
        self._interval = interval
        self._lock = threading.Lock()
        self._down: dict[str, float] = {}  # backend -> when it went down (monotonic)
        self._stop = threading.Event()

    def is_down(self, backend: str) -> bool:
        with self._lock:
            return backend in self._down

    def went_down(self, error: BackendUnavailable, cause: str = "") -> None:
        """A request met ``error``: log the outage if it is news, and watch for the end."""
        with self._lock:
            if error.backend in self._down:
                return
            self._down[error.backend] = time.monotonic()
        log.warning(
            "%s unavailable (%s): answering 503 with Retry-After until it is back",
            error.backend,
            cause or error.kind,
        )
        threading.Thread(
            target=self._watch, args=(error.backend,), name=f"outage-{error.backend}", daemon=True
        ).start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self, backend: str) -> None:
        while not self._stop.wait(self._interval):
            try:
                back = self._probe(backend)
            except Exception:  # a probe that fails means "still down"
                back = False
            if back:
                with self._lock:
                    since = self._down.pop(backend, None)
                if since is not None:
                    log.warning(
                        "%s is back after %.1f s of unavailability",
                        backend,
                        time.monotonic() - since,
                    )
                return


def answers(ctx: VaultContext, backend: str) -> bool:
    """Whether ``backend`` ("database" or "object store") of the open vault answers now."""
    check = {"database": "database", "object store": "storage"}.get(backend)
    return check is not None and ready_checks(ctx).get(check) == "ok"
