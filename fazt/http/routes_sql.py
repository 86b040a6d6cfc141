"""POST /api/sql: the operator's SQL console (``fazt sql`` without ``--local``)."""

from __future__ import annotations

import logging
from typing import Any

import trio
from quart import Response
from quart_trio import QuartTrio

from fazt.errors import BadRequest
from fazt.http._admin import AdminContext, json_response, known_fields, read_json
from fazt.storage import run_statement

log = logging.getLogger("fazt.http.admin")

KEYS = ("query", "write", "limit", "timeout_ms")
MAX_QUERY_CHARS = 100_000
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_TIMEOUT_MS = 60_000


def register(app: QuartTrio, ctx: AdminContext) -> None:
    db = ctx.db

    @app.post("/api/sql")
    async def sql() -> Response:
        body = known_fields(await read_json(ctx.config.max_api_body_bytes), KEYS)
        query = body.get("query")
        if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
            raise BadRequest(f"\"query\" must be one SQL statement of at most "
                             f"{MAX_QUERY_CHARS} characters")
        write = body.get("write", False)
        if not isinstance(write, bool):
            raise BadRequest("\"write\" must be true or false")
        limit = _whole(body, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        timeout_ms = _whole(body, "timeout_ms", int(ctx.config.storage_op_timeout_s * 1000),
                            MAX_TIMEOUT_MS)
        started = trio.current_time()

        def run(conn: Any) -> Any:
            return run_statement(conn, query, write=write, max_rows=limit)

        deadline = started + timeout_ms / 1000
        result = await (db.write(run, deadline=deadline) if write
                        else db.read(run, deadline=deadline))
        if write:
            log.info("SQL written through the admin API (%d rows changed): %.200s",
                     result.changes or 0, query)
        return json_response({**result.to_json(),
                              "duration_ms": round((trio.current_time() - started) * 1000, 2)})


def _whole(body: dict[str, Any], name: str, default: int, high: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise BadRequest(f"\"{name}\" must be a whole number from 1 to {high}")
    return value
