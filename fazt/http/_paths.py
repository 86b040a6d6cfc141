"""Turn an HTTP request target into a safe, relative path inside an app.

Apps are served from a map of relative file names, never from a file system, but the path is
still hostile input: it decides which stored bytes are returned. This module is the single place
that decodes it, so every later step (static lookup, redirects, SPA fallback) works on one
normalized form and never re-decodes.

Rules, in order:

* Cut at ``?`` (some servers leave the query in ``raw_path``).
* Percent-decode exactly once: ``%252e`` becomes the literal text ``%2e``, never ``.``.
* Decode strict UTF-8: overlong forms (``%c0%ae``) and surrogates are rejected.
* Reject control characters (C0, DEL, C1, including NUL) and backslashes, raw or encoded.
* Split on ``/`` (an encoded ``%2f`` is a separator too), drop empty and ``.`` segments, and
  reject ``..`` segments outright instead of resolving them.

Dotfile segments are allowed here; the static server refuses to serve them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, unquote_to_bytes

from fazt.errors import InvalidPath

__all__ = ["RequestPath", "normalize_request_path", "quote_path", "scope_path_bytes"]

# C0 controls (NUL included), DEL, C1 controls, and the backslash.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")

# Characters left as they are when a decoded path is turned back into a URL path: the
# sub-delimiters RFC 3986 allows in a path segment, plus ":" and "@".
_PATH_SAFE = "/!$&'()*+,;=:@"


class RequestPath(NamedTuple):
    """A normalized request path.

    ``path`` is relative ("" for the root, "assets/app.js" otherwise) with no empty, ``.`` or
    ``..`` segments; ``trailing_slash`` records whether the request named a directory
    (``/docs/`` or ``/docs/.``), which decides between a directory index and a redirect.
    """

    path: str
    trailing_slash: bool


def normalize_request_path(raw_path: bytes) -> RequestPath:
    """Decode ``raw_path`` once and normalize it; raise :class:`InvalidPath` if it is unsafe."""
    target = raw_path.partition(b"?")[0]
    decoded = unquote_to_bytes(target) if b"%" in target else target
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPath("the request path is not valid UTF-8") from exc
    _reject_forbidden_characters(text)
    segments = text.split("/")
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            raise InvalidPath("the request path contains a '..' segment")
        if segment and segment != ".":
            kept.append(segment)
    # "/docs/" and "/docs/." both name the directory; a bare "." is the root directory.
    trailing_slash = (len(segments) > 1 and segments[-1] in ("", ".")) or text == "."
    return RequestPath("/".join(kept), trailing_slash)


def scope_path_bytes(scope: Mapping[str, Any]) -> bytes:
    """The still-encoded request path of an ASGI scope.

    ``raw_path`` is preferred because ``path`` has already been decoded by the server, and
    decoding it again would turn ``%252e`` into ``.``. When a server gives no ``raw_path``,
    ``path`` is re-encoded so that :func:`normalize_request_path` decodes it back exactly.
    """
    raw = scope.get("raw_path")
    if raw is not None:
        return bytes(raw)
    path: str = scope.get("path", "/")
    try:
        return quote_path(path).encode("ascii")
    except UnicodeEncodeError as exc:  # lone surrogates from a lenient decoder
        raise InvalidPath("the request path is not valid UTF-8") from exc


def quote_path(path: str) -> str:
    """Percent-encode a decoded path for use in a URL (e.g. a ``Location`` header)."""
    return quote(path, safe=_PATH_SAFE)


def _reject_forbidden_characters(text: str) -> None:
    """Raise :class:`InvalidPath` naming the first control character or backslash."""
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    char = found.group()
    if char == "\\":
        raise InvalidPath("the request path contains a backslash")
    raise InvalidPath(f"the request path contains a control character (U+{ord(char):04X})")
