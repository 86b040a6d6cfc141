"""Apps, deploys, rollback, app logs."""

from __future__ import annotations

import logging
import re
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.datastructures import MultiDict

from fazt.applog import LEVELS, LogLine
from fazt.errors import (
    AppNotFound,
    BadRequest,
    BudgetExceeded,
    Forbidden,
    StorageError,
    UnsupportedMediaType,
)
from fazt.hosting import validate_app_name
from fazt.http._admin import AdminContext, json_response, read_body, read_json
from fazt.storage import Chaos, Fault

log = logging.getLogger("fazt.http.admin")

ARCHIVE_TYPES = frozenset({
    "", "application/zip", "application/x-zip-compressed", "application/gzip", "application/x-gzip",
    "application/x-tar+gzip", "application/x-gtar", "application/octet-stream"})
DEFAULT_LOG_LINES = 100
MAX_LOG_LINES = 1000
MAX_LOG_WAIT_S = 60
MAX_ID = 2**63 - 1   # SQLite's largest integer
_DIGITS = re.compile(r"[0-9]{1,19}")
_SECONDS = re.compile(r"[0-9]{1,2}(?:\.[0-9]{1,3})?")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def register(app: QuartTrio, ctx: AdminContext) -> None:
    hosting = ctx.hosting
    config = ctx.config
    app_logs = ctx.logs
    capabilities = ctx.capabilities
    settings = capabilities.settings
    assert settings is not None, "the admin API needs the per-app settings"

    @app.get("/api/apps")
    async def list_apps() -> Response:
        apps = await hosting.list_apps()
        return json_response({"apps": [
            {"name": a.name, "created_at": a.created_at,
             "current": a.current.to_json() if a.current else None,
             "url": config.public_url(a.name)} for a in apps]})

    @app.get("/api/apps/<name>")
    async def app_info(name: str) -> Response:
        info = await hosting.app_info(validate_app_name(name))
        return json_response({**info.to_json(), "url": config.public_url(name),
                              "capabilities": await grant_of(name)})

    async def grant_of(name: str) -> dict[str, Any]:
        site = await hosting.site(name)
        requested = site.capabilities if site is not None else None
        out = {**capabilities.grant(name, requested).to_json(),
               "usage_bytes": await settings.usage(name)}
        if ctx.net is not None:     # the operator's net rules that apply to the app
            out["net_rules"] = [r.to_json() for r in ctx.net.policy.rules(name)]
        return out

    @app.get("/api/apps/<name>/policy")
    async def get_policy(name: str) -> Response:
        await require_app(name)
        return json_response({"app": name, "capabilities": await grant_of(name)})

    @app.post("/api/apps/<name>/policy")
    async def set_policy(name: str) -> Response:
        validate_app_name(name)
        body = await read_json(config.max_api_body_bytes)
        unknown = sorted(set(body) - {"withhold", "allow", "quota_mb", "reset"})
        if unknown:
            raise BadRequest(f"unknown key {unknown[0]!r} (known: withhold, allow, quota_mb, "
                             "reset)")
        withhold, allow = _names(body, "withhold"), _names(body, "allow")
        quota = body.get("quota_mb", {})
        if not isinstance(quota, dict):
            raise BadRequest("\"quota_mb\" must be an object of capability: MB (null restores "
                             "the default)")
        reset = body.get("reset", False)
        if not isinstance(reset, bool):
            raise BadRequest("\"reset\" must be true or false")
        await settings.set_policy(name, withhold=withhold, allow=allow, quota_mb=quota,
                                  reset=reset)
        return json_response({"app": name, "capabilities": await grant_of(name)})

    @app.get("/api/apps/<name>/env")
    async def get_env(name: str) -> Response:
        await require_app(name)
        return json_response({"app": name, "env": dict(settings.env(name))})

    @app.patch("/api/apps/<name>/env")
    async def update_env(name: str) -> Response:
        validate_app_name(name)
        body = await read_json(config.max_api_body_bytes)
        unknown = sorted(set(body) - {"set", "unset"})
        if unknown:
            raise BadRequest(f"unknown key {unknown[0]!r} (known: set, unset)")
        values = body.get("set", {})
        if not isinstance(values, dict):
            raise BadRequest("\"set\" must be an object of NAME: value")
        env = await settings.update_env(name, set_values=values, unset=_names(body, "unset"))
        return json_response({"app": name, "env": dict(env)})

    # -- chaos (only when the server runs with chaos = true) ---------------------------------

    def chaos_on() -> Chaos:
        if ctx.chaos is None:
            raise Forbidden("chaos is off: start the server with FAZT_CHAOS=1 (chaos = true; "
                            "never in production)")
        return ctx.chaos

    def chaos_state(name: str, chaos: Chaos) -> Response:
        fault = chaos.get(name)
        return json_response({"app": name, "fault": fault.to_json() if fault else None,
                              "injected": chaos.injected(name)})

    @app.get("/api/apps/<name>/chaos")
    async def get_chaos(name: str) -> Response:
        chaos = chaos_on()
        await require_app(name)
        return chaos_state(name, chaos)

    @app.put("/api/apps/<name>/chaos")
    async def set_chaos(name: str) -> Response:
        chaos = chaos_on()
        fault = Fault.from_json(await read_json(config.max_api_body_bytes))
        await require_app(name)
        chaos.set(name, fault)
        return chaos_state(name, chaos)

    @app.delete("/api/apps/<name>/chaos")
    async def clear_chaos(name: str) -> Response:
        chaos = chaos_on()
        await require_app(name)
        chaos.set(name, None)
        return chaos_state(name, chaos)

    async def require_app(name: str) -> None:
        if not await hosting.app_exists(validate_app_name(name)):
            raise AppNotFound(f"no app named {name!r}")

    @app.get("/api/apps/<name>/deploys")
    async def deploys(name: str) -> Response:
        info = await hosting.app_info(validate_app_name(name))
        return json_response({"deploys": [d.to_json() for d in info.deploys]})

    @app.delete("/api/apps/<name>")
    async def remove(name: str) -> Response:
        await hosting.remove(validate_app_name(name))
        settings.forget(name)       # its settings and data went with it
        if ctx.net is not None:
            ctx.net.policy.forget(name)     # its own net rules and secrets too
            ctx.net.forget_app(name)
        try:
            await app_logs.delete_app(name)
            if ctx.net is not None:
                await ctx.net.log.delete_app(name)
        except (StorageError, BudgetExceeded) as exc:   # the app is gone: say so all the same
            log.warning("request removed app %s but not its logs: %s", name, exc.code)
        return json_response({"removed": name})

    @app.get("/api/apps/<name>/logs")
    async def logs(name: str) -> Response:
        validate_app_name(name)
        args = request.args
        limit = int_arg(args, "n", low=1, high=MAX_LOG_LINES)
        after = int_arg(args, "after", low=0, high=MAX_ID)
        level = args.get("level")
        if level is not None and level not in LEVELS:
            raise BadRequest(f"\"level\" must be one of {', '.join(LEVELS)}")
        request_id = args.get("request_id")
        if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
            raise BadRequest("\"request_id\" must be 1-64 characters of A-Z a-z 0-9 . _ : -")
        wait_s = wait_arg(args)
        if wait_s is not None and after is None:
            raise BadRequest("\"wait\" needs \"after\" (the \"next\" of the previous answer)")
        if not await hosting.app_exists(name):
            raise AppNotFound(f"no app named {name!r}")

        async def read() -> list[LogLine]:
            return await app_logs.read(name, limit=DEFAULT_LOG_LINES if limit is None else limit,
                                       after=after, level=level, request_id=request_id)

        newest = 0
        if wait_s and (level is not None or request_id is not None):
            # Lines past `after` that the filters hide must not end the wait at once (a follower
            # would poll in a busy loop): wait for lines newer than those. Read before the
            # filtered read, so that a matching line written in between is not missed.
            newest = max((line.id for line in await app_logs.read(name, limit=1)), default=0)
        lines = await read()
        if not lines and after is not None and wait_s:   # long poll: wait for newer lines
            await app_logs.wait(name, max(after, newest), wait_s)
            lines = await read()
        return json_response({"app": name, "lines": [line.to_json() for line in lines],
                              "next": lines[-1].id if lines else after or 0})

    @app.post("/api/apps/<name>/deploy")
    async def deploy(name: str) -> Response:
        validate_app_name(name)
        if request.mimetype not in ARCHIVE_TYPES:
            raise UnsupportedMediaType(
                f"send the archive as the raw body (application/zip or application/gzip), "
                f"not {request.mimetype}")
        body = await read_body(config.max_deploy_bytes)
        if not body:
            raise BadRequest("the request body is empty: send a zip or tar.gz archive")
        result = await hosting.deploy(name, body, source="api")
        return json_response({
            "deploy": result.deploy.to_json(),
            "skipped": list(result.skipped),
            "new_blob_bytes": result.new_blob_bytes,
            "url": config.public_url(name),
        }, status=201)

    @app.post("/api/apps/<name>/rollback")
    async def rollback(name: str) -> Response:
        body = await read_json(config.max_api_body_bytes, allow_empty=True)
        to = body.get("to")
        if to is not None and (isinstance(to, bool) or not isinstance(to, int) or to < 1):
            raise BadRequest("\"to\" must be a deploy id (a positive integer)")
        deploy = await hosting.rollback(validate_app_name(name), to=to)
        return json_response({"deploy": deploy.to_json(), "url": config.public_url(name)})


def _names(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) \
            or len(value) > 1000:
        raise BadRequest(f"\"{key}\" must be a list of names")
    return value


def int_arg(args: MultiDict[str, str], name: str, *, low: int, high: int) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value) or not low <= int(value) <= high:
        limit = f"from {low} to {high}" if high < MAX_ID else f"of at least {low}"
        raise BadRequest(f"\"{name}\" must be an integer {limit}")
    return int(value)


def wait_arg(args: MultiDict[str, str]) -> float | None:
    value = args.get("wait")
    if value is None:
        return None
    if not _SECONDS.fullmatch(value) or float(value) > MAX_LOG_WAIT_S:
        raise BadRequest(f"\"wait\" must be a number of seconds from 0 to {MAX_LOG_WAIT_S}")
    return float(value)
