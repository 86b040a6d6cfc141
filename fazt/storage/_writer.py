"""The single writer thread: group commit over the only write connection.

Why one thread: SQLite allows one writer at a time anyway, and paying one fsync per *batch*
instead of per write is what makes ``synchronous=FULL`` affordable: about 16k small acknowledged
writes/s from 50 concurrent tasks here, several times one transaction per write (numbers and
method in docs/discussion/storage.md; the ~50k of stack-findings was synchronous=NORMAL).

A batch is the first queued job plus whatever else is already queued (up to ``batch_max``), run
in one ``BEGIN IMMEDIATE`` transaction, each job inside its own savepoint so that a failing job
is rolled back alone. Callers are woken only after COMMIT has returned: a write is acknowledged
when it is durable. If a failure takes the whole transaction with it (SQLite does that for an
interrupted write, SQLITE_FULL, I/O errors...), the earlier jobs of the batch - never
acknowledged - are run again in a new transaction. If COMMIT fails on a deferred constraint,
each job of the batch is run again in a transaction of its own, so only the guilty job fails;
any other COMMIT failure fails every job of the batch.
"""

from __future__ import annotations

import collections
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlcipher3

from fazt.errors import StorageError

from ._connect import Connection
from ._errors import translate_sqlite_error
from ._jobs import InterruptGuard, Job, resolve, storage_timeout

log = logging.getLogger("fazt.storage")

_STOP = object()
LATENCY_WINDOW = 1024
BUSY_MARGIN_MS = 30     # a busy wait ends this long before the batch's earliest deadline


