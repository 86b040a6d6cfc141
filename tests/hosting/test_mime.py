"""content_type_for and is_content_hashed: a fixed table, and a careful hash detector."""

from __future__ import annotations

import mimetypes

import pytest

from fazt.hosting._mime import content_type_for, is_content_hashed

UTF8 = "; charset=utf-8"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("index.html", "text/html" + UTF8),
        ("old/page.htm", "text/html" + UTF8),
        ("site.css", "text/css" + UTF8),
        ("app.js", "text/javascript" + UTF8),
        ("mod.mjs", "text/javascript" + UTF8),
        ("common.cjs", "text/javascript" + UTF8),
        ("src/main.ts", "text/plain" + UTF8),
        ("data.json", "application/json"),
        ("app.js.map", "application/json"),
        ("site.webmanifest", "application/manifest+json"),
        ("robots.txt", "text/plain" + UTF8),
        ("README.md", "text/markdown" + UTF8),
        ("sitemap.xml", "application/xml"),
        ("table.csv", "text/csv" + UTF8),
        ("config.yaml", "application/yaml"),
        ("config.yml", "application/yaml"),
        ("pyproject.toml", "application/toml"),
        ("logo.svg", "image/svg+xml"),
        ("a.png", "image/png"),
        ("a.jpg", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.gif", "image/gif"),
        ("a.webp", "image/webp"),
        ("a.avif", "image/avif"),
        ("favicon.ico", "image/x-icon"),
        ("a.bmp", "image/bmp"),
        ("f.woff", "font/woff"),
        ("f.woff2", "font/woff2"),
        ("f.ttf", "font/ttf"),
        ("f.otf", "font/otf"),
        ("f.eot", "application/vnd.ms-fontobject"),
        ("app.wasm", "application/wasm"),
        ("paper.pdf", "application/pdf"),
        ("dl.zip", "application/zip"),
        ("dl.gz", "application/gzip"),
        ("dl.tar.gz", "application/gzip"),
        ("song.mp3", "audio/mpeg"),
        ("song.ogg", "audio/ogg"),
        ("song.wav", "audio/wav"),
        ("song.m4a", "audio/mp4"),
        ("clip.mp4", "video/mp4"),
        ("clip.webm", "video/webm"),
        ("clip.mov", "video/quicktime"),
    ],
)
def test_known_extensions(path: str, expected: str) -> None:
    assert content_type_for(path) == expected


@pytest.mark.parametrize("path", ["INDEX.HTML", "Index.Html", "a/B.HtM"])
def test_extensions_are_case_insensitive(path: str) -> None:
    assert content_type_for(path) == "text/html" + UTF8


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("app.js.gz", "text/javascript" + UTF8),
        ("app.js.br", "text/javascript" + UTF8),
        ("assets/site.CSS.GZ", "text/css" + UTF8),
        ("logo.svg.br", "image/svg+xml"),
        ("blob.br", "application/octet-stream"),
        ("archive.tar.gz", "application/gzip"),
    ],
)
def test_precompressed_variants_have_the_type_of_what_they_encode(path: str, expected: str) -> None:
    assert content_type_for(path) == expected


@pytest.mark.parametrize(
    "path", ["LICENSE", "Makefile", "a.unknownext", "a.", "dir.d/file", "x.exe", "x.php", "x.py"]
)
def test_unknown_extensions_are_octet_stream(path: str) -> None:
    assert content_type_for(path) == "application/octet-stream"


def test_the_table_ignores_the_machine_mimetypes_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mimetypes, "guess_type", lambda *a, **k: ("text/x-bogus", None))
    assert content_type_for("app.js") == "text/javascript" + UTF8


def test_only_text_types_carry_a_charset() -> None:
    for path in [
        "a.html",
        "a.css",
        "a.js",
        "a.txt",
        "a.md",
        "a.csv",
        "a.ts",
        "a.png",
        "a.json",
        "a.svg",
        "a.woff2",
        "a.wasm",
    ]:
        content_type = content_type_for(path)
        assert content_type.endswith(UTF8) == content_type.startswith("text/"), path


@pytest.mark.parametrize(
    ("path", "hashed"),
    [
        # what bundlers emit
        ("app.3f9a2b1c.js", True),
        ("assets/index-B7x9QwZk.js", True),
        ("chunk-5FQ2LJ3K.css", True),
        ("static/js/main.abcdef12.chunk.js", True),
        ("main.7d3b2c1e9f0a4b5c6d7e.bundle.js", True),  # webpack's 20-hex contenthash
        ("logo.a1b2c3d4.svg", True),
        ("app.3f9a2b1c.js.gz", True),
        ("3f9a2b1c9d.js", True),
        ("index_Ab3dE5gH.js", True),
        # ordinary names
        ("jquery-3.7.1.min.js", False),
        ("2024-report.pdf", False),
        ("favicon.ico", False),
        ("background.png", False),
        ("bundle.js", False),
        ("index.html", False),
        ("utf8encoder.js", False),
        ("Base64Encoder.js", False),
        ("v20240101.js", False),
        ("20240101.log", False),
        ("deadbeefcafe.bin", False),  # hex, but not a single digit
        ("index-DiwrgTda.js", False),  # a real hash without a digit: a miss is harmless
        ("ab12.js", False),
        ("photos/img_20240101_123456.jpg", False),
        ("a3f9a2b1c/app.js", False),  # directories do not count
    ],
)
def test_is_content_hashed(path: str, hashed: bool) -> None:
    assert is_content_hashed(path) is hashed
