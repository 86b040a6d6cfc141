"""T29 deploy_archive_attacks: hostile zip and tar.gz uploads are rejected before any write.

Each attack must raise a ``DeployError`` subclass naming the problem (``pytest.raises`` with the
subclass fails on any other exception type); bombs must be stopped on an uncompressed-size
quota within a second of inflating.
"""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Iterator

import pytest

from fazt.errors import ArchiveRejected, ArchiveTooLarge, DeployError
from fazt.hosting import _archive
from fazt.hosting._archive import ArchiveLimits, read_archive
from tests.archives import TarItem, make_tar, make_tar_gz, make_zip

pytestmark = pytest.mark.security

LIMITS = ArchiveLimits()
MIB = 2**20
ZEROS_MIB = bytes(MIB)
BOMB_MIB = 300

def tar_info(name: str, typeflag: bytes, *, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = typeflag
    info.linkname = linkname
    return info


def zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
    info.external_attr = mode << 16
    return info


def both_formats(names: Iterable[str]) -> list[bytes]:
    files = [(name, b"attack") for name in names]
    return [make_zip(files), make_tar_gz(files)]


def rejected(data: bytes, *, limits: ArchiveLimits = LIMITS) -> ArchiveRejected:
    with pytest.raises(ArchiveRejected) as caught:
        read_archive(data, limits=limits)
    return caught.value


# --- paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../x", "a/../../x", "../x", "a/b/../../../etc/passwd", "..", "a/.."],
)
def test_zip_slip_is_rejected(name: str) -> None:
    for data in both_formats([name, "index.html"]):
        error = rejected(data)
        assert repr(name) in str(error)
        assert "'..'" in str(error)


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "/x", "//server/share/x", "C:\\Windows\\x", "C:x", "c:/x", "\\\\server\\x"],
)
def test_absolute_and_windows_paths_are_rejected(name: str) -> None:
    for data in both_formats([name]):
        assert repr(name) in str(rejected(data))


@pytest.mark.parametrize("name", ["a\\..\\..\\x", "a\\b.txt", "..\\x"])
def test_backslashes_are_rejected(name: str) -> None:
    for data in both_formats([name]):
        assert "backslashes" in str(rejected(data))


@pytest.mark.parametrize("name", ["a\nb", "a\rb.html", "\x1b[31mred", "a\x7f", "a\x85b"])
def test_control_characters_are_rejected(name: str) -> None:
    for data in both_formats([name]):
        assert "control characters" in str(rejected(data))


def test_nul_in_a_zip_name_is_seen_despite_zipfile_truncating_it() -> None:
    data = make_zip([("evil.htmlX.png", b"x")]).replace(b"evil.htmlX.png", b"evil.html\x00.png")
    assert "control characters" in str(rejected(data))


# --- links and special files -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/etc/passwd", "../../.ssh/id_ed25519", "other.html"])
def test_zip_symlink_members_are_rejected(target: str) -> None:
    data = make_zip([(zip_info("index.html", stat.S_IFLNK | 0o777), target.encode())])
    assert "symlinks are not allowed" in str(rejected(data))


@pytest.mark.parametrize("target", ["/etc/passwd", "../../.ssh/id_ed25519", "other.html"])
def test_tar_symlink_members_are_rejected(target: str) -> None:
    data = make_tar_gz([tar_info("index.html", tarfile.SYMTYPE, linkname=target)])
    assert "symlinks are not allowed" in str(rejected(data))


def test_tar_hard_links_are_rejected() -> None:
    link = tar_info("copy.html", tarfile.LNKTYPE, linkname="index.html")
    data = make_tar_gz([("index.html", b"x"), link])
    assert "hard links are not allowed" in str(rejected(data))


@pytest.mark.parametrize(
    ("typeflag", "what"),
    [
        (tarfile.CHRTYPE, "character device"),
        (tarfile.BLKTYPE, "block device"),
        (tarfile.FIFOTYPE, "fifo"),
    ],
)
def test_tar_devices_and_fifos_are_rejected(typeflag: bytes, what: str) -> None:
    error = rejected(make_tar_gz([tar_info("dev/null", typeflag)]))
    assert what in str(error)


