"""Database lifecycle and introspection: close drains queued writes, StorageClosed, stats."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from functools import partial

import pytest
import trio
import trio.testing

from fazt.errors import StorageClosed
from fazt.storage import Database, StorageSettings, StorageStats, open_connection

from .conftest import Gate, keys_in, put, storage_threads, wait_until, within


async def test_close_drains_queued_writes_then_refuses_new_work(
    make_settings: Callable[..., StorageSettings],
) -> None:
    settings = make_settings(fault_hook=Gate("write"), readers=2)
    gate = settings.fault_hook
    assert isinstance(gate, Gate)
    db = Database.open(settings)
    assert len(storage_threads()) == 3
    outcomes: list[object] = []

    async def write(k: str) -> None:
        outcomes.append(await db.write(put(k), deadline=within(10)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write, "gate")
        await gate.wait_entered()
        nursery.start_soon(write, "queued1")
        nursery.start_soon(write, "queued2")
        await trio.testing.wait_all_tasks_blocked()
        assert db.stats().writer_queue_depth == 2
        nursery.start_soon(trio.to_thread.run_sync, db.close)
        await wait_until(lambda: db.closed)
        with pytest.raises(StorageClosed):
            await db.write(put("late"), deadline=within(5))
        with pytest.raises(StorageClosed):
            await db.read(keys_in, deadline=within(5))
        gate.release()
    assert outcomes == [None, None, None]
    assert storage_threads() == []
    wal = settings.path.with_name(settings.path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed (TRUNCATE)
    db.close()  # idempotent
    conn = open_connection(settings.path, settings.key, busy_timeout_ms=100, readonly=True)
    try:
        assert keys_in(conn) == {"gate", "queued1", "queued2"}
    finally:
        conn.close()


async def test_close_without_work_stops_every_thread(
    make_settings: Callable[..., StorageSettings],
) -> None:
    db = Database.open(make_settings(readers=4))
    assert {t.name for t in storage_threads()} == {
        "fazt-storage-writer",
        *(f"fazt-storage-reader-{i}" for i in range(4)),
    }
    db.close()
    db.close()
    assert storage_threads() == []
    with pytest.raises(StorageClosed):
        await db.write(put("x"), deadline=within(5))


async def test_stats(make_settings: Callable[..., StorageSettings]) -> None:
    gate = Gate("read")
    db = Database.open(make_settings(readers=3, fault_hook=gate))
    try:
        empty = db.stats()
        assert isinstance(empty, StorageStats)
        assert (empty.batches_committed, empty.writes_committed, empty.reads_completed) == (0, 0, 0)
        assert empty.commit_latency_p50_ms == empty.commit_latency_p99_ms == 0.0
        assert empty.readers == 3 and empty.readers_busy == 0
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(partial(db.write, put(f"k{i}"), deadline=within(10)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(db.read, keys_in, deadline=within(10)))
            await gate.wait_entered()
            assert db.stats().readers_busy == 1
            gate.release()
        for _ in range(4):
            await db.read(keys_in, deadline=within(5))
        stats = db.stats()
        assert stats.writes_committed == 20
        assert 1 <= stats.batches_committed <= 20
        assert 1 <= stats.last_batch_size <= stats.max_batch_size <= 20
        assert 0 < stats.commit_latency_p50_ms <= stats.commit_latency_p99_ms
        assert stats.reads_completed == 5
        assert stats.readers_busy == 0
        assert stats.writer_queue_depth == 0 and stats.reader_queue_depth == 0
        assert stats.db_bytes > 0 and stats.wal_bytes > 0
    finally:
        db.close()


def test_storage_never_imports_the_http_layer() -> None:
    code = (
        "import sys, fazt.storage\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('quart', 'hypercorn')"
        " or m.startswith('fazt.http'))\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
