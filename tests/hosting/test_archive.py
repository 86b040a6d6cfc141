"""read_archive: zip and tar.gz deploy archives, their quotas, and malformed input.

Hostile archives (traversal, links, collisions, bombs): tests/security/test_archive_attacks.py.
"""

from __future__ import annotations

import contextlib
import gzip
import random
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fazt.errors import ArchiveRejected, ArchiveTooLarge, DeployError
from fazt.hosting._archive import (
    ArchiveContents,
    ArchiveLimits,
    clean_entry_name,
    read_archive,
)
from tests.archives import TarItem, make_tar, make_tar_gz, make_zip

LIMITS = ArchiveLimits()
MIB = 2**20

def tar_dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def paths(contents: ArchiveContents) -> list[str]:
    return [f.path for f in contents.files]


def as_dict(contents: ArchiveContents) -> dict[str, bytes]:
    return {f.path: f.data for f in contents.files}


SITE = {
    "index.html": b"<!doctype html><h1>hi</h1>",
    "assets/css/site.css": b"body { margin: 0 }\n" * 50,
    "assets/js/app.3f9a2b1c.js": bytes(random.Random(1).randbytes(300_000)),
    "\u00fcn\u00efc\u00f6d\u00e9/\u00f1.txt": "\u00f1and\u00fa".encode(),
    "empty.txt": b"",
    "a/b/c/d/e/f/g/deep.txt": b"deep",
}


def both_formats(files: dict[str, bytes]) -> list[bytes]:
    return [make_zip(files.items()), make_tar_gz(files.items())]


# --- happy paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_zip_files_are_returned_sorted_with_their_bytes(compression: int) -> None:
    entries = [("assets/", b""), ("assets/css/", b""), *SITE.items()]
    contents = read_archive(make_zip(entries, compression=compression), limits=LIMITS)
    assert paths(contents) == sorted(SITE)
    assert as_dict(contents) == SITE
    assert contents.skipped == ()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_gz_files_are_returned_sorted_with_their_bytes(fmt: int) -> None:
    items: list[TarItem] = [tar_dir("assets"), tar_dir("assets/css"), *SITE.items()]
    contents = read_archive(make_tar_gz(items, fmt=fmt), limits=LIMITS)
    assert as_dict(contents) == SITE
    assert paths(contents) == sorted(SITE)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_tar_long_names_use_pax_or_gnu_headers(fmt: int) -> None:
    name = "/".join(["segment-" + "x" * 40] * 8) + "/file.txt"
    contents = read_archive(make_tar_gz([(name, b"long")], fmt=fmt), limits=LIMITS)
    assert as_dict(contents) == {name: b"long"}


def test_leading_dot_slash_is_stripped_and_root_entries_are_dropped() -> None:
    zipped = make_zip([("./", b""), ("./index.html", b"z"), ("./a/b.txt", b"b")])
    tarred = make_tar_gz(
        [tar_dir("."), tar_dir("./a"), ("./index.html", b"z"), ("./a/b.txt", b"b")]
    )
    for data in (zipped, tarred):
        assert as_dict(read_archive(data, limits=LIMITS)) == {"index.html": b"z", "a/b.txt": b"b"}


def test_empty_archives_have_no_files() -> None:
    for data in (make_zip([]), make_tar_gz([])):
        assert read_archive(data, limits=LIMITS) == ArchiveContents(files=(), skipped=())


def test_dotfiles_and_macosx_debris_are_skipped_and_listed() -> None:
    entries = {
        "index.html": b"ok",
        ".DS_Store": b"x",
        "a/.env": b"SECRET=1",
        "a/..b": b"a dotfile, not a parent segment",
        ".well-known/security.txt": b"contact",
        "__MACOSX/._index.html": b"resource fork",
    }
    for data in both_formats(entries):
        contents = read_archive(data, limits=LIMITS)
        assert paths(contents) == ["index.html"]
        assert sorted(contents.skipped) == sorted(set(entries) - {"index.html"})


def test_directory_entries_are_not_listed_as_skipped() -> None:
    contents = read_archive(
        make_zip([(".git/", b""), ("__MACOSX/", b""), ("a", b"")]), limits=LIMITS
    )
    assert contents.skipped == ()


