"""Admin tokens: list, create (the secret is shown once), revoke."""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from fazt.errors import BadRequest
from fazt.http._admin import AdminContext, json_response, read_json


def register(app: QuartTrio, ctx: AdminContext) -> None:
    tokens = ctx.tokens

    @app.get("/api/tokens")
    async def list_tokens() -> Response:
        return json_response({"tokens": [t.to_json() for t in await tokens.list()]})

    @app.post("/api/tokens")
    async def create_token() -> Response:
        body = await read_json(ctx.config.max_api_body_bytes)
        name = body.get("name")
        if not isinstance(name, str):
            raise BadRequest("\"name\" is required and must be a string")
        info, secret = await tokens.create(name)
        return json_response({"token": info.to_json(), "secret": secret}, status=201)

    @app.delete("/api/tokens/<token_id>")
    async def revoke_token(token_id: str) -> Response:
        info = await tokens.revoke(token_id)
        return json_response({"token": info.to_json()})
