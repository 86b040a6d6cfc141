"""The operator's SQL console (``fazt sql``, ``POST /api/sql``): one statement at a time.

Read-only unless the operator asks to write, and that is enforced by SQLite, not by reading
the statement: a read runs on a ``query_only`` connection (a reader of the pool, or a local
read-only one), and an authorizer, installed for the statement alone, refuses

* in every mode: ATTACH and DETACH (no copy of the database elsewhere, no other file),
  transaction control and savepoints (the storage layer owns the transaction), a PRAGMA that
  is not a read-only one or that sets a value (``writable_schema``, ``key``, ``cipher_*`` ...),
  and the functions ``load_extension``, ``sqlcipher_export`` and ``fts3_tokenizer``;
* without ``write``: every action that changes the database (INSERT, UPDATE, DELETE, CREATE,
  DROP, ALTER, REINDEX, ANALYZE), however it is spelled (a CTE before a DELETE, a trigger).

One statement: ``;``-chained statements are refused by SQLite's own parser (the driver's
``execute`` takes one). Results are bounded: at most ``max_rows`` rows, and about
``MAX_RESULT_BYTES`` of values; a blob is shown as its size and first bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import sqlcipher3

from fazt.errors import SqlError, SqlNotAllowed, StorageError

from ._errors import translate_sqlite_error

MAX_RESULT_BYTES = 4 * 1024 * 1024
BLOB_PREVIEW = 64

# PRAGMAs that only read. Those in _WITH_ARGUMENT read about the table (or check) their
# argument names; the others set a value when given one, which is refused.
_WITH_ARGUMENT = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check"})
_READ_ONLY = _WITH_ARGUMENT | frozenset({
    "page_count", "page_size", "freelist_count", "user_version", "application_id",
    "schema_version", "data_version", "journal_mode", "encoding", "compile_options",
    "database_list", "collation_list", "function_list", "module_list", "pragma_list",
    "foreign_keys", "busy_timeout", "synchronous", "cache_size", "auto_vacuum"})
_REFUSED_FUNCTIONS = frozenset({"load_extension", "sqlcipher_export", "fts3_tokenizer"})
_ALWAYS_REFUSED = {
    sqlcipher3.SQLITE_ATTACH: "ATTACH", sqlcipher3.SQLITE_DETACH: "DETACH",
    sqlcipher3.SQLITE_TRANSACTION: "transaction control",
    sqlcipher3.SQLITE_SAVEPOINT: "savepoints"}
_WRITES = frozenset({
    sqlcipher3.SQLITE_INSERT, sqlcipher3.SQLITE_UPDATE, sqlcipher3.SQLITE_DELETE,
    sqlcipher3.SQLITE_CREATE_INDEX, sqlcipher3.SQLITE_CREATE_TABLE,
    sqlcipher3.SQLITE_CREATE_TEMP_INDEX, sqlcipher3.SQLITE_CREATE_TEMP_TABLE,
    sqlcipher3.SQLITE_CREATE_TEMP_TRIGGER, sqlcipher3.SQLITE_CREATE_TEMP_VIEW,
    sqlcipher3.SQLITE_CREATE_TRIGGER, sqlcipher3.SQLITE_CREATE_VIEW,
    sqlcipher3.SQLITE_CREATE_VTABLE, sqlcipher3.SQLITE_DROP_INDEX, sqlcipher3.SQLITE_DROP_TABLE,
    sqlcipher3.SQLITE_DROP_TEMP_INDEX, sqlcipher3.SQLITE_DROP_TEMP_TABLE,
    sqlcipher3.SQLITE_DROP_TEMP_TRIGGER, sqlcipher3.SQLITE_DROP_TEMP_VIEW,
    sqlcipher3.SQLITE_DROP_TRIGGER, sqlcipher3.SQLITE_DROP_VIEW, sqlcipher3.SQLITE_DROP_VTABLE,
    sqlcipher3.SQLITE_ALTER_TABLE, sqlcipher3.SQLITE_REINDEX, sqlcipher3.SQLITE_ANALYZE})


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool             # more rows (or bytes) than the limits let through
    changes: int | None         # rows a write changed (None for a read)

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "truncated": self.truncated,
                "changes": self.changes}


def run_statement(conn: Any, sql: str, *, write: bool, max_rows: int) -> SqlResult:
    """Run one statement on ``conn`` (inside the caller's transaction); see the module
    docstring. Raises SqlNotAllowed for what the authorizer refuses, SqlError otherwise."""
    if not isinstance(sql, str) or not sql.strip():
        raise SqlError("give one SQL statement")
    refused: list[str] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None,
                  _source: str | None) -> int:
        why = _refusal(action, arg1, arg2, write=write)
        if why is None:
            return int(sqlcipher3.SQLITE_OK)
        refused.append(why)
        return int(sqlcipher3.SQLITE_DENY)

    conn.set_authorizer(authorize)
    try:
        before = conn.total_changes
        cursor = conn.execute(sql)
        columns = [d[0] for d in cursor.description or ()]
        rows: list[list[Any]] = []
        size, truncated = 0, False
        for row in cursor:
            if len(rows) >= max_rows or size > MAX_RESULT_BYTES:
                truncated = True
                break
            shown = [_value(v) for v in row]
            size += sum(len(v) if isinstance(v, str) else 16 for v in shown)
            rows.append(shown)
        changes = conn.total_changes - before if write else None
    except (sqlcipher3.Warning, sqlcipher3.Error) as exc:
        text = str(exc)
        if refused:
            raise SqlNotAllowed(_not_allowed(refused[0], write=write)) from None
        if "readonly" in text:      # query_only: "attempt to write a readonly database"
            raise SqlNotAllowed(_not_allowed("writes", write=write)) from None
        if "one statement at a time" in text:
            raise SqlError("one statement at a time (no ';' between statements)") from None
        translated = translate_sqlite_error(exc) if isinstance(exc, sqlcipher3.Error) else exc
        if type(translated) is not StorageError:
            raise translated from exc       # interrupted at the deadline, busy, full, corrupt
        raise SqlError(text) from None      # the statement's own error: syntax, constraint ...
    finally:
        conn.set_authorizer(None)
    return SqlResult(columns=columns, rows=rows, truncated=truncated, changes=changes)


def _not_allowed(what: str, *, write: bool) -> str:
    hint = " (read-only: pass --write, or \"write\": true, to change the database)" \
        if what == "writes" and not write else ""
    return f"not allowed: {what}{hint}"


def _refusal(action: int, arg1: str | None, arg2: str | None, *, write: bool) -> str | None:
    """Why the authorizer refuses ``action``, or None."""
    if action in _ALWAYS_REFUSED:
        return _ALWAYS_REFUSED[action]
    if action == sqlcipher3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name not in _READ_ONLY or (arg2 is not None and name not in _WITH_ARGUMENT):
            return f"PRAGMA {name}" + (" with a value" if arg2 is not None else "")
        return None
    if action == sqlcipher3.SQLITE_FUNCTION and (arg2 or "").lower() in _REFUSED_FUNCTIONS:
        return f"the function {arg2}()"
    if not write and action in _WRITES:
        return "writes"
    return None


def _value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": len(value),
                "base64": base64.b64encode(value[:BLOB_PREVIEW]).decode("ascii")}
    return value
