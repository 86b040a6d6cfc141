"""An in-process Sandbox service with real worker processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import trio

from fazt.budget import Budget, BudgetPolicy
from fazt.sandbox import AppCode, JsOutcome, JsRequest, Sandbox, SandboxSettings


@dataclass
class LogLines:
    lines: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    at: list[float] = field(default_factory=list)   # trio time each line arrived

    def __call__(self, app: str, level: str, message: str, request_id: str | None) -> None:
        self.lines.append((app, level, message, request_id))
        self.at.append(trio.current_time())

    def messages(self, app: str | None = None) -> list[str]:
        return [m for a, _, m, _ in self.lines if app is None or a == app]


def request_body(path: str = "/api/x", *, method: str = "GET", body: Any = None,
                 **extra: Any) -> bytes:
    return orjson.dumps({"method": method, "path": path, "query": {}, "headers": {},
                         "cookies": {}, "ip": "127.0.0.1", "request_id": "rid",
                         "body": body, "text": None, **extra})


async def no_capabilities(cap: str, method: str, args: list[Any], budget: Budget) -> Any:
    raise AssertionError(f"unexpected capability call {cap}.{method}")


@dataclass
class SandboxHarness:
    sandbox: Sandbox
    logs: LogLines
    deploys: dict[str, int] = field(default_factory=dict)

    async def run(self, app: str, files: Mapping[str, str], *, request: bytes | None = None,
                  request_s: float = 5.0, policy: BudgetPolicy | None = None,
                  memory_mb: int = 128, deploy_id: int | None = None,
                  granted: Mapping[str, list[str]] | None = None,
                  capabilities: Callable[[str, str, list[Any], Budget], Awaitable[Any]]
                  = no_capabilities, request_id: str = "rid", runtime: str = "fazt",
                  env: Mapping[str, str] | None = None) -> JsOutcome:
        deploy = deploy_id if deploy_id is not None else self.deploys.setdefault(app, 1)

        async def load() -> AppCode:
            return AppCode(app=app, deploy_id=deploy, main="api/main.js", files=dict(files),
                           memory_mb=memory_mb, granted=dict(granted or {}), runtime=runtime,
                           env=env)

        policy = policy or BudgetPolicy(request_s=request_s, js_cap_s=request_s)
        budget = Budget.start(policy)
        return await self.sandbox.handle(
            app=app, deploy_id=deploy, generation=deploy, load_code=load,
            request=JsRequest(body=request or request_body(), request_id=request_id),
            budget=budget, capabilities=capabilities)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHarness]:
    async with running() as harness:
        yield harness


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait, bounded, until ``condition()`` holds (for asynchronous clean-up)."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[SandboxHarness]:
    """Like the ``sandbox`` fixture, with other settings."""
    settings: dict[str, Any] = {"workers_per_app": 2, "worker_concurrency": 8, "spares": 1,
                                "total_memory_mb": 2048, "kill_grace_s": 0.5}
    settings.update(overrides)
    logs = LogLines()
    box = Sandbox(SandboxSettings(**settings), log_sink=logs)
    async with trio.open_nursery() as nursery:
        await nursery.start(box.run)
        yield SandboxHarness(sandbox=box, logs=logs)
        nursery.cancel_scope.cancel()


def app(source: str) -> dict[str, str]:
    return {"api/main.js": source}


def ready_pids(harness: SandboxHarness, name: str) -> list[int]:
    pool = harness.sandbox.stats()["pools"].get(name)
    if pool is None:
        return []
    return [w["pid"] for w in pool["workers"] if w["state"] == "ready"]


def in_flight(harness: SandboxHarness, name: str) -> int:
    pool = harness.sandbox.stats()["pools"].get(name)
    return 0 if pool is None else pool["in_flight"]


def process_exists(pid: int) -> bool:
    """True while ``pid`` is running or a zombie nobody reaped."""
    return os.path.exists(f"/proc/{pid}")
