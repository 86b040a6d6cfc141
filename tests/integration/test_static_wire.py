"""Static hosting on the wire: traversal attacks and HTTP semantics against a real `fazt run`.

httpx (like every client library) normalizes a URL before sending it, so an attack such as
``/sub/..%2f..%2fsecret.txt`` would never reach the server as written. Every request here is a
raw HTTP/1.1 request line on a plain socket, read to EOF (``Connection: close``).

The traversal property is stated on bytes: whatever the request, no response may contain bytes
from outside the app (``/etc/passwd``, the server's ``db.key`` and ``admin.token``, another
app's files), and a dotfile is never served. A path that legitimately normalizes to a file of
the app (``/sub/../secret.txt`` is ``/secret.txt`` after RFC 3986 dot-segment removal) may be
answered with exactly that file; rejecting it with 400 is fine too.
"""

from __future__ import annotations

import gzip
import io
import json
import socket
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import FaztServer

pytestmark = [pytest.mark.integration, pytest.mark.security]

SOCKET_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 4 * 2**20

# --- the apps -----------------------------------------------------------------------------

IN_APP_CANARY = b"CANARY-6f1d-inside-trav-app-root"
OTHER_APP_CANARY = b"CANARY-93ab-belongs-to-another-app"
DOTFILE_CANARY = b"CANARY-c4e2-DOTENV-SECRET"

TRAV_FILES: dict[str, bytes] = {
    "index.html": b"<!doctype html><title>trav</title><h1>trav index</h1>",
    "secret.txt": IN_APP_CANARY,
    "sub/index.html": b"<!doctype html><title>sub</title><h1>sub index</h1>",
    "sub/page.txt": b"a page in sub",
    "404.html": b"<!doctype html><title>missing</title><h1>trav 404 page</h1>",
    # skipped by the deploy pipeline; requested below to prove they are never served
    ".env": DOTFILE_CANARY,
    ".git/config": b"[core]\n" + DOTFILE_CANARY,
    "sub/.htpasswd": DOTFILE_CANARY,
}

JS = b"console.log('identity javascript, long enough to be worth compressing');\n" * 20
JS_BR = b"\x8b\x7f fake-brotli-bytes: fazt never recompresses, it sends the stored sibling"
DATA = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable mod 256

FEAT_FILES: dict[str, bytes] = {
    "index.html": b"<!doctype html><title>feat</title><h1>feat index</h1>",
    "app.js": JS,
    "app.js.br": JS_BR,
    "app.js.gz": gzip.compress(JS, mtime=0),
    "data.bin": DATA,
    "docs/index.html": b"<!doctype html><title>docs</title><h1>docs</h1>",
    "404.html": b"<!doctype html><title>gone</title><h1>feat custom 404</h1>",
}

SPA_INDEX = b"<!doctype html><title>spa</title><div id=root>spa shell</div>"
SPA_FILES: dict[str, bytes] = {
    "index.html": SPA_INDEX,
    "manifest.json": json.dumps({"spa": True}).encode(),
    "main.js": b"console.log('spa');",
}


@dataclass
class Wire:
    status: int
    reason: bytes
    headers: dict[str, str]  # lowercase names; repeated names joined with ", "
    body: bytes
    raw: bytes


@dataclass
class Outside:
    """Byte strings that live outside the `trav` app and must never be served by it."""

    needles: dict[str, bytes]

    def assert_absent(self, response: Wire, what: str) -> None:
        for name, needle in self.needles.items():
            assert needle not in response.raw, f"{what}: response leaks {name}"


