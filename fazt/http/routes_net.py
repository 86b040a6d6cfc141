"""The net capability's operator side: rules, secrets and the call log."""

from __future__ import annotations

from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from fazt.errors import BadRequest
from fazt.hosting import validate_app_name
from fazt.http._admin import AdminContext, json_response, known_fields, read_json
from fazt.http.routes_apps import DEFAULT_LOG_LINES, MAX_ID, MAX_LOG_LINES, int_arg, wait_arg

RULE_KEYS = ("domain", "app", "rate_per_s", "burst", "cache_ttl_s")
SECRET_KEYS = ("value", "as", "app", "domain")


def register(app: QuartTrio, ctx: AdminContext) -> None:
    net = ctx.net
    assert net is not None, "the admin API needs the net capability"
    policy = net.policy

    @app.get("/api/net/rules")
    async def net_rules() -> Response:
        return json_response({"rules": [r.to_json() for r in policy.rules()],
                              "cache": net.cache.stats()})

    @app.post("/api/net/rules")
    async def net_allow() -> Response:
        body = known_fields(await read_json(ctx.config.max_api_body_bytes), RULE_KEYS)
        rule = await policy.allow(body.get("domain"), app=_app(body.get("app")),
                                  rate_per_s=body.get("rate_per_s"), burst=body.get("burst"),
                                  cache_ttl_s=body.get("cache_ttl_s"))
        return json_response({"rule": rule.to_json()}, status=201)

    @app.delete("/api/net/rules/<path:entry>")     # an entry may hold "/" (http://...)
    async def net_remove(entry: str) -> Response:
        app_name = _app(request.args.get("app"))
        removed = await policy.remove(entry, app=app_name)
        return json_response({"removed": {"domain": removed, "app": app_name}})

    @app.get("/api/net/secrets")
    async def net_secrets() -> Response:
        return json_response({"secrets": [s.to_json() for s in policy.secrets()]})

    @app.put("/api/net/secrets/<name>")
    async def net_set_secret(name: str) -> Response:
        body = known_fields(await read_json(ctx.config.max_api_body_bytes), SECRET_KEYS)
        inject = body.get("as", "bearer")
        if not isinstance(inject, str):
            raise BadRequest("\"as\" must be bearer, header:NAME or query:NAME")
        domain = body.get("domain")
        if domain is not None and not isinstance(domain, str):
            raise BadRequest("\"domain\" must be a host name")
        secret = await policy.set_secret(name, body.get("value"),
                                         inject=inject, app=_app(body.get("app")), domain=domain)
        return json_response({"secret": secret.to_json()})

    @app.delete("/api/net/secrets/<name>")
    async def net_remove_secret(name: str) -> Response:
        app_name = _app(request.args.get("app"))
        await policy.remove_secret(name, app=app_name)
        return json_response({"removed": {"name": name, "app": app_name}})

    @app.get("/api/net/log")
    async def net_log() -> Response:
        args = request.args
        app_name = _app(args.get("app"))
        limit = int_arg(args, "n", low=1, high=MAX_LOG_LINES) or DEFAULT_LOG_LINES
        after = int_arg(args, "after", low=0, high=MAX_ID)
        wait_s = wait_arg(args)
        if wait_s is not None and after is None:
            raise BadRequest("\"wait\" needs \"after\" (the \"next\" of the previous answer)")
        entries = await net.log.read(app=app_name, limit=limit, after=after)
        if not entries and after is not None and wait_s:
            newest = max((e.id for e in await net.log.read(limit=1)), default=0)
            await net.log.wait(max(after, newest), wait_s)
            entries = await net.log.read(app=app_name, limit=limit, after=after)
        return json_response({"calls": [e.to_json() for e in entries],
                              "next": entries[-1].id if entries else after or 0})


def _app(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("\"app\" must be an app name")
    return validate_app_name(value)


__all__ = ["register"]
