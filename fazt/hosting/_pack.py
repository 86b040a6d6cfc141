"""Packing a site directory into a deploy archive, for ``fazt app deploy DIR``.

What leaves the user's machine is decided here, so the rules err towards leaving things out:
dotfiles and dot-directories (``.git``, ``.env``, ``.ssh``), every ``node_modules``, and
whatever the directory's ``.gitignore`` files exclude, with git's semantics. Symlinks are
followed only while they stay inside the directory; one pointing outside is skipped with a
warning, so a stray link can never upload ``~/.ssh``. The archive is deterministic: the same
tree always packs to the same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

from fazt.errors import ArchiveRejected
from fazt.hosting._contents import ArchiveLimits
from fazt.hosting._entries import clean_entry_name, collision_key

__all__ = ["PackedFile", "collect_files", "pack_tar_gz"]

_IGNORE_FILE = ".gitignore"
_ALWAYS_SKIPPED_DIRS = frozenset({"node_modules"})
_GZIP_LEVEL = 6
_MAX_PATH_BYTES = ArchiveLimits().max_path_bytes


@dataclass(frozen=True)
class PackedFile:
    """A file chosen for the archive."""

    path: str
    """Relative POSIX path inside the archive."""
    source: Path
    """Where to read the bytes: the file itself, or a symlink's resolved target."""
    size: int
    """Size when collected; used for progress totals."""


def collect_files(root: Path) -> tuple[list[PackedFile], list[str]]:
    """Choose the files under ``root`` to deploy: ``(files sorted by path, warnings)``.

    Raises ``ArchiveRejected`` if ``root`` is not a directory, or if two files would collide
    on the server (names differing only in case or Unicode form); files whose names the
    server would refuse are skipped with a warning.
    """
    if not root.is_dir():
        raise ArchiveRejected(f"{root} is not a directory")
    walker = _Walker(root.resolve())
    walker.walk(walker.root, (), ancestors=(walker.root,))
    files = sorted(walker.files, key=lambda f: f.path)
    seen: dict[str, str] = {}
    for packed in files:
        other = seen.setdefault(collision_key(packed.path), packed.path)
        if other != packed.path:
            raise ArchiveRejected(
                f"{other!r} and {packed.path!r} differ only in case or Unicode form and "
                "would overwrite each other; rename one"
            )
    return files, walker.warnings


@dataclass(frozen=True)
class _IgnoreRules:
    """The ``.gitignore`` files in effect in one directory, outermost first."""

    specs: tuple[tuple[str, GitIgnoreSpec], ...] = ()

    def excludes(self, path: str, *, is_dir: bool) -> bool:
        """Git semantics: the deepest ``.gitignore`` with a matching pattern decides."""
        for base, spec in reversed(self.specs):
            relative = path[len(base) + 1 :] if base else path
            result = spec.check_file(relative + "/" if is_dir else relative)
            if result.include is not None:
                return result.include
        return False