def raw_request(server: FaztServer, request_line: bytes, host: bytes = b"trav.localhost",
                headers: tuple[tuple[bytes, bytes], ...] = (), *,
                until_eof: bool = True) -> Wire:
    """Send one request exactly as written (with ``Connection: close``) and read the response.

    With ``until_eof`` the response is read until the server closes the connection, as it must
    after ``Connection: close``; otherwise only as far as its ``content-length``.
    """
    lines = [request_line, b"Host: " + host]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Connection: close")
    payload = b"\r\n".join(lines) + b"\r\n\r\n"
    raw = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(payload)
        while not _complete(raw, request_line, until_eof):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(
                    f"{request_line!r} to {host!r}: the connection was still open "
                    f"{SOCKET_TIMEOUT_S:g} s after the request (Connection: close); "
                    f"received so far: {raw[:300]!r}") from None
            if not chunk:
                break
            raw += chunk
            assert len(raw) <= MAX_RESPONSE_BYTES, "response larger than any file deployed here"
    return parse_response(raw, request_line)


def _complete(raw: bytes, request_line: bytes, until_eof: bool) -> bool:
    if until_eof or b"\r\n\r\n" not in raw:
        return False
    response = parse_response(raw, request_line)
    if request_line.startswith(b"HEAD ") or response.status in (204, 304):
        return True
    return len(response.body) >= int(response.headers.get("content-length", "0"))


def parse_response(raw: bytes, request_line: bytes) -> Wire:
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head for {request_line!r}: {raw[:200]!r}"
    status_line, *header_lines = head.split(b"\r\n")
    version, status, reason = [*status_line.split(b" ", 2), b""][:3]
    assert version == b"HTTP/1.1", status_line
    parsed: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        key = name.strip().lower().decode("latin-1")
        text = value.strip().decode("latin-1")
        parsed[key] = f"{parsed[key]}, {text}" if key in parsed else text
    return Wire(int(status), reason, parsed, body, raw)


def get(server: FaztServer, target: str | bytes, *, method: str = "GET",
        host: bytes = b"trav.localhost", until_eof: bool = True, **headers: str) -> Wire:
    target_bytes = target.encode() if isinstance(target, str) else target
    extra = tuple((k.replace("_", "-").encode(), v.encode()) for k, v in headers.items())
    return raw_request(server, method.encode() + b" " + target_bytes + b" HTTP/1.1", host,
                       extra, until_eof=until_eof)


def assert_app_security_headers(response: Wire, what: str) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff", what
    assert response.headers.get("referrer-policy"), what
    assert response.headers.get("x-request-id"), what


@pytest.fixture(scope="module")
def apps(server: FaztServer) -> FaztServer:
    for name, files in (("trav", TRAV_FILES), ("feat", FEAT_FILES), ("spa", SPA_FILES),
                        ("other", {"index.html": b"other", "canary.txt": OTHER_APP_CANARY})):
        r = server.deploy(name, dict(files))
        assert r.status_code == 201, r.text
        if name == "trav":
            assert set(r.json()["skipped"]) == {".env", ".git/config", "sub/.htpasswd"}
    return server


@pytest.fixture(scope="module")
def outside(apps: FaztServer) -> Outside:
    passwd_root = next(line for line in Path("/etc/passwd").read_bytes().splitlines()
                       if line.startswith(b"root:"))
    needles = {
        "/etc/passwd": passwd_root,
        "db.key": (apps.data_dir / "db.key").read_bytes().strip(),
        "admin.token": apps.token.encode(),
        "another app's file": OTHER_APP_CANARY,
        "a dotfile": DOTFILE_CANARY,
    }
    assert all(len(needle) >= 16 for needle in needles.values())
    return Outside(needles)


# --- traversal corpus -----------------------------------------------------------------------

