"""The operator's SQL console (run_statement) on a real Database: reads on the query_only
readers, writes through the writer, and every trick to write (or reach another file) without
``write`` refused by SQLite itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from fazt.errors import BudgetExceeded, SqlError, SqlNotAllowed
from fazt.storage import Database, SqlResult, run_statement

from .conftest import put, within


async def read(db: Database, sql: str, *, max_rows: int = 100) -> SqlResult:
    return await db.read(lambda conn: run_statement(conn, sql, write=False, max_rows=max_rows),
                         deadline=within(5))


async def write(db: Database, sql: str) -> SqlResult:
    return await db.write(lambda conn: run_statement(conn, sql, write=True, max_rows=100),
                          deadline=within(5))


def rows_of(db_rows: list[Any]) -> set[str]:
    return {row[0] for row in db_rows}


async def keys(db: Database) -> set[str]:
    return rows_of((await read(db, "SELECT k FROM kv")).rows)


async def test_a_read_answers_columns_and_rows(db: Database) -> None:
    for k in ("a", "b", "c"):
        await db.write(put(k, k * 2), deadline=within(5))
    result = await read(db, "SELECT k, v, length(v) AS n FROM kv ORDER BY k")
    assert result.to_json() == {"columns": ["k", "v", "n"],
                                "rows": [["a", "aa", 2], ["b", "bb", 2], ["c", "cc", 2]],
                                "truncated": False, "changes": None}
    limited = await read(db, "SELECT k FROM kv ORDER BY k", max_rows=2)
    assert (limited.rows, limited.truncated) == ([["a"], ["b"]], True)
    blob = await read(db, "SELECT x'00ff10' AS b, zeroblob(1000) AS z")
    assert blob.rows[0][0] == {"$bytes": 3, "base64": "AP8Q"}
    assert blob.rows[0][1]["$bytes"] == 1000


@pytest.mark.parametrize("sql", [
    "INSERT INTO kv VALUES ('x', 'y')",
    "UPDATE kv SET v = 'z'",
    "DELETE FROM kv",
    "WITH doomed AS (SELECT k FROM kv) DELETE FROM kv WHERE k IN doomed",
    "WITH t(x) AS (VALUES (1)) INSERT INTO kv SELECT 'w', x FROM t",
    "REPLACE INTO kv VALUES ('a', 'b')",
    "INSERT INTO kv VALUES ('x', 'y') RETURNING k",
    "CREATE TABLE evil (x)",
    "CREATE TEMP TABLE evil (x)",
    "CREATE TRIGGER t AFTER INSERT ON kv BEGIN DELETE FROM kv; END",
    "CREATE VIEW v AS SELECT 1",
    "DROP TABLE kv",
    "ALTER TABLE kv ADD COLUMN z",
    "CREATE INDEX kv_v ON kv(v)",
    "REINDEX",
    "ANALYZE",
])
async def test_no_write_without_write(db: Database, sql: str) -> None:
    await db.write(put("a"), deadline=within(5))
    schema = await read(db, "SELECT type, name, sql FROM sqlite_schema ORDER BY name")
    with pytest.raises(SqlNotAllowed, match="not allowed: writes"):
        await read(db, sql)
    assert await keys(db) == {"a"}
    assert await read(db, "SELECT type, name, sql FROM sqlite_schema ORDER BY name") == schema


async def test_vacuum_cannot_run_inside_the_storage_layers_transaction(db: Database) -> None:
    for run in (read, write):
        with pytest.raises(SqlError, match="cannot VACUUM from within a transaction"):
            await run(db, "VACUUM")


@pytest.mark.parametrize("write_mode", [False, True], ids=["read", "write"])
@pytest.mark.parametrize(("sql", "what"), [
    ("ATTACH DATABASE '{path}' AS other", "ATTACH"),
    ("ATTACH DATABASE '{path}' AS other KEY ''", "ATTACH"),
    ("DETACH DATABASE main", "DETACH"),
    ("PRAGMA writable_schema = ON", "PRAGMA writable_schema"),
    ("PRAGMA writable_schema", "PRAGMA writable_schema"),
    ("PRAGMA key = 'x'", "PRAGMA key"),
    ("PRAGMA rekey = 'x'", "PRAGMA rekey"),
    ("PRAGMA cipher_version", "PRAGMA cipher_version"),
    ("PRAGMA query_only = OFF", "PRAGMA query_only"),
    ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode with a value"),
    ("PRAGMA user_version = 7", "PRAGMA user_version with a value"),
    ("PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA wal_checkpoint"),
    ("BEGIN", "transaction control"),
    ("COMMIT", "transaction control"),
    ("SAVEPOINT s", "savepoints"),
    ("SELECT load_extension('/tmp/x.so')", "the function load_extension()"),
    ("SELECT sqlcipher_export('other')", "the function sqlcipher_export()"),
])
async def test_what_no_mode_allows(db: Database, tmp_path: Path, sql: str, what: str,
                                   write_mode: bool) -> None:
    target = tmp_path / "copy.db"
    statement = sql.format(path=target)
    with pytest.raises(SqlNotAllowed, match=f"not allowed: {what}"):
        if write_mode:
            await write(db, statement)
        else:
            await read(db, statement)
    assert not target.exists()
    # the connection is as it was: still keyed, still answering
    assert (await read(db, "SELECT count(*) FROM kv")).rows == [[0]]


@pytest.mark.parametrize("sql", [
    "SELECT 1; DELETE FROM kv",
    "SELECT 1; SELECT 2",
    "DELETE FROM kv; SELECT 1",
])
async def test_chained_statements_are_refused(db: Database, sql: str) -> None:
    await db.write(put("a"), deadline=within(5))
    with pytest.raises(SqlError, match="one statement at a time"):
        await write(db, sql)
    # reading, a first statement that writes is refused even before the second is seen
    with pytest.raises((SqlError, SqlNotAllowed)):
        await read(db, sql)
    assert await keys(db) == {"a"}


@pytest.mark.parametrize("sql", [
    "PRAGMA table_info(kv)", "PRAGMA integrity_check", "PRAGMA page_count",
    "PRAGMA user_version", "SELECT * FROM pragma_table_info('kv')", "PRAGMA index_list(kv)",
    "PRAGMA journal_mode", "PRAGMA foreign_key_check",
])
async def test_read_only_pragmas_answer(db: Database, sql: str) -> None:
    result = await read(db, sql)
    assert result.columns


async def test_writes_with_write(db: Database) -> None:
    await db.write(put("a"), deadline=within(5))
    assert (await write(db, "INSERT INTO kv VALUES ('b', 'x'), ('c', 'y')")).changes == 2
    assert (await write(db, "UPDATE kv SET v = 'z' WHERE k != 'a'")).changes == 2
    returned = await write(db, "DELETE FROM kv WHERE k = 'c' RETURNING k")
    assert (returned.rows, returned.changes) == ([["c"]], 1)
    assert await keys(db) == {"a", "b"}


async def test_errors_say_what_sqlite_said(db: Database) -> None:
    with pytest.raises(SqlError, match="no such table: nope"):
        await read(db, "SELECT * FROM nope")
    with pytest.raises(SqlError, match="syntax error"):
        await read(db, "SELEKT 1")
    await db.write(put("a"), deadline=within(5))
    with pytest.raises(SqlError, match="UNIQUE constraint failed"):
        await write(db, "INSERT INTO kv VALUES ('a', 'again')")
    with pytest.raises(SqlError, match="give one SQL statement"):
        await read(db, "   ")


async def test_a_long_query_is_interrupted_at_its_deadline(db: Database) -> None:
    sql = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
           "SELECT count(*) FROM n")
    started = trio.current_time()
    with pytest.raises(BudgetExceeded):
        await db.read(lambda conn: run_statement(conn, sql, write=False, max_rows=10),
                      deadline=within(0.3))
    assert trio.current_time() - started < 2
    assert (await read(db, "SELECT 1")).rows == [[1]]      # the reader is usable again
