"""The static-file fast path: serve an app's deployed files over bare ASGI.

Quart's ``send_file`` halves throughput under hypercorn's trio worker (stack-findings §6), so
static requests skip the framework: the router hands :func:`serve_static` the ASGI triple, the
app's current :class:`Site` and a loader, and this module answers with as little per-request
work as it can. Everything that depends only on a file (ETag, header list, 304 header list) is
built once and kept in an LRU keyed by the file's content (see :func:`_representation`), so a
warm request costs a path normalization, a few dict look-ups and the body send.

What it implements: GET and HEAD; directory indexes and the redirects around them; SPA fallback;
the app's own ``404.html``; strong ETags and ``If-None-Match``; precompressed ``.br``/``.gz``
siblings chosen from ``Accept-Encoding``; single byte ranges with ``If-Range``. Dotfiles are never
served. Security headers and request ids are added by a middleware above this module. Parsing and
matching of the request headers live in :mod:`fazt.http._conditional`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import trio

from fazt.errors import (
    FaztError,
    InvalidPath,
    MethodNotAllowed,
    RangeNotSatisfiable,
    StorageCorrupt,
)
from fazt.hosting._site import CHUNK_BYTES, Site, StaticFile
from fazt.http._conditional import (
    accepted_encodings,
    none_match,
    parse_range,
    range_applies,
    request_headers,
)
from fazt.http._paths import RequestPath, normalize_request_path, quote_path, scope_path_bytes
from fazt.http._responses import (
    Message,
    Receive,
    Scope,
    Send,
    cancel_on_disconnect,
    error_from_exception,
)

log = logging.getLogger("fazt.http.static")

__all__ = [
    "ContentLoader",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "Site",
    "StaticFile",
    "send_not_found",
    "serve_static",
]

Header = tuple[bytes, bytes]


ContentLoader = Callable[[StaticFile], Awaitable[bytes]]
RangeLoader = Callable[[StaticFile, int, int], Awaitable[bytes]]
"""Fetches bytes ``first..last`` (inclusive) of a file, for streaming large files."""
_STREAM_MIN_BYTES: Final = 1024 * 1024
"""Fetches a file's bytes (from the in-memory cache or the database)."""

_SINGLE_MESSAGE_MAX_BYTES: Final = 256 * 1024
_CHUNK_BYTES: Final = 64 * 1024

_NO_CACHE: Final = b"no-cache"
_IMMUTABLE: Final = b"public, max-age=31536000, immutable"
_SHORT_LIVED: Final = b"public, max-age=300"

# Precompressed siblings, most preferred first: (file name suffix, content-coding).
_ENCODINGS: Final = ((".br", b"br"), (".gz", b"gzip"))
_ETAG_SUFFIX: Final = {b"": b"", b"br": b"-br", b"gzip": b"-gz"}

_ALLOW: Final = ((b"allow", b"GET, HEAD"),)
_QUERY_SAFE = re.compile(rb"[\x21-\x7e]*")

_NOT_FOUND_PAGE: Final = (
    b'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    b"<title>404 Not Found</title></head>\n"
    b"<body><h1>404 Not Found</h1><p>Nothing is here.</p></body></html>\n"
)
_NOT_FOUND_HEADERS: Final = (
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-length", str(len(_NOT_FOUND_PAGE)).encode("ascii")),
    (b"cache-control", _NO_CACHE),
)


@dataclass(frozen=True, slots=True)
class _Target:
    """A stored file to answer with: the requested one (200), SPA index (200) or 404.html."""

    file: StaticFile
    status: int
    fallback: bool  # SPA index or 404 page: always revalidated


@dataclass(frozen=True, slots=True)
class _Redirect:
    """A 301 to the canonical form of a directory or file path (decoded, leading slash)."""

    path: str


