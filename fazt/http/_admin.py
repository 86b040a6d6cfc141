"""The admin API (quart-trio): JSON under /api/ on the admin hosts.

Every route except ``GET /api/`` and ``GET /api/health`` needs ``Authorization: Bearer <token>``.
Every error is ``{"error": {"code", "message", "request_id"}}`` with the right status; a 5xx body
never carries a stack trace, a host path or SQL (the cause goes to the log, with the request id).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from fazt.applog import AppLogStore
from fazt.auth import TokenStore
from fazt.capabilities import Capabilities
from fazt.capabilities.net import NetProvider
from fazt.config import Config
from fazt.errors import (
    BadRequest,
    FaztError,
    InvalidJson,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from fazt.hosting import Hosting
from fazt.http._api import ApiGateway
from fazt.http._responses import error_body
from fazt.http._root import request_id_of
from fazt.sandbox import Sandbox
from fazt.storage import Chaos, Database

log = logging.getLogger("fazt.http.admin")

PUBLIC_PATHS = frozenset({"/api/", "/api", "/api/health"})
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               408: "request_timeout", 413: "payload_too_large", 415: "unsupported_media_type"}


@dataclass(frozen=True, kw_only=True)
class AdminContext:
    config: Config
    db: Database
    hosting: Hosting
    tokens: TokenStore
    logs: AppLogStore
    capabilities: Capabilities
    started_at: float   # time.monotonic() at start
    chaos: Chaos | None = None      # the storage chaos seam (the chaos setting)
    net: NetProvider | None = None
    sandbox: Sandbox | None = None      # the runtime view's sources (None in narrow tests)
    api: ApiGateway | None = None


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, content_type="application/json")


def _error_response(code: str, message: str, status: int,
                    headers: dict[str, str] | None = None) -> Response:
    body = error_body(code, message, request_id_of(request.scope))
    return Response(body, status=status, content_type="application/json", headers=headers)


async def read_body(limit: int) -> bytes:
    """The request body, refusing (413) before reading when Content-Length is over the limit."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body of {length} bytes exceeds the limit of {limit} bytes")
    request.max_content_length = limit
    data = await request.get_data(cache=False, as_text=False)
    return data if isinstance(data, bytes) else data.encode()


async def read_json(limit: int, *, allow_empty: bool = False) -> dict[str, Any]:
    body = await read_body(limit)
    if not body.strip() and allow_empty:
        return {}
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidJson("request body must be a JSON object")
    return value


def create_admin_app(ctx: AdminContext) -> QuartTrio:
    from fazt.http import (
        routes_apps,
        routes_debug,
        routes_net,
        routes_sql,
        routes_system,
        routes_tokens,
    )

    app = QuartTrio("fazt.admin", static_folder=None)
    # The whole upload must arrive within BODY_TIMEOUT: at least 60 s, more for a large limit
    # (a full-size deploy at 512 KiB/s).
    body_timeout_s = max(60, ctx.config.max_deploy_bytes // (512 * 1024))
    app.config.update(MAX_CONTENT_LENGTH=ctx.config.max_deploy_bytes, BODY_TIMEOUT=body_timeout_s,
                      PROVIDE_AUTOMATIC_OPTIONS=False, JSON_SORT_KEYS=False)

    @app.before_request
    async def require_token() -> Response | None:
        if request.path in PUBLIC_PATHS:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send Authorization: Bearer <token> (see `fazt token create`)")
        token_id = await ctx.tokens.verify(token.strip())
        if token_id is None:
            raise Unauthorized("the token is invalid or revoked")
        request.scope["fazt.token_id"] = token_id  # type: ignore[typeddict-unknown-key]
        return None

    @app.after_request
    async def close_if_body_unread(response: Response) -> Response:
        # An error sent before the request body was read (401 on an upload, 415, 413) must not
        # leave the unread body in the connection: close it, as nginx's lingering close does.
        has_body = (request.content_length or 0) > 0 or "transfer-encoding" in request.headers
        if response.status_code >= 400 and has_body:
            response.headers["connection"] = "close"
        return response

    @app.errorhandler(FaztError)
    async def fazt_error(exc: FaztError) -> Response:
        if exc.http_status >= 500:
            log.warning("request %s failed: %s: %s", request_id_of(request.scope), exc.code, exc)
        headers = {"www-authenticate": "Bearer"} if exc.http_status == 401 else None
        return _error_response(exc.code, exc.public_message(), exc.http_status, headers)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = {404: f"no such endpoint: {request.method} {request.path}",
                   405: f"{request.method} is not allowed on {request.path}",
                   413: "request body too large"}.get(status, exc.description or code)
        allowed = getattr(exc, "valid_methods", None)
        headers = {"allow": ", ".join(sorted(allowed))} if status == 405 and allowed else None
        return _error_response(code, message, status, headers)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.error("request %s crashed", request_id_of(request.scope), exc_info=exc)
        return _error_response("internal_error", "internal error", 500)

    routes_system.register(app, ctx)
    routes_apps.register(app, ctx)
    routes_tokens.register(app, ctx)
    routes_sql.register(app, ctx)
    routes_debug.register(app, ctx)
    if ctx.net is not None:
        routes_net.register(app, ctx)
    return app


def known_fields(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``body`` when it has no field but ``keys``; else a 400 naming the first stranger."""
    unknown = sorted(set(body) - set(keys))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (known: {', '.join(keys)})")
    return body


def uptime_s(ctx: AdminContext) -> float:
    return round(time.monotonic() - ctx.started_at, 3)