def test_a_link_inside_a_skipped_directory_is_skipped_not_rejected() -> None:
    # node_modules/.bin is full of symlinks; nothing under a dot segment is ever written.
    link = tarfile.TarInfo("node_modules/.bin/tool")
    link.type = tarfile.SYMTYPE
    link.linkname = "../tool/cli.js"
    contents = read_archive(make_tar_gz([link, ("index.html", b"x")]), limits=LIMITS)
    assert contents.skipped == ("node_modules/.bin/tool",)


def test_zip_name_without_utf8_flag_is_cp437() -> None:
    data = make_zip([("cafX.txt", b"x")]).replace(b"cafX", b"caf\x82")  # 0x82 is é in cp437
    assert paths(read_archive(data, limits=LIMITS)) == ["caf\u00e9.txt"]


def test_zip_name_in_utf8_without_the_flag_is_read_as_utf8() -> None:
    data = bytearray(make_zip([("caf\u00e9.txt", b"x")]))
    for header, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(header) + flag_offset
        data[at + 1] &= ~0x08  # clear bit 11 (0x0800), the UTF-8 flag
    assert paths(read_archive(bytes(data), limits=LIMITS)) == ["caf\u00e9.txt"]


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU or BSD tar")
@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar"])
def test_archives_made_by_system_tar_are_read(tmp_path: Path, fmt: str) -> None:
    files = write_tree(tmp_path / "site")
    archive = tmp_path / "site.tgz"
    subprocess.run(
        ["tar", f"--format={fmt}", "-czf", str(archive), "-C", str(tmp_path / "site"), "."],
        check=True,
        capture_output=True,
    )
    contents = read_archive(archive.read_bytes(), limits=LIMITS)
    assert as_dict(contents) == files
    assert contents.skipped == (".hidden",)


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs Info-ZIP")
def test_archives_made_by_info_zip_are_read(tmp_path: Path) -> None:
    files = write_tree(tmp_path / "site")
    archive = tmp_path / "site.zip"
    subprocess.run(["zip", "-qr", str(archive), "."], check=True, cwd=tmp_path / "site")
    contents = read_archive(archive.read_bytes(), limits=LIMITS)
    assert as_dict(contents) == files
    assert contents.skipped == (".hidden",)


def write_tree(root: Path) -> dict[str, bytes]:
    files = {"index.html": b"<h1>", "a/b/c.txt": b"c" * 5000, "\u00fc/\u00f1.txt": b"n"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / ".hidden").write_bytes(b"h")
    return files


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("index.html", ("index.html", False)),
        ("a/b/c.txt", ("a/b/c.txt", False)),
        ("./a.txt", ("a.txt", False)),
        ("a/", ("a", True)),
        ("./a/", ("a", True)),
        ("./", ("", True)),
        (".", ("", True)),
        ("caf\u00e9 \u00fc.txt", ("caf\u00e9 \u00fc.txt", False)),
        ("ab:c.txt", ("ab:c.txt", False)),
        ("...", ("...", False)),
    ],
)
def test_clean_entry_name_accepts(raw: str, expected: tuple[str, bool]) -> None:
    assert clean_entry_name(raw, max_path_bytes=1024) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("//server/share", "absolute"),
        ("C:\\x", "backslash"),
        ("C:x", "drive"),
        ("a:b.txt", "drive"),
        ("c:/x", "drive"),
        ("a\\b", "backslash"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        ("a/./b", "'.'"),
        ("././a", "'.'"),
        ("a//b", "empty path segments"),
        ("a//", "empty path segments"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a\x7fb", "control"),
        ("a\x85b", "control"),
        ("a\udcffb", "UTF-8"),
        ("\u00e9" * 513, "max_path_bytes"),
    ],
)
def test_clean_entry_name_rejects(raw: str, reason: str) -> None:
    with pytest.raises(ArchiveRejected) as caught:
        clean_entry_name(raw, max_path_bytes=1024)
    assert reason in str(caught.value)
    assert repr(raw) in str(caught.value)


def test_path_length_is_measured_in_utf8_bytes() -> None:
    assert clean_entry_name("\u00e9" * 512, max_path_bytes=1024)[0] == "\u00e9" * 512
    for data in both_formats({"\u00e9" * 513: b"x"}):
        with pytest.raises(ArchiveRejected, match="max_path_bytes"):
            read_archive(data, limits=LIMITS)


