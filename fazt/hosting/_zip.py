"""Reading a zip deploy archive with ``zipfile``, after bounding the work it will do.

``zipfile`` parses the whole central directory up front, so the records are counted here first
against ``max_entries``. Names are recovered before ``zipfile``'s truncation at NUL, Unix file
types come from the external attributes, and every member is inflated in chunks through the
``ContentsBuilder`` so a quota stops it at the first byte over.
"""

from __future__ import annotations

import io
import lzma
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator

from fazt.errors import ArchiveRejected
from fazt.hosting._contents import ContentsBuilder, EntryKind
from fazt.hosting._entries import unsafe_entry

__all__ = ["ZIP_MAGICS", "read_zip"]

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
"""A zip archive starts with a local file header, or, when empty, its end record."""

_CHUNK_BYTES = 64 * 1024

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


def read_zip(data: bytes, builder: ContentsBuilder) -> None:
    """Feed every entry of the zip archive ``data`` to ``builder``."""
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
                raise unsafe_entry(info.orig_filename, "encrypted entries are not supported")
            kind, detail = _zip_kind(info)
            path = builder.admit(_zip_name(info), kind, detail)
            if path is not None:
                builder.read_file(path, _zip_chunks(archive, info))


def _count_zip_entries(data: bytes, builder: ContentsBuilder) -> None:
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


def _zip_kind(info: zipfile.ZipInfo) -> tuple[EntryKind, str]:
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type in (0, stat.S_IFREG):
        return EntryKind.FILE, ""
    if file_type == stat.S_IFDIR:
        return EntryKind.DIRECTORY, ""
    if file_type == stat.S_IFLNK:
        return EntryKind.SYMLINK, ""
    return EntryKind.SPECIAL, _SPECIAL_MODES.get(file_type, f"unknown file type {file_type:o}")


def _zip_chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """Inflate one member in chunks; zipfile checks the CRC when the last chunk is read."""
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK_BYTES):
                yield chunk
    except _ZIP_ERRORS as exc:
        raise ArchiveRejected(f"corrupt zip entry {info.orig_filename!r}: {exc}") from exc
