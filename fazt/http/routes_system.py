"""GET /api/ (index), GET /api/health (public), GET /api/system/health (token)."""

from __future__ import annotations

import os
import resource

from quart import Response
from quart_trio import QuartTrio

from fazt import __version__
from fazt.http._admin import AdminContext, json_response, uptime_s
from fazt.sandbox import process_rss

ENDPOINTS = [
    "GET /api/health",
    "GET /api/system/health",
    "GET /api/apps",
    "GET /api/apps/{name}",
    "DELETE /api/apps/{name}",
    "POST /api/apps/{name}/deploy",
    "GET /api/apps/{name}/deploys",
    "GET /api/apps/{name}/logs",
    "POST /api/apps/{name}/rollback",
    "GET /api/apps/{name}/policy",
    "POST /api/apps/{name}/policy",
    "GET /api/apps/{name}/env",
    "PATCH /api/apps/{name}/env",
    "GET /api/apps/{name}/chaos",
    "PUT /api/apps/{name}/chaos",
    "DELETE /api/apps/{name}/chaos",
    "GET /api/net/rules",
    "POST /api/net/rules",
    "DELETE /api/net/rules/{entry}",
    "GET /api/net/secrets",
    "PUT /api/net/secrets/{name}",
    "DELETE /api/net/secrets/{name}",
    "GET /api/net/log",
    "POST /api/sql",
    "GET /api/_debug/runtime",
    "GET /api/tokens",
    "POST /api/tokens",
    "DELETE /api/tokens/{token_id}",
]


def rss_bytes() -> int:
    """The server's resident memory (its peak, where /proc is missing)."""
    rss = process_rss("self")
    return rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def register(app: QuartTrio, ctx: AdminContext) -> None:
    @app.get("/api/")
    @app.get("/api")
    async def index() -> Response:
        return json_response({"service": "fazt admin API", "endpoints": ENDPOINTS,
                              "auth": "Authorization: Bearer <token>"})

    @app.get("/api/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @app.get("/api/system/health")
    async def system_health() -> Response:
        stats = ctx.db.stats()
        apps = await ctx.hosting.list_apps()
        return json_response({
            "status": "ok",
            "version": __version__,
            "uptime_s": uptime_s(ctx),
            "pid": os.getpid(),
            "memory": {"rss_bytes": rss_bytes()},
            "database": {
                "db_bytes": stats.db_bytes,
                "wal_bytes": stats.wal_bytes,
                "writer_queue_depth": stats.writer_queue_depth,
                "batches_committed": stats.batches_committed,
                "writes_committed": stats.writes_committed,
                "commit_latency_p50_ms": stats.commit_latency_p50_ms,
                "commit_latency_p99_ms": stats.commit_latency_p99_ms,
                "readers": stats.readers,
                "readers_busy": stats.readers_busy,
            },
            "apps": len(apps),
            "static_cache": ctx.hosting.cache_stats(),
        })
