"""The baseline for bench/static.py: the least a static server can do, as a bare ASGI app.

Every file under ``$FAZT_BENCH_STATIC_DIR`` is read into memory at import, with its complete
response header list (content-type, content-length, strong ETag, cache-control) built once. A
request is then one dict look-up on the raw path and two ``send`` calls, so what remains is the
cost of hypercorn's trio worker itself. fazt's static path does the same job plus routing,
path normalization, security headers and a request id; the gap between the two is fazt's own
per-request overhead.

Run by bench/static.py as ``hypercorn -k trio -c <toml> bench/_baseline_app.py:app``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

_CACHE_CONTROL = {
    ".html": b"no-cache",  # what fazt sends for HTML
    ".js": b"public, max-age=31536000, immutable",  # what fazt sends for a content-hashed name
}
_CONTENT_TYPE = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8"}
_NOT_FOUND = (
    {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]},
    {"type": "http.response.body", "body": b""},
)


def _load(root: Path) -> dict[bytes, tuple[list[tuple[bytes, bytes]], bytes]]:
    """Raw request path (``/index.html``) -> (response headers, body)."""
    routes: dict[bytes, tuple[list[tuple[bytes, bytes]], bytes]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        body = path.read_bytes()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode("ascii") + b'"'
        headers = [
            (b"content-type", _CONTENT_TYPE.get(path.suffix, b"application/octet-stream")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"etag", etag),
            (b"cache-control", _CACHE_CONTROL.get(path.suffix, b"public, max-age=300")),
        ]
        routes[b"/" + path.relative_to(root).as_posix().encode()] = (headers, body)
    return routes


_ROUTES = _load(Path(os.environ["FAZT_BENCH_STATIC_DIR"]))


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
    found = _ROUTES.get(scope["raw_path"])
    if found is None:
        await send(_NOT_FOUND[0])
        await send(_NOT_FOUND[1])
        return
    headers, body = found
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
