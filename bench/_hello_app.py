"""The baseline for bench/js.py: a JSON hello handler as a bare ASGI app.

Answers every HTTP request with ``{"message":"hello","path":<the request path>}`` (the same bytes
as the JS handler ``async (request) => ({ message: "hello", path: request.path })`` through
fazt), ``content-type: application/json`` and its ``content-length``. The JSON is built per
request, as the handler does, so what remains is hypercorn's trio worker plus a ``json.dumps``:
the gap to fazt is the cost of fazt's ``/api/*`` path (routing, request to JSON, the budget,
the round trip over the pipe to a PythonMonkey worker, running the handler, checking its
answer).

Run by bench/js.py as ``hypercorn -k trio -c <toml> bench/_hello_app.py:app``.
"""

from __future__ import annotations

import json
from typing import Any

_JSON = b"application/json"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = json.dumps({"message": "hello", "path": scope["path"]},
                      separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", _JSON),
                            (b"content-length", str(len(body)).encode("ascii"))]})
    await send({"type": "http.response.body", "body": body})
