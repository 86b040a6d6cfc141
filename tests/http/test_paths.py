"""normalize_request_path: one decode, strict UTF-8, no '..', no controls, no backslashes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fazt.errors import InvalidPath
from fazt.http._paths import RequestPath, normalize_request_path, quote_path, scope_path_bytes


@pytest.mark.parametrize(
    ("raw", "path", "trailing_slash"),
    [
        (b"/", "", True),
        (b"", "", False),
        (b"/index.html", "index.html", False),
        (b"/assets/app-3f9a2b1c.js", "assets/app-3f9a2b1c.js", False),
        (b"/docs/", "docs", True),
        (b"/docs/guide/", "docs/guide", True),
        (b"//a///b", "a/b", False),
        (b"/./a/./b", "a/b", False),
        (b"/a/b/.", "a/b", True),
        (b"/a/%2e/", "a", True),
        (b"/%2e", "", True),
        (b".", "", True),
        (b"/a%20b.txt", "a b.txt", False),
        (b"/%E2%9C%93.txt", "\u2713.txt", False),
        (b"/caf\xc3\xa9", "caf\u00e9", False),
        (b"/a%2fb", "a/b", False),
        (b"/a?x=../..%00", "a", False),
        (b"/docs/?q=1", "docs", True),
        (b"/%252e%252e/x", "%2e%2e/x", False),
        (b"/%252e%252e%252f", "%2e%2e%2f", False),
        (b"/%zz", "%zz", False),
        (b"/...", "...", False),
        (b"/a..b/c..", "a..b/c..", False),
        (b"/.env", ".env", False),
        (b"/.well-known/x", ".well-known/x", False),
        (b"index.html", "index.html", False),
    ],
)
def test_normalizes(raw: bytes, path: str, trailing_slash: bool) -> None:
    assert normalize_request_path(raw) == RequestPath(path, trailing_slash)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"/../etc/passwd", "'..'"),
        (b"/a/../b", "'..'"),
        (b"/a/..", "'..'"),
        (b"/%2e%2e/x", "'..'"),
        (b"/%2E%2E", "'..'"),
        (b"/.%2e/", "'..'"),
        (b"/..%2f", "'..'"),
        (b"..%2fetc", "'..'"),
        (b"/a%2f..%2fb", "'..'"),
        (b"/a\\b", "backslash"),
        (b"/..\\", "backslash"),
        (b"/a%5cb", "backslash"),
        (b"/a%5Cb", "backslash"),
        (b"/%00", "U+0000"),
        (b"/a\x00b", "U+0000"),
        (b"/%0a", "U+000A"),
        (b"/%0d%0aSet-Cookie:x", "U+000D"),
        (b"/%09", "U+0009"),
        (b"/%7f", "U+007F"),
        (b"/%c2%85", "U+0085"),
        (b"/%c0%ae%c0%ae/", "UTF-8"),
        (b"/%e0%80%ae", "UTF-8"),
        (b"/%c0%af", "UTF-8"),
        (b"/%ff", "UTF-8"),
        (b"/%ed%a0%80", "UTF-8"),
        (b"/\xff", "UTF-8"),
    ],
)
def test_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidPath, match=re.escape(message)) as caught:
        normalize_request_path(raw)
    assert caught.value.http_status == 400
    assert caught.value.code == "invalid_path"


def test_decodes_exactly_once() -> None:
    # %25 is '%': one decode gives the literal text "%2e%2e", which is a harmless file name.
    assert normalize_request_path(b"/%25%32%65%25%32%65").path == "%2e%2e"


def test_scope_path_bytes_prefers_raw_path() -> None:
    scope = {"raw_path": b"/%252e", "path": "/%2e"}
    assert scope_path_bytes(scope) == b"/%252e"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a b/\u2713.txt", "a b/\u2713.txt"),
        ("/%2e%2e/x", "%2e%2e/x"),  # already decoded by the server: never decoded again
        ("/docs/", "docs"),
    ],
)
def test_scope_path_bytes_reencodes_path_without_raw_path(path: str, expected: str) -> None:
    for scope in ({"path": path}, {"path": path, "raw_path": None}):
        assert normalize_request_path(scope_path_bytes(scope)).path == expected


def test_scope_path_bytes_rejects_surrogates() -> None:
    with pytest.raises(InvalidPath):
        scope_path_bytes({"path": "/\udcff"})


def test_quote_path_keeps_slashes_and_encodes_the_rest() -> None:
    assert quote_path("/my docs/\u2713?#") == "/my%20docs/%E2%9C%93%3F%23"


_segment = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\"), min_size=1
).filter(lambda s: s not in (".", ".."))


@given(st.lists(_segment, max_size=6), st.booleans())
def test_quoted_result_normalizes_to_itself(segments: list[str], trailing: bool) -> None:
    """A normalized path, re-encoded for a URL, normalizes back to itself (idempotence)."""
    path = "/".join(segments)
    raw = ("/" + quote_path(path) + ("/" if trailing else "")).encode("ascii")
    # The root ("/" or "//") always names a directory.
    assert normalize_request_path(raw) == RequestPath(path, trailing or not path)
