"""Group commit: concurrent committers to one client's log share one transaction.

Every commit to a client's log waits for the log head's lock and for a durable (fsync'd)
commit. When several uploads of the same process finish at once, committing them one
after the other pays that price once each; committing them together pays it once.

A :class:`GroupCommit` queue does that. A caller :meth:`~GroupCommit.submit`\\ s its item
under a key (the client). The first to arrive when no batch of that key is running is the
*leader*: it opens the transaction and takes the lock (``begin``), then takes every
pending item of the key (at most ``max_batch``) — so whatever arrived while it waited
for the lock, e.g. behind another process's batch, joins — and runs the queue's
``commit`` function on them, in its own thread, while the others wait. When it is done it
hands every member its own result (or error) and passes leadership to the oldest item
that arrived meanwhile, whose batch then holds everything that piled up during the
commit. A lone caller therefore commits at once, exactly as without the queue: the
leader waits a short ``window`` for company (before taking the lock) only when there is
evidence of concurrency (others already pending, or arrivals during the previous batch
of the key).

Failure rules:

* the ``commit`` function is all-or-nothing for the batch (one transaction);
* if it raises one of ``split_on`` (an ``IntegrityError``: a duplicate racing within the
  batch) and the batch had several members, each member is committed again on its own,
  so only the real culprit fails;
* any other error is handed to every member of that batch; the next batch is unaffected;
* leadership is always handed on (``finally``), so a failing leader strands nobody.

The queue lives in process memory (one per engine and purpose, :func:`queue_for`); other
processes have their own, and the database lock serialises their batches. After a
``fork`` the child starts with empty queues (a lock copied mid-batch would never open).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: how long a leader waits for company when it has reason to expect some
DEFAULT_WINDOW = 0.002
DEFAULT_MAX_BATCH = 64


@dataclass
class Stats:
    """What the queue did (per process), for tests and benchmarks."""

    batches: int = 0
    items: int = 0
    max_batch: int = 0
    splits: int = 0  # batches re-run member by member after a ``split_on`` error
    waited: int = 0  # batches whose leader waited the window

    def snapshot(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(eq=False)
class _Ticket(Generic[T]):
    item: T
    done: bool = False
    lead: bool = False
    settled: bool = False
    result: Any = None
    error: BaseException | None = None

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.settled = result, error, True

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


@dataclass(eq=False)
class _Lane:
    """The state of one key: who waits, and whether a batch is running."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    pending: list[_Ticket] = field(default_factory=list)
    busy: bool = False  # a leader is collecting or committing
    collecting: bool = False  # the leader waits for company: arrivals notify it
    contended: bool = False  # arrivals overlapped the previous batch