# (request target, the in-app file it may legitimately normalize to, or None)
TRAVERSAL: list[tuple[bytes, str | None]] = [
    (b"/..", "index.html"),  # RFC 3986 clamps ".." at the root: "/" at most
    (b"/sub/..", "index.html"),
    (b"/../etc/passwd", None),
    (b"/../../../../../../../../etc/passwd", None),
    (b"/%2e%2e/%2e%2e/etc/passwd", None),
    (b"/%2E%2E/%2E%2E/%2E%2E/etc/passwd", None),
    (b"/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", None),
    (b"/..%2f..%2f..%2fetc%2fpasswd", None),
    (b"/.%2e/.%2e/etc/passwd", None),
    (b"/sub/../secret.txt", "secret.txt"),
    (b"/sub/..%2fsecret.txt", "secret.txt"),
    (b"/sub/%2e%2e%2fsecret.txt", "secret.txt"),
    (b"/sub/..%2f..%2fsecret.txt", "secret.txt"),
    (b"/sub/..%2f..%2f..%2f..%2fetc/passwd", None),
    (b"/%252e%252e%252f%252e%252e%252fetc%252fpasswd", None),
    (b"/sub/%252e%252e%252fsecret.txt", None),
    (b"/sub/%252e%252e/secret.txt", None),
    (b"/..\\..\\..\\etc\\passwd", None),
    (b"/sub/..\\secret.txt", None),
    (b"/..%5c..%5c..%5cetc%5cpasswd", None),
    (b"/sub%5c..%5csecret.txt", None),
    (b"/secret.txt%00.html", None),
    (b"/%00/../etc/passwd", None),
    (b"/index.html%00", None),
    (b"/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", None),
    (b"/%c0%ae%c0%ae%c0%afetc%c0%afpasswd", None),
    (b"/%e0%80%ae%e0%80%ae/%e0%80%ae%e0%80%ae/etc/passwd", None),
    (b"/%c0%2e%c0%2e/etc/passwd", None),
    (b"/\xc0\xae\xc0\xae/etc/passwd", None),  # raw overlong bytes, not percent-encoded
    (b"/.git/config", None),
    (b"/.git/", None),
    (b"/.env", None),
    (b"/sub/.htpasswd", None),
    (b"/%2egit/config", None),
    (b"/%2eenv", None),
    (b"/.git%2fconfig", None),
    (b"//etc/passwd", None),
    (b"///etc//passwd", None),
    (b"/db.key", None),
    (b"/admin.token", None),
    (b"/../db.key", None),
    (b"/..%2fadmin.token", None),
    (b"/../other/canary.txt", None),
    (b"http://trav.localhost/../../etc/passwd", None),
    (b"http://trav.localhost/%2e%2e/%2e%2e/etc/passwd", None),
    (b"http://trav.localhost/..%2f..%2fetc%2fpasswd", None),
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(("target", "may_serve"), TRAVERSAL,
                         ids=[t.decode("latin-1") for t, _ in TRAVERSAL])
def test_traversal_never_serves_bytes_from_outside_the_app(
        apps: FaztServer, outside: Outside, target: bytes, may_serve: str | None,
        method: str) -> None:
    r = get(apps, target, method=method)
    what = f"{method} {target!r} -> {r.status}"
    outside.assert_absent(r, what)
    if r.status == 200:
        assert may_serve is not None, f"{what}: served something for a path outside the app"
        expected = TRAV_FILES[may_serve]
        assert r.headers["content-length"] == str(len(expected)), what
        assert r.body == (b"" if method == "HEAD" else expected), what
    else:
        assert r.status in (400, 404), what
        assert IN_APP_CANARY not in r.raw, what
    if method == "HEAD":
        assert r.body == b"", what
    if any(byte >= 0x80 for byte in target):
        # h11 refuses a non-ASCII request line before fazt sees it: a bare 400, no app headers
        assert (r.status, r.body) == (400, b""), what
    else:
        assert_app_security_headers(r, what)


@pytest.mark.parametrize("target", [b"/.env", b"/.git/config", b"/sub/.htpasswd",
                                    b"/%2eenv"])
def test_dotfiles_get_the_apps_404_page(apps: FaztServer, target: bytes) -> None:
    r = get(apps, target)
    assert r.status == 404
    assert r.body == TRAV_FILES["404.html"]
    assert DOTFILE_CANARY not in r.raw


def test_head_of_traversal_matches_get_status(apps: FaztServer) -> None:
    """HEAD is answered exactly like GET, minus the body, even for rejected paths."""
    for target, _ in TRAVERSAL:
        got, head = get(apps, target), get(apps, target, method="HEAD")
        assert head.status == got.status, target
        assert head.headers.get("content-length") == got.headers.get("content-length"), target
        assert head.body == b"", target


def test_legitimate_dot_segments_inside_the_app_still_work(apps: FaztServer) -> None:
    assert get(apps, "/sub/./page.txt").body == TRAV_FILES["sub/page.txt"]
    assert get(apps, "/./secret.txt").body == IN_APP_CANARY
    assert get(apps, "/sub//page.txt").body == TRAV_FILES["sub/page.txt"]


def test_absolute_form_target_is_served_like_origin_form(apps: FaztServer) -> None:
    """RFC 9112 §3.2.2: a server MUST accept absolute-form; it names the same resource."""
    r = get(apps, "http://trav.localhost/secret.txt")
    assert (r.status, r.body) == (200, IN_APP_CANARY), \
        "an absolute-form target must name the same file as its origin-form path"


# --- symlinks and links in a deploy archive ---------------------------------------------------

def _tar_with_links() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        index = b"links"
        info = tarfile.TarInfo("index.html")
        info.size = len(index)
        tf.addfile(info, io.BytesIO(index))
        for name, target, kind in (("passwd", "/etc/passwd", tarfile.SYMTYPE),
                                   ("sub/up", "../../../../etc/passwd", tarfile.SYMTYPE),
                                   ("hard", "/etc/passwd", tarfile.LNKTYPE)):
            link = tarfile.TarInfo(name)
            link.type = kind
            link.linkname = target
            tf.addfile(link)
    return buf.getvalue()


def _zip_with_symlink() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.html", b"links")
        info = zipfile.ZipInfo("passwd")
        info.create_system = 3  # unix, so external_attr carries the file type
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, b"/etc/passwd")
    return buf.getvalue()


