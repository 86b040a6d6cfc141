"""The app log store on a real encrypted database with fazt's own migrations.

Most tests write the buffer through the store's own shutdown path (``flush``: start ``run``,
cancel it; it writes what is buffered on the way out), so they do not depend on time at all.
Tests about the loop's timing use the real clock with a short interval and wait for the store's
own event (``wait``), never a sleep. The autojump clock is only used where no database work is
in flight: a storage job waits in a worker thread, which the autojump clock counts as "every
task is blocked", so it would jump straight to the job's deadline.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from fazt.applog import LEVELS, MAX_MESSAGE_CHARS, AppLogStore, LogLine
from fazt.errors import StorageFull
from fazt.storage import Database, StorageSettings
from tests.core_db import open_core_db

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with open_core_db(tmp_path) as database:
        yield database


def make_store(db: Database, **options: float) -> AppLogStore:
    """A store whose loop never flushes on its own (an hour-long interval) unless told."""
    settings: dict[str, float] = {"flush_interval_s": 3600, **options}
    return AppLogStore(db, op_timeout_s=30, **settings)  # type: ignore[arg-type]


async def flush(store: AppLogStore) -> None:
    """Write what is buffered: start the loop and cancel it; it flushes on the way out."""
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        nursery.cancel_scope.cancel(reason="test flush")


def messages(lines: list[LogLine]) -> list[str]:
    return [line.message for line in lines]


async def test_lines_are_read_back_per_app_in_order(db: Database) -> None:
    store = make_store(db)
    store.append("a", "info", "first", request_id="r1")
    store.append("b", "error", "other app", request_id=None)
    store.append("a", "warn", "second", request_id=None)
    store.append("a", "debug", "third", request_id="r2")
    assert await store.read("a") == []   # buffered lines have no id yet: not readable
    await flush(store)

    lines = await store.read("a")
    assert messages(lines) == ["first", "second", "third"]
    assert [line.level for line in lines] == ["info", "warn", "debug"]
    assert [line.request_id for line in lines] == ["r1", None, "r2"]
    assert lines[0].id < lines[1].id < lines[2].id
    assert all(TS.match(line.ts) for line in lines)
    assert lines[0].to_json() == {"id": lines[0].id, "ts": lines[0].ts, "level": "info",
                                  "request_id": "r1", "message": "first"}
    assert messages(await store.read("b")) == ["other app"]
    assert await store.read("nobody") == []
    assert store.stats() == {"buffered": 0, "dropped": 0, "written": 4}


async def test_newest_lines_then_paging_forward_by_id(db: Database) -> None:
    store = make_store(db)
    for i in range(10):
        store.append("a", "info", f"m{i}", request_id=None)
    await flush(store)
    ids = [line.id for line in await store.read("a", limit=100)]

    assert messages(await store.read("a", limit=3)) == ["m7", "m8", "m9"]   # newest, ascending
    assert messages(await store.read("a", after=0, limit=4)) == ["m0", "m1", "m2", "m3"]
    assert messages(await store.read("a", after=ids[3], limit=4)) == ["m4", "m5", "m6", "m7"]
    assert messages(await store.read("a", after=ids[7], limit=4)) == ["m8", "m9"]
    assert await store.read("a", after=ids[9]) == []
    with pytest.raises(ValueError, match="limit"):
        await store.read("a", limit=0)


async def test_level_filter_keeps_that_level_and_above(db: Database) -> None:
    store = make_store(db)
    for level in (*LEVELS, "bogus", "ERROR"):
        store.append("a", level, level, request_id=None)
    await flush(store)

    levels = [line.level for line in await store.read("a")]
    assert levels == ["debug", "info", "warn", "error", "info", "info"]   # unknown -> info
    assert messages(await store.read("a", level="debug")) == \
        ["debug", "info", "warn", "error", "bogus", "ERROR"]
    assert messages(await store.read("a", level="info")) == \
        ["info", "warn", "error", "bogus", "ERROR"]
    assert messages(await store.read("a", level="warn")) == ["warn", "error"]
    assert messages(await store.read("a", level="error", after=0)) == ["error"]
    with pytest.raises(ValueError, match="level must be one of"):
        await store.read("a", level="fatal")


async def test_request_id_filter(db: Database) -> None:
    store = make_store(db)
    for i in range(6):
        store.append("a", "info", f"m{i}", request_id="even" if i % 2 == 0 else "odd")
    store.append("a", "info", "no request", request_id=None)
    await flush(store)

    assert messages(await store.read("a", request_id="even")) == ["m0", "m2", "m4"]
    assert messages(await store.read("a", request_id="odd", limit=2)) == ["m3", "m5"]
    assert messages(await store.read("a", request_id="odd", level="warn")) == []
    assert await store.read("a", request_id="nope") == []


async def test_long_messages_are_truncated(db: Database) -> None:
    store = make_store(db)
    store.append("a", "info", "x" * (MAX_MESSAGE_CHARS - 1) + "yz", request_id=None)
    store.append("a", "info", "é" * MAX_MESSAGE_CHARS, request_id=None)
    await flush(store)
    first, second = await store.read("a")
    assert first.message == "x" * (MAX_MESSAGE_CHARS - 1) + "y"
    assert second.message == "é" * MAX_MESSAGE_CHARS


async def test_full_buffer_drops_counts_and_reports_per_app(db: Database) -> None:
    store = make_store(db, max_buffer=5)
    for i in range(5):
        store.append("a", "info", f"kept{i}", request_id=None)
    for _ in range(3):
        store.append("a", "info", "lost", request_id=None)   # never raises, never blocks
    store.append("b", "error", "lost too", request_id=None)
    store.append("b", "error", "lost too", request_id=None)
    assert store.dropped == 5
    assert store.stats() == {"buffered": 5, "dropped": 5, "written": 0}

    await flush(store)
    a_lines = await store.read("a")
    assert messages(a_lines) == [*(f"kept{i}" for i in range(5)),
                                 "3 log lines dropped (log buffer full)"]
    assert a_lines[-1].level == "warn"
    b_lines = await store.read("b")
    assert messages(b_lines) == ["2 log lines dropped (log buffer full)"]
    assert b_lines[0].level == "warn"
    assert store.stats() == {"buffered": 0, "dropped": 5, "written": 7}

    # The buffer has room again, and the loss is reported once.
    store.append("a", "info", "after", request_id=None)
    await flush(store)
    assert messages(await store.read("a", limit=1)) == ["after"]
    assert len(await store.read("b")) == 1


async def test_prune_keeps_the_newest_lines_of_each_app(db: Database) -> None:
    store = make_store(db, keep_per_app=5)
    for i in range(12):
        store.append("a", "info", f"a{i}", request_id=None)
    for i in range(3):
        store.append("b", "info", f"b{i}", request_id=None)
    await flush(store)
    assert messages(await store.read("a", after=0, limit=1000)) == [f"a{i}" for i in range(7, 12)]
    assert messages(await store.read("b", after=0)) == ["b0", "b1", "b2"]

    # Lines written since the last prune add up across flushes.
    for i in range(3, 6):
        store.append("b", "info", f"b{i}", request_id=None)
    await flush(store)
    assert messages(await store.read("b", after=0)) == [f"b{i}" for i in range(1, 6)]


async def test_wait_returns_when_a_write_brings_lines_of_that_app(db: Database) -> None:
    store = make_store(db, flush_interval_s=0.01)
    woke = trio.Event()
    waited_s: list[float] = []

    async def waiter() -> None:
        start = trio.current_time()
        await store.wait("a", 0, 60)
        waited_s.append(trio.current_time() - start)
        woke.set()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            store.append("b", "info", "for b", request_id=None)
            await store.wait("b", 0, 60)      # b's lines are written ...
            assert not woke.is_set()          # ... and the waiter for a sleeps on
            store.append("a", "info", "for a", request_id=None)
            await woke.wait()
            nursery.cancel_scope.cancel()
    assert waited_s[0] < 30
    assert messages(await store.read("a")) == ["for a"]

    # Lines above ``after`` already written: no waiting at all.
    start = trio.current_time()
    await store.wait("a", 0, 60)
    assert trio.current_time() - start < 30


async def test_a_full_batch_is_written_before_the_interval(db: Database) -> None:
    store = make_store(db)   # the interval is an hour
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            for i in range(300):
                store.append("a", "info", f"m{i}", request_id=None)
            await store.wait("a", 0, 3600)
            assert store.stats()["written"] == 300
            nursery.cancel_scope.cancel()
    assert len(await store.read("a", limit=1000)) == 300


async def test_wait_times_out_quietly(db: Database, autojump_clock: trio.testing.MockClock) -> None:
    store = make_store(db, flush_interval_s=0.1)   # an empty buffer: the loop does no I/O
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        start = trio.current_time()
        await store.wait("a", 0, 5)
        assert trio.current_time() - start == pytest.approx(5)
        await store.wait("a", 0, -1)   # a negative timeout is no timeout
        assert trio.current_time() - start == pytest.approx(5)
        nursery.cancel_scope.cancel()


async def test_release_waiters_ends_every_wait(db: Database,
                                               autojump_clock: trio.testing.MockClock) -> None:
    store = make_store(db)
    ended: list[float] = []

    async def waiter() -> None:
        await store.wait("a", 0, 60)
        ended.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        store.release_waiters()
    assert ended == [0, 0]
    await store.wait("a", 0, 60)
    assert trio.current_time() == 0


async def test_delete_app_deletes_stored_and_buffered_lines(db: Database) -> None:
    store = make_store(db)
    store.append("a", "info", "stored", request_id=None)
    store.append("b", "info", "kept", request_id=None)
    await flush(store)
    store.append("a", "info", "buffered", request_id=None)
    store.append("b", "info", "kept too", request_id=None)

    await store.delete_app("a")
    assert await store.read("a") == []
    await flush(store)
    assert await store.read("a") == []
    assert messages(await store.read("b")) == ["kept", "kept too"]


async def test_cancellation_writes_what_is_buffered(db: Database) -> None:
    store = make_store(db)
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run)
        store.append("a", "error", "last words", request_id="r")
        assert store.stats()["buffered"] == 1
        nursery.cancel_scope.cancel()
    assert store.stats() == {"buffered": 0, "dropped": 0, "written": 1}
    [line] = await store.read("a")
    assert (line.level, line.message, line.request_id) == ("error", "last words", "r")


async def test_failed_write_drops_counts_and_the_loop_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    failed = threading.Event()

    # the storage seam: runs in the writer thread
    def fail_first_write(kind: str, _job: Any = None) -> None:
        if kind == "write" and not failed.is_set():
            failed.set()
            raise StorageFull("disk full")

    db = Database.open(StorageSettings(path=tmp_path / "fazt.db", key=secrets.token_bytes(32),
                                       readers=1, fault_hook=fail_first_write))
    try:
        store = make_store(db, flush_interval_s=0.01)
        with trio.fail_after(30), caplog.at_level(logging.WARNING, "fazt.applog"):
            async with trio.open_nursery() as nursery:
                await nursery.start(store.run)
                store.append("a", "info", "lost", request_id=None)
                await trio.to_thread.run_sync(failed.wait, 30)
                store.append("a", "info", "written", request_id=None)
                await store.wait("a", 0, 60)
                nursery.cancel_scope.cancel()
        assert store.dropped == 1
        assert messages(await store.read("a")) == \
            ["written", "1 log lines dropped (log write failed)"]
        assert "could not write 1 app log lines: storage_full" in caplog.text
    finally:
        db.close()


def test_settings_are_checked(db: Database) -> None:
    for bad in ({"keep_per_app": 0}, {"max_buffer": 0}, {"flush_interval_s": 0},
                {"op_timeout_s": float("nan")}):
        with pytest.raises(ValueError, match="must be positive"):
            AppLogStore(db, **{"op_timeout_s": 5, **bad})  # type: ignore[arg-type]
