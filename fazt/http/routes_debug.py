"""GET /api/_debug/runtime: the live state of the server, for an operator asking "why is it
slow, what is failing" (``fazt debug runtime``). Every field is listed in
docs/reference/api.md; a test checks each is present."""

from __future__ import annotations

import os
from typing import Any

import trio
from quart import Response
from quart_trio import QuartTrio

from fazt import __version__
from fazt.http._admin import AdminContext, json_response, uptime_s
from fazt.http.routes_system import rss_bytes


def register(app: QuartTrio, ctx: AdminContext) -> None:
    @app.get("/api/_debug/runtime")
    async def runtime() -> Response:
        return json_response(runtime_view(ctx))


def runtime_view(ctx: AdminContext) -> dict[str, Any]:
    now = trio.current_time()
    sandbox = ctx.sandbox.stats() if ctx.sandbox is not None else None
    if sandbox is not None:
        for pool in sandbox["pools"].values():
            workers = pool["workers"]
            pool["busy"] = sum(1 for w in workers if w["in_flight"] > 0)
            pool["idle"] = sum(1 for w in workers if w["in_flight"] == 0
                               and w["state"] == "ready")
    api = ctx.api
    return {
        "process": {"version": __version__, "pid": os.getpid(), "uptime_s": uptime_s(ctx),
                    "rss_bytes": rss_bytes(), "open_fds": _open_fds(),
                    "trio_tasks": _trio_tasks()},
        "sandbox": sandbox,
        "requests": None if api is None else {
            "in_flight": sorted((r.to_json(now) for r in api.in_flight.values()),
                                key=lambda r: -r["age_ms"]),
            "served": api.budget_stats.requests},
        "budget": None if api is None else api.budget_stats.snapshot(),
        "storage": vars(ctx.db.stats()),
        "egress": None if ctx.net is None else ctx.net.stats(),
    }


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _trio_tasks() -> int:
    """Every task in the trio run (the whole tree, from the root task)."""
    count, stack = 0, [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count