@pytest.mark.parametrize(("kind", "body", "ctype"), [
    ("tar", _tar_with_links(), "application/gzip"),
    ("zip", _zip_with_symlink(), "application/zip"),
])
def test_archive_links_out_of_the_app_are_rejected(apps: FaztServer, outside: Outside,
                                                   kind: str, body: bytes, ctype: str) -> None:
    with apps.admin() as admin:
        r = admin.post(f"/api/apps/links-{kind}/deploy", content=body,
                       headers={"content-type": ctype})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "archive_rejected"
    for target in (b"/passwd", b"/sub/up", b"/hard", b"/"):
        served = get(apps, target, host=f"links-{kind}.localhost".encode())
        assert served.status == 404, "nothing of a rejected deploy is served"
        outside.assert_absent(served, f"links-{kind} {target!r}")


# --- HTTP semantics of static files -----------------------------------------------------------

_VARYING = {"date", "x-request-id"}


@pytest.mark.parametrize("target", ["/", "/app.js", "/data.bin", "/docs", "/nope.txt"])
def test_head_matches_get_headers_without_a_body(apps: FaztServer, target: str) -> None:
    got = get(apps, target, host=b"feat.localhost")
    head = get(apps, target, method="HEAD", host=b"feat.localhost")
    assert head.status == got.status
    assert {k: v for k, v in head.headers.items() if k not in _VARYING} == \
        {k: v for k, v in got.headers.items() if k not in _VARYING}
    assert head.body == b""
    assert int(got.headers["content-length"]) == len(got.body)


def test_index_html_headers(apps: FaztServer) -> None:
    r = get(apps, "/", host=b"feat.localhost")
    assert r.status == 200
    assert r.body == FEAT_FILES["index.html"]
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["etag"].startswith('"') and r.headers["etag"].endswith('"')
    assert_app_security_headers(r, "feat /")


