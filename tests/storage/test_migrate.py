"""Migrations: order, records, atomic failure, tamper/downgrade refusal, the SQL splitter."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fazt.errors import StorageError
from fazt.storage import Database, StorageSettings, open_connection
from fazt.storage._migrate import apply_migrations, packaged_migrations_dir, split_sql

from .conftest import within


@pytest.fixture
def conn(tmp_path: Path, key: bytes) -> Any:
    connection = open_connection(tmp_path / "m.db", key, busy_timeout_ms=1000)
    yield connection
    connection.close()


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def _tables(conn: Any) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def _records(conn: Any) -> list[tuple[int, str, str, str]]:
    return conn.execute(
        "SELECT version, name, sha256, applied_at FROM schema_migrations ORDER BY version"
    ).fetchall()


def test_applied_in_numeric_order_and_recorded(conn: Any, tmp_path: Path) -> None:
    files = {
        "0010_c.sql": "INSERT INTO log VALUES ('c');",
        "0002_b.sql": "INSERT INTO log VALUES ('b');",
        "0001_a.sql": "CREATE TABLE log (step TEXT);",
    }
    directory = _write(tmp_path / "mig", files)
    (directory / "README.md").write_text("not a migration")
    assert apply_migrations(conn, directory) == [1, 2, 10]
    assert conn.execute("SELECT step FROM log ORDER BY rowid").fetchall() == [("b",), ("c",)]
    records = _records(conn)
    assert [(v, n) for v, n, _, _ in records] == [
        (1, "0001_a.sql"),
        (2, "0002_b.sql"),
        (10, "0010_c.sql"),
    ]
    for _, name, sha, applied_at in records:
        assert sha == hashlib.sha256(files[name].encode()).hexdigest()
        assert datetime.fromisoformat(applied_at).tzinfo is not None
    # A second start applies nothing and changes nothing.
    assert apply_migrations(conn, directory) == []
    assert _records(conn) == records


def test_failing_migration_rolls_back_completely(conn: Any, tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "mig",
        {
            "0001_ok.sql": "CREATE TABLE a (x);",
            "0002_bad.sql": (
                "CREATE TABLE b (x);\nINSERT INTO a VALUES (1);\nINSERT INTO nope VALUES (1);"
            ),
        },
    )
    with pytest.raises(StorageError, match=r"0002_bad\.sql.*no such table: nope"):
        apply_migrations(conn, directory)
    assert not conn.in_transaction
    assert _tables(conn) == {"a", "schema_migrations"}
    assert conn.execute("SELECT count(*) FROM a").fetchone() == (0,)
    assert [row[0] for row in _records(conn)] == [1]
    # Fixed, it applies on the next start.
    (directory / "0002_bad.sql").write_text("CREATE TABLE b (x);")
    assert apply_migrations(conn, directory) == [2]


def test_edited_applied_migration_refuses_to_start(conn: Any, tmp_path: Path) -> None:
    directory = _write(tmp_path / "mig", {"0001_a.sql": "CREATE TABLE a (x);"})
    apply_migrations(conn, directory)
    (directory / "0001_a.sql").write_text("CREATE TABLE a (x, y);")
    with pytest.raises(StorageError, match=r"0001_a\.sql was changed after it was applied"):
        apply_migrations(conn, directory)


def test_crlf_checkout_is_not_an_edit(conn: Any, tmp_path: Path) -> None:
    directory = _write(tmp_path / "mig", {"0001_a.sql": "CREATE TABLE a (x);\nSELECT 1;\n"})
    apply_migrations(conn, directory)
    (directory / "0001_a.sql").write_bytes(b"CREATE TABLE a (x);\r\nSELECT 1;\r\n")
    assert apply_migrations(conn, directory) == []


def test_database_from_a_newer_fazt_refuses_to_start(conn: Any, tmp_path: Path) -> None:
    new = _write(tmp_path / "new", {"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;"})
    apply_migrations(conn, new)
    old = _write(tmp_path / "old", {"0001_a.sql": "SELECT 1;"})
    with pytest.raises(StorageError, match=r"newer fazt \(migration 0002"):
        apply_migrations(conn, old)


def test_missing_applied_migration_file_refuses(conn: Any, tmp_path: Path) -> None:
    apply_migrations(conn, _write(tmp_path / "m1", {"0001_a.sql": "SELECT 1;", "0002_b.sql": ";"}))
    with pytest.raises(StorageError, match=r"0001_a\.sql is missing"):
        apply_migrations(conn, _write(tmp_path / "m2", {"0002_b.sql": ";"}))


def test_unapplied_migration_older_than_applied_ones_refuses(conn: Any, tmp_path: Path) -> None:
    directory = _write(tmp_path / "mig", {"0001_a.sql": "SELECT 1;", "0003_c.sql": "SELECT 3;"})
    apply_migrations(conn, directory)
    (directory / "0002_b.sql").write_text("CREATE TABLE late (x);")
    with pytest.raises(StorageError, match=r"0002_b\.sql was never applied"):
        apply_migrations(conn, directory)
    assert "late" not in _tables(conn)


@pytest.mark.parametrize("name", ["1_a.sql", "0001-a.sql", "0001_A.sql", "00001_a.sql"])
def test_badly_named_sql_file_refuses(conn: Any, tmp_path: Path, name: str) -> None:
    with pytest.raises(StorageError, match=r"is not named NNNN_name\.sql"):
        apply_migrations(conn, _write(tmp_path / "mig", {name: "SELECT 1;"}))


def test_duplicate_version_refuses(conn: Any, tmp_path: Path) -> None:
    files = {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}
    with pytest.raises(StorageError, match="have the same version"):
        apply_migrations(conn, _write(tmp_path / "mig", files))


def test_trigger_with_semicolons_in_body_and_strings(conn: Any, tmp_path: Path) -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT);
    CREATE TABLE audit (msg TEXT);
    /* block; comment */
    CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
        INSERT INTO audit VALUES ('inserted; ' || new.x);
        INSERT INTO audit VALUES ('second;statement');
    END;
    INSERT INTO t VALUES ('it''s; fine')
    """
    apply_migrations(conn, _write(tmp_path / "mig", {"0001_t.sql": script}))
    assert conn.execute("SELECT msg FROM audit ORDER BY rowid").fetchall() == [
        ("inserted; it's; fine",),
        ("second;statement",),
    ]


