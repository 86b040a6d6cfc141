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

Dotfiles and ``__MACOSX/`` entries are skipped, not rejected: they are never served, and
archivers add them without asking.

The pieces: ``_entries`` holds the name rules, ``_contents`` the quotas and the builder that
applies every rule, ``_zip`` and ``_tar`` the two format readers that feed it.
"""

from __future__ import annotations

from fazt.errors import ArchiveRejected, ArchiveTooLarge
from fazt.hosting._contents import ArchiveContents, ArchiveFile, ArchiveLimits
from fazt.hosting._contents import ContentsBuilder as _ContentsBuilder
from fazt.hosting._entries import clean_entry_name, collision_key, is_ignored_path
from fazt.hosting._tar import GZIP_MAGIC, read_tar_gz
from fazt.hosting._zip import ZIP_MAGICS, read_zip

__all__ = [
    "ArchiveContents",
    "ArchiveFile",
    "ArchiveLimits",
    "clean_entry_name",
    "collision_key",
    "is_ignored_path",
    "read_archive",
]


def read_archive(data: bytes, *, limits: ArchiveLimits) -> ArchiveContents:
    """Validate a zip or tar.gz deploy archive completely in memory and return its files.

    Raises ``ArchiveTooLarge`` when a quota of ``limits`` is exceeded and ``ArchiveRejected``
    for anything unsafe, malformed or unsupported; no other exception escapes for any input.
    """
    if len(data) > limits.max_deploy_bytes:
        raise ArchiveTooLarge(
            f"archive is {len(data)} bytes; the limit is {limits.max_deploy_bytes} bytes "
            "(max_deploy_bytes)"
        )
    builder = _ContentsBuilder(limits, archive_bytes=len(data))
    if data.startswith(ZIP_MAGICS):
        read_zip(data, builder)
    elif data.startswith(GZIP_MAGIC):
        read_tar_gz(data, builder)
    else:
        raise ArchiveRejected("not a zip or tar.gz archive")
    return builder.finish()
