"""T28 static_traversal: hostile paths never reach dotfiles or anything outside the app.

Apps live in a map of relative names, not a directory, so there is no "outside" to escape to
and no symlink to follow; what can go wrong is decoding (double decoding, overlong UTF-8,
backslashes, NUL) and serving a dotfile. Each response must be a 400, a 404, or the legitimate
file the path normalizes to, and no body may ever carry a dotfile's bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fazt.errors import InvalidPath
from fazt.http._paths import normalize_request_path
from fazt.http._static import Site, StaticFile, serve_static

pytestmark = pytest.mark.security

ENV_SECRET = b"FAZT_CANARY_ENV=4f1c9a7e"
GIT_SECRET = b"[remote] url = FAZT_CANARY_GIT"
HIDDEN_SECRET = b"FAZT_CANARY_HIDDEN"
SECRETS = (ENV_SECRET, GIT_SECRET, HIDDEN_SECRET)
CANARY = b"FAZT_CANARY"

CONTENTS = {
    "index.html": b"<!doctype html><title>home</title>",
    "etc/readme.txt": b"a legitimate file under a directory called etc",
    ".env": ENV_SECRET,
    ".env.gz": ENV_SECRET + b"-gz",
    ".git/config": GIT_SECRET,
    ".git/index.html": GIT_SECRET + b"-index",
    "a/.hidden/x": HIDDEN_SECRET,
}

# An unknown, non-dotfile path: 404, or the app's index.html when SPA fallback is on.
NAVIGATION = "navigation"

# (raw path, the answer: 400, 404 even with SPA on, NAVIGATION, or the legitimate file served)
CORPUS: list[tuple[bytes, int | str]] = [
    (b"/../etc/passwd", 400),
    (b"/../../../../etc/passwd", 400),
    (b"/%2e%2e/", 400),
    (b"/%2e%2e%2f", 400),
    (b"/%2E%2E%2Fetc%2Fpasswd", 400),
    (b"..%2f", 400),
    (b"/..%2f.env", 400),
    (b"/etc/..%2f..%2f.env", 400),
    (b"/.%2e/.env", 400),
    (b"%252e%252e%252f", NAVIGATION),
    (b"/%252e%252e%252fetc%252fpasswd", NAVIGATION),
    (b"/..\\", 400),
    (b"/..\\..\\.env", 400),
    (b"%5c", 400),
    (b"/%5c.env", 400),
    (b"/%00", 400),
    (b"/.env%00.html", 400),
    (b"/index.html%00", 400),
    (b"/%c0%ae%c0%ae/", 400),
    (b"/%c0%ae%c0%ae%c0%af.env", 400),
    (b"/%e0%80%ae", 400),
    (b"/%e0%80%ae%e0%80%ae/.env", 400),
    (b"/%c0%2e%c0%2e/", 400),
    (b"/.git/config", 404),
    (b"/.git/", 404),
    (b"/.git", 404),
    (b"/.env", 404),
    (b"/.env/", 404),
    (b"/a/.hidden/x", 404),
    (b"/a/%2ehidden/x", 404),
    (b"/%2eenv", 404),
    (b"/%2Eenv", 404),
    (b"/%2e%65%6e%76", 404),
    (b"/./.env", 404),
    (b"//.env", 404),
    (b"//etc/passwd", NAVIGATION),
    (b"//etc/readme.txt", "etc/readme.txt"),
    (b"/./././index.html", "index.html"),
    (b"/etc/./readme.txt", "etc/readme.txt"),
    (b"/index.html?/../.env", "index.html"),
]


def make_site(*, spa: bool) -> Site:
    files = {
        path: StaticFile(
            path=path,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            content_type="text/html; charset=utf-8" if ".html" in path else "text/plain",
        )
        for path, data in CONTENTS.items()
    }
    return Site(app="victim", deploy_id=1, spa=spa, files=files)


async def fetch(site: Site, raw_path: bytes, method: str = "GET") -> tuple[int, bytes, list[str]]:
    """Serve one request; return status, body and the paths that were loaded."""
    loaded: list[str] = []
    messages: list[dict[str, Any]] = []

    async def load(file: StaticFile) -> bytes:
        loaded.append(file.path)
        return CONTENTS[file.path]

    async def send(message: Any) -> None:
        messages.append(message)

    async def receive() -> dict[str, Any]:
        raise AssertionError("the request body must not be read")

    scope = {
        "type": "http",
        "method": method,
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": b"",
        "headers": [(b"accept-encoding", b"gzip, br"), (b"accept", b"text/html")],
    }
    await serve_static(scope, receive, send, site=site, load=load, immutable=lambda _: False)
    status = messages[0]["status"]
    body = b"".join(m["body"] for m in messages[1:])
    return status, body, loaded


@pytest.mark.parametrize("spa", [False, True], ids=["static", "spa"])
@pytest.mark.parametrize(
    ("raw_path", "expected"), CORPUS, ids=[c[0].decode("latin-1") for c in CORPUS]
)
async def test_hostile_paths(raw_path: bytes, expected: int | str, spa: bool) -> None:
    status, body, loaded = await fetch(make_site(spa=spa), raw_path)

    assert CANARY not in body
    assert not any(path.startswith(".") or "/." in path for path in loaded)
    if expected == NAVIGATION:
        # The request sends Accept: text/html, so SPA fallback treats it as a navigation.
        expected = "index.html" if spa else 404
    if isinstance(expected, str):
        assert (status, body) == (200, CONTENTS[expected])
    else:
        assert status == expected
        assert status == 400 or body.startswith(b"<!doctype html>")  # the built-in 404 page


@pytest.mark.parametrize("raw_path", [raw for raw, _ in CORPUS])
async def test_hostile_paths_with_head_load_nothing(raw_path: bytes) -> None:
    status, body, loaded = await fetch(make_site(spa=True), raw_path, method="HEAD")
    assert body == b""
    assert loaded == []
    assert status in (200, 400, 404)


_TOKENS = [
    b"/",
    b"//",
    b".",
    b"..",
    b"%2e",
    b"%2E",
    b"%2f",
    b"%2F",
    b"%5c",
    b"\\",
    b"%00",
    b"\x00",
    b"%25",
    b"%252e",
    b"%c0%ae",
    b"%e0%80%ae",
    b"%c0",
    b"%",
    b"?",
    b"a",
    b".env",
    b"\xff",
    b"%e2%80%ae",
    b"%0a",
    b"%7f",
    b"~",
]
_raw_paths = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from(_TOKENS), max_size=16).map(b"".join),
)


@given(_raw_paths)
def test_normalized_paths_are_always_safe(raw: bytes) -> None:
    """For any raw path: InvalidPath, or a relative path with no '..', backslash or NUL."""
    try:
        path, _ = normalize_request_path(raw)
    except InvalidPath:
        return
    segments = path.split("/")
    assert ".." not in segments
    assert "." not in segments
    assert "\\" not in path
    assert "\x00" not in path
    assert not path.startswith("/")
    assert path == "" or "" not in segments
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path)
