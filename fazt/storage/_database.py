"""The Database: one writer thread with group commit, a fixed pool of readers, deadlines.

Trio tasks call ``await db.read(fn, deadline=...)`` / ``await db.write(fn, deadline=...)``; ``fn``
runs in a storage thread with a ``sqlcipher3.Connection`` and must be synchronous and short.
The trio side never blocks on SQLite: it queues a Job and waits on a trio Event, within the
deadline. When the deadline passes, or the caller is cancelled, the job is marked abandoned - a
queued job is then never run and a running one is interrupted by the progress handler.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from fazt.errors import ConfigError, StorageClosed

from ._connect import Connection, open_connection
from ._jobs import Job, storage_timeout
from ._migrate import apply_migrations, packaged_migrations_dir
from ._readers import ReaderPool
from ._writer import Writer

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    """How to open the database. ``fault_hook`` is the chaos seam: when set, it is called in the
    worker thread with ``"read"`` or ``"write"`` and the Job right before each job's fn runs
    (it may sleep - watching ``job.should_stop()`` - or raise; what it raises fails that job;
    ``job.tag`` says whose job it is). None unless the server runs with chaos on."""

    path: Path
    key: bytes
    readers: int = 4
    busy_timeout_ms: int = 3000
    batch_max: int = 256
    migrations_dir: Path | None = None
    fault_hook: Callable[[str, Job[Any]], None] | None = None


@dataclass(frozen=True, kw_only=True)
class StorageStats:
    """A snapshot for /api/_debug/runtime. Commit latency is the time the COMMIT statement
    took (the fsync cost of a batch), over the last 1024 batches. ``reads_completed`` counts
    every finished read job, failed ones included."""

    writer_queue_depth: int
    batches_committed: int
    writes_committed: int
    last_batch_size: int
    max_batch_size: int
    commit_latency_p50_ms: float
    commit_latency_p99_ms: float
    readers: int
    readers_busy: int
    reader_queue_depth: int
    reads_completed: int
    db_bytes: int
    wal_bytes: int


class Database:
    """The open database. Create it with ``Database.open``; always ``close()`` it."""

    def __init__(self, *, settings: StorageSettings, writer: Writer, readers: ReaderPool) -> None:
        self._settings = settings
        self._writer = writer
        self._readers = readers
        self._lock = threading.Lock()  # orders submissions against close()
        self._closed = False

    @classmethod
    def open(cls, settings: StorageSettings) -> Database:
        """Open the write connection (verifying the key), migrate, open the readers, start
        the threads. Synchronous: it takes milliseconds, plus whatever the migrations take."""
        _validate(settings)
        migrations_dir = settings.migrations_dir or packaged_migrations_dir()
        conns: list[Connection] = []
        try:
            writer_conn = open_connection(
                settings.path, settings.key, busy_timeout_ms=settings.busy_timeout_ms
            )
            conns.append(writer_conn)
            apply_migrations(writer_conn, migrations_dir)
            for _ in range(settings.readers):
                conns.append(
                    open_connection(
                        settings.path,
                        settings.key,
                        busy_timeout_ms=settings.busy_timeout_ms,
                        readonly=True,
                    )
                )
        except Exception:
            for conn in reversed(conns):
                conn.close()
            raise
        writer = Writer(writer_conn, batch_max=settings.batch_max, fault_hook=settings.fault_hook,
                        busy_timeout_ms=settings.busy_timeout_ms)
        readers = ReaderPool(conns[1:], fault_hook=settings.fault_hook)
        writer.start()
        readers.start()
        return cls(settings=settings, writer=writer, readers=readers)

    async def read(self, fn: Callable[[Connection], T], *, deadline: float,
                   tag: str | None = None) -> T:
        """Run ``fn(conn)`` on a reader connection in one read transaction (one snapshot).

        ``deadline`` is absolute, on the ``trio.current_time()`` clock. Raises
        BudgetExceeded(phase="storage") when it passes (a running query is interrupted),
        StorageClosed after ``close()``, the translated sqlite error, or what ``fn`` raised.
        ``fn`` must fetch what it needs before returning: the transaction ends right after it.
        ``tag`` names whose work it is (an app), for the chaos seam.
        """
        return await self._submit(self._readers.submit, fn, deadline, tag=tag)

    async def write(self, fn: Callable[[Connection], T], *, deadline: float,
                    on_done: Callable[[], None] | None = None, tag: str | None = None) -> T:
        """Run ``fn(conn)`` on the write connection inside a group-commit transaction.

        Returns only after the batch holding this write has committed: a returned write is
        durable. ``fn`` runs in its own savepoint, so if it raises only its changes are rolled
        back and the error is re-raised here. ``fn`` must not run BEGIN/COMMIT/ROLLBACK, and
        may run more than once (when another job's failure aborts the batch transaction, the
        batch is re-run), so it must not have side effects outside the database.

        On BudgetExceeded(phase="storage") or cancellation the outcome is unknown to the
        caller: a write that already ran and was waiting for its batch's COMMIT may still
        commit. Make such writes idempotent, or report them as "accepted". ``on_done`` is
        called in the trio thread when the write has ended either way, even after the caller
        left (never if the database closed first): caches drop what the write changed there.
        """
        return await self._submit(self._writer.submit, fn, deadline, on_done, tag)

    async def _submit(
        self,
        enqueue: Callable[[Job[Any]], None],
        fn: Callable[[Connection], T],
        deadline: float,
        on_done: Callable[[], None] | None = None,
        tag: str | None = None,
    ) -> T:
        if trio.current_time() >= deadline:
            await trio.lowlevel.checkpoint()
            raise storage_timeout()
        job = Job.for_trio_deadline(fn, deadline=deadline)
        job.on_done = on_done
        job.tag = tag
        with self._lock:
            closed = self._closed
            if not closed:
                enqueue(job)
        if closed:
            await trio.lowlevel.checkpoint()
            raise StorageClosed("the database is closed")
        try:
            with trio.move_on_at(deadline):
                await job.done.wait()
        finally:
            # Whatever made us leave (deadline, cancellation, KeyboardInterrupt), an unfinished
            # job must not run later, and a running one must stop.
            if not job.done.is_set():
                job.abandoned = True
        if not job.done.is_set():
            raise storage_timeout()
        return job.unwrap()

    def stats(self) -> StorageStats:
        """A consistent-enough snapshot, cheap to take (one short lock, two stat() calls)."""
        writer = self._writer
        latencies_ms = sorted(writer.commit_latencies_snapshot_ms())
        return StorageStats(
            writer_queue_depth=writer.queue_depth(),
            batches_committed=writer.batches_committed,
            writes_committed=writer.writes_committed,
            last_batch_size=writer.last_batch_size,
            max_batch_size=writer.max_batch_size,
            commit_latency_p50_ms=_percentile(latencies_ms, 0.50),
            commit_latency_p99_ms=_percentile(latencies_ms, 0.99),
            readers=self._readers.size,
            readers_busy=self._readers.busy_count(),
            reader_queue_depth=self._readers.queue_depth(),
            reads_completed=self._readers.completed_count(),
            db_bytes=_file_size(self._settings.path),
            wal_bytes=_file_size(self._settings.path.with_name(self._settings.path.name + "-wal")),
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop accepting work, finish what is queued, checkpoint, close. Idempotent.

        Jobs queued before ``close()`` still run (each bounded by its deadline) and queued
        writes are committed; new calls raise StorageClosed. Blocks until the threads have
        exited - from trio, call it via ``trio.to_thread.run_sync`` if writes may be queued.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._writer.stop()
        self._readers.stop()
        self._writer.close_connection()  # last: the TRUNCATE checkpoint wants no readers


def _validate(settings: StorageSettings) -> None:
    if len(settings.key) != 32:
        raise ConfigError(f"the database key must be 32 bytes, got {len(settings.key)}")
    if settings.readers < 1:
        raise ConfigError(f"storage readers must be at least 1, got {settings.readers}")
    if settings.batch_max < 1:
        raise ConfigError(f"storage batch_max must be at least 1, got {settings.batch_max}")
    if settings.busy_timeout_ms < 0:
        raise ConfigError(f"storage busy_timeout_ms must be >= 0, got {settings.busy_timeout_ms}")


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 when there is no sample yet."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
