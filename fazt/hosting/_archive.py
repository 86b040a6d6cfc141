"""Deploy archives: read a zip or tar.gz upload in memory and prove it safe before any write.

An archive is hostile until proven otherwise. ``read_archive`` returns plain ``(path, bytes)``
pairs only after every entry has passed these checks, so the caller never writes a byte of a
rejected deploy:

* names: relative POSIX paths of valid UTF-8, without ``..``, ``.`` or empty segments,
  backslashes, drive letters or control characters, no longer than ``max_path_bytes``;
* kinds: regular files and directories only (no symlinks, hard links, devices, fifos, sparse
  files);
* uniqueness: no duplicate names, no two names equal after case folding and Unicode
  normalization, no file that is also used as a directory;
* size: every quota is measured on bytes actually inflated, never on sizes written in headers,
  and reading stops at the first byte over a quota. A bomb costs at most one quota's worth of
  inflating.

Tar is parsed here rather than with ``tarfile``: the parser is small, fails loudly where
``tarfile`` silently stops at a bad header, and parses pax records in one linear pass (the
``tarfile`` of older CPythons, such as 3.11.7, spends seconds on one crafted 64 KiB pax header:
CVE-2024-6232).

Dotfiles and ``__MACOSX/`` entries are skipped, not rejected: they are never served, and
archivers add them without asking.
"""

from __future__ import annotations

import io
import lzma
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from fazt.errors import ArchiveRejected, ArchiveTooLarge

__all__ = [
    "ArchiveContents",
    "ArchiveFile",
    "ArchiveLimits",
    "clean_entry_name",
    "collision_key",
    "is_ignored_path",
    "read_archive",
]

_MIB = 2**20
_CHUNK_BYTES = 64 * 1024
_RATIO_FLOOR_BYTES = 1 * _MIB
"""The compression ratio is only enforced past this many bytes: tiny text files compress
far better than 200:1 and are harmless."""


@dataclass(frozen=True, kw_only=True)
class ArchiveLimits:
    """Quotas for one deploy archive. Sizes are uncompressed unless the name says otherwise."""

    max_archive_bytes: int = 100 * _MIB
    """The compressed upload."""
    max_total_bytes: int = 200 * _MIB
    """Sum of the sizes of the files kept. For tar.gz, the whole inflated stream (skipped
    entries, headers) may exceed this by a small per-entry allowance only."""
    max_files: int = 10_000
    """Files kept (not counting directories and skipped entries)."""
    max_file_bytes: int = 50 * _MIB
    max_ratio: float = 200.0
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


def read_archive(data: bytes, *, limits: ArchiveLimits) -> ArchiveContents:
    """Validate a zip or tar.gz deploy archive completely in memory and return its files.

    Raises ``ArchiveTooLarge`` when a quota of ``limits`` is exceeded and ``ArchiveRejected``
    for anything unsafe, malformed or unsupported; no other exception escapes for any input.
    """
    if len(data) > limits.max_archive_bytes:
        raise ArchiveTooLarge(
            f"archive is {len(data)} bytes; the limit is {limits.max_archive_bytes} bytes "
            "(max_archive_bytes)"
        )
    builder = _ContentsBuilder(limits, archive_bytes=len(data))
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        _read_zip(data, builder)
    elif data.startswith(_GZIP_MAGIC):
        _read_tar_gz(data, builder)
    else:
        raise ArchiveRejected("not a zip or tar.gz archive")
    return builder.finish()


# --- entry names -------------------------------------------------------------------------------

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DRIVE_PREFIX = re.compile(r"[A-Za-z]:")


def _unsafe(raw: str | bytes, why: str) -> ArchiveRejected:
    return ArchiveRejected(f"archive entry {raw!r} rejected: {why}")


