"""A unit of work handed from a trio task to a storage thread, and how it is interrupted.

A Job carries the caller's function, its deadline on the ``time.monotonic()`` clock and the trio
token of the run that waits for it. The worker thread stores the outcome on the job and resolves
the waiter through ``TrioToken.run_sync_soon`` - the only cross-thread call made. The trio side
sets ``abandoned`` when the caller leaves early for any reason; a job that has not started by
then is never run, and one that is running is interrupted by the connection's progress handler.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import trio

from fazt.errors import BudgetExceeded

from ._connect import Connection

T = TypeVar("T")
log = logging.getLogger("fazt.storage")

# The progress handler runs every this many SQLite VM instructions: about every 10-50 us of
# query work, cheap enough to leave on and fine-grained enough for millisecond deadlines.
PROGRESS_INTERVAL_OPS = 1000


class Job(Generic[T]):
    """One read or write submitted by a trio task."""

    __slots__ = (
        "_error",
        "_value",
        "abandoned",
        "deadline_monotonic",
        "done",
        "fn",
        "on_done",
        "tag",
        "token",
    )

    def __init__(
        self,
        fn: Callable[[Connection], T],
        *,
        deadline_monotonic: float,
        token: trio.lowlevel.TrioToken,
    ) -> None:
        self.fn = fn
        self.deadline_monotonic = deadline_monotonic
        self.token = token
        self.abandoned = False  # written by the trio side only
        self.tag: str | None = None  # whose work this is (an app): the chaos seam reads it
        self.done = trio.Event()  # set in the trio thread, after the outcome is stored
        # called in the trio thread once the job has ended (committed, failed or skipped), even
        # when its caller has already left: how a cache learns that a late write committed
        self.on_done: Callable[[], None] | None = None
        self._value: T | None = None
        self._error: BaseException | None = None

    @classmethod
    def for_trio_deadline(cls, fn: Callable[[Connection], T], *, deadline: float) -> Job[T]:
        """Create a job in the current trio run; ``deadline`` is on ``trio.current_time()``."""
        remaining_s = deadline - trio.current_time()
        return cls(
            fn,
            deadline_monotonic=time.monotonic() + remaining_s
            if math.isfinite(deadline)
            else deadline,
            token=trio.lowlevel.current_trio_token(),
        )

    def should_stop(self) -> bool:
        """True once the caller is gone or the deadline has passed (safe from any thread)."""
        return self.abandoned or time.monotonic() > self.deadline_monotonic

    def set_value(self, value: T) -> None:
        self._value = value

    def set_error(self, error: BaseException) -> None:
        self._error = error

    def unwrap(self) -> T:
        """Return the value or raise the error (trio side, after ``done`` is set)."""
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def storage_timeout() -> BudgetExceeded:
    return BudgetExceeded(phase="storage")


def resolve(jobs: Iterable[Job[Any]]) -> None:
    """Wake the trio waiters of ``jobs`` (called from a worker thread, outcomes already stored).

    One ``run_sync_soon`` per trio run, not per job: a committed batch wakes all its callers in
    one hop. A run that has finished (its callers are gone) is skipped.
    """
    by_token: defaultdict[trio.lowlevel.TrioToken, list[Job[Any]]] = defaultdict(list)
    for job in jobs:
        by_token[job.token].append(job)
    for token, group in by_token.items():
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(_set_done, group)


def _set_done(jobs: list[Job[Any]]) -> None:
    for job in jobs:
        job.done.set()
    for job in jobs:   # after every waiter is woken; a failing callback must not stop trio
        if job.on_done is not None:
            try:
                job.on_done()
            except Exception:
                log.exception("storage on_done callback failed")


class InterruptGuard:
    """The progress handler of one connection: interrupts the current job when it must stop.

    Installed once per connection. Between jobs (and during BEGIN/COMMIT) no job is current and
    nothing is interrupted, so a late deadline can never hit the next, innocent job - which is
    why fazt never calls ``conn.interrupt()`` from another thread.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._current: Job[Any] | None = None
        conn.set_progress_handler(self._check, PROGRESS_INTERVAL_OPS)

    def _check(self) -> int:
        job = self._current
        return 1 if job is not None and job.should_stop() else 0

    def call(self, job: Job[T]) -> T:
        """Run ``job.fn`` on the connection with interruption armed for that job."""
        self._current = job
        try:
            return job.fn(self._conn)
        finally:
            self._current = None
