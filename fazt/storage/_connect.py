"""Open one keyed, configured SQLCipher connection.

Every connection fazt opens goes through here so that all of them get the same treatment:

* ``PRAGMA key = "x'<hex>'"`` first - a raw key, no KDF, and SQLCipher's defaults (the whole
  file, header included, is encrypted: nothing in it is plaintext);
* the key is verified before anything is written, and a key that does not open the file raises
  WrongKey without touching it (readonly connections never create a file either);
* a new database file is created by us with mode 0600 before SQLite opens it - SQLite gives the
  ``-wal`` and ``-shm`` files the mode of the database, so those are private too;
* WAL, ``synchronous=FULL`` (an acknowledged commit survives power loss), ``busy_timeout``,
  ``foreign_keys=ON``, and ``query_only=ON`` for readonly connections;
* ``isolation_level=None``: transactions are explicit (BEGIN/COMMIT issued by the storage layer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Any

import sqlcipher3

from fazt.errors import ConfigError, StorageError, WrongKey

from ._errors import translate_sqlite_error

log = logging.getLogger("fazt.storage")

Connection = Any  # sqlcipher3 ships no type information


def open_connection(
    path: Path, key: bytes, *, busy_timeout_ms: int, readonly: bool = False
) -> Connection:
    """Open ``path`` with ``key``, verify the key and apply fazt's pragmas.

    A writable connection creates the database (mode 0600) when it does not exist; a readonly one
    raises StorageError instead. Raises WrongKey when the key does not open an existing file.
    """
    if len(key) != 32:
        raise ConfigError(f"the database key must be 32 bytes, got {len(key)}")
    existed_before = {candidate for candidate in _with_sidecars(path) if candidate.exists()}
    created = False
    if readonly:
        if path not in existed_before:
            raise StorageError(f"no database at {path}")
    else:
        created = _create_private_file(path)
    conn: Connection = None
    opened = False
    try:
        conn = _connect_keyed(path, key, busy_timeout_ms=busy_timeout_ms, readonly=readonly)
        _apply_pragmas(conn, path, busy_timeout_ms=busy_timeout_ms, readonly=readonly)
        opened = True
    finally:
        if not opened:
            if conn is not None:
                conn.close()
            # A database this call created is removed again, with the sidecars it created.
            # Files that existed before are never touched: a -wal may hold committed data.
            if created:
                for candidate in _with_sidecars(path):
                    if candidate not in existed_before:
                        with contextlib.suppress(FileNotFoundError):
                            candidate.unlink()
    return conn


def open_keyed(path: Path, key: bytes, *, busy_timeout_ms: int, readonly: bool) -> Connection:
    """Open ``path`` with the key and verify it, without fazt's pragmas (used for backup copies)."""
    return _connect_keyed(path, key, busy_timeout_ms=busy_timeout_ms, readonly=readonly)


def _connect_keyed(path: Path, key: bytes, *, busy_timeout_ms: int, readonly: bool) -> Connection:
    target = path.absolute().as_uri() + ("?mode=ro" if readonly else "?mode=rw")
    try:
        conn = sqlcipher3.connect(
            target,
            uri=True,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlcipher3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    verified = False
    try:
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        _silence_cipher_log(conn)
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        verified = True
    except sqlcipher3.Error as exc:
        if _is_not_a_database(exc):
            raise WrongKey(f"the key does not open {path}") from exc
        raise translate_sqlite_error(exc) from exc
    finally:
        if not verified:
            conn.close()
    return conn


def _silence_cipher_log(conn: Connection) -> None:
    # Without this SQLCipher prints "hmac check failed" lines to stderr for a wrong key.
    # Unknown pragmas are silently ignored by SQLite, so an empty answer means "not supported".
    row = conn.execute("PRAGMA cipher_log_level = NONE").fetchone()
    if row is None or str(row[0]).upper() != "NONE":
        log.debug("PRAGMA cipher_log_level is not supported by this SQLCipher build")


def _apply_pragmas(conn: Connection, path: Path, *, busy_timeout_ms: int, readonly: bool) -> None:
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StorageError(f"cannot switch {path} to WAL mode (journal_mode is {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if readonly:
            conn.execute("PRAGMA query_only = ON")
    except sqlcipher3.Error as exc:
        raise translate_sqlite_error(exc) from exc


def _is_not_a_database(exc: sqlcipher3.Error) -> bool:
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    return name == "SQLITE_NOTADB" or "file is not a database" in str(exc).lower()


def _create_private_file(path: Path) -> bool:
    """Create an empty database file with mode 0600; return False if it already exists.

    An empty file is a valid, empty SQLite database. An existing file with group/other
    permission bits is tightened to 0600 (and a warning logged).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten_mode(path)
        return False
    except OSError as exc:
        raise StorageError(f"cannot create database {path}: {exc.strerror}") from exc
    os.close(fd)
    return True


def _tighten_mode(path: Path) -> None:
    for candidate in _with_sidecars(path):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning("%s had mode %o; tightening it to 0600", candidate, mode)
            os.chmod(candidate, 0o600)


def _with_sidecars(path: Path) -> tuple[Path, Path, Path]:
    return (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
