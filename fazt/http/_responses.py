"""Bare-ASGI helpers shared by the router, the static path and the API path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import trio

from fazt.errors import FaztError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


def error_body(code: str, message: str, request_id: str | None = None) -> bytes:
    error: dict[str, str] = {"code": code, "message": message}
    if request_id:
        error["request_id"] = request_id
    return orjson.dumps({"error": error})


def error_from_exception(exc: FaztError, request_id: str | None = None) -> bytes:
    return error_body(exc.code, exc.public_message(), request_id)


async def send_bytes(send: Send, status: int, body: bytes, *, content_type: bytes,
                     headers: Headers | None = None, head: bool = False) -> None:
    out: Headers = [(b"content-type", content_type),
                    (b"content-length", str(len(body)).encode())]
    if headers:
        out.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_json_error(send: Send, exc: FaztError, *, request_id: str | None = None,
                          head: bool = False, headers: Headers | None = None) -> None:
    await send_bytes(send, exc.http_status, error_from_exception(exc, request_id),
                     content_type=b"application/json", headers=headers, head=head)


async def cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` once hypercorn reports the client gone (other events are ignored)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel(reason="client disconnected")
            return
