"""backup_database: online, consistent, encrypted, verified, atomic, never overwrites."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from fazt.errors import StorageError, WrongKey
from fazt.storage import BackupResult, Database, StorageSettings, backup_database, open_connection

from .conftest import keys_in, put, wait_until, within

CANARY = "backup-canary-5d1e0b77"


async def test_backup_while_writing(
    make_settings: Callable[..., StorageSettings], tmp_path: Path
) -> None:
    settings = make_settings()
    db = Database.open(settings)
    dest_dir = tmp_path / "backups"
    dest_dir.mkdir()
    dest = dest_dir / "fazt-backup.db"
    try:
        await db.write(put(CANARY, CANARY * 10), deadline=within(5))
        acknowledged: list[str] = []
        stop = trio.Event()

        async def keep_writing() -> None:
            i = 0
            while not stop.is_set():
                await db.write(put(f"w{i}"), deadline=within(5))
                acknowledged.append(f"w{i}")
                i += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_writing)
            await wait_until(lambda: len(acknowledged) >= 20)  # the writer is going
            before = set(acknowledged)
            result = await trio.to_thread.run_sync(
                lambda: backup_database(db_path=settings.path, key=settings.key, dest=dest)
            )
            stop.set()
    finally:
        db.close()

    assert isinstance(result, BackupResult)
    assert result.path == dest
    assert result.bytes == dest.stat().st_size > 0
    assert result.duration_s >= 0
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert os.listdir(dest_dir) == [dest.name]  # no temporary file left behind
    data = dest.read_bytes()
    assert CANARY.encode() not in data
    assert not data.startswith(b"SQLite format 3")
    copy = open_connection(dest, settings.key, busy_timeout_ms=100)
    try:
        rows = keys_in(copy)
    finally:
        copy.close()
    assert {CANARY, *before} <= rows
    with pytest.raises(WrongKey):
        open_connection(dest, b"\x07" * 32, busy_timeout_ms=100)


def test_backup_refuses_to_overwrite(
    make_settings: Callable[..., StorageSettings], tmp_path: Path
) -> None:
    settings = make_settings()
    Database.open(settings).close()
    dest = tmp_path / "existing.db"
    dest.write_bytes(b"precious")
    with pytest.raises(StorageError, match="already exists"):
        backup_database(db_path=settings.path, key=settings.key, dest=dest)
    assert dest.read_bytes() == b"precious"


def test_backup_refuses_missing_directory_and_database(
    make_settings: Callable[..., StorageSettings], tmp_path: Path
) -> None:
    settings = make_settings()
    with pytest.raises(StorageError, match="no database at"):
        backup_database(db_path=settings.path, key=settings.key, dest=tmp_path / "b.db")
    Database.open(settings).close()
    with pytest.raises(StorageError, match="does not exist"):
        backup_database(db_path=settings.path, key=settings.key, dest=tmp_path / "no" / "b.db")
    assert not (tmp_path / "b.db").exists()


def test_backup_with_wrong_key_leaves_nothing(
    make_settings: Callable[..., StorageSettings], tmp_path: Path
) -> None:
    settings = make_settings()
    Database.open(settings).close()
    dest_dir = tmp_path / "out"
    dest_dir.mkdir()
    with pytest.raises(WrongKey):
        backup_database(db_path=settings.path, key=b"\x09" * 32, dest=dest_dir / "b.db")
    assert os.listdir(dest_dir) == []