def test_if_none_match_gives_304_without_body(apps: FaztServer) -> None:
    first = get(apps, "/app.js", host=b"feat.localhost")
    etag = first.headers["etag"]
    again = get(apps, "/app.js", host=b"feat.localhost", if_none_match=etag)
    assert again.status == 304
    assert again.body == b""
    assert again.headers["etag"] == etag
    assert "content-length" not in again.headers or again.headers["content-length"] == "0"
    weak = get(apps, "/app.js", host=b"feat.localhost", if_none_match=f'"x", W/{etag}')
    assert weak.status == 304
    other = get(apps, "/app.js", host=b"feat.localhost", if_none_match='"not-the-etag"')
    assert other.status == 200
    assert other.body == JS


@pytest.mark.parametrize(("spec", "first", "last"), [
    ("bytes=100-199", 100, 199),
    ("bytes=1000-", 1000, 1023),
    ("bytes=-10", 1014, 1023),
    ("bytes=0-0", 0, 0),
    ("bytes=1020-5000", 1020, 1023),
])
def test_byte_range_gives_206_with_the_right_bytes(apps: FaztServer, spec: str, first: int,
                                                   last: int) -> None:
    r = get(apps, "/data.bin", host=b"feat.localhost", range=spec)
    assert r.status == 206
    assert r.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert r.headers["content-length"] == str(last - first + 1)
    assert r.body == DATA[first:last + 1]


def test_unsatisfiable_range_is_416(apps: FaztServer) -> None:
    r = get(apps, "/data.bin", host=b"feat.localhost", range="bytes=5000-6000")
    assert r.status == 416
    assert r.headers["content-range"] == f"bytes */{len(DATA)}"


def test_if_range_with_a_stale_etag_sends_the_whole_file(apps: FaztServer) -> None:
    r = get(apps, "/data.bin", host=b"feat.localhost", range="bytes=0-9", if_range='"stale"')
    assert r.status == 200
    assert r.body == DATA


def test_precompressed_brotli_sibling(apps: FaztServer) -> None:
    r = get(apps, "/app.js", host=b"feat.localhost", accept_encoding="gzip, deflate, br")
    assert r.status == 200
    assert r.headers["content-encoding"] == "br"
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["vary"].lower() == "accept-encoding"
    assert r.headers["content-length"] == str(len(JS_BR))
    assert r.body == JS_BR

    gz = get(apps, "/app.js", host=b"feat.localhost", accept_encoding="gzip")
    assert gz.headers["content-encoding"] == "gzip"
    assert gzip.decompress(gz.body) == JS

    plain = get(apps, "/app.js", host=b"feat.localhost")
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"].lower() == "accept-encoding"
    assert plain.body == JS
    assert len({r.headers["etag"], gz.headers["etag"], plain.headers["etag"]}) == 3


def test_spa_fallback_serves_index_for_navigations(apps: FaztServer) -> None:
    deep = get(apps, "/some/client/route", host=b"spa.localhost")
    assert deep.status == 200
    assert deep.body == SPA_INDEX
    assert deep.headers["cache-control"] == "no-cache"
    html = get(apps, "/report.pdf", host=b"spa.localhost", accept="text/html,*/*;q=0.8")
    assert html.status == 200
    assert html.body == SPA_INDEX
    asset = get(apps, "/missing.js", host=b"spa.localhost", accept="*/*")
    assert asset.status == 404, "a missing asset is not papered over with the index"
    assert get(apps, "/main.js", host=b"spa.localhost").body == SPA_FILES["main.js"]


def test_no_spa_fallback_without_manifest(apps: FaztServer) -> None:
    r = get(apps, "/some/client/route", host=b"feat.localhost")
    assert r.status == 404
    assert r.body == FEAT_FILES["404.html"]


def test_custom_404_page(apps: FaztServer) -> None:
    r = get(apps, "/nope.txt", host=b"feat.localhost")
    assert r.status == 404
    assert r.body == FEAT_FILES["404.html"]
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert_app_security_headers(r, "feat 404")


