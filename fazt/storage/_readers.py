"""A fixed pool of reader threads, each owning one readonly connection.

A fixed, small pool (not a thread per query) because every connection costs memory and a key
set-up, and because trio's thread cache would otherwise open dozens of them. Each job runs in
its own deferred transaction (``BEGIN`` / fn / ``COMMIT``), so the statements of one read see a
single snapshot of the database.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlcipher3

from ._connect import Connection
from ._errors import translate_sqlite_error
from ._jobs import InterruptGuard, Job, resolve, storage_timeout

log = logging.getLogger("fazt.storage")

_STOP = None


class ReaderPool:
    """Reader threads consuming one shared queue."""

    def __init__(
        self, conns: Sequence[Connection], *, fault_hook: Callable[[str, Job[Any]], None] | None
    ) -> None:
        self._conns = list(conns)
        self._fault_hook = fault_hook
        self._queue: queue.SimpleQueue[Job[Any] | None] = queue.SimpleQueue()
        # One slot per thread, each written by its own thread only: no lock, no lost updates.
        self._busy = [False] * len(self._conns)
        self._completed = [0] * len(self._conns)
        self._threads = [
            threading.Thread(
                target=self._run, args=(index,), name=f"fazt-storage-reader-{index}", daemon=True
            )
            for index in range(len(self._conns))
        ]

    @property
    def size(self) -> int:
        return len(self._conns)

    def busy_count(self) -> int:
        return sum(self._busy)

    def completed_count(self) -> int:
        return sum(self._completed)

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job[Any]) -> None:
        self._queue.put(job)

    def stop(self) -> None:
        """Let the threads finish every job queued so far, join them, close the connections."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join()
        for conn in self._conns:
            conn.close()

    def _run(self, index: int) -> None:
        conn = self._conns[index]
        guard = InterruptGuard(conn)
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            self._busy[index] = True
            try:
                self._run_job(conn, guard, job)
            finally:
                self._busy[index] = False
                self._completed[index] += 1
            resolve((job,))

    def _run_job(self, conn: Connection, guard: InterruptGuard, job: Job[Any]) -> None:
        try:
            if self._fault_hook is not None:
                self._fault_hook("read", job)
            if job.should_stop():
                job.set_error(storage_timeout())
                return
            if conn.in_transaction:  # left over from a failed rollback
                conn.execute("ROLLBACK")
            conn.execute("BEGIN")
            job.set_value(guard.call(job))
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the job's own error, delivered to its caller
            self._rollback_quietly(conn)
            job.set_error(translate_sqlite_error(exc))

    @staticmethod
    def _rollback_quietly(conn: Connection) -> None:
        if not conn.in_transaction:
            return
        try:
            conn.execute("ROLLBACK")
        except sqlcipher3.Error:
            log.warning("ROLLBACK failed on a reader connection", exc_info=True)
