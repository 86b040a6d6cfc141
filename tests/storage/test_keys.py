"""resolve_key: env key, key file, first-start generation, and refusing to start blind."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from fazt.errors import ConfigError
from fazt.storage import resolve_key

HEX = "ab" * 32


def test_env_key_is_used_as_raw_bytes(tmp_path: Path) -> None:
    key = resolve_key(data_dir=tmp_path, env_key_hex=HEX.upper(), db_path=tmp_path / "fazt.db")
    assert key == bytes.fromhex(HEX)
    assert not (tmp_path / "db.key").exists()


def test_env_key_wins_over_key_file(tmp_path: Path) -> None:
    (tmp_path / "db.key").write_text("cd" * 32 + "\n")
    key = resolve_key(data_dir=tmp_path, env_key_hex=HEX, db_path=tmp_path / "fazt.db")
    assert key == bytes.fromhex(HEX)


@pytest.mark.parametrize(
    "bad",
    ["", "ab" * 31, "ab" * 33, "zz" * 32, HEX + "\n", " " + HEX[1:], "passphrase-like secret"],
)
def test_invalid_env_key_is_a_config_error_that_does_not_echo_it(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="FAZT_DB_KEY must be exactly 64 hex") as info:
        resolve_key(data_dir=tmp_path, env_key_hex=bad, db_path=tmp_path / "fazt.db")
    if bad.strip():
        assert bad.strip() not in str(info.value)
    assert not (tmp_path / "db.key").exists()


def test_first_start_creates_a_private_key_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = resolve_key(data_dir=data_dir, env_key_hex=None, db_path=data_dir / "fazt.db")
    key_file = data_dir / "db.key"
    assert len(key) == 32
    assert key_file.read_text() == key.hex() + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    # The next start reads the same key back.
    assert resolve_key(data_dir=data_dir, env_key_hex=None, db_path=data_dir / "fazt.db") == key


def test_generated_keys_differ(tmp_path: Path) -> None:
    first = resolve_key(data_dir=tmp_path / "a", env_key_hex=None, db_path=tmp_path / "a.db")
    second = resolve_key(data_dir=tmp_path / "b", env_key_hex=None, db_path=tmp_path / "b.db")
    assert first != second


@pytest.mark.parametrize("content", [HEX, HEX + "\n"])
def test_key_file_with_optional_newline(tmp_path: Path, content: str) -> None:
    key_file = tmp_path / "db.key"
    key_file.write_text(content)
    key_file.chmod(0o600)
    assert resolve_key(data_dir=tmp_path, env_key_hex=None, db_path=tmp_path / "x.db") == (
        bytes.fromhex(HEX)
    )


@pytest.mark.parametrize("content", ["", "ab" * 31, HEX + "\n\n", "zz" * 32, HEX + " "])
def test_invalid_key_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "db.key").write_text(content)
    with pytest.raises(ConfigError, match="must contain exactly 64 hex"):
        resolve_key(data_dir=tmp_path, env_key_hex=None, db_path=tmp_path / "fazt.db")


def test_loose_key_file_mode_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "db.key"
    key_file.write_text(HEX + "\n")
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="fazt.storage"):
        resolve_key(data_dir=tmp_path, env_key_hex=None, db_path=tmp_path / "fazt.db")
    assert any("should be 0600" in record.getMessage() for record in caplog.records)
    assert all(HEX not in record.getMessage() for record in caplog.records)


def test_private_key_file_mode_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "db.key"
    key_file.write_text(HEX + "\n")
    key_file.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="fazt.storage"):
        resolve_key(data_dir=tmp_path, env_key_hex=None, db_path=tmp_path / "fazt.db")
    assert caplog.records == []


@pytest.mark.parametrize("existing", ["fazt.db", "fazt.db-wal"])
def test_existing_database_without_key_refuses_and_creates_nothing(
    tmp_path: Path, existing: str
) -> None:
    (tmp_path / existing).write_bytes(b"\x89 pretend this is encrypted")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ConfigError, match=r"database exists at .* but no key"):
        resolve_key(data_dir=tmp_path, env_key_hex=None, db_path=tmp_path / "fazt.db")
    assert sorted(os.listdir(tmp_path)) == before