@pytest.mark.parametrize(
    ("mode", "what"),
    [
        (stat.S_IFCHR, "character device"),
        (stat.S_IFBLK, "block device"),
        (stat.S_IFIFO, "fifo"),
        (stat.S_IFSOCK, "socket"),
    ],
)
def test_zip_devices_and_fifos_are_rejected(mode: int, what: str) -> None:
    error = rejected(make_zip([(zip_info("dev/thing", mode | 0o644), b"")]))
    assert what in str(error)


# --- uniqueness --------------------------------------------------------------------------------


def test_duplicate_names_are_rejected() -> None:
    for data in both_formats(["index.html", "index.html"]):
        assert "duplicate entry" in str(rejected(data))


def test_duplicates_after_dot_slash_are_rejected() -> None:
    for data in both_formats(["index.html", "./index.html"]):
        assert "duplicate entry" in str(rejected(data))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("index.html", "INDEX.html"),
        ("a/B/x.js", "A/b/x.js"),
        ("stra\u00dfe.txt", "STRASSE.txt"),  # casefold: ß -> ss
        (
            unicodedata.normalize("NFC", "caf\u00e9.txt"),
            unicodedata.normalize("NFD", "caf\u00e9.txt"),
        ),
        ("\u212b.txt", "\u00c5.txt"),  # ANGSTROM SIGN vs A WITH RING: canonically equivalent
    ],
)
def test_case_and_unicode_collisions_are_rejected(first: str, second: str) -> None:
    assert first != second
    for data in both_formats([first, second]):
        assert "differ only in case or Unicode form" in str(rejected(data))


@pytest.mark.parametrize(
    "names",
    [["a", "a/b"], ["a/b", "a"], ["x/a", "x/a/b/c"], ["A", "a/b"], ["a-b", "a.b", "a", "a/c"]],
)
def test_a_file_used_as_a_directory_is_rejected(names: list[str]) -> None:
    for data in both_formats(names):
        error = str(rejected(data))
        assert "is a file but" in error


def test_a_file_and_a_directory_entry_of_the_same_name_are_rejected() -> None:
    for entries in ([("a", b"x"), ("a/", b"")], [("a/", b""), ("a", b"x")]):
        assert "directory" in str(rejected(make_zip(entries)))
    tar_cases: list[list[TarItem]] = [
        [("a", b"x"), tar_info("a", tarfile.DIRTYPE)],
        [tar_info("a", tarfile.DIRTYPE), ("a", b"x")],
    ]
    for items in tar_cases:
        assert "directory" in str(rejected(make_tar_gz(items)))


# --- tar header tricks -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../x", "/etc/cron.d/x", "a/../../x", "index.html\x00.png"])
def test_pax_header_renaming_a_member_to_an_unsafe_path_is_rejected(path: str) -> None:
    info = tarfile.TarInfo("innocent.txt")
    info.pax_headers = {"path": path}
    raw = make_tar([info])
    assert b"innocent.txt" in raw  # the ustar name looks harmless; the pax record wins
    assert repr(path) in str(rejected(gzip.compress(raw)))


def test_gnu_long_name_with_traversal_is_rejected() -> None:
    name = "a/" + "b" * 120 + "/../../../x"
    assert "'..'" in str(rejected(make_tar_gz([(name, b"x")], fmt=tarfile.GNU_FORMAT)))


def test_global_pax_header_setting_the_path_is_rejected() -> None:
    raw = make_tar([("a.txt", b"x")], pax_headers={"path": "../x"})
    assert "global pax header" in str(rejected(gzip.compress(raw)))


# --- bombs -------------------------------------------------------------------------------------


