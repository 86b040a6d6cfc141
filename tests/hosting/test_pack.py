"""collect_files / pack_tar_gz: what `fazt app deploy DIR` uploads, and how."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from fazt.errors import ArchiveRejected
from fazt.hosting._archive import ArchiveLimits, read_archive
from fazt.hosting._pack import PackedFile, collect_files, pack_tar_gz


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def collected(root: Path) -> list[str]:
    files, _ = collect_files(root)
    return [f.path for f in files]


def test_files_are_sorted_with_sizes_and_sources(tmp_path: Path) -> None:
    write(tmp_path, {"index.html": "<h1>", "b/z.js": "z" * 10, "a.css": ""})
    files, warnings = collect_files(tmp_path)
    assert files == [
        PackedFile("a.css", tmp_path / "a.css", 0),
        PackedFile("b/z.js", tmp_path / "b" / "z.js", 10),
        PackedFile("index.html", tmp_path / "index.html", 4),
    ]
    assert warnings == []


def test_dotfiles_and_dot_directories_are_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "index.html": "",
            ".env": "SECRET=1",
            ".git/config": "",
            "a/.DS_Store": "",
            ".well-known/security.txt": "",
            "a/b/.cache/x.js": "",
            "a/ok.txt": "",
        },
    )
    assert collected(tmp_path) == ["a/ok.txt", "index.html"]


def test_node_modules_is_skipped_at_any_depth(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "node_modules/react/index.js": "",
            "app/node_modules/x/y.js": "",
            "app/main.js": "",
            "node_modules.txt": "",
        },
    )
    assert collected(tmp_path) == ["app/main.js", "node_modules.txt"]


def test_root_gitignore_uses_git_semantics(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "*.log\n!keep.log\nbuild/\n/secret.txt\n# comment\n",
            "a.log": "",
            "keep.log": "",
            "sub/b.log": "",
            "sub/keep.log": "",
            "build/out.js": "",
            "sub/build/out.js": "",
            "build.js": "",
            "secret.txt": "",
            "sub/secret.txt": "",
            "index.html": "",
        },
    )
    assert collected(tmp_path) == [
        "build.js",
        "index.html",
        "keep.log",
        "sub/keep.log",
        "sub/secret.txt",
    ]


def test_nested_gitignore_patterns_are_relative_to_their_directory(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sub/.gitignore": "/local.txt\n*.tmp\n",
            "local.txt": "",
            "x.tmp": "",
            "sub/local.txt": "",
            "sub/deeper/local.txt": "",
            "sub/y.tmp": "",
            "sub/deeper/z.tmp": "",
        },
    )
    assert collected(tmp_path) == ["local.txt", "sub/deeper/local.txt", "x.tmp"]


def test_deeper_gitignore_overrides_the_root_one(tmp_path: Path) -> None:
    write(
        tmp_path,
        {".gitignore": "*.txt\n", "sub/.gitignore": "!*.txt\n", "a.txt": "", "sub/b.txt": ""},
    )
    assert collected(tmp_path) == ["sub/b.txt"]


def test_excluded_directories_are_not_entered(tmp_path: Path) -> None:
    # As in git, a file cannot be re-included when its directory is excluded.
    write(
        tmp_path,
        {
            ".gitignore": "dist/\n!dist/keep.js\n",
            "dist/keep.js": "",
            "dist/.gitignore": "!keep.js\n",
            "index.html": "",
        },
    )
    assert collected(tmp_path) == ["index.html"]


def test_symlink_to_a_file_inside_root_is_packed_as_its_content(tmp_path: Path) -> None:
    write(tmp_path, {"shared/logo.svg": "<svg/>"})
    (tmp_path / "logo.svg").symlink_to("shared/logo.svg")
    files, warnings = collect_files(tmp_path)
    assert {f.path: f.source for f in files} == {
        "logo.svg": (tmp_path / "shared/logo.svg").resolve(),
        "shared/logo.svg": tmp_path / "shared/logo.svg",
    }
    assert warnings == []
    archive = read_archive(pack_tar_gz(files), limits=ArchiveLimits())
    assert {f.path: f.data for f in archive.files}["logo.svg"] == b"<svg/>"


def test_symlinked_directory_inside_root_is_followed(tmp_path: Path) -> None:
    write(tmp_path, {"vendor/lib/a.js": "a", "vendor/lib/b.js": "b"})
    (tmp_path / "lib").symlink_to("vendor/lib", target_is_directory=True)
    assert collected(tmp_path) == ["lib/a.js", "lib/b.js", "vendor/lib/a.js", "vendor/lib/b.js"]


def test_symlink_loops_are_skipped_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, {"a/x.txt": ""})
    (tmp_path / "a" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "self").symlink_to(".", target_is_directory=True)
    files, warnings = collect_files(tmp_path)
    assert [f.path for f in files] == ["a/x.txt"]
    assert sorted(warnings) == ["skipped a/up: symlink loop", "skipped self: symlink loop"]


def test_symlink_outside_root_is_never_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "site", tmp_path / "home"
    write(outside, {".ssh/id_ed25519": "PRIVATE KEY", "notes.txt": "private"})
    write(root, {"index.html": ""})
    (root / "key").symlink_to(outside / ".ssh" / "id_ed25519")
    (root / "notes.txt").symlink_to("../home/notes.txt")
    (root / "home").symlink_to(outside, target_is_directory=True)
    files, warnings = collect_files(root)
    assert [f.path for f in files] == ["index.html"]
    assert sorted(warnings) == [
        f"skipped home: symlink points outside {root}",
        f"skipped key: symlink points outside {root}",
        f"skipped notes.txt: symlink points outside {root}",
    ]
    assert b"PRIVATE" not in gzip.decompress(pack_tar_gz(files))


def test_symlink_to_a_hidden_file_inside_root_is_skipped(tmp_path: Path) -> None:
    write(tmp_path, {".env": "SECRET=1"})
    (tmp_path / "config.js").symlink_to(".env")
    files, warnings = collect_files(tmp_path)
    assert files == []
    assert warnings == ["skipped config.js: symlink points to a hidden file"]


def test_broken_symlink_is_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "gone.js").symlink_to("nowhere.js")
    assert collect_files(tmp_path) == ([], ["skipped gone.js: broken symlink"])


def test_fifo_is_skipped_with_a_warning(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert collect_files(tmp_path) == ([], ["skipped pipe: not a regular file or directory"])


def test_names_the_server_would_refuse_are_skipped_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, {"back\\slash.txt": "", "ok.txt": "", "new\nline.txt": ""})
    (tmp_path / os.fsdecode(b"latin1-\xe9.txt")).write_bytes(b"")
    files, warnings = collect_files(tmp_path)
    assert [f.path for f in files] == ["ok.txt"]
    assert len(warnings) == 3
    assert any("backslashes" in w for w in warnings)
    assert any("control characters" in w for w in warnings)
    assert any("not valid UTF-8" in w for w in warnings)


def test_names_colliding_on_the_server_are_refused(tmp_path: Path) -> None:
    write(tmp_path, {"Logo.png": "1", "logo.png": "2"})
    with pytest.raises(ArchiveRejected, match="differ only in case"):
        collect_files(tmp_path)


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    write(tmp_path, {"file.txt": ""})
    for root in (tmp_path / "file.txt", tmp_path / "missing"):
        with pytest.raises(ArchiveRejected, match="is not a directory"):
            collect_files(root)


SITE: dict[str, str | bytes] = {
    "index.html": "<h1>hi</h1>",
    "css/site.css": "body{}" * 100,
    "img/x.bin": os.urandom(70_000),
    "\u00fcn\u00efc\u00f6d\u00e9/\u00f1.txt": "\u00f1",
    "empty.txt": "",
    "a/" + "long-directory-name/" * 8 + "file.js": "long",
}


def test_archive_round_trips_through_read_archive(tmp_path: Path) -> None:
    write(tmp_path, SITE)
    files, _ = collect_files(tmp_path)
    contents = read_archive(pack_tar_gz(files), limits=ArchiveLimits())
    expected = {k: v.encode() if isinstance(v, str) else v for k, v in SITE.items()}
    assert {f.path: f.data for f in contents.files} == expected
    assert contents.skipped == ()


def test_archive_is_deterministic(tmp_path: Path) -> None:
    write(tmp_path, SITE)
    first = pack_tar_gz(collect_files(tmp_path)[0])
    for path in tmp_path.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
        path.chmod(0o700 if path.is_dir() else 0o600)
    files, _ = collect_files(tmp_path)
    assert pack_tar_gz(files) == first
    assert pack_tar_gz(list(reversed(files))) == first


def test_archive_entries_carry_no_metadata(tmp_path: Path) -> None:
    write(tmp_path, SITE)
    data = pack_tar_gz(collect_files(tmp_path)[0])
    assert data[4:8] == bytes(4)  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == sorted(SITE)
    for member in members:
        assert member.isreg()
        assert (member.mtime, member.mode, member.uid, member.gid) == (0, 0o644, 0, 0)
        assert (member.uname, member.gname) == ("", "")


def test_progress_reports_every_byte_packed(tmp_path: Path) -> None:
    write(tmp_path, SITE)
    files, _ = collect_files(tmp_path)
    reported: list[int] = []
    pack_tar_gz(files, on_progress=reported.append)
    assert sum(reported) == sum(f.size for f in files)
    assert all(n > 0 for n in reported)
    assert len(reported) > len([f for f in files if f.size])  # big files report in chunks


def test_empty_directory_packs_to_an_empty_archive(tmp_path: Path) -> None:
    files, warnings = collect_files(tmp_path)
    assert (files, warnings) == ([], [])
    assert read_archive(pack_tar_gz(files), limits=ArchiveLimits()).files == ()


def test_directories_too_deep_to_deploy_are_not_walked(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d" * 60] * 18)  # 18 * 61 bytes > max_path_bytes
    deep.mkdir(parents=True)
    (deep / "f.txt").write_bytes(b"")
    write(tmp_path, {"index.html": ""})
    files, warnings = collect_files(tmp_path)
    assert [f.path for f in files] == ["index.html"]
    assert len(warnings) == 1
    assert warnings[0].endswith("the path is too long to deploy")
