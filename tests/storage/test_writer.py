"""The writer thread: group commit, per-job isolation, re-run after a lost transaction,
deadlines and abandonment, durable acknowledgement."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
import sqlcipher3
import trio
import trio.testing

from fazt.errors import BudgetExceeded, Conflict, StorageBusy, StorageError, StorageFull
from fazt.storage import Database, StorageSettings, open_connection

from .conftest import Gate, keys_in, put, within

RUNAWAY_INSERT = (
    "INSERT INTO kv SELECT 'r' || x, 'v' FROM "
    "(WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r)"
)


async def _outcome(db: Database, fn: Callable[[Any], Any], deadline: float) -> Any:
    try:
        return await db.write(fn, deadline=deadline)
    except Exception as exc:
        return exc


async def _queue_in_order(
    nursery: trio.Nursery, db: Database, jobs: dict[str, tuple[Callable[[Any], Any], float]]
) -> dict[str, Any]:
    """Submit ``jobs`` one by one, each queued before the next (outcomes land in the dict)."""
    outcomes: dict[str, Any] = {}

    async def run(name: str, fn: Callable[[Any], Any], deadline: float) -> None:
        outcomes[name] = await _outcome(db, fn, deadline)

    for name, (fn, deadline) in jobs.items():
        nursery.start_soon(run, name, fn, deadline)
        await trio.testing.wait_all_tasks_blocked()
    return outcomes


async def test_acknowledged_write_is_committed(db: Database, make_settings: Any) -> None:
    await db.write(put("a"), deadline=within(5))
    # An independent connection sees it the moment write() returns.
    settings = make_settings()
    other = open_connection(settings.path, settings.key, busy_timeout_ms=100, readonly=True)
    try:
        assert keys_in(other) == {"a"}
    finally:
        other.close()


async def test_write_returns_fn_value(db: Database) -> None:
    def insert(conn: Any) -> int:
        return int(
            conn.execute("INSERT INTO kv VALUES ('a', 'b') RETURNING length(v)").fetchone()[0]
        )

    assert await db.write(insert, deadline=within(5)) == 1


async def test_concurrent_writes_are_group_committed(
    make_settings: Callable[..., StorageSettings],
) -> None:
    gate = Gate("write")
    db = Database.open(make_settings(fault_hook=gate, batch_max=256))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(db.write, put("first"), deadline=within(10)))
            await gate.wait_entered()
            for i in range(499):
                nursery.start_soon(partial(db.write, put(f"k{i}"), deadline=within(10)))
            await trio.testing.wait_all_tasks_blocked()
            assert db.stats().writer_queue_depth == 499
            gate.release()
        stats = db.stats()
        assert stats.writes_committed == 500
        assert stats.batches_committed == 3  # [first], 256, 243
        assert stats.max_batch_size == 256
        assert stats.last_batch_size == 243
        assert len(await db.read(keys_in, deadline=within(5))) == 500
    finally:
        db.close()


async def test_unsynchronised_concurrent_writes_share_batches(db: Database) -> None:
    async with trio.open_nursery() as nursery:
        for i in range(500):
            nursery.start_soon(partial(db.write, put(f"k{i}"), deadline=within(10)))
    stats = db.stats()
    assert stats.writes_committed == 500
    assert stats.batches_committed < 500
    assert stats.max_batch_size > 1


async def test_a_failing_job_does_not_fail_its_batch(
    make_settings: Callable[..., StorageSettings],
) -> None:
    gate = Gate("write")
    db = Database.open(make_settings(fault_hook=gate))

    def half_then_raise(conn: Any) -> None:
        conn.execute("INSERT INTO kv VALUES ('half', 'x')")
        raise ValueError("app bug")

    def conflict(conn: Any) -> None:
        conn.execute("INSERT INTO kv VALUES ('conflict', 'x')")
        raise Conflict("already there")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(db.write, put("gate"), deadline=within(10)))
            await gate.wait_entered()
            outcomes = await _queue_in_order(
                nursery,
                db,
                {
                    "ok1": (put("ok1"), within(10)),
                    "bug": (half_then_raise, within(10)),
                    "dup": (put("ok1"), within(10)),  # primary key violation
                    "conflict": (conflict, within(10)),
                    "ok2": (put("ok2"), within(10)),
                },
            )
            gate.release()
        assert type(outcomes["bug"]) is ValueError  # passes through unchanged
        assert type(outcomes["conflict"]) is Conflict
        assert type(outcomes["dup"]) is StorageError
        assert isinstance(outcomes["dup"].__cause__, sqlcipher3.IntegrityError)
        assert outcomes["ok1"] is None and outcomes["ok2"] is None
        assert await db.read(keys_in, deadline=within(5)) == {"gate", "ok1", "ok2"}
        assert db.stats().batches_committed == 2  # the five jobs shared one batch
    finally:
        db.close()


def _counting(fn: Callable[[Any], Any], calls: list[str], name: str) -> Callable[[Any], Any]:
    def wrapped(conn: Any) -> Any:
        calls.append(name)
        return fn(conn)

    return wrapped


async def test_interrupted_runaway_write_keeps_the_rest_of_its_batch(
    make_settings: Callable[..., StorageSettings],
) -> None:
    """SQLite rolls back the whole transaction when a write is interrupted: the jobs before it
    (never acknowledged) are run again, the ones after it run normally."""
    gate = Gate("write")
    db = Database.open(make_settings(fault_hook=gate))
    calls: list[str] = []
    try:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(db.write, put("gate"), deadline=within(10)))
                await gate.wait_entered()
                outcomes = await _queue_in_order(
                    nursery,
                    db,
                    {
                        "x1": (_counting(put("x1"), calls, "x1"), within(10)),
                        "runaway": (
                            _counting(lambda c: c.execute(RUNAWAY_INSERT), calls, "runaway"),
                            within(0.5),
                        ),
                        "x2": (_counting(put("x2"), calls, "x2"), within(10)),
                    },
                )
                gate.release()
        assert isinstance(outcomes["runaway"], BudgetExceeded)
        assert outcomes["runaway"].phase == "storage"
        assert outcomes["x1"] is None and outcomes["x2"] is None
        assert calls == ["x1", "runaway", "x1", "x2"]  # x1 was re-run after the rollback
        assert await db.read(keys_in, deadline=within(5)) == {"gate", "x1", "x2"}
        # The write connection is still fine.
        await db.write(put("after"), deadline=within(5))
    finally:
        db.close()


async def test_storage_full_keeps_the_rest_of_its_batch(
    make_settings: Callable[..., StorageSettings],
) -> None:
    gate = Gate("write")
    db = Database.open(make_settings(fault_hook=gate))

    def limit_size(conn: Any) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 20}")

    calls: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(db.write, limit_size, deadline=within(10)))
            await gate.wait_entered()
            outcomes = await _queue_in_order(
                nursery,
                db,
                {
                    "x1": (_counting(put("x1"), calls, "x1"), within(10)),
                    "big": (put("big", "x" * 1_000_000), within(10)),
                    "x2": (_counting(put("x2"), calls, "x2"), within(10)),
                },
            )
            gate.release()
        assert isinstance(outcomes["big"], StorageFull)
        assert outcomes["x1"] is None and outcomes["x2"] is None
        assert calls == ["x1", "x1", "x2"]
        assert await db.read(keys_in, deadline=within(5)) == {"x1", "x2"}
    finally:
        db.close()


async def test_job_whose_deadline_passes_in_the_queue_never_runs(
    make_settings: Callable[..., StorageSettings],
) -> None:
    gate = Gate("write")
    db = Database.open(make_settings(fault_hook=gate))
    ran: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(db.write, put("gate"), deadline=within(10)))
            await gate.wait_entered()
            with pytest.raises(BudgetExceeded):
                await db.write(_counting(put("late"), ran, "late"), deadline=within(0.05))
            gate.release()
        await db.write(put("after"), deadline=within(5))  # FIFO: "late" has been dequeued
        assert ran == []
        assert await db.read(keys_in, deadline=within(5)) == {"gate", "after"}
    finally:
        db.close()


async def test_cancelled_caller_job_never_runs(
    make_settings: Callable[..., StorageSettings],
) -> None:
    gate = Gate("write")
    db = Database.open(make_settings(fault_hook=gate))
    ran: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(db.write, put("gate"), deadline=within(10)))
            await gate.wait_entered()
            with trio.move_on_after(0.05) as scope:
                await db.write(_counting(put("cancelled"), ran, "cancelled"), deadline=within(30))
            assert scope.cancelled_caught
            gate.release()
        await db.write(put("after"), deadline=within(5))
        assert ran == []
        assert await db.read(keys_in, deadline=within(5)) == {"gate", "after"}
    finally:
        db.close()


async def test_deadline_already_passed_runs_nothing(db: Database) -> None:
    ran: list[str] = []
    with pytest.raises(BudgetExceeded):
        await db.write(_counting(put("x"), ran, "x"), deadline=trio.current_time() - 1)
    assert ran == []
    assert db.stats().writer_queue_depth == 0


async def test_failed_commit_fails_the_job_and_keeps_nothing(
    make_settings: Callable[..., StorageSettings],
) -> None:
    db = Database.open(make_settings(migrations_dir=None))  # the core schema: a deferred FK
    try:

        def dangling(conn: Any) -> None:
            conn.execute(
                "INSERT INTO apps VALUES ('blog', 'now', 42)"
            )  # no deploy 42: COMMIT fails

        with pytest.raises(StorageError, match="FOREIGN KEY"):
            await db.write(dangling, deadline=within(5))
        assert (
            await db.read(lambda c: c.execute("SELECT * FROM apps").fetchall(), deadline=within(5))
            == []
        )
        assert db.stats().writes_committed == 0
    finally:
        db.close()


async def test_failed_commit_is_isolated_to_the_guilty_job(
    make_settings: Callable[..., StorageSettings],
) -> None:
    gate = Gate("write")
    db = Database.open(make_settings(migrations_dir=None, fault_hook=gate))

    def app(name: str, deploy_id: int | None) -> Callable[[Any], None]:
        def fn(conn: Any) -> None:
            conn.execute("INSERT INTO apps VALUES (?, 'now', ?)", (name, deploy_id))

        return fn

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(db.write, app("gate", None), deadline=within(10)))
            await gate.wait_entered()
            outcomes = await _queue_in_order(
                nursery,
                db,
                {
                    "a": (app("a", None), within(10)),
                    "dangling": (app("dangling", 42), within(10)),
                    "b": (app("b", None), within(10)),
                },
            )
            gate.release()
        assert isinstance(outcomes["dangling"], StorageError)
        assert outcomes["a"] is None and outcomes["b"] is None
        names = await db.read(
            lambda c: {r[0] for r in c.execute("SELECT name FROM apps").fetchall()},
            deadline=within(5),
        )
        assert names == {"gate", "a", "b"}
    finally:
        db.close()


async def test_locked_database_is_storage_busy_then_recovers(
    make_settings: Callable[..., StorageSettings],
) -> None:
    settings = make_settings(busy_timeout_ms=50)
    db = Database.open(settings)
    other = open_connection(settings.path, settings.key, busy_timeout_ms=50)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StorageBusy):
            await db.write(put("blocked"), deadline=within(5))
        other.execute("ROLLBACK")
        await db.write(put("after"), deadline=within(5))
        assert await db.read(keys_in, deadline=within(5)) == {"after"}
    finally:
        other.close()
        db.close()


async def test_fault_hook_error_fails_only_that_job(
    make_settings: Callable[..., StorageSettings],
) -> None:
    def hook(kind: str, _job: Any = None) -> None:
        if kind == "write" and failures:
            raise failures.pop()

    failures = [sqlcipher3.OperationalError("disk I/O error")]
    db = Database.open(make_settings(fault_hook=hook))
    try:
        with pytest.raises(StorageError, match="disk I/O error"):
            await db.write(put("a"), deadline=within(5))
        await db.write(put("b"), deadline=within(5))
        assert await db.read(keys_in, deadline=within(5)) == {"b"}
    finally:
        db.close()
