"""GET /api/apps/{name}/logs through the admin app, on a real database with a running log store.

Lines are produced with ``AppLogStore.append`` (what the JS sandbox calls) and the tests wait
for the store's own event (``wait``) before reading; the real clock is used because storage
work happens in threads (see tests/applog/test_store.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from fazt.app import archive_limits
from fazt.applog import AppLogStore
from fazt.auth import TokenStore
from fazt.capabilities import AppSettings, Capabilities
from fazt.config import Config
from fazt.hosting import ArchiveContents, ArchiveFile, Hosting
from fazt.http import AdminContext, create_admin_app
from tests.core_db import open_core_db

LOGS = "/api/apps/hello/logs"


@dataclass
class Api:
    client: Any
    headers: dict[str, str]
    store: AppLogStore

    async def get(self, path: str, **query: str | int | float) -> tuple[int, Any]:
        response = await self.client.get(path, query_string=query, headers=self.headers)
        return response.status_code, orjson.loads(await response.get_data())

    async def log(self, *lines: tuple[str, str, str | None]) -> None:
        """Append lines to app hello and wait until they are written."""
        before = (await self.store.read("hello", limit=1) or [None])[-1]
        for level, message, request_id in lines:
            self.store.append("hello", level, message, request_id=request_id)
        with trio.fail_after(30):
            await self.store.wait("hello", before.id if before else 0, 60)


@asynccontextmanager
async def admin_api(tmp_path: Path) -> AsyncIterator[Api]:
    with open_core_db(tmp_path) as db:
        config = Config(data_dir=tmp_path)
        hosting = Hosting(db, limits=archive_limits(config), history=10, cache_bytes=0,
                          op_timeout_s=5, deploy_timeout_s=30)
        tokens = TokenStore(db, op_timeout_s=5)
        store = AppLogStore(db, op_timeout_s=5, flush_interval_s=0.01)
        app = create_admin_app(AdminContext(config=config, db=db, hosting=hosting,
                                            tokens=tokens, logs=store,
                                            capabilities=Capabilities(
                                                settings=AppSettings(db, op_timeout_s=5)),
                                            started_at=time.monotonic()))
        _, secret = await tokens.create("t")
        await hosting.deploy_contents(
            "hello", ArchiveContents(files=(ArchiveFile("index.html", b"hi"),), skipped=()),
            source="api")
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            yield Api(client=app.test_client(), headers={"authorization": f"Bearer {secret}"},
                      store=store)
            nursery.cancel_scope.cancel()


async def test_lines_next_paging_and_filters(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        status, body = await api.get(LOGS)
        assert (status, body) == (200, {"app": "hello", "lines": [], "next": 0})

        await api.log(("info", "one", "r1"), ("warn", "two", None), ("error", "three", "r1"))
        status, body = await api.get(LOGS)
        assert status == 200
        assert [line["message"] for line in body["lines"]] == ["one", "two", "three"]
        first = body["lines"][0]
        assert set(first) == {"id", "ts", "level", "request_id", "message"}
        assert (first["level"], first["request_id"]) == ("info", "r1")
        last_id = body["lines"][-1]["id"]
        assert body["next"] == last_id

        _, body = await api.get(LOGS, n=1)
        assert [line["message"] for line in body["lines"]] == ["three"]
        _, body = await api.get(LOGS, after=first["id"], n=1)
        assert [line["message"] for line in body["lines"]] == ["two"]
        assert body["next"] == body["lines"][0]["id"]
        _, body = await api.get(LOGS, after=last_id)
        assert body == {"app": "hello", "lines": [], "next": last_id}
        _, body = await api.get(LOGS, level="warn")
        assert [line["message"] for line in body["lines"]] == ["two", "three"]
        _, body = await api.get(LOGS, request_id="r1", level="error")
        assert [line["message"] for line in body["lines"]] == ["three"]


async def test_long_poll_answers_when_a_line_arrives(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        await api.log(("info", "old", None))
        _, body = await api.get(LOGS)
        after = body["next"]
        answers: list[tuple[int, Any]] = []

        async def poll() -> None:
            answers.append(await api.get(LOGS, after=after, wait=60))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.testing.wait_all_tasks_blocked()
                api.store.append("hello", "info", "new", request_id=None)
        [(status, body)] = answers
        assert status == 200
        assert [line["message"] for line in body["lines"]] == ["new"]
        assert body["next"] > after


async def test_long_poll_without_lines_answers_empty_after_wait(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        start = trio.current_time()
        status, body = await api.get(LOGS, after=5, wait=0.2)
        assert trio.current_time() - start >= 0.2
        assert (status, body) == (200, {"app": "hello", "lines": [], "next": 5})


async def test_filtered_long_poll_waits_past_hidden_lines(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        await api.log(("info", "hidden by the filter", "r1"))
        for query in ({"level": "error"}, {"request_id": "r2"}):
            start = trio.current_time()
            status, body = await api.get(LOGS, after=0, wait=0.2, **query)
            # It waited for newer lines instead of answering at once (a busy loop for -f).
            assert trio.current_time() - start >= 0.2
            assert (status, body) == (200, {"app": "hello", "lines": [], "next": 0})

        answers: list[tuple[int, Any]] = []

        async def poll() -> None:
            answers.append(await api.get(LOGS, after=0, wait=60, level="error"))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                await trio.testing.wait_all_tasks_blocked()
                api.store.append("hello", "error", "shown", request_id=None)
        [(status, body)] = answers
        assert [line["message"] for line in body["lines"]] == ["shown"]


async def test_removing_the_app_deletes_its_logs(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        await api.log(("info", "bye", None))
        response = await api.client.delete("/api/apps/hello", headers=api.headers)
        assert response.status_code == 200
        assert await api.store.read("hello") == []
        status, body = await api.get(LOGS)
        assert (status, body["error"]["code"]) == (404, "app_not_found")


@pytest.mark.parametrize(("query", "named"), [
    ({"n": 0}, "n"), ({"n": 1001}, "n"), ({"n": "abc"}, "n"), ({"n": -1}, "n"),
    ({"n": "1_0"}, "n"), ({"n": " 5"}, "n"), ({"n": "\u0665"}, "n"),
    ({"after": -1}, "after"), ({"after": "x"}, "after"), ({"after": 2**63}, "after"),
    ({"level": "bogus"}, "level"), ({"level": "INFO"}, "level"),
    ({"request_id": "bad id"}, "request_id"), ({"request_id": "x" * 65}, "request_id"),
    ({"wait": 61, "after": 0}, "wait"), ({"wait": "abc", "after": 0}, "wait"),
    ({"wait": "nan", "after": 0}, "wait"), ({"wait": "-1", "after": 0}, "wait"),
    ({"wait": 1}, "wait"),
])
async def test_bad_query_values_are_400_naming_the_parameter(
        tmp_path: Path, query: dict[str, Any], named: str) -> None:
    async with admin_api(tmp_path) as api:
        status, body = await api.get(LOGS, **query)
    assert status == 400
    assert body["error"]["code"] == "bad_request"
    assert f'"{named}"' in body["error"]["message"]


async def test_unknown_app_and_bad_name(tmp_path: Path) -> None:
    async with admin_api(tmp_path) as api:
        status, body = await api.get("/api/apps/nosuch/logs")
        assert (status, body["error"]["code"]) == (404, "app_not_found")
        status, body = await api.get("/api/apps/Bad/logs")
        assert (status, body["error"]["code"]) == (422, "invalid_app_name")
        response = await api.client.get(LOGS)
        assert response.status_code == 401
