"""Apps, deploys, rollback."""

from __future__ import annotations

from quart import Response, request
from quart_trio import QuartTrio

from fazt.errors import BadRequest, UnsupportedMediaType
from fazt.hosting import validate_app_name
from fazt.http._admin import AdminContext, json_response, read_body, read_json

ARCHIVE_TYPES = frozenset({
    "", "application/zip", "application/x-zip-compressed", "application/gzip", "application/x-gzip",
    "application/x-tar+gzip", "application/x-gtar", "application/octet-stream"})


def register(app: QuartTrio, ctx: AdminContext) -> None:
    hosting = ctx.hosting
    config = ctx.config

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
        return json_response({**info.to_json(), "url": config.public_url(name)})

    @app.get("/api/apps/<name>/deploys")
    async def deploys(name: str) -> Response:
        info = await hosting.app_info(validate_app_name(name))
        return json_response({"deploys": [d.to_json() for d in info.deploys]})

    @app.delete("/api/apps/<name>")
    async def remove(name: str) -> Response:
        await hosting.remove(validate_app_name(name))
        return json_response({"removed": name})

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
