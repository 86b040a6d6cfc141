"""Fixtures for the storage capabilities: a real encrypted database with two apps, a clock
tests move by hand, and the storage chaos seam."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from fazt.budget import Budget, BudgetPolicy
from fazt.capabilities import Call, Provider, RawJson
from fazt.storage import Database, StorageSettings

APP = "alpha"
OTHER = "beta"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


class Delay:
    """The storage chaos seam: sleep before each job while ``seconds`` is set."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, _kind: str, _job: Any = None) -> None:
        if self.seconds:
            time.sleep(self.seconds)


@pytest.fixture
def delay() -> Delay:
    return Delay()


@pytest.fixture
def db(tmp_path: Path, delay: Delay) -> Iterator[Database]:
    database = Database.open(StorageSettings(path=tmp_path / "fazt.db",
                                             key=secrets.token_bytes(32), readers=2,
                                             fault_hook=delay))
    try:
        def apps(conn: Any) -> None:
            for name in (APP, OTHER):
                conn.execute("INSERT INTO apps (name, created_at) VALUES (?, 'now')", (name,))

        trio.run(_write, database, apps)
        yield database
    finally:
        database.close()


async def _write(db: Database, fn: Any) -> Any:
    return await db.write(fn, deadline=trio.current_time() + 10)


@pytest.fixture
def clock() -> Clock:
    return Clock()




def caller(provider: Provider, *, app: str = APP, quota: int | None = None,
           user: str | None = None, request_s: float = 10.0) -> Any:
    """A function calling a provider's methods as JS would: call("set", "k", 1)."""
    methods = provider.methods

    async def call(method: str, *args: Any) -> Any:
        budget = Budget.start(BudgetPolicy(request_s=request_s, storage_cap_s=request_s))
        result = await methods[method](Call(app=app, budget=budget, user=user,
                                            quota_bytes=quota), list(args))
        return orjson.loads(bytes(result)) if isinstance(result, RawJson) else result

    return call
