"""Reader pool: snapshots, runaway reads interrupted, abandoned reads never run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from fazt.errors import BudgetExceeded, StorageError
from fazt.storage import Database, StorageSettings

from .conftest import Gate, keys_in, put, within

RUNAWAY_SELECT = (
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"
)


def _runaway(conn: Any) -> Any:
    return conn.execute(RUNAWAY_SELECT).fetchone()


async def test_read_returns_fn_value(db: Database) -> None:
    await db.write(put("a"), deadline=within(5))
    assert await db.read(keys_in, deadline=within(5)) == {"a"}


async def test_runaway_read_is_interrupted_and_the_connection_reused(
    make_settings: Callable[..., StorageSettings],
) -> None:
    db = Database.open(make_settings(readers=1))  # the next read must use the same connection
    try:
        with trio.fail_after(5):  # without the interrupt this query never ends
            with pytest.raises(BudgetExceeded) as info:
                await db.read(_runaway, deadline=within(0.1))
            assert info.value.phase == "storage"
            assert (
                await db.read(lambda c: c.execute("SELECT 42").fetchone()[0], deadline=within(2))
                == 42
            )
    finally:
        db.close()


async def test_cancelled_runaway_read_releases_its_reader(
    make_settings: Callable[..., StorageSettings],
) -> None:
    db = Database.open(make_settings(readers=1))
    try:
        with trio.fail_after(5):
            with trio.move_on_after(0.1) as scope:
                await db.read(_runaway, deadline=within(60))  # the caller leaves, not the deadline
            assert scope.cancelled_caught
            assert (
                await db.read(lambda c: c.execute("SELECT 7").fetchone()[0], deadline=within(2))
                == 7
            )
    finally:
        db.close()


async def test_abandoned_queued_read_never_runs(
    make_settings: Callable[..., StorageSettings],
) -> None:
    gate = Gate("read")
    db = Database.open(make_settings(readers=1, fault_hook=gate))
    ran: list[str] = []

    def tracked(conn: Any) -> None:
        ran.append("read")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(db.read, lambda c: None, deadline=within(10)))
            await gate.wait_entered()
            with pytest.raises(BudgetExceeded):
                await db.read(tracked, deadline=within(0.05))
            with trio.move_on_after(0.05):
                await db.read(tracked, deadline=within(30))
            gate.release()
        await db.read(lambda c: None, deadline=within(5))  # FIFO: both have been dequeued
        assert ran == []
    finally:
        db.close()


async def test_a_read_sees_one_snapshot(
    make_settings: Callable[..., StorageSettings],
) -> None:
    """A write committed between two statements of one read is invisible to that read."""
    db = Database.open(make_settings())
    first_done = threading.Event()
    write_done = threading.Event()

    def two_counts(conn: Any) -> tuple[int, int]:
        first = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
        first_done.set()
        assert write_done.wait(5)
        second = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
        return first, second

    try:
        async with trio.open_nursery() as nursery:
            results: list[tuple[int, int]] = []

            async def reader() -> None:
                results.append(await db.read(two_counts, deadline=within(10)))

            nursery.start_soon(reader)
            await trio.to_thread.run_sync(first_done.wait, 5)
            await db.write(put("new"), deadline=within(5))
            write_done.set()
        assert results == [(0, 0)]
        assert (
            await db.read(
                lambda c: c.execute("SELECT count(*) FROM kv").fetchone()[0], deadline=within(5)
            )
            == 1
        )
    finally:
        db.close()


async def test_read_errors_are_translated_and_fn_errors_pass_through(db: Database) -> None:
    with pytest.raises(StorageError, match="no such table"):
        await db.read(lambda c: c.execute("SELECT * FROM nope"), deadline=within(5))

    def boom(conn: Any) -> None:
        raise KeyError("app bug")

    with pytest.raises(KeyError):
        await db.read(boom, deadline=within(5))
    assert await db.read(lambda c: c.in_transaction, deadline=within(5)) is True  # fresh txn
    assert db.stats().reads_completed == 3


async def test_reads_run_in_parallel(
    make_settings: Callable[..., StorageSettings],
) -> None:
    readers = 3
    db = Database.open(make_settings(readers=readers))
    barrier = threading.Barrier(readers, timeout=5)  # only passes if all readers run at once
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(readers):
                nursery.start_soon(partial(db.read, lambda c: barrier.wait(), deadline=within(10)))
    finally:
        db.close()