@dataclass(frozen=True, slots=True)
class _Representation:
    """What is sent for one stored file in one encoding; built once, reused (see LRU)."""

    content: StaticFile
    etag: bytes
    headers: tuple[Header, ...]  # complete header list of a 200 (or 404-page) response
    entity_headers: tuple[Header, ...]  # the same without content-length, for a 206
    not_modified_headers: tuple[Header, ...]


async def serve_static(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    site: Site,
    load: ContentLoader,
    immutable: Callable[[str], bool],
    common: Sequence[Header] = (),
    request: RequestPath | None = None,
    load_range: RangeLoader | None = None,
) -> None:
    """Answer one HTTP request for ``site`` from its stored files.

    ``common`` headers go on every response (the router's security headers and request id:
    adding them here is cheaper than wrapping ``send``). ``request`` is the already-normalized
    path when the caller has one.

    ``load`` is awaited only when a body is sent (never for HEAD, 304 or 416), before the
    response starts, so a storage error can still become a clean error response above.
    ``immutable(path)`` says whether a file name is content-hashed. The request body is
    never read; ``receive`` is accepted to keep the ASGI shape.
    """
    method = scope.get("method", "GET")
    if method not in ("GET", "HEAD"):
        error = MethodNotAllowed("static files accept only GET and HEAD")
        await _send_error(send, error, head=False, extra=(*_ALLOW, *common))
        return
    head = method == "HEAD"
    if request is None:
        try:
            request = normalize_request_path(scope_path_bytes(scope))
        except InvalidPath as exc:
            await _send_error(send, exc, head=head, extra=common)
            return
    headers = request_headers(scope.get("headers", ()))
    found = _resolve(site, request, headers.get(b"accept", b""))
    if found is None:
        await send_not_found(send, head=head, common=common)
    elif isinstance(found, _Redirect):
        await _send_redirect(send, found, scope.get("query_string", b""), common)
    else:
        representation = _select(site, found, headers, immutable)
        loaders = _Loaders(load, load_range, receive)
        await _send_target(send, found.status, representation, headers, head=head,
                           loaders=loaders, common=common)


async def send_not_found(send: Send, *, head: bool = False, common: Sequence[Header] = ()) -> None:
    """Send fazt's built-in 404 page (also used by the router for unknown apps)."""
    await _send_response(send, 404, [*_NOT_FOUND_HEADERS, *common],
                         b"" if head else _NOT_FOUND_PAGE)


# --- resolution --------------------------------------------------------------------------


def _resolve(site: Site, request: RequestPath, accept: bytes) -> _Target | _Redirect | None:
    """Map a normalized path to a file, a redirect, or ``None`` for the built-in 404."""
    path = request.path
    files = site.files
    if path.startswith(".") or "/." in path:
        return _not_found_page(files)
    if not path or request.trailing_slash:
        index = files.get(f"{path}/index.html" if path else "index.html")
        if index is not None:
            return _Target(index, 200, fallback=False)
        if path and path in files:
            return _Redirect(f"/{path}")
    else:
        exact = files.get(path)
        if exact is not None:
            return _Target(exact, 200, fallback=False)
        if f"{path}/index.html" in files:
            return _Redirect(f"/{path}/")
    if site.spa and _is_navigation(path, accept):
        index = files.get("index.html")
        if index is not None:
            return _Target(index, 200, fallback=True)
    return _not_found_page(files)


def _not_found_page(files: Mapping[str, StaticFile]) -> _Target | None:
    """The app's own ``404.html`` as a 404 target, if it has one."""
    page = files.get("404.html")
    return None if page is None else _Target(page, 404, fallback=True)


def _is_navigation(path: str, accept: bytes) -> bool:
    """Whether a request looks like a browser navigation (for SPA fallback)."""
    return "." not in path.rpartition("/")[2] or b"text/html" in accept.lower()


# --- representation ----------------------------------------------------------------------