def test_zip_name_flagged_utf8_that_is_not_is_rejected() -> None:
    data = make_zip([("\u00e9.txt", b"x")]).replace(b"\xc3\xa9.txt", b"\xff\xfe.txt")
    with pytest.raises(ArchiveRejected, match="UTF-8"):
        read_archive(data, limits=LIMITS)


def test_tar_name_that_is_not_utf8_is_rejected() -> None:
    raw = bytearray(make_tar([("aaaa.txt", b"x")], fmt=tarfile.USTAR_FORMAT))
    raw[0:4] = b"\xff\xfe\xfd\xfc"
    fix_tar_checksum(raw, 0)
    with pytest.raises(ArchiveRejected, match="not valid UTF-8"):
        read_archive(gzip.compress(bytes(raw)), limits=LIMITS)


def fix_tar_checksum(raw: bytearray, header_offset: int) -> None:
    block = raw[header_offset : header_offset + 512]
    block[148:156] = b" " * 8
    raw[header_offset + 148 : header_offset + 156] = b"%06o\x00 " % sum(block)


# --- quotas -----------------------------------------------------------------------------------


def test_archive_bytes_are_checked_before_parsing() -> None:
    data = make_zip([("a.txt", b"x" * 1000)], compression=zipfile.ZIP_STORED)
    limits = ArchiveLimits(max_deploy_bytes=len(data) - 1)
    with pytest.raises(ArchiveTooLarge, match="max_deploy_bytes"):
        read_archive(data, limits=limits)
    with pytest.raises(ArchiveTooLarge, match="max_deploy_bytes"):
        read_archive(b"garbage" * 1000, limits=limits)
    assert paths(read_archive(data, limits=ArchiveLimits(max_deploy_bytes=len(data)))) == ["a.txt"]


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_max_files_counts_kept_files_only(fmt: str) -> None:
    files = {f"f{i}.txt": b"x" for i in range(4)}
    noise: dict[str, bytes] = {".DS_Store": b"", "__MACOSX/._f0.txt": b""}
    data = (
        make_zip([*files.items(), *noise.items(), ("d/", b"")])
        if fmt == "zip"
        else (make_tar_gz([*files.items(), *noise.items(), tar_dir("d")]))
    )
    assert len(read_archive(data, limits=ArchiveLimits(max_app_files=4)).files) == 4
    with pytest.raises(ArchiveTooLarge, match=r"more than 3 files \(max_app_files\)"):
        read_archive(data, limits=ArchiveLimits(max_app_files=3))


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_max_entries_counts_directories_and_skipped_entries(fmt: str) -> None:
    dirs = [f"d{i}/" for i in range(5)]
    data = (
        make_zip([("a", b""), (".x", b""), *((d, b"") for d in dirs)])
        if fmt == "zip"
        else (make_tar_gz([("a", b""), (".x", b""), *(tar_dir(d) for d in dirs)]))
    )
    assert paths(read_archive(data, limits=ArchiveLimits(max_entries=7))) == ["a"]
    with pytest.raises(ArchiveTooLarge, match=r"more than 6 entries \(max_entries\)"):
        read_archive(data, limits=ArchiveLimits(max_entries=6))


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_max_file_bytes(fmt: str) -> None:
    limits = ArchiveLimits(max_file_bytes=100_000)
    at_limit, over = {"big.bin": b"x" * 100_000}, {"big.bin": b"x" * 100_001}
    make = make_zip if fmt == "zip" else make_tar_gz
    assert len(read_archive(make(at_limit.items()), limits=limits).files[0].data) == 100_000
    with pytest.raises(ArchiveTooLarge, match=r"'big.bin' is larger than 100000 bytes"):
        read_archive(make(over.items()), limits=limits)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_max_total_bytes(fmt: str) -> None:
    limits = ArchiveLimits(max_app_bytes=1000)
    make = make_zip if fmt == "zip" else make_tar_gz
    assert len(read_archive(make([("a", b"x" * 500), ("b", b"y" * 500)]), limits=limits).files) == 2
    with pytest.raises(ArchiveTooLarge, match="max_app_bytes"):
        read_archive(make([("a", b"x" * 500), ("b", b"y" * 500), ("c", b"z")]), limits=limits)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_max_ratio_applies_past_one_mebibyte(fmt: str) -> None:
    make = make_zip if fmt == "zip" else make_tar_gz
    small = make([("zeros.bin", bytes(MIB // 2))])
    assert len(small) * 200 < MIB // 2  # far more than 200:1, yet below the 1 MiB floor
    assert len(read_archive(small, limits=LIMITS).files) == 1
    with pytest.raises(ArchiveTooLarge, match=r"200 times its size \(max_compression_ratio\)"):
        read_archive(make([("zeros.bin", bytes(2 * MIB))]), limits=LIMITS)


def test_quota_counts_inflated_bytes_not_the_zip_header_size() -> None:
    data = bytearray(make_zip([("a.txt", b"x" * 5000)]))
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")  # claim 10 bytes
    local = data.index(b"PK\x03\x04")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveRejected):  # never a truncated 10-byte file
        read_archive(bytes(data), limits=LIMITS)


def test_skipped_tar_entries_count_towards_the_inflated_stream() -> None:
    noise = random.Random(2).randbytes(3 * MIB)  # incompressible: the ratio is not what stops it
    data = make_tar_gz([(".git/objects/pack", noise), ("index.html", b"x")])
    with pytest.raises(ArchiveTooLarge, match="inflates to more than"):
        read_archive(data, limits=ArchiveLimits(max_app_bytes=MIB))


def test_zip_entry_count_is_checked_before_zipfile_parses_the_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = make_zip((f"f{i}", b"") for i in range(20))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile.ZipFile must not be reached")

    monkeypatch.setattr(zipfile, "ZipFile", refuse)
    with pytest.raises(ArchiveTooLarge, match="max_entries"):
        read_archive(data, limits=ArchiveLimits(max_entries=19))


def test_zip_entry_count_does_not_trust_the_declared_count(monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(make_zip((f"f{i}", b"") for i in range(20)))
    eocd = data.rindex(b"PK\x05\x06")
    data[eocd + 8 : eocd + 12] = (1).to_bytes(2, "little") * 2  # "1 entry" on this disk and total

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile.ZipFile must not be reached")

    monkeypatch.setattr(zipfile, "ZipFile", refuse)
    with pytest.raises(ArchiveTooLarge, match="max_entries"):
        read_archive(bytes(data), limits=ArchiveLimits(max_entries=19))


@pytest.mark.parametrize("comment", [b"", b"a comment", b"PK\x01\x02" * 20])
@pytest.mark.parametrize("count", [0, 1, 7])
def test_zip_entry_count_matches_zipfile(comment: bytes, count: int) -> None:
    data = make_zip(((f"f{i}", b"x") for i in range(count)), comment=comment)
    assert len(read_archive(data, limits=ArchiveLimits(max_entries=count)).files) == count
    if count:
        with pytest.raises(ArchiveTooLarge, match="max_entries"):
            read_archive(data, limits=ArchiveLimits(max_entries=count - 1))


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PK",
        b"hello world",
        b"\x89PNG\r\n\x1a\n" + bytes(50),
        b"Rar!\x1a\x07\x00",
        b"BZh91AY&SY",
        b"\xfd7zXZ\x00",
    ],
)
def test_other_formats_are_rejected(data: bytes) -> None:
    with pytest.raises(ArchiveRejected, match=r"not a zip or tar\.gz archive"):
        read_archive(data, limits=LIMITS)


def test_gzip_of_something_other_than_a_tar_is_rejected() -> None:
    with pytest.raises(ArchiveRejected):
        read_archive(gzip.compress(b"just some text, not a tar archive" * 40), limits=LIMITS)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_truncated_archives_are_rejected(fmt: str, keep: float) -> None:
    data = both_formats(SITE)[0 if fmt == "zip" else 1]
    with pytest.raises(ArchiveRejected):
        read_archive(data[: int(len(data) * keep)], limits=LIMITS)


def test_zip_with_a_bad_crc_is_rejected() -> None:
    data = make_zip([("a.txt", b"payload-" * 10)], compression=zipfile.ZIP_STORED)
    corrupted = data.replace(b"payload-payload-", b"payload-pAyload-", 1)
    with pytest.raises(ArchiveRejected, match="CRC"):
        read_archive(corrupted, limits=LIMITS)


def test_encrypted_zip_entries_are_rejected() -> None:
    data = bytearray(make_zip([("a.txt", b"secret")]))
    for header, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.index(header) + flag_offset] |= 0x01
    with pytest.raises(ArchiveRejected, match="encrypted"):
        read_archive(bytes(data), limits=LIMITS)


def test_unsupported_zip_compression_is_rejected() -> None:
    data = bytearray(make_zip([("a.txt", b"x" * 100)]))
    for header, method_offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.index(header) + method_offset
        data[at : at + 2] = (99).to_bytes(2, "little")
    with pytest.raises(ArchiveRejected):
        read_archive(bytes(data), limits=LIMITS)


def test_gzip_with_a_bad_crc_is_rejected() -> None:
    data = bytearray(make_tar_gz([("a.txt", b"x" * 100)]))
    data[-8] ^= 0xFF
    with pytest.raises(ArchiveRejected, match="corrupt gzip data"):
        read_archive(bytes(data), limits=LIMITS)


def test_tar_header_with_a_bad_checksum_is_rejected() -> None:
    raw = bytearray(make_tar([("a.txt", b"x")], fmt=tarfile.USTAR_FORMAT))
    raw[0] = ord("b")
    with pytest.raises(ArchiveRejected, match="bad checksum"):
        read_archive(gzip.compress(bytes(raw)), limits=LIMITS)


def test_tar_truncated_inside_a_member_is_rejected() -> None:
    raw = make_tar([("a.txt", b"x" * 2000)])
    with pytest.raises(ArchiveRejected, match="truncated"):
        read_archive(gzip.compress(raw[:1500]), limits=LIMITS)


def test_data_after_the_end_of_the_tar_archive_is_rejected() -> None:
    raw = make_tar([("a.txt", b"x")])
    with pytest.raises(ArchiveRejected, match="after the end of the tar archive"):
        read_archive(gzip.compress(raw + b"smuggled"), limits=LIMITS)


def test_data_after_the_gzip_stream_is_rejected() -> None:
    with pytest.raises(ArchiveRejected, match="after the end of the gzip data"):
        read_archive(make_tar_gz([("a.txt", b"x")]) + b"trailing junk", limits=LIMITS)


def test_concatenated_gzip_members_and_zero_padding_are_accepted() -> None:
    raw = make_tar([("a.txt", b"a" * 3000), ("b.txt", b"b")])
    data = gzip.compress(raw[:1000]) + bytes(100) + gzip.compress(raw[1000:]) + bytes(512)
    assert as_dict(read_archive(data, limits=LIMITS)) == {"a.txt": b"a" * 3000, "b.txt": b"b"}


def test_tar_without_end_of_archive_blocks_is_accepted() -> None:
    raw = make_tar([("a.txt", b"x")]).rstrip(b"\x00")
    raw += bytes(-len(raw) % 512)
    assert as_dict(read_archive(gzip.compress(raw), limits=LIMITS)) == {"a.txt": b"x"}


@pytest.mark.parametrize("typeflag", [b"V", b"D", b"M", b"Z"])
def test_unknown_tar_entry_types_are_rejected(typeflag: bytes) -> None:
    info = tarfile.TarInfo("thing")
    info.type = typeflag
    with pytest.raises(ArchiveRejected, match="only regular files and directories"):
        read_archive(make_tar_gz([info]), limits=LIMITS)


def test_gnu_sparse_files_are_rejected() -> None:
    info = tarfile.TarInfo("sparse.bin")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    with pytest.raises(ArchiveRejected, match="sparse"):
        read_archive(make_tar_gz([info]), limits=LIMITS)


@pytest.mark.parametrize(
    "record",
    [b"5 path=x\n", b"x path=a\n", b"99 path=a\n", b"11 path=abc", b"9 noequal\n"],
)
def test_malformed_pax_records_are_rejected(record: bytes) -> None:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = len(record)
    raw = header.tobuf(format=tarfile.USTAR_FORMAT) + record + bytes(-len(record) % 512)
    raw += make_tar([("a.txt", b"x")], fmt=tarfile.USTAR_FORMAT)
    with pytest.raises(ArchiveRejected, match="pax header"):
        read_archive(gzip.compress(raw), limits=LIMITS)


# --- properties -------------------------------------------------------------------------------

_SEGMENT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_\u00e9\u00f1\u4e2d", min_size=1, max_size=12
).filter(lambda s: not s.startswith(".") and s != "__MACOSX")


