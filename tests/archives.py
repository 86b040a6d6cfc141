"""Archive builders shared by the tests (zip, tar, tar.gz), including hostile shapes."""

from __future__ import annotations

import gzip
import io
import tarfile
import warnings
import zipfile
from collections.abc import Iterable

TarItem = tuple[str, bytes] | tarfile.TarInfo


def make_zip(
    entries: Iterable[tuple[str | zipfile.ZipInfo, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    comment: bytes = b"",
) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on duplicate names
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            archive.comment = comment
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def make_tar(
    items: Iterable[TarItem],
    *,
    fmt: int = tarfile.PAX_FORMAT,
    pax_headers: dict[str, str] | None = None,
) -> bytes:
    """A tar; a TarInfo item is written as given (with zero bytes of content if it has a size)."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=fmt, pax_headers=pax_headers, encoding="utf-8"
    ) as archive:
        for item in items:
            if isinstance(item, tarfile.TarInfo):
                archive.addfile(item, io.BytesIO(bytes(item.size)) if item.size else None)
            else:
                name, data = item
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_tar_gz(items: Iterable[TarItem], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    return gzip.compress(make_tar(items, fmt=fmt), mtime=0)


def make_archive(files: dict[str, bytes | str], *, kind: str = "tar") -> bytes:
    """A deployable archive of path -> content ("tar" = tar.gz, or "zip")."""
    items = [
        (name, data.encode() if isinstance(data, str) else data) for name, data in files.items()
    ]
    return make_zip(items) if kind == "zip" else make_tar_gz(items)