def clean_entry_name(raw: str, *, max_path_bytes: int) -> tuple[str, bool]:
    """Check an entry name and return ``(path, named_as_directory)``.

    ``path`` drops one leading ``./`` and one trailing ``/`` (which marks a directory);
    ``""`` stands for the archive root (``./``). Raises ``ArchiveRejected`` naming the entry
    for anything that could escape the app's tree or be read two ways.
    """
    if _CONTROL_CHARS.search(raw):
        raise _unsafe(raw, "the name contains NUL or control characters")
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise _unsafe(raw, "the name is not valid UTF-8") from None
    if len(encoded) > max_path_bytes:
        raise _unsafe(raw, f"the name is longer than {max_path_bytes} bytes (max_path_bytes)")
    if "\\" in raw:
        raise _unsafe(raw, "backslashes are not allowed in names")
    if raw.startswith("/"):
        raise _unsafe(raw, "absolute paths are not allowed")
    if _DRIVE_PREFIX.match(raw):
        raise _unsafe(raw, "Windows drive paths are not allowed")
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
        raise _unsafe(raw, "the name is empty")
    for segment in name.split("/"):
        if not segment:
            raise _unsafe(raw, "empty path segments ('//') are not allowed")
        if segment == "..":
            raise _unsafe(raw, "'..' segments are not allowed")
        if segment == ".":
            raise _unsafe(raw, "'.' segments are not allowed")
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


# --- validation and quotas shared by both formats ---------------------------------------------


