"""Config precedence: flags > FAZT_* env > fazt.toml > defaults; bad values are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fazt.config import Config, load_config
from fazt.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    config = load_config({"data_dir": str(tmp_path)}, environ={})
    assert config.host == "127.0.0.1"
    assert config.port == 8080
    assert config.domain == "localhost"
    assert config.shutdown_grace_s == 10.0
    assert config.db_path == tmp_path / "fazt.db"


def test_data_dir_default_and_env() -> None:
    assert load_config(environ={}).data_dir == Path(".fazt")
    assert load_config(environ={"FAZT_HOME": "/srv/fazt"}).data_dir == Path("/srv/fazt")
    assert load_config({"data_dir": "/x"}, environ={"FAZT_HOME": "/srv"}).data_dir == Path("/x")


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "fazt.toml").write_text('port = 9000\ndomain = "file.test"\nhost = "::1"\n')
    env = {"FAZT_PORT": "9100", "FAZT_DOMAIN": "env.test"}
    config = load_config({"data_dir": str(tmp_path), "port": 9200}, environ=env)
    assert config.port == 9200          # flag beats env and file
    assert config.domain == "env.test"  # env beats file
    assert config.host == "::1"         # file beats default
    assert config.base_url == "http://[::1]:9200"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config({"data_dir": str(tmp_path)}, environ={})
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(("env", "message"), [
    ({"FAZT_PORT": "eighty"}, "FAZT_PORT: expected int"),
    ({"FAZT_PORT": "70000"}, "FAZT_PORT: must be at most 65535"),
    ({"FAZT_SHUTDOWN_GRACE_S": "-1"}, "must be at least 0"),
    ({"FAZT_LOG_LEVEL": "loud"}, "must be one of"),
    ({"FAZT_DOMAIN": "Example.COM"}, "lowercase host name"),
    ({"FAZT_MAX_FILE_BYTES": "999999999999"}, "cannot exceed max_app_bytes"),
])
def test_bad_env_values(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"data_dir": str(tmp_path)}, environ=env)


@pytest.mark.parametrize(("text", "message"), [
    ("port = [", "not valid TOML"),
    ("colour = 'blue'", "unknown setting 'colour'"),
    ("db_key = 'aa'", "cannot be set in fazt.toml"),
    ("port = 'x'", "fazt.toml: port: expected int"),
    ("port = true", "expected int"),
])
def test_bad_file_values(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "fazt.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config({"data_dir": str(tmp_path)}, environ={})


def test_unknown_flag() -> None:
    with pytest.raises(ConfigError, match="unknown settings"):
        load_config({"colour": "blue"}, environ={})


def test_public_urls() -> None:
    config = Config(port=8080, domain="localhost")
    assert config.public_url("hello") == "http://hello.localhost:8080/"
    assert config.public_url() == "http://localhost:8080/api/"
    assert Config(port=80, domain="example.com").public_url("a") == "http://a.example.com/"
