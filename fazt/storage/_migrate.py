"""Schema migrations: plain SQL files applied in order, each in one transaction.

Files are named ``NNNN_name.sql`` (four digits). Each pending file runs inside one
``BEGIN IMMEDIATE`` ... ``COMMIT`` together with its row in ``schema_migrations``, so a migration
is applied completely or not at all. ``executescript()`` cannot be used: it commits implicitly
before running, so the script is split into statements here and executed one by one.

fazt refuses to start when the recorded history does not match the files: an applied migration
whose contents changed, a database migrated by a newer fazt, or a file older than the newest
applied one that was never applied.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources.abc import Traversable
from pathlib import Path

import sqlcipher3

from fazt.errors import StorageError

from ._connect import Connection

log = logging.getLogger("fazt.storage")

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9][a-z0-9_]*)\.sql")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str  # the file name, e.g. "0001_core.sql"
    sql: str
    sha256: str


def packaged_migrations_dir() -> Traversable:
    """The migrations shipped with fazt.

    A wheel ships them as ``fazt/migrations``; an editable install reads ``<repo>/migrations``.
    """
    packaged = importlib.resources.files("fazt") / "migrations"
    if packaged.is_dir():
        return packaged
    import fazt

    return Path(fazt.__file__).resolve().parent.parent / "migrations"


def load_migrations(directory: Traversable) -> list[Migration]:
    """Read every ``NNNN_name.sql`` file of ``directory``, sorted by version."""
    if not directory.is_dir():
        raise StorageError(f"migrations directory {directory} does not exist")
    found: dict[int, Migration] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            raise StorageError(
                f"migration file {entry.name} is not named NNNN_name.sql (e.g. 0002_users.sql)"
            )
        version = int(match.group(1))
        if version in found:
            raise StorageError(
                f"migrations {found[version].name} and {entry.name} have the same version"
            )
        # CRLF checkouts must not look like an edited migration.
        text = entry.read_bytes().replace(b"\r\n", b"\n")
        try:
            sql = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StorageError(f"migration file {entry.name} is not UTF-8") from exc
        found[version] = Migration(
            version=version, name=entry.name, sql=sql, sha256=hashlib.sha256(text).hexdigest()
        )
    return [found[version] for version in sorted(found)]


def split_sql(script: str) -> list[str]:
    """Split a script into complete statements.

    A semicolon ends a statement only where SQLite's own tokenizer agrees
    (``complete_statement``), so semicolons inside strings, comments and trigger bodies are kept.
    A trailing statement without a semicolon is accepted; an incomplete one (an unterminated
    string, a trigger without END) raises StorageError.
    """
    statements: list[str] = []
    pieces = script.split(";")
    current = ""
    for piece in pieces[:-1]:
        current += piece + ";"
        if sqlcipher3.complete_statement(current):
            statements.append(current)
            current = ""
    current += pieces[-1]
    if current.strip():
        if not sqlcipher3.complete_statement(current + "\n;"):
            raise StorageError("the script ends with an incomplete statement")
        statements.append(current + "\n;")
    return [text.strip() for text in statements if text.strip().rstrip(";").strip()]


def apply_migrations(conn: Connection, directory: Traversable) -> list[int]:
    """Check the recorded history against ``directory`` and apply what is pending.

    Returns the versions applied by this call. Raises StorageError naming the file on any
    mismatch or failure; a failed migration leaves no trace.
    """
    migrations = load_migrations(directory)
    _run_in_transaction(conn, lambda: conn.execute(_CREATE_TABLE), what="schema_migrations")
    applied = _applied(conn)
    by_version = {migration.version: migration for migration in migrations}
    newest_file = migrations[-1].version if migrations else 0
    for version, (name, _sha) in sorted(applied.items()):
        if version not in by_version:
            if version > newest_file:
                raise StorageError(
                    f"the database was migrated by a newer fazt (migration {version:04d}, {name}); "
                    f"this fazt only knows migrations up to {newest_file:04d}: upgrade fazt"
                )
            raise StorageError(f"applied migration {name} is missing from {directory}")
    for migration in migrations:
        if migration.version in applied:
            _check_unchanged(migration, applied[migration.version])
    newest_applied = max(applied, default=0)
    pending = [m for m in migrations if m.version not in applied]
    for migration in pending:
        if migration.version < newest_applied:
            raise StorageError(
                f"migration {migration.name} was never applied but is older than the newest "
                f"applied migration ({newest_applied:04d}); give it a higher number"
            )
    for migration in pending:
        _apply_one(conn, migration)
    return [migration.version for migration in pending]


def _applied(conn: Connection) -> dict[int, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, sha256 FROM schema_migrations").fetchall()
    return {int(version): (str(name), str(sha)) for version, name, sha in rows}


def _check_unchanged(migration: Migration, recorded: tuple[str, str]) -> None:
    if recorded[1] != migration.sha256:
        raise StorageError(
            f"migration {migration.name} was changed after it was applied "
            f"(sha256 {migration.sha256[:12]}..., recorded {recorded[1][:12]}...); "
            f"restore the original file and add a new migration instead"
        )


def _apply_one(conn: Connection, migration: Migration) -> None:
    try:
        statements = split_sql(migration.sql)
    except StorageError as exc:
        raise StorageError(f"migration {migration.name}: {exc}") from exc

    def body() -> None:
        # Another process may have applied it since we looked (BEGIN IMMEDIATE serialises us).
        row = conn.execute(
            "SELECT name, sha256 FROM schema_migrations WHERE version = ?", (migration.version,)
        ).fetchone()
        if row is not None:
            _check_unchanged(migration, (str(row[0]), str(row[1])))
            return
        for statement in statements:
            conn.execute(statement)
        violations = conn.execute("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise StorageError(
                f"migration {migration.name} failed: it leaves foreign key violations "
                f"{violations[:5]!r}"
            )
        conn.execute(
            "INSERT INTO schema_migrations (version, name, sha256, applied_at) VALUES (?, ?, ?, ?)",
            (
                migration.version,
                migration.name,
                migration.sha256,
                datetime.now(UTC).isoformat(timespec="seconds"),
            ),
        )

    _run_in_transaction(conn, body, what=migration.name)
    log.info("applied migration %s", migration.name)


def _run_in_transaction(conn: Connection, body: Callable[[], object], *, what: str) -> None:
    committed = False
    try:
        conn.execute("BEGIN IMMEDIATE")
        body()
        conn.execute("COMMIT")
        committed = True
    except sqlcipher3.Error as exc:
        raise StorageError(f"migration {what} failed: {exc}") from exc
    finally:
        if not committed and conn.in_transaction:
            conn.execute("ROLLBACK")
