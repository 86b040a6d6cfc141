"""Shared fixtures for the storage tests: a key, a tiny test schema, an open Database."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from fazt.storage import Database, StorageSettings

TEST_SCHEMA = "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);\n"


def storage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fazt-storage-")]


@pytest.fixture(autouse=True)
def no_leaked_storage_threads() -> Iterator[None]:
    """Every test must leave no storage thread behind (checked after all other teardown)."""
    assert storage_threads() == []
    yield
    assert storage_threads() == []


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_kv.sql").write_text(TEST_SCHEMA)
    return directory


@pytest.fixture
def make_settings(
    tmp_path: Path, key: bytes, migrations_dir: Path
) -> Callable[..., StorageSettings]:
    def make(**overrides: object) -> StorageSettings:
        values: dict[str, object] = {
            "path": tmp_path / "fazt.db",
            "key": key,
            "readers": 2,
            "migrations_dir": migrations_dir,
        }
        values.update(overrides)
        return StorageSettings(**values)  # type: ignore[arg-type]  # test helper

    return make


@pytest.fixture
def db(make_settings: Callable[..., StorageSettings]) -> Iterator[Database]:
    database = Database.open(make_settings())
    yield database
    database.close()


def within(seconds: float) -> float:
    """An absolute trio deadline ``seconds`` from now."""
    return trio.current_time() + seconds


def put(k: str, v: str = "x") -> Callable[[Any], None]:
    """A write fn inserting one kv row."""

    def fn(conn: Any) -> None:
        conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (k, v))

    return fn


def keys_in(conn: Any) -> set[str]:
    return {row[0] for row in conn.execute("SELECT k FROM kv").fetchall()}


async def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    """Wait for a condition that has no event of its own (checked every millisecond)."""
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.001)


class Gate:
    """A fault hook that blocks the first job of ``kind`` until ``release()``.

    ``wait_entered`` returns once a worker thread is blocked in the hook, so a test can queue
    more jobs behind it knowing exactly where they will land.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entered = threading.Event()
        self._released = threading.Event()
        self._used = False
        self._lock = threading.Lock()

    def __call__(self, kind: str, _job: Any = None) -> None:
        if kind != self.kind:
            return
        with self._lock:
            if self._used:
                return
            self._used = True
        self._entered.set()
        if not self._released.wait(10):
            raise RuntimeError("gate never released")

    async def wait_entered(self) -> None:
        await trio.to_thread.run_sync(self._entered.wait, 5)
        assert self._entered.is_set()

    def release(self) -> None:
        self._released.set()
