"""Reading a tar.gz deploy archive: a gzip inflater that counts, and a strict tar parser.

Tar is parsed here rather than with ``tarfile``: the parser is small, fails loudly where
``tarfile`` silently stops at a bad header, and parses pax records in one linear pass (the
``tarfile`` of older CPythons, such as 3.11.7, spends seconds on one crafted 64 KiB pax header:
CVE-2024-6232).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator

from fazt.errors import ArchiveRejected, ArchiveTooLarge
from fazt.hosting._contents import ContentsBuilder, EntryKind
from fazt.hosting._entries import unsafe_entry

__all__ = ["GZIP_MAGIC", "read_tar_gz"]

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 64 * 1024
_NON_ZERO_BYTE = re.compile(rb"[^\x00]")
_TAR_BLOCK_BYTES = 512
_TAR_ZERO_BLOCK = bytes(_TAR_BLOCK_BYTES)
_TAR_MAX_META_BYTES = 1 * 2**20
"""Largest pax or GNU long-name record accepted; legitimate ones are a few hundred bytes."""
_TAR_META_TYPES = frozenset({b"x", b"g", b"L", b"K"})
_TAR_DATA_TYPES = frozenset({b"0", b"\x00", b"7"})
_TAR_KINDS: dict[bytes, tuple[EntryKind, str]] = {
    b"0": (EntryKind.FILE, ""),
    b"\x00": (EntryKind.FILE, ""),
    b"7": (EntryKind.FILE, ""),
    b"5": (EntryKind.DIRECTORY, ""),
    b"1": (EntryKind.HARDLINK, ""),
    b"2": (EntryKind.SYMLINK, ""),
    b"3": (EntryKind.SPECIAL, "character device"),
    b"4": (EntryKind.SPECIAL, "block device"),
    b"6": (EntryKind.SPECIAL, "fifo"),
    b"S": (EntryKind.SPECIAL, "sparse file"),
}
_OCTAL_DIGITS = re.compile(rb"[0-7]+")
_DECIMAL_DIGITS = re.compile(rb"[0-9]+")


def read_tar_gz(data: bytes, builder: ContentsBuilder) -> None:
    """Feed every entry of the tar.gz archive ``data`` to ``builder``."""
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
        elif self._data.startswith(GZIP_MAGIC, match.start()):
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

    def __init__(self, stream: _GzipStream, builder: ContentsBuilder) -> None:
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
            kind, detail = _TAR_KINDS.get(typeflag, (EntryKind.SPECIAL, f"tar type {typeflag!r}"))
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
        raise unsafe_entry(raw, "the name is not valid UTF-8") from None