class GroupCommit(Generic[T, R]):
    """Batches concurrent :meth:`submit` calls of the same key into one ``commit`` call.

    ``begin(key, item)`` opens the transaction and takes the lock that serialises
    commits of ``key`` (``item`` is the leader's own, e.g. to find the database); it is a
    context manager that commits on a normal exit. Only once it holds the lock does the
    leader take the pending items: whatever arrived while it waited for the lock (say,
    for another process's batch) joins. ``commit(handle, items)`` then does the work
    inside it and returns one result per item, in order. Results are handed out after
    the context has exited, i.e. committed. Both run in the leader's thread.
    """

    def __init__(
        self,
        commit: Callable[[Any, list[T]], Sequence[R]],
        *,
        begin: Callable[[Hashable, T], AbstractContextManager[Any]] | None = None,
        window: float = DEFAULT_WINDOW,
        max_batch: int = DEFAULT_MAX_BATCH,
        split_on: tuple[type[BaseException], ...] = (),
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._commit = commit
        self._begin = begin or (lambda key, item: nullcontext())
        self.window = window
        self.max_batch = max_batch
        self.split_on = split_on
        self.stats = Stats()
        self._stats_lock = threading.Lock()
        self._lanes: dict[Hashable, _Lane] = {}
        self._lanes_lock = threading.Lock()

    def pending(self, key: Hashable) -> int:
        """How many items of ``key`` wait (the running batch not counted)."""
        lane = self._lanes.get(key)
        if lane is None:
            return 0
        with lane.cond:
            return len(lane.pending)

    def submit(self, key: Hashable, item: T) -> R:
        """Commit ``item`` (alone or in a batch of ``key``); its result, or its error."""
        lane = self._lane(key)
        ticket: _Ticket[T] = _Ticket(item)
        with lane.cond:
            lane.pending.append(ticket)
            if lane.busy:
                if lane.collecting:
                    lane.cond.notify_all()  # the leader counts arrivals
                while not (ticket.done or ticket.lead):
                    lane.cond.wait()
                if ticket.done:
                    return ticket.outcome()
            lane.busy = True  # first arrival; or handed the lead, busy already
        self._lead(key, lane, ticket)
        return ticket.outcome()

    # --- the leader ---------------------------------------------------------------------

    def _lead(self, key: Hashable, lane: _Lane, own: _Ticket[T]) -> None:
        batch: list[_Ticket[T]] = []
        try:
            self._collect(lane)
            try:
                with self._begin(key, own.item) as handle:
                    batch = self._take(lane)  # our own ticket is the oldest: always in it
                    results = self._commit(handle, [t.item for t in batch])
                self._assign(batch, results)
            except self.split_on as exc:
                if len(batch) > 1:
                    self._split(key, batch)
                else:
                    own.settle(error=exc)
            except Exception as exc:
                for t in batch or [own]:
                    t.settle(error=exc)
        except BaseException as exc:
            # interrupted while waiting or committing: every unsettled member gets the error
            for t in batch or [own]:
                if not t.settled:
                    t.settle(error=exc)
        finally:
            with lane.cond:
                for t in batch:
                    t.done = True
                if not batch:  # failed before taking the batch: leave the queue alone
                    own.done = True
                    if own in lane.pending:
                        lane.pending.remove(own)
                lane.contended = bool(lane.pending)
                if lane.pending:
                    lane.pending[0].lead = True  # busy stays set: the lead passes on
                else:
                    lane.busy = False
                lane.cond.notify_all()

    def _collect(self, lane: _Lane) -> None:
        """Wait up to ``window`` for company, only when others commit concurrently."""
        with lane.cond:
            if self.window <= 0 or not (lane.contended or len(lane.pending) > 1):
                return
            with self._stats_lock:
                self.stats.waited += 1
            deadline = time.monotonic() + self.window
            lane.collecting = True
            try:
                while len(lane.pending) < self.max_batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    lane.cond.wait(remaining)
            finally:
                lane.collecting = False

    def _take(self, lane: _Lane) -> list[_Ticket[T]]:
        with lane.cond:
            batch = lane.pending[: self.max_batch]
            del lane.pending[: self.max_batch]
        with self._stats_lock:  # lanes of different keys run at the same time
            self.stats.batches += 1
            self.stats.items += len(batch)
            self.stats.max_batch = max(self.stats.max_batch, len(batch))
        return batch

    def _split(self, key: Hashable, batch: list[_Ticket[T]]) -> None:
        """A duplicate raced within the batch: each on its own, so only it fails."""
        with self._stats_lock:
            self.stats.splits += 1
        for t in batch:
            try:
                with self._begin(key, t.item) as handle:
                    results = self._commit(handle, [t.item])
                self._assign([t], results)
            except Exception as exc:
                t.settle(error=exc)

    @staticmethod
    def _assign(batch: list[_Ticket[T]], results: Sequence[R]) -> None:
        if len(results) != len(batch):
            raise RuntimeError("group commit: the commit returned a result count != batch size")
        for t, r in zip(batch, results, strict=True):
            t.settle(result=r)

    def _lane(self, key: Hashable) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            with self._lanes_lock:
                lane = self._lanes.setdefault(key, _Lane())
        return lane


# --- one queue per engine and purpose, per process ----------------------------------------

_registry: weakref.WeakKeyDictionary[Any, dict[str, GroupCommit]] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def queue_for(owner: Any, name: str, factory: Callable[[], GroupCommit]) -> GroupCommit:
    """The queue ``name`` of ``owner`` (an engine) in this process, created on first use."""
    queues = _registry.get(owner)
    if queues is None or name not in queues:
        with _registry_lock:
            queues = _registry.setdefault(owner, {})
            if name not in queues:
                queues[name] = factory()
    return queues[name]


def _after_fork_in_child() -> None:
    global _registry, _registry_lock
    _registry = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
