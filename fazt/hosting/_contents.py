"""What a deploy archive may hold: its quotas, the validated result, and the builder between.

Both format readers (``_zip``, ``_tar``) feed entries to one ``ContentsBuilder`` as they
discover them; the builder applies the name rules of ``_entries``, the rules on entry kinds
and uniqueness, and every quota, so the two formats cannot drift apart.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from fazt.errors import ArchiveTooLarge
from fazt.hosting._entries import clean_entry_name, collision_key, is_ignored_path, unsafe_entry

__all__ = ["ArchiveContents", "ArchiveFile", "ArchiveLimits", "ContentsBuilder", "EntryKind"]

_MIB = 2**20
_RATIO_FLOOR_BYTES = 1 * _MIB
"""The compression ratio is only enforced past this many bytes: tiny text files compress
far better than 200:1 and are harmless."""


@dataclass(frozen=True, kw_only=True)
class ArchiveLimits:
    """Quotas for one deploy archive. Sizes are uncompressed unless the name says otherwise."""

    max_deploy_bytes: int = 100 * _MIB
    """The compressed upload."""
    max_app_bytes: int = 200 * _MIB
    """Sum of the sizes of the files kept. For tar.gz, the whole inflated stream (skipped
    entries, headers) may exceed this by a small per-entry allowance only."""
    max_app_files: int = 10_000
    """Files kept (not counting directories and skipped entries)."""
    max_file_bytes: int = 50 * _MIB
    max_compression_ratio: float = 200.0
    """Inflated bytes / archive bytes, enforced once more than 1 MiB has been inflated."""
    max_path_bytes: int = 1024
    """Length of an entry name in UTF-8 bytes."""
    max_entries: int = 50_000
    """Every entry, including directories and skipped ones. Bounds the work of parsing the
    archive itself; checked against the zip central directory before any member is read."""


@dataclass(frozen=True)
class ArchiveFile:
    """One regular file of a validated archive."""

    path: str
    """Relative POSIX path, no leading slash, no ``.``/``..``/empty segments."""
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class ArchiveContents:
    """A validated archive: the files to store, sorted by path, and what was ignored."""

    files: tuple[ArchiveFile, ...]
    skipped: tuple[str, ...]
    """Dotfiles and ``__MACOSX/`` entries that were ignored; for a warning to the deployer."""


class EntryKind(Enum):
    """What an archive entry is, as its format reader reports it."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hard link"
    SPECIAL = "special"


_TAR_FIXED_ALLOWANCE_BYTES = 1 * _MIB
_TAR_ENTRY_ALLOWANCE_BYTES = 4 * 1024
"""Inflated tar bytes allowed beyond max_app_bytes: headers, pax records, block padding,
end-of-archive zeros, and the contents of skipped entries all live in this allowance."""


