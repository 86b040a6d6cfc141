"""A write whose caller gave up may still commit: the caches must learn of it when it does."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from fazt.auth import TokenStore
from fazt.hosting import ArchiveContents, ArchiveFile, ArchiveLimits, Hosting
from fazt.storage import Database, StorageSettings


class WriterGates:
    """Fault hook: once armed, hold the writer before the 1st write job and the 3rd."""

    def __init__(self) -> None:
        self.armed = False
        self.calls = 0
        self.first_entered = threading.Event()
        self.release_first = threading.Event()
        self.third_entered = threading.Event()
        self.release_third = threading.Event()

    def __call__(self, kind: str, _job: Any = None) -> None:
        if kind != "write" or not self.armed:
            return
        self.calls += 1
        if self.calls == 1:
            self.first_entered.set()
            self.release_first.wait(10)
        elif self.calls == 3:
            self.third_entered.set()
            self.release_third.wait(10)


@pytest.fixture
def gated_db(tmp_path: Path):
    gates = WriterGates()
    db = Database.open(StorageSettings(path=tmp_path / "fazt.db", key=secrets.token_bytes(32),
                                       readers=2, fault_hook=gates))
    try:
        yield db, gates
    finally:
        gates.release_first.set()
        gates.release_third.set()
        db.close()


async def late_commit(db: Database, gates: WriterGates, change: Callable[[], Awaitable[object]],
                      while_uncommitted: Callable[[], Awaitable[None]]) -> None:
    """Run ``change`` so that its caller leaves after its write ran but before the COMMIT.

    Job 1 holds the writer; the change (job 2) and job 3 then form one batch; the writer is
    held again before job 3, i.e. after the change ran; the change's caller is cancelled;
    ``while_uncommitted`` runs; then the batch commits.
    """
    gates.armed = True

    async def noop_write() -> None:
        await db.write(lambda conn: None, deadline=trio.current_time() + 20)

    scope = trio.CancelScope()

    async def abandoned_change() -> None:
        with scope:
            await change()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(noop_write)
        await trio.to_thread.run_sync(gates.first_entered.wait)
        nursery.start_soon(abandoned_change)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(noop_write)
        await trio.testing.wait_all_tasks_blocked()
        gates.release_first.set()
        await trio.to_thread.run_sync(gates.third_entered.wait)
        scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        await while_uncommitted()
        gates.release_third.set()
    assert scope.cancelled_caught, "the change's caller really gave up"


async def test_removed_app_is_not_served_after_a_late_commit(gated_db) -> None:
    db, gates = gated_db
    hosting = Hosting(db, limits=ArchiveLimits(), history=5, cache_bytes=1 << 20,
                      op_timeout_s=5, deploy_timeout_s=5)
    files = (ArchiveFile("index.html", b"v1"),)
    await hosting.deploy_contents("app", ArchiveContents(files=files, skipped=()), source="t")

    async def still_there() -> None:  # not committed yet: this read caches the old state
        assert await hosting.site("app") is not None

    await late_commit(db, gates, lambda: hosting.remove("app"), still_there)
    assert not await hosting.app_exists("app"), "the abandoned remove committed"
    assert await hosting.site("app") is None, "the cache learned of the late commit"


async def test_revoked_token_stops_working_after_a_late_commit(gated_db) -> None:
    db, gates = gated_db
    tokens = TokenStore(db, op_timeout_s=5)
    info, secret = await tokens.create("ci")
    assert await tokens.verify(secret) == info.id  # records last use now, not mid-test

    async def still_valid() -> None:
        assert await tokens.verify(secret) == info.id

    await late_commit(db, gates, lambda: tokens.revoke(info.id), still_valid)
    assert (await tokens.list())[0].revoked_at is not None, "the abandoned revoke committed"
    assert await tokens.verify(secret) is None, "the cache learned of the late commit"