class _Kind(Enum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hard link"
    SPECIAL = "special"


_TAR_FIXED_ALLOWANCE_BYTES = 1 * _MIB
_TAR_ENTRY_ALLOWANCE_BYTES = 4 * 1024
"""Inflated tar bytes allowed beyond max_total_bytes: headers, pax records, block padding,
end-of-archive zeros, and the contents of skipped entries all live in this allowance."""


class _ContentsBuilder:
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

    def admit(self, raw_name: str, kind: _Kind, detail: str = "") -> str | None:
        """Register an entry; return its path if its bytes must be read, else None.

        Directory entries are dropped, ignored entries are listed in ``skipped``; both return
        None. Unsafe names and kinds raise before any of the entry's data is read.
        """
        self._entries += 1
        self.check_entry_count(self._entries)
        path, named_as_directory = clean_entry_name(
            raw_name, max_path_bytes=self.limits.max_path_bytes
        )
        if kind is _Kind.FILE and named_as_directory:
            kind = _Kind.DIRECTORY
        if not path:
            if kind is _Kind.DIRECTORY:
                return None
            raise _unsafe(raw_name, "the name is empty")
        if is_ignored_path(path):
            if kind is not _Kind.DIRECTORY:
                self._skipped.append(path)
            return None
        if kind is _Kind.SYMLINK:
            raise _unsafe(raw_name, "symlinks are not allowed")
        if kind is _Kind.HARDLINK:
            raise _unsafe(raw_name, "hard links are not allowed")
        if kind is _Kind.SPECIAL:
            raise _unsafe(raw_name, f"only regular files and directories are allowed ({detail})")
        key = collision_key(path)
        if kind is _Kind.DIRECTORY:
            other = self._file_keys.get(key)
            if other is not None:
                raise _unsafe(raw_name, f"it is a directory but {other!r} is a file")
            self._dir_keys.setdefault(key, path)
            return None
        self._register_file(raw_name, path, key)
        return path

    def _register_file(self, raw_name: str, path: str, key: str) -> None:
        other = self._file_keys.get(key)
        if other == path:
            raise _unsafe(raw_name, "duplicate entry")
        if other is not None:
            raise _unsafe(
                raw_name,
                f"it collides with {other!r}: the names differ only in case or Unicode form",
            )
        other = self._dir_keys.get(key)
        if other is not None:
            raise _unsafe(raw_name, f"it is a file but {other!r} is a directory")
        if len(self._file_keys) >= self.limits.max_files:
            raise ArchiveTooLarge(
                f"archive has more than {self.limits.max_files} files (max_files)"
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
            if self._total_bytes > self.limits.max_total_bytes:
                raise ArchiveTooLarge(
                    f"archive contents exceed {self.limits.max_total_bytes} bytes "
                    "uncompressed (max_total_bytes)"
                )
            self._check_ratio(self._total_bytes)
            parts.append(chunk)
        self._files.append(ArchiveFile(path, b"".join(parts)))

    def check_inflated(self, inflated_bytes: int) -> None:
        """Bound the whole inflated tar stream, including what is not a kept file's content."""
        allowance = (
            self.limits.max_total_bytes
            + _TAR_FIXED_ALLOWANCE_BYTES
            + self._entries * _TAR_ENTRY_ALLOWANCE_BYTES
        )
        if inflated_bytes > allowance:
            raise ArchiveTooLarge(
                f"archive inflates to more than {allowance} bytes: max_total_bytes "
                f"({self.limits.max_total_bytes}) plus tar headers and skipped entries"
            )
        self._check_ratio(inflated_bytes)

    def _check_ratio(self, inflated_bytes: int) -> None:
        if (
            inflated_bytes > _RATIO_FLOOR_BYTES
            and inflated_bytes > self.limits.max_ratio * self._archive_bytes
        ):
            raise ArchiveTooLarge(
                f"archive inflates more than {self.limits.max_ratio:g} times its size (max_ratio)"
            )

    def finish(self) -> ArchiveContents:
        """Reject files used as directories, then return the files sorted by path."""
        keys = sorted(self._file_keys.keys() | self._dir_keys.keys())
        for key, path in self._file_keys.items():
            index = bisect_left(keys, key + "/")
            if index < len(keys) and keys[index].startswith(key + "/"):
                inner = self._file_keys.get(keys[index]) or self._dir_keys[keys[index]]
                raise _unsafe(path, f"it is a file but {inner!r} uses it as a directory")
        files = sorted(self._files, key=lambda f: f.path)
        return ArchiveContents(files=tuple(files), skipped=tuple(self._skipped))


# --- zip ---------------------------------------------------------------------------------------

_ZIP_EOCD = b"PK\x05\x06"
_ZIP_EOCD_BYTES = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_BYTES = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_BYTES = 56
_ZIP_CENTRAL_HEADER = b"PK\x01\x02"
_ZIP_CENTRAL_HEADER_BYTES = 46
_ZIP_FLAG_ENCRYPTED = 0x0001
_ZIP_FLAG_STRONG_ENCRYPTION = 0x0040
_ZIP_FLAG_UTF8 = 0x0800

_ZIP_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
)
"""What zipfile and its decompressors raise on malformed input (bz2 raises OSError)."""

_SPECIAL_MODES = {
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def _read_zip(data: bytes, builder: _ContentsBuilder) -> None:
    _count_zip_entries(data, builder)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except UnicodeDecodeError as exc:
        raise ArchiveRejected("a zip entry flagged as UTF-8 has a name that is not") from exc
    except _ZIP_ERRORS as exc:
        raise ArchiveRejected(f"corrupt zip archive: {exc}") from exc
    with archive:
        infos = archive.infolist()
        builder.check_entry_count(len(infos))
        for info in infos:
            if info.flag_bits & (_ZIP_FLAG_ENCRYPTED | _ZIP_FLAG_STRONG_ENCRYPTION):
                raise _unsafe(info.orig_filename, "encrypted entries are not supported")
            kind, detail = _zip_kind(info)
            path = builder.admit(_zip_name(info), kind, detail)
            if path is not None:
                builder.read_file(path, _zip_chunks(archive, info))


def _count_zip_entries(data: bytes, builder: _ContentsBuilder) -> None:
    """Count central-directory records exactly as ``zipfile`` will, before it parses them.

    ``zipfile`` builds an object per record up front; a 100 MiB upload can hold two million
    of them. This walk mirrors ``zipfile._EndRecData`` and ``_RealGetContents`` but only
    counts, and stops at ``max_entries``.
    """
    size = len(data)
    end = size - _ZIP_EOCD_BYTES
    if not (end >= 0 and data.startswith(_ZIP_EOCD, end) and data.endswith(b"\x00\x00")):
        end = data.rfind(_ZIP_EOCD, max(size - (1 << 16) - _ZIP_EOCD_BYTES, 0))
        if end < 0 or end + _ZIP_EOCD_BYTES > size:
            raise ArchiveRejected("corrupt zip archive: end of central directory not found")
    (declared, directory_bytes) = struct.unpack_from("<10xHL", data, end)
    directory_start = end - directory_bytes
    locator = end - _ZIP64_LOCATOR_BYTES
    if locator >= 0 and data.startswith(_ZIP64_LOCATOR, locator):
        disk, _, disks = struct.unpack_from("<4xLQL", data, locator)
        if disk != 0 or disks > 1:
            raise ArchiveRejected("multi-disk zip archives are not supported")
        record = locator - _ZIP64_EOCD_BYTES
        if record >= 0 and data.startswith(_ZIP64_EOCD, record):
            declared, directory_bytes = struct.unpack_from("<32xQQ", data, record)
            directory_start = record - directory_bytes
    builder.check_entry_count(declared)
    if directory_start < 0:
        raise ArchiveRejected("corrupt zip archive: bad central directory offset")
    available = min(directory_bytes, size - directory_start)
    offset = 0
    count = 0
    while offset < directory_bytes:
        if offset + _ZIP_CENTRAL_HEADER_BYTES > available or not data.startswith(
            _ZIP_CENTRAL_HEADER, directory_start + offset
        ):
            raise ArchiveRejected("corrupt zip archive: bad central directory")
        count += 1
        builder.check_entry_count(count)
        name, extra, comment = struct.unpack_from("<3H", data, directory_start + offset + 28)
        offset += _ZIP_CENTRAL_HEADER_BYTES + name + extra + comment


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name, before zipfile's silent truncation at NUL.

    Without the UTF-8 flag the zip spec says cp437, but most archivers on macOS and Linux
    write UTF-8 without setting the flag; bytes that decode as UTF-8 are taken as UTF-8.
    """
    name = info.orig_filename
    if info.flag_bits & _ZIP_FLAG_UTF8 or name.isascii():
        return name
    raw = name.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return name


def _zip_kind(info: zipfile.ZipInfo) -> tuple[_Kind, str]:
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type in (0, stat.S_IFREG):
        return _Kind.FILE, ""
    if file_type == stat.S_IFDIR:
        return _Kind.DIRECTORY, ""
    if file_type == stat.S_IFLNK:
        return _Kind.SYMLINK, ""
    return _Kind.SPECIAL, _SPECIAL_MODES.get(file_type, f"unknown file type {file_type:o}")


def _zip_chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """Inflate one member in chunks; zipfile checks the CRC when the last chunk is read."""
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK_BYTES):
                yield chunk
    except _ZIP_ERRORS as exc:
        raise ArchiveRejected(f"corrupt zip entry {info.orig_filename!r}: {exc}") from exc


# --- tar.gz ------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_NON_ZERO_BYTE = re.compile(rb"[^\x00]")
_TAR_BLOCK_BYTES = 512
_TAR_ZERO_BLOCK = bytes(_TAR_BLOCK_BYTES)
_TAR_MAX_META_BYTES = 1 * _MIB
"""Largest pax or GNU long-name record accepted; legitimate ones are a few hundred bytes."""
_TAR_META_TYPES = frozenset({b"x", b"g", b"L", b"K"})
_TAR_DATA_TYPES = frozenset({b"0", b"\x00", b"7"})
_TAR_KINDS: dict[bytes, tuple[_Kind, str]] = {
    b"0": (_Kind.FILE, ""),
    b"\x00": (_Kind.FILE, ""),
    b"7": (_Kind.FILE, ""),
    b"5": (_Kind.DIRECTORY, ""),
    b"1": (_Kind.HARDLINK, ""),
    b"2": (_Kind.SYMLINK, ""),
    b"3": (_Kind.SPECIAL, "character device"),
    b"4": (_Kind.SPECIAL, "block device"),
    b"6": (_Kind.SPECIAL, "fifo"),
    b"S": (_Kind.SPECIAL, "sparse file"),
}
_OCTAL_DIGITS = re.compile(rb"[0-7]+")
_DECIMAL_DIGITS = re.compile(rb"[0-9]+")


def _read_tar_gz(data: bytes, builder: _ContentsBuilder) -> None:
    stream = _GzipStream(data, on_inflated=builder.check_inflated)
    try:
        _TarParser(stream, builder).run()
    except zlib.error as exc:
        raise ArchiveRejected(f"corrupt gzip data: {exc}") from exc


class _GzipStream:
    """Inflates gzip data on demand and reports every inflated byte to ``on_inflated``.

    All bytes the tar parser sees pass through here, so the count is the true inflated size
    whatever the headers inside claim; ``on_inflated`` raises to stop a bomb within one chunk.
    Accepts concatenated gzip members and zero padding after them, like ``gzip -d``.
    """

    def __init__(self, data: bytes, *, on_inflated: Callable[[int], None]) -> None:
        self._data = data
        self._view = memoryview(data)
        self._position = 0
        self._inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        self._on_inflated = on_inflated
        self._buffer = b""
        self._buffer_position = 0
        self._finished = False
        self.inflated_bytes = 0

    def read(self, size: int) -> bytes:
        """Return 1 to ``size`` inflated bytes, or ``b""`` at the end of the gzip data."""
        if self._buffer_position >= len(self._buffer):
            self._buffer = self._inflate_chunk()
            self._buffer_position = 0
        chunk = self._buffer[self._buffer_position : self._buffer_position + size]
        self._buffer_position += len(chunk)
        return chunk

    def _inflate_chunk(self) -> bytes:
        while not self._finished:
            if self._inflater.eof:
                self._start_next_member()
                continue
            source: bytes | memoryview = self._inflater.unconsumed_tail
            if not source:
                source = self._view[self._position : self._position + _CHUNK_BYTES]
                self._position += len(source)
                if not source:
                    raise ArchiveRejected("the gzip data is truncated")
            chunk = self._inflater.decompress(source, _CHUNK_BYTES)
            if chunk:
                self.inflated_bytes += len(chunk)
                self._on_inflated(self.inflated_bytes)
                return chunk
        return b""

    def _start_next_member(self) -> None:
        start = self._position - len(self._inflater.unused_data)
        match = _NON_ZERO_BYTE.search(self._data, start)
        if match is None:
            self._finished = True
        elif self._data.startswith(_GZIP_MAGIC, match.start()):
            self._position = match.start()
            self._inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        else:
            raise ArchiveRejected("unexpected data after the end of the gzip data")


class _TarParser:
    """A strict streaming reader for ustar, GNU and pax tar archives.

    Supports what archivers write for regular files and directories: ustar name prefixes,
    pax ``path``/``size`` records, GNU long names and base-256 numbers. Anything else is
    rejected rather than guessed at.
    """

    def __init__(self, stream: _GzipStream, builder: _ContentsBuilder) -> None:
        self._stream = stream
        self._builder = builder

    def run(self) -> None:
        pax: dict[str, bytes] = {}
        long_name: bytes | None = None
        while True:
            block = self._read_exact(_TAR_BLOCK_BYTES, at_boundary=True)
            if not block or block == _TAR_ZERO_BLOCK:
                if pax or long_name is not None:
                    raise ArchiveRejected("the tar archive ends inside an entry's headers")
                if block:
                    self._expect_only_zeros()
                return
            typeflag, header_name, size = _parse_tar_header(block)
            if typeflag in _TAR_META_TYPES:
                if size > _TAR_MAX_META_BYTES:
                    raise ArchiveTooLarge(
                        f"a tar extended header is {size} bytes; the limit is {_TAR_MAX_META_BYTES}"
                    )
                payload = self._read_exact(size)
                self._skip_padding(size)
                if typeflag == b"x":
                    pax.update(_parse_pax_records(payload))
                elif typeflag == b"g":
                    if {"path", "size"} & _parse_pax_records(payload).keys():
                        raise ArchiveRejected("a global pax header may not set path or size")
                elif typeflag == b"L":
                    long_name = payload.split(b"\x00", 1)[0]
                # b"K" names a link target; the link entry that follows is rejected.
                continue
            name = pax.get("path", long_name or header_name)
            if "size" in pax:
                size = _parse_pax_size(pax["size"])
            pax, long_name = {}, None
            kind, detail = _TAR_KINDS.get(typeflag, (_Kind.SPECIAL, f"tar type {typeflag!r}"))
            path = self._builder.admit(_decode_tar_name(name), kind, detail)
            if typeflag not in _TAR_DATA_TYPES:
                continue
            if path is None:
                for _ in self._data_chunks(size):
                    pass
            else:
                self._builder.read_file(path, self._data_chunks(size))
            self._skip_padding(size)

    def _read_exact(self, size: int, *, at_boundary: bool = False) -> bytes:
        """Read ``size`` bytes; ``b""`` only if ``at_boundary`` and the data ends cleanly."""
        parts: list[bytes] = []
        remaining = size
        while remaining:
            chunk = self._stream.read(remaining)
            if not chunk:
                if at_boundary and remaining == size:
                    return b""
                raise ArchiveRejected("the tar archive is truncated")
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _data_chunks(self, size: int) -> Iterator[bytes]:
        remaining = size
        while remaining:
            chunk = self._stream.read(min(remaining, _CHUNK_BYTES))
            if not chunk:
                raise ArchiveRejected("the tar archive is truncated")
            remaining -= len(chunk)
            yield chunk

    def _skip_padding(self, size: int) -> None:
        self._read_exact(-size % _TAR_BLOCK_BYTES)

    def _expect_only_zeros(self) -> None:
        """After the end-of-archive block only zero padding may follow (inflated and counted)."""
        while chunk := self._stream.read(_CHUNK_BYTES):
            if chunk.count(0) != len(chunk):
                raise ArchiveRejected("unexpected data after the end of the tar archive")


def _parse_tar_header(block: bytes) -> tuple[bytes, bytes, int]:
    """Return ``(typeflag, name, size)`` of a header block after checking its checksum."""
    stored = _tar_number(block[148:156], "checksum")
    unsigned = 256 + sum(struct.unpack_from("148B8x356B", block))
    signed = 256 + sum(struct.unpack_from("148b8x356b", block))
    if stored not in (unsigned, signed):
        raise ArchiveRejected("corrupt tar header (bad checksum)")
    typeflag = block[156:157]
    size = _tar_number(block[124:136], "size")
    name = block[0:100].split(b"\x00", 1)[0]
    if block[257:263] == b"ustar\x00":
        prefix = block[345:500].split(b"\x00", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return typeflag, name, size


def _tar_number(raw: bytes, what: str) -> int:
    """Decode an octal (or GNU base-256) numeric header field."""
    if raw[0] == 0x80:
        return int.from_bytes(raw[1:], "big")
    if raw[0] == 0xFF:
        raise ArchiveRejected(f"corrupt tar header (negative {what})")
    text = raw.split(b"\x00", 1)[0].strip()
    if not text:
        return 0
    if not _OCTAL_DIGITS.fullmatch(text):
        raise ArchiveRejected(f"corrupt tar header (bad {what} field)")
    return int(text, 8)


def _parse_pax_records(payload: bytes) -> dict[str, bytes]:
    """Parse ``"<length> <key>=<value>\\n"`` records in one linear pass."""
    records: dict[str, bytes] = {}
    position = 0
    while position < len(payload):
        space = payload.find(b" ", position, position + 20)
        length_field = payload[position:space] if space > position else b""
        if not _DECIMAL_DIGITS.fullmatch(length_field):
            raise ArchiveRejected("corrupt tar pax header")
        end = position + int(length_field)
        if end > len(payload) or end <= space + 1 or payload[end - 1] != 0x0A:
            raise ArchiveRejected("corrupt tar pax header")
        key, equals, value = payload[space + 1 : end - 1].partition(b"=")
        if not equals:
            raise ArchiveRejected("corrupt tar pax header")
        try:
            keyword = key.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveRejected("corrupt tar pax header (keyword is not UTF-8)") from None
        if keyword.startswith("GNU.sparse."):
            raise ArchiveRejected("sparse files are not supported in archives")
        records[keyword] = value
        position = end
    return records


def _parse_pax_size(value: bytes) -> int:
    if not _DECIMAL_DIGITS.fullmatch(value):
        raise ArchiveRejected("corrupt tar pax header (bad size)")
    return int(value)


def _decode_tar_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _unsafe(raw, "the name is not valid UTF-8") from None
