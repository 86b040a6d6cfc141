"""Online, consistent, encrypted backups through SQLite - never a file copy of a live database.

``VACUUM INTO`` reads one snapshot of the database (WAL lets it run beside a live server, even
from another process) and writes a compact copy; on SQLCipher the copy is encrypted with the
same key. The copy is written to a private temporary file next to the destination, checked
(``integrity_check`` and ``cipher_integrity_check``), fsynced, and only then linked into place,
so ``dest`` is either absent or a complete, verified backup.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import sqlcipher3

from fazt.errors import StorageError

from ._connect import open_keyed
from ._errors import translate_sqlite_error

BACKUP_BUSY_TIMEOUT_MS = 5000


@dataclass(frozen=True, kw_only=True)
class BackupResult:
    path: Path
    bytes: int
    duration_s: float


def backup_database(*, db_path: Path, key: bytes, dest: Path) -> BackupResult:
    """Write a verified, encrypted copy of ``db_path`` to ``dest`` (which must not exist).

    Safe while the server runs. Raises StorageError if ``dest`` exists, its directory is
    missing, the database is missing, or the copy fails verification (the temporary file is
    removed); WrongKey if ``key`` does not open the database.
    """
    started = time.monotonic()
    if dest.exists() or dest.is_symlink():
        raise StorageError(f"backup destination {dest} already exists; refusing to overwrite it")
    if not dest.parent.is_dir():
        raise StorageError(f"backup directory {dest.parent} does not exist")
    if not db_path.is_file():
        raise StorageError(f"no database at {db_path}")

    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")
    # VACUUM INTO accepts an existing empty file: creating it first makes the copy 0600.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    done = False
    try:
        _vacuum_into(db_path, key, tmp)
        _verify(tmp, key)
        _fsync_path(tmp)
        _link_into_place(tmp, dest)
        done = True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if not done:
            for sidecar in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    tmp.with_name(tmp.name + sidecar).unlink()
    _fsync_path(dest.parent)
    return BackupResult(path=dest, bytes=dest.stat().st_size, duration_s=time.monotonic() - started)


def _vacuum_into(db_path: Path, key: bytes, tmp: Path) -> None:
    source = open_keyed(db_path, key, busy_timeout_ms=BACKUP_BUSY_TIMEOUT_MS, readonly=True)
    try:
        source.execute("VACUUM INTO ?", (str(tmp),))
    except sqlcipher3.Error as exc:
        raise translate_sqlite_error(exc) from exc
    finally:
        source.close()


def _verify(copy: Path, key: bytes) -> None:
    conn = open_keyed(copy, key, busy_timeout_ms=BACKUP_BUSY_TIMEOUT_MS, readonly=True)
    try:
        integrity = [str(row[0]) for row in conn.execute("PRAGMA integrity_check").fetchall()]
        cipher_errors = conn.execute("PRAGMA cipher_integrity_check").fetchall()
    except sqlcipher3.Error as exc:
        raise StorageError(f"the backup copy cannot be verified: {exc}") from exc
    finally:
        conn.close()
    if integrity != ["ok"]:
        raise StorageError(f"the backup copy failed integrity_check: {integrity[:5]!r}")
    if cipher_errors:
        raise StorageError(f"the backup copy failed cipher_integrity_check: {cipher_errors[:5]!r}")


def _link_into_place(tmp: Path, dest: Path) -> None:
    """Publish ``tmp`` as ``dest`` atomically, never replacing a file that appeared meanwhile."""
    try:
        os.link(tmp, dest)
    except FileExistsError as exc:
        raise StorageError(
            f"backup destination {dest} already exists; refusing to overwrite it"
        ) from exc
    except OSError:
        # No hard links on this file system: rename is atomic, but could replace a file
        # created after the check at the top - an acceptable window for an operator command.
        if dest.exists():
            raise StorageError(
                f"backup destination {dest} already exists; refusing to overwrite it"
            ) from None
        os.rename(tmp, dest)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
