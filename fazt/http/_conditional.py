"""Request headers for static files: which are read, and how conditional requests match.

Parses what :mod:`fazt.http._static` needs to pick and qualify a response: ``Accept-Encoding``
(which precompressed sibling may be sent), ``If-None-Match`` (304), and ``Range`` with
``If-Range`` (206 or 416). Pure functions on header bytes; nothing here sends anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Final

from fazt.errors import RangeNotSatisfiable

__all__ = [
    "accepted_encodings",
    "none_match",
    "parse_range",
    "range_applies",
    "request_headers",
]

# The only request headers static serving reads.
_WANTED_HEADERS: Final = frozenset(
    (b"accept", b"accept-encoding", b"range", b"if-range", b"if-none-match")
)
# Digits beyond this many exceed any real file size; they are clamped instead of parsed.
_MAX_OFFSET_DIGITS: Final = 18
_HUGE: Final = 10**_MAX_OFFSET_DIGITS


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The request headers static serving reads, repeated ones joined with commas."""
    wanted: dict[bytes, bytes] = {}
    for name, value in raw:
        key = bytes(name).lower()
        if key in _WANTED_HEADERS:
            previous = wanted.get(key)
            wanted[key] = bytes(value) if previous is None else previous + b", " + value
    return wanted


@lru_cache(maxsize=256)
def accepted_encodings(header: bytes) -> tuple[bytes, ...]:
    """The precompressed codings ``Accept-Encoding`` allows, most preferred first.

    Brotli wins over gzip whenever both are allowed (q > 0); ``*`` covers codings not named.
    Browsers send a handful of distinct values, so the parse is cached.
    """
    qvalues: dict[bytes, float] = {}
    for item in header.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip().lower()
        if coding:
            qvalues[coding] = _qvalue(params)
    anything = qvalues.get(b"*", 0.0)
    gzip = qvalues.get(b"gzip", qvalues.get(b"x-gzip", anything))
    allowed = (b"br", qvalues.get(b"br", anything)), (b"gzip", gzip)
    return tuple(coding for coding, q in allowed if q > 0)


def _qvalue(params: bytes) -> float:
    """The ``q`` parameter of one Accept-Encoding item (1 if absent, 0 if malformed)."""
    for param in params.split(b";"):
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def none_match(header: bytes, etag: bytes) -> bool:
    """Whether ``If-None-Match`` matches ``etag`` (weak comparison, RFC 9110 §13.1.2)."""
    for candidate in header.split(b","):
        tag = candidate.strip()
        if tag == b"*" or tag.removeprefix(b"W/") == etag:
            return True
    return False


def range_applies(if_range: bytes | None, etag: bytes) -> bool:
    """Whether ``If-Range`` lets the Range be honoured (strong comparison; dates never match,
    since no Last-Modified is sent)."""
    return if_range is None or if_range.strip() == etag


def parse_range(header: bytes, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte span a ``Range`` header asks for.

    ``None`` means "ignore it and send the whole file": a unit other than bytes, several ranges
    (allowed by RFC 9110 §14.2), or a suffix range of an empty file. Bad syntax and spans that
    start past the end raise :class:`RangeNotSatisfiable`.
    """
    unit, equals, spec = header.partition(b"=")
    if not equals or unit.strip().lower() != b"bytes":
        return None
    if b"," in spec:
        return None
    first, dash, last = spec.strip().partition(b"-")
    if not dash:
        raise RangeNotSatisfiable("malformed byte range")
    if not first:
        length = _offset(last)
        if length == 0:
            raise RangeNotSatisfiable("empty suffix range")
        return None if size == 0 else (max(0, size - length), size - 1)
    start = _offset(first)
    end = _offset(last) if last else size - 1
    if end < start or start >= size:
        raise RangeNotSatisfiable("the byte range is outside the file")
    return start, min(end, size - 1)


def _offset(text: bytes) -> int:
    """A byte offset from a Range header; absurdly long numbers are clamped, not parsed."""
    digits = text.strip()
    if not digits.isdigit():
        raise RangeNotSatisfiable("malformed byte range")
    return _HUGE if len(digits) > _MAX_OFFSET_DIGITS else int(digits)