def test_split_sql_rejects_an_incomplete_statement() -> None:
    with pytest.raises(StorageError, match="incomplete statement"):
        split_sql("CREATE TABLE a (x); CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;")


@given(st.lists(st.text(alphabet="ab;'\" -\n*/", max_size=12), max_size=6))
def test_split_sql_keeps_string_literals_intact(values: list[str]) -> None:
    literals = ["'" + value.replace("'", "''") + "'" for value in values]
    script = "\n".join(f"INSERT INTO t VALUES ({literal});" for literal in literals)
    assert split_sql(script) == [f"INSERT INTO t VALUES ({literal});" for literal in literals]


def test_packaged_core_schema_applies(make_settings: Callable[..., StorageSettings]) -> None:
    assert (packaged_migrations_dir() / "0001_core.sql").is_file()
    db = Database.open(make_settings(migrations_dir=None))
    db.close()
    conn = open_connection(make_settings().path, make_settings().key, busy_timeout_ms=100)
    try:
        assert {"apps", "deploys", "blobs", "files", "tokens"} <= _tables(conn)
        assert _records(conn)[0][:2] == (1, "0001_core.sql")
    finally:
        conn.close()


async def test_core_schema_foreign_keys(make_settings: Callable[..., StorageSettings]) -> None:
    db = Database.open(make_settings(migrations_dir=None))
    try:
        # apps -> deploys is deferred: an app may point at a deploy created later in the write.
        def create(conn: Any) -> None:
            conn.execute("INSERT INTO apps VALUES ('blog', 'now', 1)")
            conn.execute(
                "INSERT INTO deploys (id, app, created_at, file_count, total_bytes) "
                "VALUES (1, 'blog', 'now', 0, 0)"
            )

        await db.write(create, deadline=within(5))

        def orphan(conn: Any) -> None:
            conn.execute(
                "INSERT INTO deploys (app, created_at, file_count, total_bytes) "
                "VALUES ('ghost', 'now', 0, 0)"
            )

        with pytest.raises(StorageError, match="FOREIGN KEY"):
            await db.write(orphan, deadline=within(5))
        # ON DELETE CASCADE removes the app's deploys.
        await db.write(lambda conn: conn.execute("DELETE FROM apps"), deadline=within(5))
        count = await db.read(
            lambda c: c.execute("SELECT count(*) FROM deploys").fetchone()[0], deadline=within(5)
        )
        assert count == 0
    finally:
        db.close()