def _select(
    site: Site,
    target: _Target,
    headers: Mapping[bytes, bytes],
    immutable: Callable[[str], bool],
) -> _Representation:
    """Pick identity, brotli or gzip bytes for ``target`` and return their cached headers."""
    file = target.file
    variants = [
        (variant, coding)
        for suffix, coding in _ENCODINGS
        if (variant := site.files.get(file.path + suffix)) is not None
    ]
    content, coding = file, b""
    if variants and b"range" not in headers:
        accepted = accepted_encodings(headers.get(b"accept-encoding", b""))
        for variant, variant_coding in variants:
            if variant_coding in accepted:
                content, coding = variant, variant_coding
                break
    cache_control = _cache_control(target, immutable)
    return _representation(content, file.content_type, coding, cache_control, bool(variants))


def _cache_control(target: _Target, immutable: Callable[[str], bool]) -> bytes:
    """HTML and fallbacks revalidate; content-hashed names are immutable; others 5 minutes."""
    if target.fallback or target.file.content_type.startswith("text/html"):
        return _NO_CACHE
    return _IMMUTABLE if immutable(target.file.path) else _SHORT_LIVED


@lru_cache(maxsize=8192)
def _representation(
    content: StaticFile,
    content_type: str,
    coding: bytes,
    cache_control: bytes,
    vary: bool,
) -> _Representation:
    """Build the header lists for one representation.

    The key is the stored file itself (path, digest, size, type) rather than a deploy id, so an
    entry can never describe other bytes, and identical files in consecutive deploys share one.
    """
    etag = b'"' + content.sha256[:32].encode("ascii") + _ETAG_SUFFIX[coding] + b'"'
    validators: list[Header] = [(b"etag", etag), (b"cache-control", cache_control)]
    if vary:
        validators.append((b"vary", b"accept-encoding"))
    entity: list[Header] = [(b"content-type", content_type.encode("latin-1"))]
    if coding:
        entity.append((b"content-encoding", coding))
    entity.append((b"accept-ranges", b"bytes"))
    entity.extend(validators)
    length = (b"content-length", str(content.size).encode("ascii"))
    return _Representation(
        content=content,
        etag=etag,
        headers=(*entity, length),
        entity_headers=tuple(entity),
        not_modified_headers=tuple(validators),
    )


# --- responses ---------------------------------------------------------------------------


async def _send_target(
    send: Send,
    status: int,
    representation: _Representation,
    headers: Mapping[bytes, bytes],
    *,
    head: bool,
    loaders: _Loaders,
    common: Sequence[Header],
) -> None:
    """Send a stored file, honouring If-None-Match, Range and If-Range for 200 responses."""
    if status == 200:
        if_none_match = headers.get(b"if-none-match")
        if if_none_match is not None and none_match(if_none_match, representation.etag):
            await _send_response(send, 304, [*representation.not_modified_headers, *common], b"")
            return
        byte_range = headers.get(b"range")
        if byte_range is not None and range_applies(headers.get(b"if-range"), representation.etag):
            size = representation.content.size
            try:
                span = parse_range(byte_range, size)
            except RangeNotSatisfiable as exc:
                extra = ((b"content-range", b"bytes */%d" % size), *common)
                await _send_error(send, exc, head=head, extra=extra)
                return
            if span is not None:
                await _send_partial(send, representation, span, head=head, loaders=loaders,
                                    common=common)
                return
    headers_out = [*representation.headers, *common]
    file = representation.content
    if head or file.size == 0:
        await _send_response(send, status, headers_out, b"")
    elif loaders.streams(file):
        await _stream(send, status, headers_out, file, (0, file.size - 1), loaders)
    else:
        await _send_response(send, status, headers_out, await _load(loaders.load, file))


