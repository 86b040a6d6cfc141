"""`fazt sql` and POST /api/sql against a real `fazt run`: reads, refused writes and tricks,
writes with --write, the three output formats, and --local on the data dir itself."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest

from tests.harness import FaztServer, start_server

pytestmark = pytest.mark.integration


def sql(server: FaztServer, query: str, **extra: Any) -> httpx.Response:
    with server.admin() as admin:
        return admin.post("/api/sql", json={"query": query, **extra})


def app_names(server: FaztServer) -> list[str]:
    r = sql(server, "SELECT name FROM apps ORDER BY name")
    assert r.status_code == 200, r.text
    return [row[0] for row in r.json()["rows"]]


def test_a_read(server: FaztServer) -> None:
    r = sql(server, "SELECT name, length(name) AS n FROM apps WHERE name = 'hello'")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["columns"], body["rows"], body["truncated"], body["changes"]) == \
        (["name", "n"], [["hello", 5]], False, None)
    assert body["duration_ms"] >= 0
    limited = sql(server, "SELECT value FROM json_each('[1,2,3,4]')", limit=2).json()
    assert (limited["rows"], limited["truncated"]) == ([[1], [2]], True)


WRITES = ["DELETE FROM apps", "WITH x AS (SELECT 1) DELETE FROM apps",
          "UPDATE apps SET name = 'x'", "DROP TABLE apps"]
TRICKS = ["SELECT 1; DELETE FROM apps", "DELETE FROM apps; SELECT 1",
          "ATTACH DATABASE '/tmp/fazt-sql-attack.db' AS x", "PRAGMA writable_schema = ON",
          "PRAGMA key = 'x'", "BEGIN", "COMMIT"]


@pytest.mark.parametrize(("query", "write"), [(q, False) for q in WRITES + TRICKS]
                         + [(q, True) for q in TRICKS])
def test_what_is_refused_changes_nothing(server: FaztServer, query: str, write: bool) -> None:
    before = app_names(server)
    r = sql(server, query, write=write)
    assert r.status_code in (400, 403), r.text
    assert r.json()["error"]["code"] in ("sql_not_allowed", "sql_error")
    assert app_names(server) == before and "hello" in before


def test_writes_with_write_and_the_cli(server: FaztServer) -> None:
    r = sql(server, "CREATE TABLE IF NOT EXISTS operator_notes (note TEXT)", write=True)
    assert r.status_code == 200, r.text
    r = sql(server, "INSERT INTO operator_notes VALUES ('[bold red]not markup[/]'), ('b')",
            write=True)
    assert r.json()["changes"] == 2
    out = server.cli("sql", "SELECT note FROM operator_notes ORDER BY note")
    assert out.returncode == 0, out.stderr
    assert "[bold red]not markup[/]" in out.stdout      # printed as data
    as_json = json.loads(server.cli("sql", "SELECT note FROM operator_notes ORDER BY note",
                                    "--format", "json").stdout)
    assert as_json["rows"] == [["[bold red]not markup[/]"], ["b"]]
    as_csv = list(csv.reader(io.StringIO(server.cli(
        "sql", "SELECT note, length(note) AS n FROM operator_notes ORDER BY note",
        "--format", "csv").stdout)))
    assert as_csv == [["note", "n"], ["[bold red]not markup[/]", "23"], ["b", "1"]]
    refused = server.cli("sql", "DELETE FROM operator_notes")
    assert refused.returncode == 1 and "sql_not_allowed" in refused.stderr
    assert "--write" in refused.stderr
    done = server.cli("sql", "DELETE FROM operator_notes", "--write")
    assert done.returncode == 0 and "2 rows changed" in done.stderr


@pytest.mark.parametrize(("body", "status"), [
    ({"query": ""}, 400), ({"query": "SELECT 1", "limit": 0}, 400),
    ({"query": "SELECT 1", "write": "yes"}, 400), ({"query": "SELECT 1", "nope": 1}, 400),
    ({"query": 5}, 400), ({"query": "SELECT 1", "timeout_ms": 600_000}, 400),
    ({"query": "SELEKT 1"}, 400), ({"query": "SELECT * FROM no_such_table"}, 400),
])
def test_bad_requests(server: FaztServer, body: dict[str, Any], status: int) -> None:
    with server.admin() as admin:
        r = admin.post("/api/sql", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] in ("bad_request", "sql_error")


def test_the_console_needs_the_admin_token(server: FaztServer) -> None:
    with server.admin(token="") as client:
        assert client.post("/api/sql", json={"query": "SELECT 1"}).status_code == 401


def test_local_reads_and_writes_the_data_dir(tmp_path: Any) -> None:
    srv = start_server(tmp_path / "data")
    try:
        out = srv.cli("sql", "--local", "--data-dir", str(srv.data_dir),
                      "SELECT name FROM apps")
        assert out.returncode == 0 and "hello" in out.stdout, out.stderr
    finally:
        srv.stop()
    # with no server at all: the file itself, read-only unless --write
    local = ("sql", "--local", "--data-dir", str(srv.data_dir))
    refused = srv.cli(*local, "DELETE FROM apps")
    assert refused.returncode == 1 and "sql_not_allowed" in refused.stderr
    assert "hello" in srv.cli(*local, "SELECT name FROM apps").stdout
    out = srv.cli(*local, "--write", "UPDATE app_env SET value = value")
    assert out.returncode == 0 and "0 rows changed" in out.stderr
    attach = srv.cli(*local, "--write", f"ATTACH DATABASE '{tmp_path / 'x.db'}' AS x")
    assert attach.returncode == 1 and "not allowed: ATTACH" in attach.stderr
    assert not (tmp_path / "x.db").exists()
