"""A canary written through the API must not appear in the database or WAL bytes."""

from __future__ import annotations

import secrets

import pytest

from tests.harness import FaztServer

pytestmark = [pytest.mark.security, pytest.mark.integration]


def test_canary_not_in_database_or_wal(server: FaztServer) -> None:
    canary = f"CANARY-{secrets.token_hex(16)}"
    r = server.deploy("canary", {"index.html": f"<p>{canary}</p>",
                                 f"{canary}.txt": canary})
    assert r.status_code == 201
    with server.app("canary") as client:
        assert canary in client.get("/").text  # the data really is there
    files = [server.data_dir / name for name in ("fazt.db", "fazt.db-wal")]
    existing = [f for f in files if f.exists()]
    assert existing
    for f in existing:
        data = f.read_bytes()
        assert canary.encode() not in data, f.name
        assert canary.encode("utf-16-le") not in data, f.name
        assert b"SQLite format 3" not in data[:100], f.name
    token = server.token.encode()
    for f in existing:
        assert token not in f.read_bytes(), "tokens are stored hashed (and encrypted)"