async def _send_partial(
    send: Send,
    representation: _Representation,
    span: tuple[int, int],
    *,
    head: bool,
    loaders: _Loaders,
    common: Sequence[Header],
) -> None:
    """Send a 206 for the inclusive byte ``span`` of the representation."""
    first, last = span
    headers = [*representation.entity_headers, *common]
    headers.append(
        (b"content-range", b"bytes %d-%d/%d" % (first, last, representation.content.size))
    )
    headers.append((b"content-length", b"%d" % (last - first + 1)))
    file = representation.content
    if head:
        await _send_response(send, 206, headers, b"")
    elif loaders.streams(file):
        await _stream(send, 206, headers, file, span, loaders)
    else:
        body = (await _load(loaders.load, file))[first : last + 1]
        await _send_response(send, 206, headers, body)


@dataclass(frozen=True, slots=True)
class _Loaders:
    """How a response gets its body: whole, or chunk by chunk (watching for a disconnect)."""

    load: ContentLoader
    load_range: RangeLoader | None
    receive: Receive

    def streams(self, file: StaticFile) -> bool:
        """Large files are streamed chunk by chunk instead of loaded whole."""
        return self.load_range is not None and file.size > _STREAM_MIN_BYTES


async def _stream(
    send: Send,
    status: int,
    headers: list[Header],
    file: StaticFile,
    span: tuple[int, int],
    loaders: _Loaders,
) -> None:
    """Send bytes ``span`` of ``file`` one stored chunk at a time.

    Memory per response stays one chunk whatever the file's size, and reads are aligned to the
    stored chunks (a range starting mid-chunk reads each chunk once). The first chunk is read
    before the response starts, so a storage error there still becomes a clean error response.
    When the client goes away the loop stops (no more reads for a dead socket); a storage error
    after the start is logged and the response left incomplete, which closes the connection.
    """
    load_range = loaders.load_range
    assert load_range is not None
    first, last = span
    end = min((first // CHUNK_BYTES + 1) * CHUNK_BYTES, last + 1) - 1
    chunk = await load_range(file, first, end)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_on_disconnect, loaders.receive, nursery.cancel_scope)
        try:
            while end < last:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                start, end = end + 1, min(end + CHUNK_BYTES, last)
                chunk = await load_range(file, start, end)
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
        except FaztError as exc:
            log.info("stopped streaming %r after the response started: %s: %s", file.path,
                     exc.code, exc)
        nursery.cancel_scope.cancel(reason="streamed")



async def _load(load: ContentLoader, file: StaticFile) -> bytes:
    """Fetch a file's bytes, refusing to send a body that contradicts its stored size."""
    body = await load(file)
    if len(body) != file.size:
        raise StorageCorrupt(f"stored file {file.path!r} has the wrong size")
    return body


async def _send_redirect(
    send: Send, redirect: _Redirect, query_string: bytes, common: Sequence[Header]
) -> None:
    """Send a 301 to a path (not an absolute URL), keeping the query string."""
    location = quote_path(redirect.path).encode("ascii")
    if query_string and _QUERY_SAFE.fullmatch(query_string):
        location += b"?" + query_string
    headers = [
        (b"location", location),
        (b"content-length", b"0"),
        (b"cache-control", _NO_CACHE),
        *common,
    ]
    await _send_response(send, 301, headers, b"")


async def _send_error(
    send: Send, error: FaztError, *, head: bool, extra: Iterable[Header] = ()
) -> None:
    """Send ``{"error": {"code", "message"}}`` with the error's status (the router's envelope)."""
    body = error_from_exception(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        *extra,
    ]
    await _send_response(send, error.http_status, headers, b"" if head else body)


async def _send_response(send: Send, status: int, headers: list[Header], body: bytes) -> None:
    """Send a whole response; bodies over 256 KiB go out in 64 KiB messages."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if len(body) <= _SINGLE_MESSAGE_MAX_BYTES:
        await send({"type": "http.response.body", "body": body})
        return
    total = len(body)
    for offset in range(0, total, _CHUNK_BYTES):
        end = offset + _CHUNK_BYTES
        await send(
            {"type": "http.response.body", "body": body[offset:end], "more_body": end < total}
        )
