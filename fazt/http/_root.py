"""The root ASGI callable: request id, security headers, routing by Host.

    admin hosts (<domain>, admin.<domain>, localhost, IP literals)   /api/*  -> admin API (quart)
                                                                     /       -> 302 /api/
    <app>.<domain>                                                   /api/*  -> the app's API
                                                            /_fazt/blobs/*  -> the app's blobs
                                                                     else    -> static fast path
    anything else                                                            -> 404

Static files never go through quart: the fast path is plain ASGI (quart's send_file halves
throughput, see docs/discussion/static-serving.md).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

import trio

from fazt.capabilities import Capabilities
from fazt.capabilities.blobs import BlobStore
from fazt.errors import FaztError, NotFound
from fazt.hosting import Hosting, is_content_hashed
from fazt.http._api import ApiGateway, ClientGone
from fazt.http._blobs import PREFIX as BLOBS_PREFIX
from fazt.http._blobs import serve_blob
from fazt.http._paths import normalize_request_path, scope_path_bytes
from fazt.http._responses import (
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    send_bytes,
    send_json_error,
)
from fazt.http._static import send_not_found, serve_static

log = logging.getLogger("fazt.http")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_ADMIN_SEND_TIMEOUT_S = 60.0   # a backstop: hypercorn's socket writes have their own guard
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
_APP_LABEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

_COMMON_HEADERS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]
_ADMIN_HEADERS: Headers = [
    *_COMMON_HEADERS,
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def request_id_of(scope: Mapping[str, Any]) -> str:
    """The request id the root assigned (``-`` outside a request)."""
    return str(scope.get("fazt.request_id", "-"))


class RootApp:
    """Everything hypercorn calls goes through here."""

    def __init__(self, *, domain: str, admin: ASGIApp, hosting: Hosting,
                 api: ApiGateway | None = None, blobs: BlobStore | None = None,
                 capabilities: Capabilities | None = None,
                 storage_timeout_s: float = 5.0) -> None:
        self._blobs = blobs
        self._capabilities = capabilities
        self._storage_timeout_s = storage_timeout_s
        self._domain_suffix = "." + domain
        self._admin_hosts = frozenset({domain, "admin." + domain, "localhost"})
        self._admin = admin
        self._hosting = hosting
        self._api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._admin(scope, receive, send)
            return
        if kind != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        host, request_id, has_body = _read_headers(scope)
        target_host = _to_origin_form(scope)
        if target_host is not None:
            host = target_host
        scope["fazt.request_id"] = request_id
        rid_header = (b"x-request-id", request_id.encode())

        if host in self._admin_hosts or _is_ip_literal(host):
            send = _with_headers(send, [*_ADMIN_HEADERS, rid_header])
            path = scope["path"]
            if path == "/api" or path.startswith("/api/"):
                await self._admin(scope, receive, _shield_sends(send))
            elif path == "/":
                await send_bytes(send, 302, b"", content_type=b"text/plain",
                                 headers=[(b"location", b"/api/")])
            else:
                await send_json_error(send, NotFound(f"nothing at {path}: the admin API is "
                                                     "under /api/"), request_id=request_id)
            return

        # App hosts: the static path adds these headers itself (cheaper than wrapping send).
        common = [*_COMMON_HEADERS, rid_header]
        if has_body:   # static responses never read a request body: don't leave it unread
            common.append((b"connection", b"close"))
        head = scope["method"] == "HEAD"
        app = self._app_name(host)
        try:
            site = await self._hosting.site(app) if app else None
            if site is None:
                await send_not_found(send, head=head, common=common)
                return
            raw_path = scope_path_bytes(scope)
            if raw_path.startswith(BLOBS_PREFIX) and self._blobs is not None:
                if self._capabilities is not None and "blobs" not in \
                        self._capabilities.grant(site.app, site.capabilities).capabilities:
                    # Withheld by the operator (or never asked for): its URLs stop working,
                    # with the 404 of a missing blob.
                    raise NotFound("no such blob")
                await serve_blob(scope, send, blobs=self._blobs, app=site.app,
                                 op_timeout_s=self._storage_timeout_s, common=common)
                return
            request = normalize_request_path(raw_path)
            if request.path == "api" or request.path.startswith("api/"):
                if self._api is None:
                    raise NotFound(f"app {app!r} has no API handler (api/main.js)")
                await self._api.serve(scope, receive, send, site=site, request_id=request_id,
                                      common=[*_COMMON_HEADERS, rid_header])
                return
            await serve_static(scope, receive, send, site=site, load=self._hosting.load,
                               immutable=is_content_hashed, common=common, request=request,
                               load_range=self._hosting.load_range)
        except ClientGone:
            return
        except FaztError as exc:
            if exc.http_status >= 500:
                log.warning("request %s failed: %s: %s", request_id, exc.code, exc)
            await send_json_error(send, exc, request_id=request_id, head=head, headers=common)

    def _app_name(self, host: str) -> str | None:
        if not host.endswith(self._domain_suffix):
            return None
        label = host[: -len(self._domain_suffix)]
        return label if _APP_LABEL.match(label) else None


@functools.lru_cache(maxsize=256)
def _is_ip_literal(host: str) -> bool:
    """A bare IP address as Host: no app can be addressed that way, so it is the admin host."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _to_origin_form(scope: Scope) -> str | None:
    """Rewrite an absolute-form target (``GET http://a.localhost/x``) to origin form.

    RFC 9112 section 3.2.2: a server must accept it, and its authority replaces ``Host``.
    Returns that host (lowercase, no port), or None for the usual origin-form request.
    """
    raw: bytes = scope.get("raw_path") or b""
    lowered = raw[:8].lower()
    if not lowered.startswith((b"http://", b"https://")):
        return None
    rest = raw.split(b"://", 1)[1]
    authority, slash, path = rest.partition(b"/")
    scope["raw_path"] = slash + path if slash else b"/"
    scope["path"] = unquote(scope["raw_path"].decode("latin-1"))
    host = authority.rpartition(b"@")[2].decode("latin-1").lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0].rstrip(".")


def _read_headers(scope: Scope) -> tuple[str, str, bool]:
    """Host (lowercase, no port), request id (kept if well-formed) and whether a body follows."""
    host = b""
    request_id = b""
    has_body = False
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        elif name == b"x-request-id" and _REQUEST_ID.match(value):
            request_id = value
        elif name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            has_body = True
    text = host.decode("latin-1").lower()
    if text.startswith("["):
        text = text[: text.find("]") + 1]
    else:
        text = text.rsplit(":", 1)[0] if ":" in text else text
    rid = request_id.decode() if request_id else os.urandom(8).hex()
    return text.rstrip("."), rid, has_body


def _shield_sends(send: Send) -> Send:
    """Protect hypercorn's sends from quart-trio's cancellation.

    quart-trio cancels its request nursery as soon as hypercorn reports ``http.disconnect``,
    which hypercorn does during the final body send; the cancel then lands inside hypercorn's
    connection recycling, and the connection is never closed nor returned to keep-alive (a
    socket and a task leaked per admin request). Shielded, bounded sends let hypercorn finish.
    """

    async def shielded(message: Message) -> None:
        with trio.CancelScope(shield=True,
                              deadline=trio.current_time() + _ADMIN_SEND_TIMEOUT_S):
            await send(message)

    return shielded


def _with_headers(send: Send, extra: Headers) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in extra if h[0] not in present)
            message["headers"] = headers
        await send(message)

    return wrapped