def zip_bomb() -> bytes:
    """300 MiB of zeros in one deflated member (about 300 KiB), built in 1 MiB writes."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("bomb.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(BOMB_MIB):
            member.write(ZEROS_MIB)
    return buffer.getvalue()


def gzip_stream(header: bytes, zero_mib: int) -> bytes:
    """One gzip stream: ``header`` then ``zero_mib`` MiB of zeros, compressed as it goes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [compressor.compress(header)]
    parts.extend(compressor.compress(ZEROS_MIB) for _ in range(zero_mib))
    parts.append(compressor.flush())
    return b"".join(parts)


def huge_member_header(size: int, typeflag: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo("bomb.bin")
    info.size = size
    info.type = typeflag
    return info.tobuf(format=tarfile.GNU_FORMAT)  # base-256 size field past 8 GiB


def timed_rejection(data: bytes, limits: ArchiveLimits) -> tuple[ArchiveTooLarge, float]:
    started = time.perf_counter()
    with pytest.raises(ArchiveTooLarge) as caught:
        read_archive(data, limits=limits)
    return caught.value, time.perf_counter() - started


BOMB_LIMITS = [
    pytest.param(
        ArchiveLimits(max_file_bytes=2**40, max_app_bytes=2**40),
        "max_compression_ratio",
        id="ratio",
    ),
    pytest.param(
        ArchiveLimits(max_file_bytes=2**40, max_app_bytes=20 * MIB, max_compression_ratio=1e9),
        "max_app_bytes",
        id="total",
    ),
    pytest.param(
        ArchiveLimits(max_file_bytes=20 * MIB, max_compression_ratio=1e9),
        "max_file_bytes",
        id="file",
    ),
]


@pytest.fixture(scope="module")
def built_zip_bomb() -> bytes:
    return zip_bomb()


@pytest.fixture(scope="module")
def built_tar_bomb() -> bytes:
    return gzip_stream(huge_member_header(10 * 2**30), BOMB_MIB)


@pytest.mark.parametrize(("limits", "quota"), BOMB_LIMITS)
def test_zip_bomb_is_stopped_on_an_uncompressed_quota(
    built_zip_bomb: bytes, limits: ArchiveLimits, quota: str
) -> None:
    assert len(built_zip_bomb) < MIB
    error, elapsed = timed_rejection(built_zip_bomb, limits)
    assert quota in str(error)
    assert elapsed < 1.0


@pytest.mark.parametrize(("limits", "quota"), BOMB_LIMITS)
def test_gzip_tar_bomb_is_stopped_on_an_uncompressed_quota(
    built_tar_bomb: bytes, limits: ArchiveLimits, quota: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inflated = spy_on_inflated_bytes(monkeypatch)
    error, elapsed = timed_rejection(built_tar_bomb, limits)
    assert quota in str(error)
    assert elapsed < 1.0
    assert max(inflated) <= limits.max_app_bytes + 2 * MIB


def spy_on_inflated_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = [0]
    check = _archive._ContentsBuilder.check_inflated

    def recording(self: _archive._ContentsBuilder, inflated_bytes: int) -> None:
        seen.append(inflated_bytes)
        check(self, inflated_bytes)

    monkeypatch.setattr(_archive._ContentsBuilder, "check_inflated", recording)
    return seen


def test_ten_gib_of_gzip_members_is_stopped_at_the_total_quota(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    member = gzip.compress(ZEROS_MIB, mtime=0)
    data = gzip.compress(huge_member_header(10 * 2**30), mtime=0) + member * 10 * 1024
    assert len(data) < 12 * MIB
    inflated = spy_on_inflated_bytes(monkeypatch)
    limits = ArchiveLimits(max_app_bytes=100 * MIB, max_file_bytes=2**40)
    error, elapsed = timed_rejection(data, limits)
    assert "max_app_bytes" in str(error)
    assert elapsed < 1.0
    assert max(inflated) <= limits.max_app_bytes + 2 * MIB


@pytest.mark.parametrize("typeflag", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME])
def test_huge_tar_extended_header_is_refused_before_it_is_read(typeflag: bytes) -> None:
    data = gzip_stream(huge_member_header(10 * 2**30, typeflag), 50)
    error, elapsed = timed_rejection(data, LIMITS)
    assert "extended header" in str(error)
    assert elapsed < 1.0


def test_zeros_after_the_end_of_the_tar_archive_are_a_bomb_too() -> None:
    data = gzip_stream(make_tar([("index.html", b"x")]), BOMB_MIB)
    error, elapsed = timed_rejection(
        data, ArchiveLimits(max_compression_ratio=1e9, max_app_bytes=20 * MIB)
    )
    assert "inflates to more than" in str(error)
    assert elapsed < 1.0


def test_declared_size_larger_than_the_data_is_truncation_not_a_file() -> None:
    data = gzip.compress(huge_member_header(10 * 2**30) + b"short")
    assert "truncated" in str(rejected(data))


def zip_with_empty_entries(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(f"f{index}", b"")
    return buffer.getvalue()


def tar_headers(names: Iterable[str]) -> Iterator[bytes]:
    """Ustar headers for empty files, without tarfile's per-member overhead."""
    template = bytearray(tarfile.TarInfo("x").tobuf(format=tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8
    for name in names:
        block = bytearray(template)
        block[0:100] = name.encode().ljust(100, b"\x00")
        block[148:156] = b"%06o\x00 " % sum(block)
        yield bytes(block)


@pytest.fixture(scope="module")
def hundred_thousand_entry_zip() -> bytes:
    return zip_with_empty_entries(100_000)


@pytest.fixture(scope="module")
def hundred_thousand_entry_tar_gz() -> bytes:
    raw = b"".join(tar_headers(f"f{index}" for index in range(100_000))) + bytes(1024)
    return gzip.compress(raw, compresslevel=1, mtime=0)


def test_zip_with_100k_entries_is_rejected_from_its_central_directory(
    hundred_thousand_entry_zip: bytes,
) -> None:
    error, elapsed = timed_rejection(hundred_thousand_entry_zip, LIMITS)
    assert "max_entries" in str(error)
    assert elapsed < 1.0


def test_zip_with_100k_entries_is_rejected_on_max_files(hundred_thousand_entry_zip: bytes) -> None:
    limits = ArchiveLimits(max_entries=1_000_000)
    error, _ = timed_rejection(hundred_thousand_entry_zip, limits)
    assert "more than 10000 files (max_app_files)" in str(error)


def test_tar_gz_with_100k_entries_is_rejected_on_max_files(
    hundred_thousand_entry_tar_gz: bytes,
) -> None:
    error, elapsed = timed_rejection(hundred_thousand_entry_tar_gz, LIMITS)
    assert "more than 10000 files (max_app_files)" in str(error)
    assert elapsed < 1.0


def test_deep_paths_do_not_make_collision_checks_quadratic() -> None:
    deep = "/".join(["d"] * 500)
    data = make_tar_gz((f"{index}/{deep}/f", b"") for index in range(2_000))
    started = time.perf_counter()
    contents = read_archive(data, limits=ArchiveLimits())
    assert time.perf_counter() - started < 1.0
    assert len(contents.files) == 2_000


# --- everything above, once more, as one sweep -------------------------------------------------


def test_every_attack_raises_only_deploy_errors() -> None:
    attacks = [
        *both_formats(["../x"]),
        *both_formats(["/x"]),
        *both_formats(["a", "A"]),
        make_zip([(zip_info("l", stat.S_IFLNK | 0o777), b"/etc/passwd")]),
        make_tar_gz([tar_info("l", tarfile.SYMTYPE, linkname="/etc/passwd")]),
        make_tar_gz([tar_info("h", tarfile.LNKTYPE, linkname="x")]),
        gzip.compress(huge_member_header(2**40)),
    ]
    for data in attacks:
        with pytest.raises(DeployError):
            read_archive(data, limits=LIMITS)
