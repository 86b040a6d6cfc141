"""Error bodies of the admin API: the envelope, and 5xx bodies that never leak internals."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from fazt.applog import AppLogStore
from fazt.auth import TokenStore
from fazt.capabilities import AppSettings, Capabilities
from fazt.config import Config
from fazt.errors import BudgetExceeded, StorageError
from fazt.hosting import Hosting
from fazt.http import AdminContext, create_admin_app
from tests.core_db import open_core_db

LEAKS = ["/home/secret/fazt.db", "SELECT token_sha256 FROM tokens", "Traceback", "line 42"]


class ExplodingHosting(Hosting):
    """Fails the way a bug or a broken disk would, with internals in the message."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def list_apps(self):  # type: ignore[override]
        raise self.exc


@pytest.fixture
def make_app(tmp_path: Path):
    with open_core_db(tmp_path) as db:
        tokens = TokenStore(db, op_timeout_s=5)

        async def build(exc: Exception):
            ctx = AdminContext(config=Config(data_dir=tmp_path), db=db,
                               hosting=ExplodingHosting(exc), tokens=tokens,
                               logs=AppLogStore(db, op_timeout_s=5),
                               capabilities=Capabilities(settings=AppSettings(db, op_timeout_s=5)),
                               started_at=time.monotonic())
            _, secret = await tokens.create("t")
            return create_admin_app(ctx), secret

        yield build


@pytest.mark.parametrize("exc", [
    RuntimeError(" ".join(LEAKS)),
    KeyError(LEAKS[1]),
    StorageError(" ".join(LEAKS)),
    BudgetExceeded(" ".join(LEAKS), phase="storage"),
])
async def test_5xx_bodies_hide_internals(make_app, exc: Exception) -> None:
    app, secret = await make_app(exc)
    client = app.test_client()
    response = await client.get("/api/apps", headers={"authorization": f"Bearer {secret}"})
    assert response.status_code >= 500
    body = await response.get_data()
    error = orjson.loads(body)["error"]
    assert set(error) >= {"code", "message"}
    for leak in LEAKS:
        assert leak not in body.decode(), leak
    if isinstance(exc, BudgetExceeded):
        assert response.status_code == 504
        assert error["code"] == "storage_timeout"
    elif isinstance(exc, StorageError):
        assert error["code"] == "storage_error"
    else:
        assert error["code"] == "internal_error"