class ContentsBuilder:
    """Applies the name rules and quotas to entries as a format reader discovers them."""

    def __init__(self, limits: ArchiveLimits, *, archive_bytes: int) -> None:
        self.limits = limits
        self._archive_bytes = archive_bytes
        self._files: list[ArchiveFile] = []
        self._skipped: list[str] = []
        self._entries = 0
        self._total_bytes = 0
        self._file_keys: dict[str, str] = {}
        self._dir_keys: dict[str, str] = {}

    def check_entry_count(self, count: int) -> None:
        """Reject an archive that declares more entries than ``max_entries``."""
        if count > self.limits.max_entries:
            raise ArchiveTooLarge(
                f"archive has more than {self.limits.max_entries} entries (max_entries)"
            )

    def admit(self, raw_name: str, kind: EntryKind, detail: str = "") -> str | None:
        """Register an entry; return its path if its bytes must be read, else None.

        Directory entries are dropped, ignored entries are listed in ``skipped``; both return
        None. Unsafe names and kinds raise before any of the entry's data is read.
        """
        self._entries += 1
        self.check_entry_count(self._entries)
        path, named_as_directory = clean_entry_name(
            raw_name, max_path_bytes=self.limits.max_path_bytes
        )
        if kind is EntryKind.FILE and named_as_directory:
            kind = EntryKind.DIRECTORY
        if not path:
            if kind is EntryKind.DIRECTORY:
                return None
            raise unsafe_entry(raw_name, "the name is empty")
        if is_ignored_path(path):
            if kind is not EntryKind.DIRECTORY:
                self._skipped.append(path)
            return None
        if kind is EntryKind.SYMLINK:
            raise unsafe_entry(raw_name, "symlinks are not allowed")
        if kind is EntryKind.HARDLINK:
            raise unsafe_entry(raw_name, "hard links are not allowed")
        if kind is EntryKind.SPECIAL:
            raise unsafe_entry(
                raw_name, f"only regular files and directories are allowed ({detail})"
            )
        key = collision_key(path)
        if kind is EntryKind.DIRECTORY:
            other = self._file_keys.get(key)
            if other is not None:
                raise unsafe_entry(raw_name, f"it is a directory but {other!r} is a file")
            self._dir_keys.setdefault(key, path)
            return None
        self._register_file(raw_name, path, key)
        return path

    def _register_file(self, raw_name: str, path: str, key: str) -> None:
        other = self._file_keys.get(key)
        if other == path:
            raise unsafe_entry(raw_name, "duplicate entry")
        if other is not None:
            raise unsafe_entry(
                raw_name,
                f"it collides with {other!r}: the names differ only in case or Unicode form",
            )
        other = self._dir_keys.get(key)
        if other is not None:
            raise unsafe_entry(raw_name, f"it is a file but {other!r} is a directory")
        if len(self._file_keys) >= self.limits.max_app_files:
            raise ArchiveTooLarge(
                f"archive has more than {self.limits.max_app_files} files (max_app_files)"
            )
        self._file_keys[key] = path

    def read_file(self, path: str, chunks: Iterator[bytes]) -> None:
        """Consume a file's inflated bytes, stopping at the first byte over a quota."""
        parts: list[bytes] = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            self._total_bytes += len(chunk)
            if size > self.limits.max_file_bytes:
                raise ArchiveTooLarge(
                    f"{path!r} is larger than {self.limits.max_file_bytes} bytes (max_file_bytes)"
                )
            if self._total_bytes > self.limits.max_app_bytes:
                raise ArchiveTooLarge(
                    f"archive contents exceed {self.limits.max_app_bytes} bytes "
                    "uncompressed (max_app_bytes)"
                )
            self._check_ratio(self._total_bytes)
            parts.append(chunk)
        self._files.append(ArchiveFile(path, b"".join(parts)))

    def check_inflated(self, inflated_bytes: int) -> None:
        """Bound the whole inflated tar stream, including what is not a kept file's content."""
        allowance = (
            self.limits.max_app_bytes
            + _TAR_FIXED_ALLOWANCE_BYTES
            + self._entries * _TAR_ENTRY_ALLOWANCE_BYTES
        )
        if inflated_bytes > allowance:
            raise ArchiveTooLarge(
                f"archive inflates to more than {allowance} bytes: max_app_bytes "
                f"({self.limits.max_app_bytes}) plus tar headers and skipped entries"
            )
        self._check_ratio(inflated_bytes)

    def _check_ratio(self, inflated_bytes: int) -> None:
        if (
            inflated_bytes > _RATIO_FLOOR_BYTES
            and inflated_bytes > self.limits.max_compression_ratio * self._archive_bytes
        ):
            raise ArchiveTooLarge(
                f"archive inflates more than {self.limits.max_compression_ratio:g} times its "
                "size (max_compression_ratio)"
            )

    def finish(self) -> ArchiveContents:
        """Reject files used as directories, then return the files sorted by path."""
        keys = sorted(self._file_keys.keys() | self._dir_keys.keys())
        for key, path in self._file_keys.items():
            index = bisect_left(keys, key + "/")
            if index < len(keys) and keys[index].startswith(key + "/"):
                inner = self._file_keys.get(keys[index]) or self._dir_keys[keys[index]]
                raise unsafe_entry(path, f"it is a file but {inner!r} uses it as a directory")
        files = sorted(self._files, key=lambda f: f.path)
        return ArchiveContents(files=tuple(files), skipped=tuple(self._skipped))
