"""The egress client: one outbound HTTP exchange, redirects included, within a deadline.

``Egress.fetch`` sends a request through an httpx client whose network backend is the SSRF
guard, with ``trust_env=False`` (no proxy from the environment can route around the guard) and
redirects followed here, not by httpx: each hop's URL is checked again (``parse_url``), passed
to the caller's ``prepare`` (the allowlist and the secrets: a hop to a host the app may not
reach fails, and a secret is attached only where it is bound) and connected through the guard.

Bodies are bounded both ways. The response is read raw and decompressed here, in steps that
never produce more than the limit allows, so a small gzip bomb costs at most the limit (plus
one network chunk of compressed input); its decompressed size is what counts.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import zlib
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import httpcore
import httpx
import trio

from fazt.errors import NetError, NetTimeout, NetTooLarge

from ._guard import GuardedBackend, Permit, Resolver
from ._url import Target, parse_url

Headers = list[tuple[str, str]]
Prepare = Callable[[Target], tuple[httpx.URL, Headers]]
"""``prepare(target)``: refuse a hop the app may not make (raise), else give the URL to send
(a secret may add a query parameter) and the headers to add to this hop (a secret's)."""

# httpx logs every request's URL at INFO, query string included: a secret sent as a query
# parameter would reach the server's log. fazt's own net log records calls without it.
logging.getLogger("httpx").setLevel(logging.WARNING)

REDIRECTS = {301, 302, 303, 307, 308}
# Headers an app may not set: the connection is fazt's, and the body's framing and encoding
# are set here. "cookie" and "authorization" are dropped on a redirect to another origin.
REFUSED_HEADERS = frozenset({
    "host", "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "content-length", "accept-encoding", "expect"})
_ORIGIN_BOUND = frozenset({"authorization", "cookie"})
_DROPPED_FROM_RESPONSE = frozenset({"content-encoding", "content-length", "transfer-encoding"})


@dataclass(frozen=True, kw_only=True)
class EgressSettings:
    max_request_bytes: int = 1024 * 1024
    max_response_bytes: int = 1024 * 1024
    max_redirects: int = 5
    user_agent: str = "fazt"


@dataclass(frozen=True, kw_only=True)
class FetchResponse:
    status: int
    headers: Headers        # names in lower case; no content-encoding/length (body is decoded)
    body: bytes
    url: str                # after redirects
    redirects: int
    target: Target          # where the last hop went (what a log names)


class Egress:
    """The server's one egress client (connections are pooled per origin)."""

    def __init__(self, *, resolver: Resolver, settings: EgressSettings | None = None,
                 ssl_context: ssl.SSLContext | None = None, permit: Permit | None = None) -> None:
        self.settings = settings or EgressSettings()
        self.backend = GuardedBackend(resolver, permit=permit)
        context = ssl_context or ssl.create_default_context()
        transport = httpx.AsyncHTTPTransport(verify=context)
        # httpx builds its pool without a way to pass a network backend: replace it (httpx and
        # httpcore are pinned for this; stack-findings.md section 8).
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, max_connections=100, max_keepalive_connections=20,
            keepalive_expiry=10.0, network_backend=self.backend)
        self._client = httpx.AsyncClient(transport=transport, trust_env=False,
                                         follow_redirects=False,
                                         timeout=None)  # noqa: S113 - the deadline's scope bounds it

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, method: str, target: Target, *, headers: Sequence[tuple[str, str]],
                    body: bytes, deadline: float, prepare: Prepare) -> FetchResponse:
        """Send ``method target`` and follow redirects; raise a NetError subclass on failure
        (NetTimeout at ``deadline``, on the trio clock)."""
        if len(body) > self.settings.max_request_bytes:
            raise NetTooLarge(f"the request body is {len(body)} bytes, over the "
                              f"{self.settings.max_request_bytes}-byte limit")
        own = [(n.lower(), v) for n, v in headers if n.lower() not in REFUSED_HEADERS]
        with trio.move_on_at(deadline) as scope:
            return await self._follow(method.upper(), target, own, body, prepare)
        assert scope.cancelled_caught
        raise NetTimeout(f"{method.upper()} {target.origin}{target.path} ran out of time")

    async def _follow(self, method: str, target: Target, own: Headers, body: bytes,
                      prepare: Prepare) -> FetchResponse:
        origin = target.origin
        for redirects in range(self.settings.max_redirects + 1):
            url, extra = prepare(target)
            replaced = {n.lower() for n, _ in extra}     # a secret's header wins over the app's
            response = await self._send(method, url,
                                        [h for h in own if h[0] not in replaced] + extra, body)
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or location is None:
                try:
                    data = await self._read(response)
                finally:
                    await response.aclose()
                return FetchResponse(
                    status=response.status_code, body=data, url=str(target.url),
                    redirects=redirects, target=target,
                    headers=[(n, v) for n, v in response.headers.multi_items()
                             if n not in _DROPPED_FROM_RESPONSE])
            await response.aclose()
            target = parse_url(location, base=target.url)
            if response.status_code == 303 or (response.status_code in (301, 302)
                                               and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), b""
            if target.origin != origin:
                own = [(n, v) for n, v in own if n not in _ORIGIN_BOUND]
                origin = target.origin
        raise NetError(f"more than {self.settings.max_redirects} redirects")

    async def _send(self, method: str, url: httpx.URL, headers: Headers,
                    body: bytes) -> httpx.Response:
        send_headers = [("user-agent", self.settings.user_agent),
                        ("accept-encoding", "gzip, deflate")]
        send_headers = [h for h in send_headers if h[0] not in {n for n, _ in headers}] + headers
        try:
            request = self._client.build_request(method, url, headers=send_headers,
                                                 content=body if body or method not in
                                                 ("GET", "HEAD") else None)
        except (UnicodeError, ValueError, httpx.HTTPError) as exc:  # a header httpx refuses
            raise NetError(f"{method} {url.scheme}://{url.host}: the request cannot be "
                           f"sent: {_describe(exc)}") from None
        try:
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise NetError(f"{method} {url.scheme}://{url.host}: {_describe(exc)}") from None

    async def _read(self, response: httpx.Response) -> bytes:
        limit = self.settings.max_response_bytes
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            decoder: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            decoder = zlib.decompressobj()
        elif encoding in ("identity", ""):
            decoder = None
        else:
            raise NetError(f"the response has an unsupported content-encoding {encoding!r}")
        declared = response.headers.get("content-length")
        if decoder is None and declared is not None and declared.isdigit() \
                and int(declared) > limit and response.request.method != "HEAD":
            raise NetTooLarge(f"the response is {declared} bytes, over the {limit}-byte limit")
        parts: list[bytes] = []
        size = 0
        try:
            raw_chunks = cast(AsyncGenerator[bytes, None], response.aiter_raw())
            async with contextlib.aclosing(raw_chunks) as chunks:
                async for raw in chunks:
                    size = self._take(raw, decoder, parts, size, limit)
        except httpx.HTTPError as exc:
            raise NetError(f"reading the response failed: {_describe(exc)}") from None
        except zlib.error as exc:
            raise NetError(f"the response's {encoding} body is corrupt: {exc}") from None
        return b"".join(parts)

    @staticmethod
    def _take(raw: bytes, decoder: zlib._Decompress | None, parts: list[bytes], size: int,
              limit: int) -> int:
        """Add ``raw`` (decompressed in steps no larger than what the limit leaves) to
        ``parts``; return the new size, or raise NetTooLarge past ``limit``."""
        pending = raw
        while pending:
            if decoder is None:
                piece, pending = pending, b""
            else:
                if decoder.eof:
                    # Bytes after the compressed stream's end: zlib would keep them (copying
                    # them whole at every chunk, uncounted); a body is one stream.
                    raise NetError("the response has data after the end of its compressed body")
                piece = decoder.decompress(pending, limit - size + 1)
                pending = decoder.unconsumed_tail
                if decoder.eof and decoder.unused_data:
                    raise NetError("the response has data after the end of its compressed "
                                   "body")
            size += len(piece)
            if size > limit:
                raise NetTooLarge(f"the response is over the {limit}-byte limit"
                                  + (" once decompressed" if decoder else ""))
            parts.append(piece)
            if decoder is not None and not piece:
                break
        return size


def _describe(exc: BaseException) -> str:
    """The most telling message of ``exc`` and its causes (httpx's ConnectError for a refused
    certificate says nothing; the ssl error it wraps does)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for candidate in reversed(seen):
        text = str(candidate)
        if text:
            return f"{type(candidate).__name__}: {text}"[:500] if candidate is not exc \
                else text[:500]
    return type(exc).__name__
