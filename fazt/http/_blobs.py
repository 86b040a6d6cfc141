"""``/_fazt/blobs/<key>`` on an app's host: the app's blobs, served to browsers.

A blob put with ``{public: true}`` is served to anyone; any other only with the signature
``blobs.url()`` made (``?expires=...&sig=...``, plus ``&scope=u:<user>`` for a user's blob).
A missing blob, a private one without a signature and a user's blob asked for without one all
get the same 404, so URLs cannot be used to probe what exists. Responses carry the blob's
content type, an ETag (its sha256; ``If-None-Match`` gives 304) and ``Content-Security-Policy:
sandbox``, so an HTML blob (say, a user's upload) cannot run script on the app's origin.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote_to_bytes

import trio

from fazt.capabilities.blobs import URL_PREFIX, BlobStore
from fazt.errors import Forbidden, InvalidPath, MethodNotAllowed, NotFound
from fazt.http._conditional import none_match, request_headers
from fazt.http._paths import scope_path_bytes
from fazt.http._responses import Headers, Scope, Send

PREFIX = URL_PREFIX.encode("ascii")


async def serve_blob(scope: Scope, send: Send, *, blobs: BlobStore, app: str,
                     op_timeout_s: float, common: Headers) -> None:
    method = scope["method"]
    if method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{method} is not allowed on a blob URL (GET or HEAD)")
    key = _key(scope_path_bytes(scope))
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    user_scope = _one(query, "scope") or ""
    signed = blobs.check_url(app, key, scope=user_scope, expires=_one(query, "expires"),
                             sig=_one(query, "sig"))
    if signed is False:
        raise Forbidden("the blob URL's signature is invalid or has expired")
    blob = await blobs.lookup(app, key, scope=user_scope,
                              deadline=trio.current_time() + op_timeout_s)
    if blob is None or not (signed or blob.public):
        raise NotFound("no such blob")
    etag = f'"{blob.sha256}"'.encode("ascii")
    headers: Headers = [
        *common,
        (b"etag", etag),
        (b"cache-control", b"public, no-cache" if blob.public and not signed
         else b"private, no-cache"),
        (b"content-security-policy", b"sandbox"),
    ]
    match = request_headers(scope["headers"]).get(b"if-none-match")
    if match is not None and none_match(match, etag):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers += [(b"content-type", blob.content_type.encode("latin-1")),
                (b"content-length", str(len(blob.data)).encode("ascii"))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else blob.data})


def _key(raw_path: bytes) -> str:
    """The blob key: the rest of the path, percent-decoded once (keys may hold any text, so
    the path is not normalized: a lookup by exact key touches nothing else)."""
    target = raw_path.partition(b"?")[0]
    if not target.startswith(PREFIX) or len(target) == len(PREFIX):
        raise NotFound("no such blob")
    try:
        key = unquote_to_bytes(target[len(PREFIX):]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPath("the blob key is not valid UTF-8") from exc
    if any(c < " " or c == "\x7f" for c in key):
        raise InvalidPath("the blob key contains a control character")
    return key


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None
