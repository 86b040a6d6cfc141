"""`fazt run` as a user meets it: first start, restart, keys, the example app, the admin API."""

from __future__ import annotations

import hashlib
import stat

import pytest

from tests.harness import FaztServer, clean_env, start_server

pytestmark = pytest.mark.integration


def test_first_start_creates_data_dir_key_token_and_example(fresh_server: FaztServer) -> None:
    data = fresh_server.data_dir
    assert stat.S_IMODE((data / "db.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "admin.token").stat().st_mode) == 0o600
    assert len((data / "db.key").read_text().strip()) == 64
    # the data dir holds the database, the key and the token: nothing else
    names = {p.name for p in data.iterdir()}
    assert names <= {"fazt.db", "fazt.db-wal", "fazt.db-shm", "db.key", "admin.token"}
    assert (data / "fazt.db").read_bytes()[:16] != b"SQLite format 3\x00"

    out = fresh_server.output()
    assert fresh_server.token in out, "the admin token is shown once on first start"
    assert "http://hello.localhost:" in out
    assert "/api/" in out

    with fresh_server.app("hello") as client:
        r = client.get("/")
    assert r.status_code == 200
    assert "Hello from fazt" in r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-request-id"]


def test_restart_reuses_key_and_keeps_data(tmp_path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    token = first.token
    r = first.deploy("keep", {"index.html": "kept across restarts"})
    assert r.status_code == 201, r.text
    assert first.stop() == 0

    second = start_server(data)
    try:
        assert token not in second.output(), "the token is shown only once"
        with second.app("keep") as client:
            assert client.get("/").text == "kept across restarts"
        with second.admin(token) as admin:
            hello = admin.get("/api/apps/hello").json()
        assert len(hello["deploys"]) == 1, "the example is deployed on first start only"
    finally:
        assert second.stop() == 0


def test_wrong_key_refuses_to_start_and_changes_nothing(tmp_path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    assert srv.stop() == 0
    before = hashlib.sha256((data / "fazt.db").read_bytes()).hexdigest()

    wrong = start_server(data, env={"FAZT_DB_KEY": "ab" * 32}, wait=False)
    assert wrong.proc.wait(30) != 0
    assert "key does not open" in wrong.output()
    assert hashlib.sha256((data / "fazt.db").read_bytes()).hexdigest() == before


def test_missing_key_with_existing_database_refuses(tmp_path) -> None:
    data = tmp_path / "data"
    srv = start_server(data)
    assert srv.stop() == 0
    (data / "db.key").rename(tmp_path / "db.key.moved")

    again = start_server(data, wait=False)
    assert again.proc.wait(30) != 0
    assert "no key" in again.output()
    assert not (data / "db.key").exists(), "never a fresh key over an existing database"


def test_env_key_for_a_new_database(tmp_path) -> None:
    data = tmp_path / "data"
    srv = start_server(data, env={"FAZT_DB_KEY": "cd" * 32})
    try:
        assert not (data / "db.key").exists(), "the key came from FAZT_DB_KEY"
        with srv.app("hello") as client:
            assert client.get("/").status_code == 200
    finally:
        assert srv.stop() == 0


def test_invalid_env_key_is_a_clear_error(tmp_path) -> None:
    srv = start_server(tmp_path / "data", env={"FAZT_DB_KEY": "not-hex"}, wait=False)
    assert srv.proc.wait(30) != 0
    assert "FAZT_DB_KEY" in srv.output()


def test_python_dash_m_and_version() -> None:
    import subprocess
    import sys

    from fazt import __version__

    out = subprocess.run([sys.executable, "-m", "fazt", "--version"], capture_output=True,
                         text=True, env=clean_env(), check=True)
    assert __version__ in out.stdout


def test_second_server_on_the_same_data_dir_is_refused(server: FaztServer) -> None:
    other = start_server(server.data_dir, wait=False)
    assert other.proc.wait(30) != 0
    out = other.output()
    assert "another fazt is already running" in out
    assert "Traceback" not in out


def test_port_in_use_is_a_clear_error(server: FaztServer, tmp_path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "fazt", "run", "--port", str(server.port),
                          "--data-dir", str(tmp_path / "other")], capture_output=True, text=True,
                         env=clean_env(), timeout=60)
    assert out.returncode == 1
    assert "already in use" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