def test_built_in_404_without_a_404_page(apps: FaztServer) -> None:
    r = get(apps, "/nope.txt", host=b"spa.localhost", accept="*/*")
    assert r.status == 404
    assert b"404 Not Found" in r.body
    unknown = get(apps, "/", host=b"no-such-app.localhost")
    assert unknown.status == 404
    assert_app_security_headers(unknown, "unknown app")


def test_trailing_slash_redirect(apps: FaztServer) -> None:
    r = get(apps, "/docs", host=b"feat.localhost")
    assert r.status == 301
    assert r.headers["location"] == "/docs/"
    assert r.body == b""
    assert_app_security_headers(r, "redirect")
    with_query = get(apps, "/docs?page=2&x=y", host=b"feat.localhost")
    assert with_query.status == 301
    assert with_query.headers["location"] == "/docs/?page=2&x=y"
    followed = get(apps, "/docs/", host=b"feat.localhost")
    assert followed.status == 200
    assert followed.body == FEAT_FILES["docs/index.html"]


def test_redirect_location_stays_on_the_same_origin(apps: FaztServer) -> None:
    """`//evil.example` must not become a protocol-relative Location."""
    for target in ("//evil.example/docs", "/%2fevil.example/docs", "//docs"):
        r = get(apps, target, host=b"feat.localhost")
        location = r.headers.get("location", "")
        assert not location.startswith("//"), (target, location)
        assert "evil.example" not in location or location.startswith("/evil.example"), target


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(apps: FaztServer, method: str) -> None:
    r = get(apps, "/", method=method, host=b"feat.localhost")
    assert r.status == 405
    assert r.headers["allow"] == "GET, HEAD"


# --- security headers ------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "target", "extra"), [
    (b"feat.localhost", "/", {}),
    (b"feat.localhost", "/app.js", {"accept_encoding": "br"}),
    (b"feat.localhost", "/data.bin", {"range": "bytes=0-1"}),
    (b"feat.localhost", "/nope.txt", {}),
    (b"feat.localhost", "/docs", {}),
    (b"feat.localhost", "/%2e%2e/x", {}),
    (b"spa.localhost", "/route", {}),
    (b"no-such-app.localhost", "/", {}),
])
def test_app_responses_carry_security_headers(apps: FaztServer, host: bytes, target: str,
                                             extra: dict[str, str]) -> None:
    for method in ("GET", "HEAD"):
        r = get(apps, target, method=method, host=host, **extra)
        assert_app_security_headers(r, f"{method} {host!r} {target}")
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize(("target", "token", "status"), [
    ("/api/health", False, 200),
    ("/api/apps", False, 401),
    ("/api/apps", True, 200),
    ("/api/apps/no-such-app", True, 404),
    ("/api/nope", True, 404),
])
def test_admin_responses_forbid_framing(apps: FaztServer, target: str, token: bool,
                                        status: int) -> None:
    headers = {"authorization": f"Bearer {apps.token}"} if token else {}
    # framed by content-length: see test_admin_api_closes_on_connection_close for reading to EOF
    r = get(apps, target, host=b"localhost", until_eof=False, **headers)
    assert r.status == status
    csp = r.headers["content-security-policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";")}
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives["default-src"] == "default-src 'none'"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"]
    assert r.headers["cache-control"] == "no-store"


def test_admin_api_closes_on_connection_close(apps: FaztServer) -> None:
    """After a response to `Connection: close` the server closes the connection (RFC 9112 §9.6).

    The static path does; an admin API connection is left open forever instead (it does not
    even reach the keep-alive timeout), leaking a socket per client that asked to close.
    """
    r = get(apps, "/api/health", host=b"localhost")  # reads to EOF: fails if never closed
    assert r.status == 200
    assert r.headers.get("connection", "").lower() == "close"
    assert len(r.body) == int(r.headers["content-length"])
