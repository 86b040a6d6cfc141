"""``/api/*`` on an app host: the request becomes JSON, runs in the app's JS worker pool
under a Budget, and the handler's answer is checked and sent.

Bare ASGI like the static path (quart would halve throughput). Everything the handler returns
is untrusted: status, header names and values, cookies and body size are validated here, and
anything invalid is a ``js_error`` logged to the app's log.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import itertools
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

import orjson
import trio
from werkzeug.formparser import MultiPartParser
from werkzeug.http import parse_options_header

from fazt.budget import Budget, BudgetPolicy, BudgetStats
from fazt.capabilities import Capabilities
from fazt.errors import BadRequest, InvalidJson, JsError, NotFound, PayloadTooLarge
from fazt.hosting import Hosting, Site
from fazt.http._responses import Headers, Receive, Scope, Send, cancel_on_disconnect
from fazt.sandbox import AppCode, JsRequest, LogSink, Sandbox

log = logging.getLogger("fazt.http")

MAIN = "api/main.js"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_COOKIE_VALUE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{0,4096}$")
_RESERVED_HEADERS = frozenset({
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
    "trailer", "proxy-connection", "x-request-id", "set-cookie", "date", "server"})
_MAX_HEADERS = 100
TEST_USER_HEADER = b"x-fazt-test-user"
_TEST_USER = re.compile(r"[A-Za-z0-9_.@:-]{1,128}")
_SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


@dataclass(frozen=True, kw_only=True)
class InFlight:
    """A request being served: what /api/_debug/runtime lists."""

    app: str
    method: str
    path: str
    request_id: str
    budget: Budget

    def to_json(self, now: float) -> dict[str, Any]:
        return {"app": self.app, "method": self.method, "path": self.path,
                "request_id": self.request_id,
                "age_ms": round((now - self.budget.started_at) * 1000, 1),
                "budget_left_ms": round(max(0.0, self.budget.deadline - now) * 1000, 1)}


@dataclass(frozen=True, kw_only=True)
class ApiLimits:
    max_body_bytes: int
    max_response_bytes: int
    memory_mb_default: int
    memory_mb_max: int


class ApiGateway:
    def __init__(self, *, sandbox: Sandbox, hosting: Hosting, policy: BudgetPolicy,
                 limits: ApiLimits, capabilities: Capabilities,
                 log_sink: LogSink | None = None, test_users: bool = False) -> None:
        self._test_users = test_users
        self._sandbox = sandbox
        self._hosting = hosting
        self._policy = policy
        self._limits = limits
        self._capabilities = capabilities
        self._log_sink = log_sink
        self.in_flight: dict[int, InFlight] = {}      # for /api/_debug/runtime
        self.budget_stats = BudgetStats()
        self._ids = itertools.count()

    @contextlib.contextmanager
    def _tracked(self, app: str, scope: Scope, request_id: str,
                 budget: Budget) -> Iterator[None]:
        """The request is in flight (the runtime view lists it) until it ends; its budget then
        goes to the per-phase statistics."""
        key = next(self._ids)
        self.in_flight[key] = InFlight(app=app, method=scope["method"], path=scope["path"],
                                       request_id=request_id, budget=budget)
        try:
            yield
        finally:
            del self.in_flight[key]
            self.budget_stats.add(budget)

    async def serve(self, scope: Scope, receive: Receive, send: Send, *, site: Site,
                    request_id: str, common: Headers) -> None:
        main = site.files.get(MAIN)
        if main is None:
            raise NotFound(f"app {site.app!r} has no API handler ({MAIN})")
        body = await _read_body(scope, receive, self._limits.max_body_bytes)
        form = None
        if site.runtime == "go" and body and _is_multipart(scope):
            # werkzeug's parser is pure Python: off the event loop
            form = await trio.to_thread.run_sync(_multipart, scope, body)
        request = JsRequest(body=_request_json(scope, body, request_id, form=form),
                            request_id=request_id)
        request_ms = site.manifest.request_ms
        budget = Budget.start(self._policy,
                              request_s=None if request_ms is None else request_ms / 1000)

        with self._tracked(site.app, scope, request_id, budget):
            grant = self._capabilities.grant(site.app, site.capabilities)
            user = _test_user(scope) if self._test_users else None

            async def load_code() -> AppCode:
                return await self._load_code(site)

            outcome = None
            try:
                async with trio.open_nursery() as nursery:
                    watching = False

                    def watch_client() -> None:
                        # Only a request that has to wait watches for its client going away: a
                        # task per request would cost more than the whole JS round trip.
                        nonlocal watching
                        if not watching:
                            watching = True
                            nursery.start_soon(cancel_on_disconnect, receive, nursery.cancel_scope)

                    outcome = await self._sandbox.handle(
                        app=site.app, deploy_id=site.deploy_id, generation=site.generation,
                        load_code=load_code, request=request, budget=budget,
                        capabilities=self._capabilities.host_for(grant, user=user,
                                                                 request_id=request_id),
                        on_slow=watch_client)
                    nursery.cancel_scope.cancel(reason="handler finished")
            except BaseExceptionGroup as group:
                # trio wraps the handler's error in an ExceptionGroup (strict exception groups).
                # Unwrapped, a FaztError (js_error, js_timeout, js_memory...) reaches RootApp and
                # becomes its JSON error; wrapped, it was hypercorn's bare 500 with an empty body.
                sole = _sole_exception(group)
                if sole is group:
                    raise
                raise sole from None
            if outcome is None:
                return      # the client left; the worker was told to drop the request
            try:
                status, headers, payload = self._response(outcome.response, site.app)
            except JsError as exc:
                # The handler's answer was invalid: say why in the app's log (the client only
                # gets the generic js_error), as for an error thrown by the handler.
                self._log(site.app, f"invalid response: {exc.message}", request_id)
                raise
            own = {name for name, _ in headers}      # the app's own Referrer-Policy etc. win
            headers.extend(h for h in common if h[0] not in own)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            head = scope["method"] == "HEAD"
            await send({"type": "http.response.body", "body": b"" if head else payload})

    async def _load_code(self, site: Site) -> AppCode:
        files: dict[str, str] = {}
        for path, file in site.files.items():
            if path.startswith("api/") and path.endswith((".js", ".json")):
                data = await self._hosting.load(file)
                try:
                    files[path] = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self._log(site.app, f"loading {MAIN} failed: {path} is not UTF-8 text",
                              None)
                    raise JsError(f"{path} is not UTF-8 text") from exc
        memory = site.manifest.memory_mb or self._limits.memory_mb_default
        # The grant as it is now, not as the request that triggered the load saw it: a
        # settings change in between has already retired the pool this code is for.
        grant = self._capabilities.grant(site.app, site.capabilities)
        return AppCode(app=site.app, deploy_id=site.deploy_id, main=MAIN, files=files,
                       memory_mb=min(memory, self._limits.memory_mb_max),
                       granted=self._capabilities.worker_caps(grant),
                       env=dict(grant.env) if "env" in grant.capabilities else None,
                       runtime=site.runtime)

    def _log(self, app: str, message: str, request_id: str | None) -> None:
        if self._log_sink is not None:
            self._log_sink(app, "error", message, request_id)

    def _response(self, response: Mapping[str, Any], app: str) -> tuple[int, Headers, bytes]:
        status = response.get("status", 200)
        if isinstance(status, float) and status.is_integer():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            raise JsError(f"the handler returned status {status!r} (must be 200-599)")
        if "b64" in response:
            try:
                payload = base64.b64decode(response["b64"], validate=True)
            except (binascii.Error, TypeError) as exc:
                raise JsError("the handler returned an unreadable body") from exc
        else:
            text = response.get("body", "")
            payload = text.encode("utf-8", "replace") if isinstance(text, str) else b""
        if len(payload) > self._limits.max_response_bytes:
            raise JsError(f"the response body is {len(payload)} bytes, over the "
                          f"{self._limits.max_response_bytes}-byte limit")
        headers: Headers = []
        has_type = False
        raw_headers = response.get("headers") or []
        if not isinstance(raw_headers, list) or len(raw_headers) > _MAX_HEADERS:
            raise JsError(f"the handler returned more than {_MAX_HEADERS} headers")
        for item in raw_headers:
            name, value = _check_header(item)
            has_type = has_type or name == "content-type"
            headers.append((name.encode("ascii"), value.encode("latin-1")))
        content_type = response.get("type")
        if not has_type and isinstance(content_type, str) and status != 204:
            headers.append((b"content-type", content_type.encode("latin-1")))
        cookies = response.get("cookies")
        if cookies is not None:
            headers.extend((b"set-cookie", c) for c in _set_cookies(cookies))
        if status == 204 or status == 304:
            payload = b""
        else:
            headers.append((b"content-length", str(len(payload)).encode()))
        if not any(n == b"cache-control" for n, _ in headers):
            headers.append((b"cache-control", b"no-store"))
        return status, headers, payload


def _check_header(item: Any) -> tuple[str, str]:
    if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
        raise JsError("the handler returned a malformed header")
    name, value = item[0].lower(), item[1]
    if not _TOKEN.match(name):
        raise JsError(f"the handler returned an invalid header name {name[:64]!r}")
    if name in _RESERVED_HEADERS:
        raise JsError(f"the handler may not set the {name} header"
                      + (" (use cookies: {...})" if name == "set-cookie" else ""))
    if _BAD_VALUE.search(value) or len(value) > 8192:
        raise JsError(f"the handler returned an invalid value for header {name}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise JsError(f"header {name} has characters outside Latin-1") from exc
    return name, value


def _set_cookies(cookies: Any) -> list[bytes]:
    if not isinstance(cookies, dict) or len(cookies) > 50:
        raise JsError("cookies must be an object of at most 50 name: value entries")
    out = []
    for name, spec in cookies.items():
        if not _TOKEN.match(name):
            raise JsError(f"invalid cookie name {name[:64]!r}")
        options: dict[str, Any] = spec if isinstance(spec, dict) else {"value": spec}
        value = options.get("value", "")
        if value is None:
            value, options = "", {**options, "maxAge": 0}
        if not isinstance(value, str) or not _COOKIE_VALUE.match(value):
            raise JsError(f"cookie {name}: the value must be a string without spaces, quotes, "
                          "commas, semicolons or backslashes (encode it, e.g. "
                          "encodeURIComponent)")
        parts = [f"{name}={value}", f"Path={_cookie_attr(options.get('path', '/'), name)}"]
        if options.get("domain") is not None:
            # A Domain attribute would reach the parent domain: the admin host and every
            # other app. Cookies set by an app are host-only.
            raise JsError(f"cookie {name}: domain is not allowed (an app's cookies are "
                          "host-only)")
        max_age = options.get("maxAge")
        if max_age is not None:
            if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
                raise JsError(f"cookie {name}: maxAge must be a number of seconds")
            parts.append(f"Max-Age={int(max_age)}")
        if options.get("httpOnly", True):
            parts.append("HttpOnly")
        if options.get("secure", False):
            parts.append("Secure")
        same_site = str(options.get("sameSite", "lax")).lower()
        if same_site not in _SAME_SITE:
            raise JsError(f"cookie {name}: sameSite must be strict, lax or none")
        parts.append(f"SameSite={_SAME_SITE[same_site]}")
        out.append("; ".join(parts).encode("latin-1"))
    return out


def _cookie_attr(value: Any, name: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[\x21-\x3a\x3c-\x7e]{1,512}", value):
        raise JsError(f"cookie {name}: invalid path or domain")
    return value


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    framed = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            framed = True
            try:
                declared = int(value)
            except ValueError:
                declared = -1
            if declared > limit:
                raise PayloadTooLarge(f"the request body is over the {limit}-byte limit")
        elif name == b"transfer-encoding":
            framed = True
    if not framed and scope.get("http_version") in ("1.0", "1.1"):
        # HTTP/1 without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3):
        # not waiting for the empty body event saves a scheduler round per request.
        return b""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the request body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups, else the group itself."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class ClientGone(Exception):
    """The client disconnected before the request body was complete."""


def _request_json(scope: Scope, body: bytes, request_id: str, *,
                  form: tuple[dict[str, str], dict[str, Any]] | None = None) -> bytes:
    """The request as the worker gets it. ``form``: a multipart/form-data body's fields
    (field -> first value) and files (field -> its first file), as the Go fazt's
    ``request.body`` and ``request.files`` had them."""
    headers: dict[str, str] = {}
    cookie_header = ""
    content_type = ""
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "cookie":
            cookie_header = f"{cookie_header}; {value}" if cookie_header else value
        if name == "content-type":
            content_type = value
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    query: dict[str, Any] = {}
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                keep_blank_values=True):
        if key in query:
            existing = query[key]
            query[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            query[key] = value
    client = scope.get("client")
    request: dict[str, Any] = {
        "method": scope["method"], "path": scope["path"], "query": query, "headers": headers,
        "cookies": _parse_cookies(cookie_header), "ip": client[0] if client else None,
        "request_id": request_id, "body": None, "text": None,
    }
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            request["body_b64"] = base64.b64encode(body).decode("ascii")
        else:
            request["text"] = text
            request["body"] = text
            if content_type.split(";")[0].strip().lower() == "application/json" or \
                    content_type.split(";")[0].strip().lower().endswith("+json"):
                try:
                    request["body"] = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    raise InvalidJson(f"the request body is not valid JSON: {exc}") from exc
    if form is not None:
        request["form"], request["files"] = form
    return orjson.dumps(request)


def _content_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return str(value.decode("latin-1"))
    return ""


def _is_multipart(scope: Scope) -> bool:
    return _content_type(scope).split(";")[0].strip().lower() == "multipart/form-data"


MAX_FORM_PARTS = 1000


def _multipart(scope: Scope, body: bytes) -> tuple[dict[str, str], dict[str, Any]]:
    """Fields (first value of each) and files (first of each field, bytes as base64); at most
    MAX_FORM_PARTS parts (20,000 empty parts in 1 MiB took the parser 0.3 s)."""
    _, options = parse_options_header(_content_type(scope))
    boundary = options.get("boundary", "")
    if not boundary:
        raise BadRequest("the multipart/form-data body has no boundary")
    parser = MultiPartParser(max_form_memory_size=len(body), max_form_parts=MAX_FORM_PARTS)
    try:
        fields, uploads = parser.parse(io.BytesIO(body), boundary.encode("latin-1"), len(body))
    except Exception as exc:   # werkzeug raises several types on junk
        raise BadRequest("the multipart/form-data body is malformed or has more than "
                         f"{MAX_FORM_PARTS} parts") from exc
    files = {}
    for name in uploads:
        upload = uploads[name]
        files[name] = {"name": upload.filename or "", "type": upload.mimetype or "",
                       "data": base64.b64encode(upload.read()).decode("ascii")}
    return {name: fields[name] for name in fields}, files


def _parse_cookies(header: str) -> dict[str, str]:
    if not header:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:   # noqa: BLE001 - http.cookies raises several types on junk
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _test_user(scope: Scope) -> str | None:
    """The signed-in user a test names (the ``test_user_header`` setting; never in
    production): the per-user scopes (kv.user ...) are testable before sign-in exists."""
    for name, value in scope["headers"]:
        if name == TEST_USER_HEADER:
            user: str = value.decode("latin-1")
            if not _TEST_USER.fullmatch(user):
                raise BadRequest(f"{TEST_USER_HEADER.decode()} must be 1 to 128 letters, digits "
                                 "and _ . @ : -")
            return user
    return None