class Writer:
    """Owns the write connection and the thread that uses it."""

    def __init__(
        self,
        conn: Connection,
        *,
        batch_max: int,
        fault_hook: Callable[[str, Job[Any]], None] | None,
        busy_timeout_ms: int = 3000,
    ) -> None:
        self._conn = conn
        self._busy_timeout_ms = busy_timeout_ms
        self._busy_set_ms = busy_timeout_ms    # what the connection has now
        self._guard = InterruptGuard(conn)
        self._batch_max = batch_max
        self._fault_hook = fault_hook
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="fazt-storage-writer", daemon=True)
        # Statistics: written by the writer thread only, read without locks (ints are atomic).
        self.batches_committed = 0
        self.writes_committed = 0
        self.last_batch_size = 0
        self.max_batch_size = 0
        self._latencies_lock = threading.Lock()
        self._commit_latencies_ms: collections.deque[float] = collections.deque(
            maxlen=LATENCY_WINDOW
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job[Any]) -> None:
        self._queue.put(job)

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def commit_latencies_snapshot_ms(self) -> list[float]:
        """The duration of the last (up to) 1024 COMMIT statements, in milliseconds."""
        with self._latencies_lock:
            return list(self._commit_latencies_ms)

    def stop(self) -> None:
        """Let the thread finish every job queued so far, then join it."""
        self._queue.put(_STOP)
        self._thread.join()

    def close_connection(self) -> None:
        """Checkpoint the WAL into the database file and close (after ``stop``)."""
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlcipher3.Error as exc:
            log.warning("final WAL checkpoint failed: %s", exc)
        finally:
            self._conn.close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[Job[Any]] = [first]
            stopping = False
            while len(batch) < self._batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._run_batch_safely(batch)
            if stopping:
                return

    def _run_batch_safely(self, batch: list[Job[Any]]) -> None:
        try:
            self._run_batch(batch)
        except Exception as exc:  # a bug here must fail the batch, not kill the thread
            log.exception("storage writer failed a batch unexpectedly")
            self._rollback_quietly()
            for job in batch:
                job.set_error(StorageError(f"storage writer failed: {exc!r}"))
        # Every job of the batch has its final outcome now (and COMMIT has returned).
        resolve(batch)

    def _run_batch(self, batch: list[Job[Any]]) -> None:
        """Give every job of ``batch`` its final outcome; commit the successful ones."""
        conn = self._conn
        todo = batch
        while todo:
            succeeded: list[Job[Any]] = []
            restart_with: list[Job[Any]] | None = None
            if conn.in_transaction:  # left over from a failed rollback
                self._rollback_quietly()
            try:
                self._bound_busy_wait(todo)
                conn.execute("BEGIN IMMEDIATE")
            except sqlcipher3.Error as exc:
                self._fail(todo, exc)
                return
            alone = len(todo) == 1
            for index, job in enumerate(todo):
                error = self._run_job(job, savepoint=not alone)
                if error is None:
                    succeeded.append(job)
                    continue
                job.set_error(error)
                if alone or not conn.in_transaction:
                    # SQLite rolled back the whole transaction (or the lone job's failure
                    # did: nothing else was in it); nothing of it was acknowledged.
                    restart_with = succeeded + todo[index + 1 :]
                    break
            if restart_with is None:
                if succeeded:
                    self._commit(succeeded)
                else:
                    self._rollback_quietly()
                return
            todo = restart_with

    def _bound_busy_wait(self, batch: list[Job[Any]]) -> None:
        """Wait for another process's write lock no longer than the batch's earliest deadline
        allows (less a margin for the answer to reach trio), so that its callers get
        ``storage_busy`` in time rather than ``storage_timeout`` - or a wait of the full busy
        timeout behind each batch queued ahead."""
        earliest = min(job.deadline_monotonic for job in batch)
        left_ms = (earliest - time.monotonic()) * 1000 - BUSY_MARGIN_MS
        wait_ms = int(max(0, min(self._busy_timeout_ms, left_ms))) \
            if math.isfinite(left_ms) else self._busy_timeout_ms
        if wait_ms != self._busy_set_ms:
            self._conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
            self._busy_set_ms = wait_ms

    def _run_job(self, job: Job[Any], *, savepoint: bool = True) -> BaseException | None:
        """Run one job in a savepoint; return its error (already translated) or None. The job
        of a batch of one needs no savepoint (two statements less on the write path): when it
        fails, the whole transaction is rolled back."""
        conn = self._conn
        in_savepoint = False
        try:
            if self._fault_hook is not None:
                self._fault_hook("write", job)
            if job.should_stop():
                if not savepoint:
                    self._rollback_quietly()
                return storage_timeout()
            if savepoint:
                conn.execute("SAVEPOINT job")
                in_savepoint = True
            job.set_value(self._guard.call(job))
            if savepoint:
                conn.execute("RELEASE job")
        except Exception as exc:  # noqa: BLE001 - the job's own error, delivered to its caller
            if not savepoint:
                self._rollback_quietly()
            elif in_savepoint and conn.in_transaction:
                try:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                except sqlcipher3.Error:
                    log.warning("rollback to savepoint failed; restarting the batch", exc_info=True)
                    self._rollback_quietly()
            return translate_sqlite_error(exc)
        return None

    def _commit(self, jobs: list[Job[Any]]) -> None:
        started = time.perf_counter()
        try:
            self._conn.execute("COMMIT")
        except sqlcipher3.IntegrityError as exc:
            # A deferred constraint (e.g. a DEFERRABLE foreign key) is only checked at COMMIT,
            # and cannot be pinned on one savepoint. Run each job in its own transaction so
            # that only the guilty one fails (none of them was acknowledged).
            self._rollback_quietly()
            if len(jobs) == 1:
                self._fail(jobs, exc)
            else:
                for job in jobs:
                    self._run_batch([job])
            return
        except sqlcipher3.Error as exc:
            self._rollback_quietly()
            self._fail(jobs, exc)
            return
        with self._latencies_lock:
            self._commit_latencies_ms.append((time.perf_counter() - started) * 1000)
        self.batches_committed += 1
        self.writes_committed += len(jobs)
        self.last_batch_size = len(jobs)
        self.max_batch_size = max(self.max_batch_size, len(jobs))

    def _fail(self, jobs: list[Job[Any]], exc: sqlcipher3.Error) -> None:
        for job in jobs:  # one exception object per caller: each raise extends its traceback
            job.set_error(translate_sqlite_error(exc))

    def _rollback_quietly(self) -> None:
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlcipher3.Error:
            log.warning("ROLLBACK failed on the write connection", exc_info=True)
