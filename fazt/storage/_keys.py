"""Where the database key comes from.

The key is a raw 256-bit key (64 hex characters), never a passphrase: SQLCipher's passphrase KDF
costs ~100 ms per connection, a raw key costs nothing. Order: ``FAZT_DB_KEY`` (passed in as
``env_key_hex``), then ``<data_dir>/db.key``, then - only when there is no database yet - a fresh
key written to ``db.key`` with mode 0600. An existing database without a key is an error: fazt
never creates a fresh key (and with it an empty database) over data it cannot read.

Error messages name files and lengths, never key material.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
from pathlib import Path

from fazt.errors import ConfigError

KEY_FILE_NAME = "db.key"
KEY_BYTES = 32
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")

log = logging.getLogger("fazt.storage")


def resolve_key(*, data_dir: Path, env_key_hex: str | None, db_path: Path) -> bytes:
    """Return the raw 32-byte database key, creating ``<data_dir>/db.key`` on first start only.

    Raises ConfigError for a malformed key, or when ``db_path`` exists but no key is available.
    """
    if env_key_hex is not None:
        if not _HEX_KEY.fullmatch(env_key_hex):
            raise ConfigError(
                f"FAZT_DB_KEY must be exactly 64 hex characters (a raw 256-bit key); "
                f"got {len(env_key_hex)} characters"
                + ("" if len(env_key_hex) != 64 else " that are not all hex digits")
            )
        return bytes.fromhex(env_key_hex)

    key_path = data_dir / KEY_FILE_NAME
    if key_path.exists() or key_path.is_symlink():
        return _read_key_file(key_path)

    if _database_exists(db_path):
        raise ConfigError(
            f"database exists at {db_path} but no key: set FAZT_DB_KEY or restore {key_path}"
        )
    return _create_key_file(data_dir, key_path)


def _database_exists(db_path: Path) -> bool:
    wal_path = db_path.with_name(db_path.name + "-wal")
    return db_path.exists() or db_path.is_symlink() or wal_path.exists()


def _read_key_file(key_path: Path) -> bytes:
    try:
        mode = key_path.stat().st_mode
        raw = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read key file {key_path}: {exc.strerror}") from exc
    if stat.S_IMODE(mode) & 0o077:
        log.warning(
            "key file %s has mode %o; it should be 0600 (chmod 600 %s)",
            key_path,
            stat.S_IMODE(mode),
            key_path,
        )
    text = raw[:-1] if raw.endswith(b"\n") else raw
    if not _HEX_KEY.fullmatch(text.decode("ascii", errors="replace")):
        raise ConfigError(
            f"key file {key_path} must contain exactly 64 hex characters "
            f"(optionally followed by a newline); it has {len(raw)} bytes"
        )
    return bytes.fromhex(text.decode("ascii"))


def _create_key_file(data_dir: Path, key_path: Path) -> bytes:
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(data_dir)
    except FileExistsError as exc:
        raise ConfigError(
            f"key file {key_path} appeared while fazt was creating it; start fazt again"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot create key file {key_path}: {exc.strerror}") from exc
    log.info("created a new database key in %s", key_path)
    return key


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