@st.composite
def site_trees(draw: st.DrawFn) -> dict[str, bytes]:
    names = draw(
        st.lists(st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join), max_size=12, unique=True)
    )
    names = [n for n in names if not any(o.startswith(n + "/") for o in names)]
    return {name: draw(st.binary(max_size=300)) for name in names}


@given(files=site_trees())
@settings(max_examples=60, deadline=None)
def test_any_safe_tree_round_trips_through_both_formats(files: dict[str, bytes]) -> None:
    for data in both_formats(files):
        contents = read_archive(data, limits=LIMITS)
        assert as_dict(contents) == files
        assert paths(contents) == sorted(files)


FUZZ_LIMITS = ArchiveLimits(max_app_bytes=MIB, max_file_bytes=MIB // 2, max_app_files=50)
SEEDS = [
    make_zip(SITE.items() - {("assets/js/app.3f9a2b1c.js", SITE["assets/js/app.3f9a2b1c.js"])}),
    make_zip([("a.txt", b"stored " * 20), ("d/", b"")], compression=zipfile.ZIP_STORED),
    make_zip([("a.txt", b"bzip2 " * 20)], compression=zipfile.ZIP_BZIP2),
    make_zip([("a.txt", b"lzma " * 20)], compression=zipfile.ZIP_LZMA),
    make_tar_gz([("a/" + "l" * 120 + "/x.txt", b"pax " * 50), ("\u00fc.txt", b"u")]),
    make_tar_gz([("a/" + "l" * 120 + "/x.txt", b"gnu " * 50)], fmt=tarfile.GNU_FORMAT),
]
RAW_TARS = [
    make_tar([("a/" + "l" * 120 + "/x.txt", b"pax " * 50), ("\u00fc.txt", b"u"), tar_dir("d")]),
    make_tar([("a/" + "l" * 120 + "/x.txt", b"gnu " * 50), tar_dir("d")], fmt=tarfile.GNU_FORMAT),
]


def read_or_reject(data: bytes) -> None:
    """The fuzz oracle: either a result, or a DeployError; any other exception fails the test."""
    with contextlib.suppress(DeployError):
        read_archive(data, limits=FUZZ_LIMITS)


_mutations = st.lists(
    st.tuples(
        st.sampled_from(["set", "insert", "delete", "truncate"]),
        st.floats(min_value=0, max_value=1, exclude_max=True),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    buffer = bytearray(data)
    for op, where, payload in mutations:
        at = int(where * len(buffer))
        if op == "set":
            buffer[at : at + len(payload)] = payload
        elif op == "insert":
            buffer[at:at] = payload
        elif op == "delete":
            del buffer[at : at + len(payload)]
        else:
            del buffer[at:]
    return bytes(buffer)


_fuzz_settings = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@given(
    prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"\x1f\x8b\x08\x00"]),
    body=st.binary(max_size=2000),
)
@_fuzz_settings
def test_fuzz_random_bytes_only_raise_deploy_errors(prefix: bytes, body: bytes) -> None:
    read_or_reject(prefix + body)


@given(seed=st.sampled_from(SEEDS), mutations=_mutations)
@_fuzz_settings
def test_fuzz_mutated_archives_only_raise_deploy_errors(
    seed: bytes, mutations: list[tuple[str, float, bytes]]
) -> None:
    read_or_reject(mutate(seed, mutations))


@given(raw=st.sampled_from(RAW_TARS), mutations=_mutations)
@_fuzz_settings
def test_fuzz_mutated_tar_inside_valid_gzip_only_raises_deploy_errors(
    raw: bytes, mutations: list[tuple[str, float, bytes]]
) -> None:
    read_or_reject(gzip.compress(mutate(raw, mutations), mtime=0))
