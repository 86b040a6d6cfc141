"""map_sqlite_errors / translate_sqlite_error: most specific first, cause kept."""

from __future__ import annotations

import pytest
import sqlcipher3

from fazt.errors import (
    BudgetExceeded,
    Conflict,
    StorageBusy,
    StorageCorrupt,
    StorageError,
    StorageFull,
)
from fazt.storage import map_sqlite_errors
from fazt.storage._errors import translate_sqlite_error


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (sqlcipher3.OperationalError("interrupted"), BudgetExceeded),
        (sqlcipher3.OperationalError("database is locked"), StorageBusy),
        (sqlcipher3.OperationalError("database table is locked"), StorageBusy),
        (sqlcipher3.OperationalError("database or disk is full"), StorageFull),
        (sqlcipher3.DatabaseError("file is not a database"), StorageCorrupt),
        (sqlcipher3.DatabaseError("database disk image is malformed"), StorageCorrupt),
        (sqlcipher3.IntegrityError("UNIQUE constraint failed: kv.k"), StorageError),
        (sqlcipher3.OperationalError("disk I/O error"), StorageError),
    ],
)
def test_sqlite_errors_are_translated(exc: sqlcipher3.Error, expected: type[Exception]) -> None:
    with pytest.raises(expected) as info, map_sqlite_errors():
        raise exc
    assert type(info.value) is expected
    assert info.value.__cause__ is exc
    if expected is BudgetExceeded:
        assert info.value.phase == "storage"  # type: ignore[attr-defined]
        assert info.value.code == "storage_timeout"  # type: ignore[attr-defined]


def test_error_code_decides_before_message() -> None:
    exc = sqlcipher3.OperationalError("some new wording")
    exc.sqlite_errorname = "SQLITE_BUSY_SNAPSHOT"
    assert type(translate_sqlite_error(exc)) is StorageBusy


@pytest.mark.parametrize("exc", [ValueError("app"), Conflict("taken"), KeyError("k")])
def test_other_exceptions_pass_through_unchanged(exc: Exception) -> None:
    with pytest.raises(type(exc)) as info, map_sqlite_errors():
        raise exc
    assert info.value is exc
    assert translate_sqlite_error(exc) is exc


def test_real_sqlite_error_codes_are_used() -> None:
    conn = sqlcipher3.connect(":memory:")
    conn.execute("CREATE TABLE t (x PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(StorageError) as info, map_sqlite_errors():
        conn.execute("INSERT INTO t VALUES (1)")
    assert "UNIQUE" in str(info.value)
    conn.close()
