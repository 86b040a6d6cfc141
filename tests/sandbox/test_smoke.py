from __future__ import annotations

import orjson
import pytest
import trio

from fazt.budget import Budget
from fazt.errors import BudgetExceeded, JsError, JsMemory
from tests.sandbox.conftest import SandboxHarness, request_body


async def test_hello(sandbox: SandboxHarness) -> None:
    out = await sandbox.run("a", {"api/main.js": "module.exports = async (req, caps) => "
                                  "{ console.log('hi', req.path); "
                                  "return {path: req.path, left: caps.budget.remaining()}; }"})
    assert out.response["status"] == 200
    body = orjson.loads(out.response["body"])
    assert body["path"] == "/api/x"
    assert 0 < body["left"] <= 5000
    assert sandbox.logs.messages("a") == ["hi /api/x"]


async def test_runaway_is_stopped_and_worker_reused(sandbox: SandboxHarness) -> None:
    files = {"api/main.js": "module.exports = async (req) => { if (req.path === '/api/spin') "
             "while (true) {} return 'ok'; }"}
    with pytest.raises(BudgetExceeded) as info:
        await sandbox.run("a", files, request=request_body("/api/spin"), request_s=0.3)
    assert info.value.code == "js_timeout"
    out = await sandbox.run("a", files)
    assert out.response["body"] == "ok"
    assert sandbox.sandbox.counters.kills == 0


async def test_error_is_logged_with_app_file_and_line(sandbox: SandboxHarness) -> None:
    files = {"api/main.js": "\n\nmodule.exports = async () => { throw new TypeError('boom') }"}
    with pytest.raises(JsError):
        await sandbox.run("a", files)
    text = "\n".join(sandbox.logs.messages("a"))
    assert "TypeError: boom" in text and "api/main.js:3" in text and "/work" not in text


async def test_memory_bomb(sandbox: SandboxHarness) -> None:
    files = {"api/main.js": "module.exports = async (req) => { if (req.path === '/api/x') "
             "{ let a = []; while (true) a.push(new Array(1e6).fill(1.5)); } return 'ok' }"}
    with pytest.raises(JsMemory):
        await sandbox.run("a", files, memory_mb=200)
    out = await sandbox.run("a", files, memory_mb=200, request=request_body("/api/y"))
    assert out.response["body"] == "ok"


async def test_slow_capability_does_not_block_other_requests(sandbox: SandboxHarness) -> None:
    files = {"api/main.js": "module.exports = async (req, caps) => "
             "req.path === '/api/slow' ? await caps.t.sleep(2000) : 'fast'"}
    release = trio.Event()

    async def caps(cap: str, method: str, args: list, budget: Budget) -> str:
        await release.wait()
        return "slept"

    results: list[str] = []
    async with trio.open_nursery() as nursery:
        async def slow() -> None:
            out = await sandbox.run("a", files, request=request_body("/api/slow"),
                                    granted={"t": ["sleep"]}, capabilities=caps)
            results.append(out.response["body"])
        nursery.start_soon(slow)
        for _ in range(20):
            out = await sandbox.run("a", files, granted={"t": ["sleep"]}, capabilities=caps)
            assert out.response["body"] == "fast"
        release.set()
    assert results == ["slept"]
