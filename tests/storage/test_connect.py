"""open_connection and Database.open: key, encryption at rest, file modes, pragmas."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from fazt.errors import StorageError, WrongKey
from fazt.storage import Database, StorageSettings, open_connection

from .conftest import within


def _fingerprint(directory: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in sorted(os.listdir(directory))
        if (directory / name).is_file()
    }


async def test_canary_never_reaches_the_files_in_plaintext(
    db: Database, make_settings: Callable[..., StorageSettings]
) -> None:
    canary = "fazt-canary-7f3a9c1e-plaintext"
    await db.write(
        lambda conn: conn.execute("INSERT INTO kv VALUES (?, ?)", (canary, canary * 20)),
        deadline=within(5),
    )
    path = make_settings().path
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 0  # the row is in the WAL right now
    for file in (path, wal):
        data = file.read_bytes()
        assert canary.encode() not in data
        assert not data.startswith(b"SQLite format 3")
    db.close()
    data = path.read_bytes()  # after the final checkpoint the row is in the main file
    assert canary.encode() not in data
    assert not data.startswith(b"SQLite format 3")


async def test_database_files_are_private(
    db: Database, make_settings: Callable[..., StorageSettings]
) -> None:
    await db.write(
        lambda conn: conn.execute("INSERT INTO kv VALUES ('a', 'b')"), deadline=within(5)
    )
    path = make_settings().path
    for suffix in ("", "-wal", "-shm"):
        mode = stat.S_IMODE(path.with_name(path.name + suffix).stat().st_mode)
        assert mode == 0o600, (suffix, oct(mode))


def test_loose_existing_database_mode_is_tightened(
    make_settings: Callable[..., StorageSettings],
) -> None:
    Database.open(make_settings()).close()
    path = make_settings().path
    path.chmod(0o644)
    Database.open(make_settings()).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wrong_key_raises_and_changes_nothing(
    make_settings: Callable[..., StorageSettings], tmp_path: Path
) -> None:
    Database.open(make_settings()).close()
    before = _fingerprint(tmp_path)
    with pytest.raises(WrongKey, match="the key does not open"):
        Database.open(make_settings(key=b"\x01" * 32))
    with pytest.raises(WrongKey):
        open_connection(make_settings().path, b"\x02" * 32, busy_timeout_ms=100, readonly=True)
    assert _fingerprint(tmp_path) == before


def test_plaintext_sqlite_file_is_refused_as_wrong_key(tmp_path: Path) -> None:
    import sqlite3

    plain = tmp_path / "plain.db"
    with sqlite3.connect(plain) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    before = plain.read_bytes()
    with pytest.raises(WrongKey):
        open_connection(plain, b"\x03" * 32, busy_timeout_ms=100)
    assert plain.read_bytes() == before


def test_wrong_key_prints_no_sqlcipher_noise(
    make_settings: Callable[..., StorageSettings],
) -> None:
    """In a fresh process (cipher_log_level is process-wide): stderr stays clean."""
    Database.open(make_settings()).close()
    code = (
        "import sys; from pathlib import Path; from fazt.storage import open_connection\n"
        "from fazt.errors import WrongKey\n"
        "try:\n"
        "    open_connection(Path(sys.argv[1]), b'\\x05' * 32, busy_timeout_ms=100)\n"
        "except WrongKey:\n"
        "    print('wrong-key')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(make_settings().path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "wrong-key"
    assert "hmac" not in result.stderr.lower()
    assert result.stderr == ""


def test_readonly_connection_never_creates_a_file(tmp_path: Path, key: bytes) -> None:
    with pytest.raises(StorageError, match="no database at"):
        open_connection(tmp_path / "missing.db", key, busy_timeout_ms=100, readonly=True)
    assert os.listdir(tmp_path) == []


def test_failed_writable_open_leaves_no_file(tmp_path: Path, key: bytes) -> None:
    missing_dir = tmp_path / "nope" / "fazt.db"
    with pytest.raises(StorageError):
        open_connection(missing_dir, key, busy_timeout_ms=100)
    assert os.listdir(tmp_path) == []


def _pragmas(conn: Any) -> dict[str, object]:
    return {
        name: conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "query_only")
    }


async def test_pragmas_on_the_writer_and_every_reader(
    make_settings: Callable[..., StorageSettings],
) -> None:
    readers = 3
    db = Database.open(make_settings(readers=readers, busy_timeout_ms=1234))
    try:
        expected = {
            "journal_mode": "wal",
            "synchronous": 2,
            "busy_timeout": 1234,
            "foreign_keys": 1,
        }
        assert await db.write(_pragmas, deadline=within(5)) == {**expected, "query_only": 0}
        # Hold every reader at a barrier so that each of the connections answers once.
        barrier = threading.Barrier(readers, timeout=5)
        seen: list[tuple[int, dict[str, object]]] = []

        def on_every_reader(conn: Any) -> None:
            barrier.wait()
            seen.append((id(conn), _pragmas(conn)))

        async with trio.open_nursery() as nursery:
            for _ in range(readers):
                nursery.start_soon(lambda: db.read(on_every_reader, deadline=within(5)))
        assert len({conn_id for conn_id, _ in seen}) == readers
        assert all(values == {**expected, "query_only": 1} for _, values in seen)
    finally:
        db.close()


async def test_readers_cannot_write(db: Database) -> None:
    with pytest.raises(StorageError, match="readonly"):
        await db.read(
            lambda conn: conn.execute("INSERT INTO kv VALUES ('a', 'b')"), deadline=within(5)
        )


def test_open_rejects_bad_settings(make_settings: Callable[..., StorageSettings]) -> None:
    from fazt.errors import ConfigError

    for overrides in ({"key": b"short"}, {"readers": 0}, {"batch_max": 0}, {"busy_timeout_ms": -1}):
        with pytest.raises(ConfigError):
            Database.open(make_settings(**overrides))
    assert not make_settings().path.exists()
