"""Content types and cacheability of static files, from their names alone.

The table is explicit rather than read from the ``mimetypes`` module, whose answers depend on
the machine's ``/etc/mime.types``: the same deploy must be served the same way everywhere.
"""

from __future__ import annotations

import functools
import re

__all__ = ["DEFAULT_CONTENT_TYPE", "content_type_for", "is_content_hashed"]

DEFAULT_CONTENT_TYPE = "application/octet-stream"

_UTF8 = "; charset=utf-8"

_CONTENT_TYPES: dict[str, str] = {
    # documents and code
    "html": "text/html" + _UTF8,
    "htm": "text/html" + _UTF8,
    "css": "text/css" + _UTF8,
    "js": "text/javascript" + _UTF8,
    "mjs": "text/javascript" + _UTF8,
    "cjs": "text/javascript" + _UTF8,
    "ts": "text/plain" + _UTF8,  # not video/mp2t: on the web .ts is TypeScript source
    "txt": "text/plain" + _UTF8,
    "md": "text/markdown" + _UTF8,
    "csv": "text/csv" + _UTF8,
    "json": "application/json",
    "map": "application/json",
    "webmanifest": "application/manifest+json",
    "xml": "application/xml",
    "yaml": "application/yaml",
    "yml": "application/yaml",
    "toml": "application/toml",
    "wasm": "application/wasm",
    "pdf": "application/pdf",
    "zip": "application/zip",
    "gz": "application/gzip",
    # images
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "ico": "image/x-icon",
    "bmp": "image/bmp",
    # fonts
    "woff": "font/woff",
    "woff2": "font/woff2",
    "ttf": "font/ttf",
    "otf": "font/otf",
    "eot": "application/vnd.ms-fontobject",
    # audio and video
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mov": "video/quicktime",
}

_PRECOMPRESSED_SUFFIXES = ("gz", "br")
"""``x.js.gz`` and ``x.js.br`` are ``x.js`` stored compressed; the server adds the encoding."""


def _extension(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""


def content_type_for(path: str) -> str:
    """The Content-Type header for ``path``, by its (case-insensitive) extension.

    A precompressed variant (``app.js.gz``, ``app.js.br``) gets the type of the file it
    encodes when that type is known; a plain ``.gz`` download stays ``application/gzip``.
    Unknown extensions get ``application/octet-stream``.
    """
    name = path.rpartition("/")[2]
    extension = _extension(name)
    if extension in _PRECOMPRESSED_SUFFIXES:
        inner = _CONTENT_TYPES.get(_extension(name[: -len(extension) - 1]))
        if inner is not None:
            return inner
    return _CONTENT_TYPES.get(extension, DEFAULT_CONTENT_TYPE)


_NAME_SEGMENT_SEPARATORS = re.compile(r"[._-]")
_HASH_SEGMENT = re.compile(r"[A-Za-z0-9]{8,}")
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_LOWERCASE_RUN = re.compile(r"[a-z]{4}")


@functools.lru_cache(maxsize=4096)
def is_content_hashed(path: str) -> bool:
    """True when the file name carries a bundler's content hash, so it may be cached forever.

    Bundlers put a hash of the content in the name (``app.3f9a2b1c.js``,
    ``index-B7x9QwZk.js``, ``chunk-5FQ2LJ3K.css``): a new content gets a new name. A segment
    of the name counts as a hash when it is 8+ letters and digits with at least one digit and
    two letters, and it is hex, or has no run of four lowercase letters (which is a word:
    ``utf8encoder``). A false "no" only costs a revalidation; a false "yes" would pin a
    stale file in browsers for a year, so doubtful names are not hashes.
    """
    name = path.rpartition("/")[2]
    for segment in _NAME_SEGMENT_SEPARATORS.split(name):
        if not _HASH_SEGMENT.fullmatch(segment):
            continue
        digits = sum(c.isdigit() for c in segment)
        if digits == 0 or len(segment) - digits < 2:
            continue
        if _HEX.fullmatch(segment) or not _LOWERCASE_RUN.search(segment):
            return True
    return False
