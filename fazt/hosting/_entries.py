"""Entry names in deploy archives: which are safe, which are ignored, which collide.

Shared by the archive reader (``_archive``) and the packer (``_pack``), so what ``fazt app
deploy DIR`` packs is exactly what the server accepts.
"""

from __future__ import annotations

import re
import unicodedata

from fazt.errors import ArchiveRejected

__all__ = ["clean_entry_name", "collision_key", "is_ignored_path", "unsafe_entry"]

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DRIVE_PREFIX = re.compile(r"[A-Za-z]:")


def unsafe_entry(raw: str | bytes, why: str) -> ArchiveRejected:
    """The error rejecting the entry named ``raw`` because of ``why``."""
    return ArchiveRejected(f"archive entry {raw!r} rejected: {why}")


def clean_entry_name(raw: str, *, max_path_bytes: int) -> tuple[str, bool]:
    """Check an entry name and return ``(path, named_as_directory)``.

    ``path`` drops one leading ``./`` and one trailing ``/`` (which marks a directory);
    ``""`` stands for the archive root (``./``). Raises ``ArchiveRejected`` naming the entry
    for anything that could escape the app's tree or be read two ways.
    """
    if _CONTROL_CHARS.search(raw):
        raise unsafe_entry(raw, "the name contains NUL or control characters")
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise unsafe_entry(raw, "the name is not valid UTF-8") from None
    if len(encoded) > max_path_bytes:
        raise unsafe_entry(raw, f"the name is longer than {max_path_bytes} bytes (max_path_bytes)")
    if "\\" in raw:
        raise unsafe_entry(raw, "backslashes are not allowed in names")
    if raw.startswith("/"):
        raise unsafe_entry(raw, "absolute paths are not allowed")
    if _DRIVE_PREFIX.match(raw):
        raise unsafe_entry(raw, "Windows drive paths are not allowed")
    name = raw
    named_as_directory = name.endswith("/")
    if named_as_directory:
        name = name[:-1]
    if name == ".":
        return "", True
    if name.startswith("./"):
        name = name[2:]
    if not name:
        if named_as_directory:
            return "", True
        raise unsafe_entry(raw, "the name is empty")
    for segment in name.split("/"):
        if not segment:
            raise unsafe_entry(raw, "empty path segments ('//') are not allowed")
        if segment == "..":
            raise unsafe_entry(raw, "'..' segments are not allowed")
        if segment == ".":
            raise unsafe_entry(raw, "'.' segments are not allowed")
    return name, named_as_directory


def is_ignored_path(path: str) -> bool:
    """True for paths that are never served: any dot segment, and macOS ``__MACOSX/`` debris."""
    segments = path.split("/")
    return segments[0] == "__MACOSX" or any(segment.startswith(".") for segment in segments)


def collision_key(path: str) -> str:
    """The form under which two names count as the same file.

    Canonical caseless matching (Unicode 3.13, D145): two names that differ only in case or
    in composed/decomposed form would overwrite each other on macOS and Windows file systems
    and look identical to a user.
    """
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", path).casefold())
