"""Shared fixtures: a real `fazt run` subprocess on 127.0.0.1 with a temp data dir."""

from __future__ import annotations

import pytest

from tests.harness import FaztServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One running server per test module (starting one costs about a second)."""
    srv = start_server(tmp_path_factory.mktemp("fazt"))
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path) -> FaztServer:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()