@dataclass
class _Walker:
    """One walk of a site directory: the files chosen, and a warning per thing left out."""

    root: Path
    files: list[PackedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def walk(
        self,
        directory: Path,
        parts: tuple[str, ...],
        *,
        ancestors: tuple[Path, ...],
        rules: _IgnoreRules | None = None,
    ) -> None:
        """Visit ``directory`` (archive path ``parts``); ``ancestors`` are real paths, for loops."""
        prefix = "/".join(parts)
        rules = self._load_rules(directory, prefix, rules or _IgnoreRules())
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            self.warnings.append(f"skipped {prefix or '.'}/: cannot read it ({exc.strerror})")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                self._visit(entry, path, parts, ancestors=ancestors, rules=rules)
            except OSError as exc:
                self.warnings.append(f"skipped {path}: {exc.strerror or exc}")

    def _visit(
        self,
        entry: os.DirEntry[str],
        path: str,
        parts: tuple[str, ...],
        *,
        ancestors: tuple[Path, ...],
        rules: _IgnoreRules,
    ) -> None:
        source = Path(entry.path)
        if entry.is_symlink():
            target = self._symlink_target(source, path)
            if target is None:
                return
            source = target
        mode = source.stat().st_mode
        if stat.S_ISDIR(mode):
            if entry.name in _ALWAYS_SKIPPED_DIRS or rules.excludes(path, is_dir=True):
                return
            if len(path.encode("utf-8", "surrogateescape")) >= _MAX_PATH_BYTES:
                self.warnings.append(f"skipped {path}/: the path is too long to deploy")
                return
            real = source.resolve()
            if real in ancestors:
                self.warnings.append(f"skipped {path}: symlink loop")
                return
            self.walk(source, (*parts, entry.name), ancestors=(*ancestors, real), rules=rules)
        elif stat.S_ISREG(mode):
            if rules.excludes(path, is_dir=False):
                return
            problem = _name_problem(path)
            if problem:
                self.warnings.append(f"skipped {path!r}: {problem}")
                return
            self.files.append(PackedFile(path, source, source.stat().st_size))
        else:
            self.warnings.append(f"skipped {path}: not a regular file or directory")

    def _symlink_target(self, link: Path, path: str) -> Path | None:
        """The resolved target of a symlink that stays inside root and off dot paths, or None.

        A link into ``node_modules`` or a gitignored path is followed: making it was a choice,
        unlike the directories those rules keep out by default.
        """
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):
            self.warnings.append(f"skipped {path}: broken symlink")
            return None
        if not target.is_relative_to(self.root):
            self.warnings.append(f"skipped {path}: symlink points outside {self.root}")
            return None
        if any(part.startswith(".") for part in target.relative_to(self.root).parts):
            self.warnings.append(f"skipped {path}: symlink points to a hidden file")
            return None
        return target

    def _load_rules(self, directory: Path, prefix: str, rules: _IgnoreRules) -> _IgnoreRules:
        ignore_file = directory / _IGNORE_FILE
        try:
            lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return rules
        except OSError as exc:
            self.warnings.append(f"ignored {prefix or '.'}/{_IGNORE_FILE}: {exc.strerror}")
            return rules
        return _IgnoreRules((*rules.specs, (prefix, GitIgnoreSpec.from_lines(lines))))


def _name_problem(path: str) -> str | None:
    """Why the server would refuse this name, or None."""
    try:
        clean_entry_name(path, max_path_bytes=_MAX_PATH_BYTES)
    except ArchiveRejected as exc:
        return str(exc).rpartition(" rejected: ")[2]
    return None


def pack_tar_gz(
    files: Sequence[PackedFile], *, on_progress: Callable[[int], None] | None = None
) -> bytes:
    """Pack ``files`` into a deterministic tar.gz; ``on_progress(n)`` after each ``n`` bytes.

    Entries are sorted by path and carry only a name, a size and mode 0644 (mtime 0, uid and
    gid 0, no user names); the gzip header has no name and mtime 0. Only regular files are
    written: directories are implied by the paths.
    """
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(
            filename="", mode="wb", fileobj=buffer, compresslevel=_GZIP_LEVEL, mtime=0
        ) as compressed,
        tarfile.open(fileobj=compressed, mode="w|", format=tarfile.PAX_FORMAT) as archive,
    ):
        for packed in sorted(files, key=lambda f: f.path):
            data = packed.source.read_bytes()
            info = tarfile.TarInfo(packed.path)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            archive.addfile(info, _ProgressReader(data, on_progress))
    return buffer.getvalue()


class _ProgressReader(io.BytesIO):
    """A BytesIO that reports each read's length, so progress follows real bytes packed."""

    def __init__(self, data: bytes, on_progress: Callable[[int], None] | None) -> None:
        super().__init__(data)
        self._on_progress = on_progress

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        if chunk and self._on_progress is not None:
            self._on_progress(len(chunk))
        return chunk
