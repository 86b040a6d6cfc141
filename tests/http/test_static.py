"""serve_static, called directly as an ASGI function with a fake loader."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pytest

from fazt.errors import StorageCorrupt
from fazt.http._static import Site, StaticFile, send_not_found, serve_static

# --- helpers -------------------------------------------------------------------------------

_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "bin": "application/octet-stream",
}


def content_type_of(path: str) -> str:
    """Like the deploy side: a .br/.gz sibling has the type of its base file."""
    base = path.removesuffix(".br").removesuffix(".gz")
    return _TYPES.get(base.rpartition(".")[2], "application/octet-stream")


def static_file(path: str, data: bytes) -> StaticFile:
    digest = hashlib.sha256(data).hexdigest()
    return StaticFile(path=path, sha256=digest, size=len(data), content_type=content_type_of(path))


def etag_of(data: bytes, suffix: str = "") -> str:
    return f'"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"'


@dataclass
class Store:
    """A fake ContentLoader over a dict, recording every load."""

    contents: dict[str, bytes]
    loads: list[str] = field(default_factory=list)

    async def load(self, file: StaticFile) -> bytes:
        self.loads.append(file.path)
        return self.contents[file.path]


def make_site(contents: Mapping[str, bytes], *, spa: bool = False) -> tuple[Site, Store]:
    files = {path: static_file(path, data) for path, data in contents.items()}
    site = Site(app="demo", deploy_id=7, spa=spa, files=files)
    return site, Store(dict(contents))


@dataclass
class Response:
    status: int
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes
    body_messages: list[dict[str, Any]]

    @property
    def headers(self) -> dict[str, str]:
        names = [name for name, _ in self.raw_headers]
        assert len(names) == len(set(names)), f"duplicate headers: {names}"
        return {name.decode(): value.decode() for name, value in self.raw_headers}

    def json(self) -> Any:
        return json.loads(self.body)


async def never_receive() -> dict[str, Any]:
    raise AssertionError("serve_static must not read the request body")


def never_immutable(path: str) -> bool:
    return False


async def request(
    site: Site,
    store: Store,
    raw_path: bytes | str,
    *,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    query: bytes = b"",
    immutable: Callable[[str], bool] = never_immutable,
) -> Response:
    raw = raw_path.encode() if isinstance(raw_path, str) else raw_path
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": unquote(raw.decode("latin-1")),
        "raw_path": raw,
        "query_string": query,
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers],
    }
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)

    await serve_static(scope, never_receive, send, site=site, load=store.load, immutable=immutable)
    return response_of(messages)


def response_of(messages: list[dict[str, Any]]) -> Response:
    start, *bodies = messages
    assert start["type"] == "http.response.start"
    assert bodies, "a response must end with an http.response.body message"
    assert all(m["type"] == "http.response.body" for m in bodies)
    assert all(m.get("more_body", False) for m in bodies[:-1])
    assert not bodies[-1].get("more_body", False)
    body = b"".join(m["body"] for m in bodies)
    return Response(start["status"], start["headers"], body, bodies)


INDEX = b"<!doctype html><title>home</title>"
APP_JS = b"console.log('hello, fazt');" * 4
APP_JS_BR = b"BROTLI-BYTES-of-app.js"
APP_JS_GZ = b"GZIP-BYTES-of-app.js"
DOCS = b"<h1>docs</h1>"
TEN = b"0123456789"
NOT_FOUND_PAGE = b"<h1>custom not found</h1>"

SITE_CONTENTS = {
    "index.html": INDEX,
    "assets/app.js": APP_JS,
    "assets/app.js.br": APP_JS_BR,
    "assets/app.js.gz": APP_JS_GZ,
    "assets/only-gz.css": b"body{}",
    "assets/only-gz.css.gz": b"GZ-css",
    "assets/style.css": b"body{color:red}",
    "assets/app-3f9a2b1c.js": b"hashed",
    "docs/index.html": DOCS,
    "my docs/index.html": b"spaced",
    "notes.txt": b"notes",
    "ten.bin": TEN,
    "empty.bin": b"",
    ".env": b"SECRET=1",
}


@pytest.fixture
def site_store() -> tuple[Site, Store]:
    return make_site(SITE_CONTENTS)


# --- 1. methods and malformed paths --------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
async def test_other_methods_get_405_with_allow(method: str, site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/index.html", method=method)
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.json()["error"]["message"]
    assert int(response.headers["content-length"]) == len(response.body)
    assert store.loads == []


async def test_malformed_path_is_400_invalid_path(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, b"/docs/../index.html")
    assert response.status == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_path"
    assert "'..'" in error["message"]
    assert store.loads == []


async def test_head_of_malformed_path_has_headers_but_no_body(site_store: Any) -> None:
    site, store = site_store
    get = await request(site, store, b"/%00")
    head = await request(site, store, b"/%00", method="HEAD")
    assert (head.status, head.raw_headers, head.body) == (400, get.raw_headers, b"")


# --- 2. resolution ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [b"/", b"", b"/?x=1", b"/.", b"//"])
async def test_root_serves_index(path: bytes, site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, path)
    assert (response.status, response.body) == (200, INDEX)
    assert store.loads == ["index.html"]


async def test_exact_file(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/notes.txt")
    assert (response.status, response.body) == (200, b"notes")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


async def test_directory_with_slash_serves_its_index(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/docs/")
    assert (response.status, response.body) == (200, DOCS)


@pytest.mark.parametrize(
    "path", ["/docs//", "//docs/./", "/./docs/index.html", "/docs//index.html"]
)
async def test_unnormalized_paths_are_served_without_redirect(path: str, site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, path)
    assert (response.status, response.body) == (200, DOCS)


async def test_directory_without_slash_redirects_keeping_query(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/docs", query=b"a=1&b=%2F")
    assert response.status == 301
    assert response.headers["location"] == "/docs/?a=1&b=%2F"
    assert response.headers["cache-control"] == "no-cache"
    assert response.body == b""
    assert store.loads == []


async def test_redirect_location_is_a_percent_encoded_path(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/my%20docs")
    assert (response.status, response.headers["location"]) == (301, "/my%20docs/")


async def test_redirect_drops_a_query_that_is_not_visible_ascii(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/docs", query=b"a=\r\nx")
    assert response.headers["location"] == "/docs/"


async def test_redirect_location_from_double_slash_path_stays_local(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "//docs")
    assert response.headers["location"] == "/docs/"  # never "//docs/": that is another host


async def test_file_requested_as_directory_redirects_to_the_file(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/notes.txt/", query=b"v=2")
    assert (response.status, response.headers["location"]) == (301, "/notes.txt?v=2")


async def test_missing_file_without_spa_is_builtin_404(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/nope")
    assert response.status == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert b"404" in response.body
    assert int(response.headers["content-length"]) == len(response.body)
    assert store.loads == []


async def test_apps_own_404_page() -> None:
    site, store = make_site({"index.html": INDEX, "404.html": NOT_FOUND_PAGE})
    response = await request(site, store, "/nope.js")
    assert (response.status, response.body) == (404, NOT_FOUND_PAGE)
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


async def test_apps_404_page_ignores_conditionals_and_ranges() -> None:
    site, store = make_site({"404.html": NOT_FOUND_PAGE})
    page_etag = etag_of(NOT_FOUND_PAGE)
    response = await request(
        site, store, "/nope", headers=[("If-None-Match", page_etag), ("Range", "bytes=0-1")]
    )
    assert (response.status, response.body) == (404, NOT_FOUND_PAGE)


@pytest.mark.parametrize("path", ["/app/settings", "/users/42/", "/deep/a/b/c"])
async def test_spa_serves_index_for_navigations(path: str) -> None:
    site, store = make_site({"index.html": INDEX, "404.html": NOT_FOUND_PAGE}, spa=True)
    response = await request(site, store, path)
    assert (response.status, response.body) == (200, INDEX)
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"] == etag_of(INDEX)


async def test_spa_does_not_fall_back_for_missing_assets() -> None:
    site, store = make_site({"index.html": INDEX, "404.html": NOT_FOUND_PAGE}, spa=True)
    response = await request(site, store, "/assets/missing.js", headers=[("Accept", "*/*")])
    assert (response.status, response.body) == (404, NOT_FOUND_PAGE)


async def test_spa_falls_back_when_accept_asks_for_html() -> None:
    site, store = make_site({"index.html": INDEX}, spa=True)
    accept = "text/html,application/xhtml+xml,*/*;q=0.8"
    response = await request(site, store, "/blog/post.v2", headers=[("Accept", accept)])
    assert (response.status, response.body) == (200, INDEX)


async def test_spa_off_does_not_fall_back() -> None:
    site, store = make_site({"index.html": INDEX})
    response = await request(site, store, "/app/settings", headers=[("Accept", "text/html")])
    assert response.status == 404


async def test_spa_without_index_is_404() -> None:
    site, store = make_site({"about.html": b"about"}, spa=True)
    response = await request(site, store, "/app/settings")
    assert response.status == 404
    assert store.loads == []


async def test_spa_still_redirects_real_directories() -> None:
    site, store = make_site({"index.html": INDEX, "docs/index.html": DOCS}, spa=True)
    response = await request(site, store, "/docs")
    assert (response.status, response.headers["location"]) == (301, "/docs/")


@pytest.mark.parametrize("spa", [False, True])
@pytest.mark.parametrize(
    "path", ["/.env", "/.git/config", "/a/.hidden/x", "/.well-known/x", "/.well-known", "/.dir/"]
)
async def test_dotfiles_are_never_served(path: str, spa: bool) -> None:
    contents = {
        "index.html": INDEX,
        "404.html": NOT_FOUND_PAGE,
        ".env": b"SECRET=1",
        ".git/config": b"[core]",
        "a/.hidden/x": b"hidden",
        ".well-known/x": b"wk",
        ".well-known/index.html": b"wk-index",
        ".dir/index.html": b"dir-index",
    }
    site, store = make_site(contents, spa=spa)
    response = await request(site, store, path)
    assert (response.status, response.body) == (404, NOT_FOUND_PAGE)
    assert store.loads == ["404.html"]


async def test_fallbacks_are_no_cache_whatever_their_type() -> None:
    # Even if a deploy stored index.html / 404.html with a non-HTML type, a fallback response
    # stands for many URLs and must always be revalidated.
    files = {
        "index.html": StaticFile("index.html", "a" * 64, 2, "text/plain"),
        "404.html": StaticFile("404.html", "b" * 64, 2, "text/plain"),
    }
    store = Store({"index.html": b"ix", "404.html": b"nf"})
    spa_site = Site(app="a", deploy_id=1, spa=True, files=files)
    plain_site = Site(app="a", deploy_id=1, spa=False, files=files)
    spa = await request(spa_site, store, "/r", immutable=lambda _: True)
    plain = await request(plain_site, store, "/r.png", immutable=lambda _: True)
    assert (spa.status, spa.headers["cache-control"]) == (200, "no-cache")
    assert (plain.status, plain.headers["cache-control"]) == (404, "no-cache")


async def test_send_not_found_get_and_head() -> None:
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)

    await send_not_found(send)
    get = response_of(messages)
    messages.clear()
    await send_not_found(send, head=True)
    head = response_of(messages)
    assert get.status == head.status == 404
    assert get.raw_headers == head.raw_headers
    assert get.body.startswith(b"<!doctype html>")
    assert head.body == b""


# --- 3. headers ------------------------------------------------------------------------------


async def test_html_headers(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/")
    assert response.headers == {
        "content-type": "text/html; charset=utf-8",
        "content-length": str(len(INDEX)),
        "etag": etag_of(INDEX),
        "cache-control": "no-cache",
        "accept-ranges": "bytes",
    }


async def test_plain_asset_is_cached_five_minutes(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/assets/style.css")
    assert response.headers["cache-control"] == "public, max-age=300"
    assert "vary" not in response.headers


async def test_hashed_asset_is_immutable(site_store: Any) -> None:
    site, store = site_store
    asked: list[str] = []

    def immutable(path: str) -> bool:
        asked.append(path)
        return path == "assets/app-3f9a2b1c.js"

    response = await request(site, store, "/assets/app-3f9a2b1c.js", immutable=immutable)
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asked == ["assets/app-3f9a2b1c.js"]


async def test_html_is_never_immutable() -> None:
    site, store = make_site({"page-3f9a2b1c.html": b"<p>"})
    response = await request(site, store, "/page-3f9a2b1c.html", immutable=lambda _: True)
    assert response.headers["cache-control"] == "no-cache"


async def test_vary_is_sent_when_a_variant_exists_even_for_identity(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/assets/app.js")
    assert response.headers["vary"] == "accept-encoding"
    assert "content-encoding" not in response.headers
    assert response.body == APP_JS


async def test_sent_header_lists_are_not_shared_between_responses(site_store: Any) -> None:
    site, store = site_store
    first = await request(site, store, "/notes.txt")
    assert isinstance(first.raw_headers, list)  # a middleware may extend it in place
    first.raw_headers.append((b"x-added-by-middleware", b"1"))
    second = await request(site, store, "/notes.txt")
    assert b"x-added-by-middleware" not in dict(second.raw_headers)


async def test_no_server_date_or_security_headers(site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/")
    for name in ("date", "server", "x-request-id", "x-content-type-options"):
        assert name not in response.headers


async def test_identical_files_in_two_deploys_get_the_same_etag() -> None:
    site_a, store_a = make_site({"a.txt": b"same"})
    site_b, store_b = make_site({"a.txt": b"same", "b.txt": b"other"})
    a = await request(site_a, store_a, "/a.txt")
    b = await request(site_b, store_b, "/a.txt")
    assert a.headers["etag"] == b.headers["etag"] == etag_of(b"same")


async def test_same_path_with_new_content_gets_new_headers() -> None:
    site_a, store_a = make_site({"a.txt": b"v1"})
    site_b, store_b = make_site({"a.txt": b"version 2"})
    await request(site_a, store_a, "/a.txt")
    b = await request(site_b, store_b, "/a.txt")
    assert b.headers["etag"] == etag_of(b"version 2")
    assert b.headers["content-length"] == "9"


# --- 4. conditional requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "if_none_match",
    [
        "{etag}",
        "W/{etag}",
        '"abc", {etag}',
        '"abc",W/{etag} ',
        "*",
    ],
)
async def test_if_none_match_gives_304_without_loading(if_none_match: str, site_store: Any) -> None:
    site, store = site_store
    header = if_none_match.format(etag=etag_of(APP_JS))
    response = await request(site, store, "/assets/app.js", headers=[("If-None-Match", header)])
    assert response.status == 304
    assert response.headers == {
        "etag": etag_of(APP_JS),
        "cache-control": "public, max-age=300",
        "vary": "accept-encoding",
    }
    assert response.body == b""
    assert store.loads == []


@pytest.mark.parametrize("if_none_match", ['"abc"', "", 'W/"abc"', '"{stripped}"'])
async def test_if_none_match_mismatch_gives_200(if_none_match: str, site_store: Any) -> None:
    site, store = site_store
    header = if_none_match.format(stripped=etag_of(APP_JS)[1:-1] + "x")
    response = await request(site, store, "/assets/app.js", headers=[("If-None-Match", header)])
    assert (response.status, response.body) == (200, APP_JS)


async def test_if_none_match_is_per_representation(site_store: Any) -> None:
    site, store = site_store
    br_etag = etag_of(APP_JS_BR, "-br")
    with_br = await request(
        site,
        store,
        "/assets/app.js",
        headers=[("Accept-Encoding", "br"), ("If-None-Match", br_etag)],
    )
    without_br = await request(site, store, "/assets/app.js", headers=[("If-None-Match", br_etag)])
    assert with_br.status == 304
    assert (without_br.status, without_br.body) == (200, APP_JS)


async def test_head_with_matching_if_none_match_is_304(site_store: Any) -> None:
    site, store = site_store
    response = await request(
        site, store, "/", method="HEAD", headers=[("If-None-Match", etag_of(INDEX))]
    )
    assert response.status == 304
    assert store.loads == []


# --- 5. precompressed variants --------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_encoding", "coding"),
    [
        ("br", "br"),
        ("gzip, deflate, br, zstd", "br"),
        ("gzip;q=1.0, br;q=0.1", "br"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("GZIP", "gzip"),
        ("br;q=0, gzip", "gzip"),
        ("br; q=0.000, gzip;q=0.5", "gzip"),
        ("br;q=abc, gzip", "gzip"),
        ("br;q=2, gzip", "gzip"),
        ("*", "br"),
        ("gzip;q=0, *", "br"),
        ("br;q=0, *;q=0.1", "gzip"),
        ("*;q=0", None),
        ("br;q=0, gzip;q=0", None),
        ("identity", None),
        ("deflate", None),
        ("", None),
    ],
)
async def test_accept_encoding_selects_variant(
    accept_encoding: str, coding: str | None, site_store: Any
) -> None:
    site, store = site_store
    response = await request(
        site, store, "/assets/app.js", headers=[("Accept-Encoding", accept_encoding)]
    )
    expected_body = {"br": APP_JS_BR, "gzip": APP_JS_GZ, None: APP_JS}[coding]
    suffix = {"br": "-br", "gzip": "-gz", None: ""}[coding]
    assert response.status == 200
    assert response.body == expected_body
    assert response.headers.get("content-encoding") == coding
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["content-length"] == str(len(expected_body))
    assert response.headers["etag"] == etag_of(expected_body, suffix)
    assert response.headers["vary"] == "accept-encoding"


async def test_repeated_accept_encoding_headers_are_combined(site_store: Any) -> None:
    site, store = site_store
    headers = [("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")]
    response = await request(site, store, "/assets/app.js", headers=headers)
    assert response.headers["content-encoding"] == "br"


async def test_gzip_only_variant(site_store: Any) -> None:
    site, store = site_store
    br_only = await request(site, store, "/assets/only-gz.css", headers=[("Accept-Encoding", "br")])
    both = await request(
        site, store, "/assets/only-gz.css", headers=[("Accept-Encoding", "br, gzip")]
    )
    assert (br_only.body, br_only.headers.get("content-encoding")) == (b"body{}", None)
    assert (both.body, both.headers["content-encoding"]) == (b"GZ-css", "gzip")
    assert both.headers["content-type"] == "text/css; charset=utf-8"


async def test_range_request_gets_identity(site_store: Any) -> None:
    site, store = site_store
    response = await request(
        site,
        store,
        "/assets/app.js",
        headers=[("Accept-Encoding", "br, gzip"), ("Range", "bytes=0-6")],
    )
    assert response.status == 206
    assert response.body == APP_JS[:7]
    assert "content-encoding" not in response.headers


async def test_direct_request_for_variant_is_served_as_is(site_store: Any) -> None:
    site, store = site_store
    response = await request(
        site, store, "/assets/app.js.gz", headers=[("Accept-Encoding", "gzip, br")]
    )
    assert (response.status, response.body) == (200, APP_JS_GZ)
    assert "content-encoding" not in response.headers
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["etag"] == etag_of(APP_JS_GZ)


async def test_spa_fallback_uses_precompressed_index() -> None:
    site, store = make_site({"index.html": INDEX, "index.html.br": b"BR-index"}, spa=True)
    response = await request(site, store, "/route", headers=[("Accept-Encoding", "br")])
    assert (response.status, response.body) == (200, b"BR-index")
    assert response.headers["content-encoding"] == "br"
    assert response.headers["cache-control"] == "no-cache"


# --- 6. ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_header", "content_range", "body"),
    [
        ("bytes=0-3", "bytes 0-3/10", b"0123"),
        ("bytes=5-", "bytes 5-9/10", b"56789"),
        ("bytes=-3", "bytes 7-9/10", b"789"),
        ("bytes=-30", "bytes 0-9/10", TEN),
        ("bytes=8-100", "bytes 8-9/10", b"89"),
        ("bytes=9-9", "bytes 9-9/10", b"9"),
        ("Bytes = 2-4", "bytes 2-4/10", b"234"),
        ("bytes=0-99999999999999999999999999", "bytes 0-9/10", TEN),
    ],
)
async def test_single_range_is_206(
    range_header: str, content_range: str, body: bytes, site_store: Any
) -> None:
    site, store = site_store
    response = await request(site, store, "/ten.bin", headers=[("Range", range_header)])
    assert response.status == 206
    assert response.body == body
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(body))
    assert response.headers["etag"] == etag_of(TEN)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(
    "range_header",
    [
        "bytes=10-",
        "bytes=10-20",
        "bytes=5-2",
        "bytes=abc",
        "bytes=-0",
        "bytes=",
        "bytes=1-2-3",
        "bytes=-",
        "bytes=99999999999999999999999-",
    ],
)
async def test_unsatisfiable_range_is_416(range_header: str, site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/ten.bin", headers=[("Range", range_header)])
    assert response.status == 416
    assert response.headers["content-range"] == "bytes */10"
    assert response.json()["error"]["code"] == "range_not_satisfiable"
    assert store.loads == []


@pytest.mark.parametrize(
    "range_header", ["bytes=0-1,3-4", "bytes=0-1, 5-", "items=0-3", "0-3", "bytes 0-3"]
)
async def test_ignored_range_serves_whole_file(range_header: str, site_store: Any) -> None:
    site, store = site_store
    response = await request(site, store, "/ten.bin", headers=[("Range", range_header)])
    assert (response.status, response.body) == (200, TEN)
    assert "content-range" not in response.headers


async def test_ranges_of_an_empty_file(site_store: Any) -> None:
    site, store = site_store
    from_start = await request(site, store, "/empty.bin", headers=[("Range", "bytes=0-")])
    suffix = await request(site, store, "/empty.bin", headers=[("Range", "bytes=-5")])
    assert (from_start.status, from_start.headers["content-range"]) == (416, "bytes */0")
    assert (suffix.status, suffix.body) == (200, b"")


async def test_if_range_with_matching_etag_honours_range(site_store: Any) -> None:
    site, store = site_store
    headers = [("Range", "bytes=0-1"), ("If-Range", etag_of(TEN))]
    response = await request(site, store, "/ten.bin", headers=headers)
    assert (response.status, response.body) == (206, b"01")


@pytest.mark.parametrize(
    "if_range", ['"0123abcd"', "W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT", ""]
)
async def test_if_range_mismatch_serves_whole_file(if_range: str, site_store: Any) -> None:
    site, store = site_store
    headers = [("Range", "bytes=0-1"), ("If-Range", if_range.format(etag=etag_of(TEN)))]
    response = await request(site, store, "/ten.bin", headers=headers)
    assert (response.status, response.body) == (200, TEN)


async def test_if_range_mismatch_wins_over_a_bad_range(site_store: Any) -> None:
    site, store = site_store
    headers = [("Range", "bytes=50-"), ("If-Range", '"stale"')]
    response = await request(site, store, "/ten.bin", headers=headers)
    assert (response.status, response.body) == (200, TEN)


async def test_if_none_match_is_checked_before_range(site_store: Any) -> None:
    site, store = site_store
    headers = [("Range", "bytes=0-1"), ("If-None-Match", etag_of(TEN))]
    response = await request(site, store, "/ten.bin", headers=headers)
    assert response.status == 304


# --- 7. HEAD ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/", []),
        ("/assets/app.js", [("Accept-Encoding", "br")]),
        ("/ten.bin", [("Range", "bytes=2-5")]),
        ("/ten.bin", [("Range", "bytes=20-")]),
        ("/docs", []),
        ("/missing", []),
    ],
)
async def test_head_matches_get_without_body_or_load(
    path: str, headers: list[tuple[str, str]], site_store: Any
) -> None:
    site, store = site_store
    get = await request(site, store, path, headers=headers)
    store.loads.clear()
    head = await request(site, store, path, method="HEAD", headers=headers)
    assert head.status == get.status
    assert head.raw_headers == get.raw_headers
    assert head.body == b""
    assert len(head.body_messages) == 1
    assert store.loads == []


async def test_head_of_apps_404_page_and_spa_fallback_do_not_load() -> None:
    site, store = make_site({"index.html": INDEX, "404.html": NOT_FOUND_PAGE}, spa=True)
    spa = await request(site, store, "/route", method="HEAD")
    missing = await request(site, store, "/x.png", method="HEAD")
    assert (spa.status, spa.headers["content-length"]) == (200, str(len(INDEX)))
    assert (missing.status, missing.headers["content-length"]) == (404, str(len(NOT_FOUND_PAGE)))
    assert store.loads == []


# --- 8. body messages ------------------------------------------------------------------------


async def test_one_mebibyte_file_is_sent_in_64_kib_chunks() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    site, store = make_site({"big.bin": data})
    response = await request(site, store, "/big.bin")
    assert response.status == 200
    assert response.body == data
    assert [len(m["body"]) for m in response.body_messages] == [64 * 1024] * 16
    assert [m.get("more_body", False) for m in response.body_messages] == [True] * 15 + [False]
    assert store.loads == ["big.bin"]


@pytest.mark.parametrize(
    ("size", "chunks"),
    [(256 * 1024, [256 * 1024]), (256 * 1024 + 1, [65536] * 4 + [1]), (0, [0])],
)
async def test_chunking_threshold(size: int, chunks: list[int]) -> None:
    site, store = make_site({"f.bin": b"x" * size})
    response = await request(site, store, "/f.bin")
    assert [len(m["body"]) for m in response.body_messages] == chunks


async def test_large_range_is_chunked_too() -> None:
    data = b"y" * (512 * 1024)
    site, store = make_site({"big.bin": data})
    response = await request(site, store, "/big.bin", headers=[("Range", "bytes=1-300000")])
    assert response.status == 206
    assert response.body == data[1:300001]
    assert len(response.body_messages) == 5


async def test_size_mismatch_raises_before_the_response_starts() -> None:
    site, store = make_site({"a.txt": b"short"})
    store.contents["a.txt"] = b"truncated?"
    messages: list[Any] = []

    async def send(message: Any) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/a.txt",
        "raw_path": b"/a.txt",
        "query_string": b"",
        "headers": [],
    }
    with pytest.raises(StorageCorrupt):
        await serve_static(
            scope, never_receive, send, site=site, load=store.load, immutable=never_immutable
        )
    assert messages == []


async def test_path_is_taken_from_scope_path_when_raw_path_is_missing(site_store: Any) -> None:
    site, store = site_store
    messages: list[Any] = []

    async def send(message: Any) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/my docs/",
        "query_string": b"",
        "headers": [],
    }
    await serve_static(
        scope, never_receive, send, site=site, load=store.load, immutable=never_immutable
    )
    response = response_of(messages)
    assert (response.status, response.body) == (200, b"spaced")
