"""Hosting on a real encrypted database: deploys, history, rollback, pruning, caches."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from fazt.errors import AppNotFound, ArchiveRejected, Conflict, DeployNotFound, InvalidAppName
from fazt.hosting import ArchiveLimits, Hosting
from tests.archives import make_archive
from tests.core_db import open_core_db


def tgz(files: dict[str, str | bytes]) -> bytes:
    return make_archive(files)


@pytest.fixture
def hosting(tmp_path: Path):
    with open_core_db(tmp_path) as db:
        yield Hosting(db, limits=ArchiveLimits(), history=3, cache_bytes=1 << 20,
                      op_timeout_s=5, deploy_timeout_s=30)


async def count(hosting: Hosting, sql: str) -> int:
    db = hosting._db  # the tests look inside on purpose
    return await db.read(lambda c: c.execute(sql).fetchone()[0],
                         deadline=trio.current_time() + 5)


async def test_deploy_then_serve_index(hosting: Hosting) -> None:
    result = await hosting.deploy("site", tgz({"index.html": "<h1>x</h1>", "a/b.css": "b{}"}))
    assert result.deploy.file_count == 2
    site = await hosting.site("site")
    assert site is not None
    assert set(site.files) == {"index.html", "a/b.css"}
    assert site.files["a/b.css"].content_type == "text/css; charset=utf-8"
    assert await hosting.load(site.files["index.html"]) == b"<h1>x</h1>"


async def test_spa_flag_comes_from_manifest(hosting: Hosting) -> None:
    await hosting.deploy("spa", tgz({"index.html": "x", "manifest.json": '{"spa": true}'}))
    site = await hosting.site("spa")
    assert site is not None and site.spa


async def test_redeploy_switches_site_and_invalidates_cache(hosting: Hosting) -> None:
    await hosting.deploy("app", tgz({"index.html": "one"}))
    first = await hosting.site("app")
    await hosting.deploy("app", tgz({"index.html": "two"}))
    second = await hosting.site("app")
    assert first is not None and second is not None
    assert second.deploy_id > first.deploy_id
    assert await hosting.load(second.files["index.html"]) == b"two"


async def test_unknown_app_is_none_then_appears_after_deploy(hosting: Hosting) -> None:
    assert await hosting.site("later") is None
    await hosting.deploy("later", tgz({"index.html": "now"}))
    assert await hosting.site("later") is not None, "the negative cache was invalidated"


async def test_identical_files_are_stored_once(hosting: Hosting) -> None:
    shared = "x" * 10_000
    first = await hosting.deploy("a", tgz({"index.html": shared, "one.txt": "1"}))
    second = await hosting.deploy("b", tgz({"index.html": shared, "two.txt": "2"}))
    assert first.new_blob_bytes == 10_001
    assert second.new_blob_bytes == 1, "the shared file is deduplicated"
    assert await count(hosting, "SELECT count(*) FROM blobs") == 3


async def test_history_is_pruned_and_orphan_blobs_deleted(hosting: Hosting) -> None:
    for i in range(5):  # history=3
        await hosting.deploy("h", tgz({"index.html": f"version {i}"}))
    info = await hosting.app_info("h")
    assert [d.current for d in info.deploys] == [True, False, False]
    assert len(info.deploys) == 3
    assert await count(hosting, "SELECT count(*) FROM blobs") == 3
    assert await count(hosting, "SELECT count(*) FROM files") == 3


async def test_rollback_default_and_explicit(hosting: Hosting) -> None:
    ids = [(await hosting.deploy("r", tgz({"index.html": f"v{i}"}))).deploy.id for i in range(3)]
    rolled = await hosting.rollback("r")
    assert rolled.id == ids[1]
    site = await hosting.site("r")
    assert site is not None and await hosting.load(site.files["index.html"]) == b"v1"
    assert (await hosting.rollback("r", to=ids[2])).id == ids[2]
    with pytest.raises(DeployNotFound):
        await hosting.rollback("r", to=ids[2] + 100)
    # a new deploy after a rollback never prunes the live one
    await hosting.rollback("r", to=ids[0])
    for i in range(4):
        await hosting.deploy("r", tgz({"index.html": f"w{i}"}))
    assert (await hosting.app_info("r")).current is not None


async def test_rollback_without_history_is_a_conflict(hosting: Hosting) -> None:
    await hosting.deploy("one", tgz({"index.html": "x"}))
    with pytest.raises(Conflict):
        await hosting.rollback("one")
    with pytest.raises(AppNotFound):
        await hosting.rollback("missing")


async def test_remove_deletes_everything_unshared(hosting: Hosting) -> None:
    await hosting.deploy("keep", tgz({"index.html": "shared"}))
    await hosting.deploy("gone", tgz({"index.html": "shared", "own.txt": "mine"}))
    await hosting.remove("gone")
    assert await hosting.site("gone") is None
    with pytest.raises(AppNotFound):
        await hosting.app_info("gone")
    assert await count(hosting, "SELECT count(*) FROM blobs") == 1, "shared blob kept"
    assert await count(hosting, "SELECT count(*) FROM deploys") == 1
    with pytest.raises(AppNotFound):
        await hosting.remove("gone")


async def test_rejected_archive_writes_nothing(hosting: Hosting) -> None:
    await hosting.deploy("safe", tgz({"index.html": "good"}))
    before = await count(hosting, "SELECT count(*) FROM blobs")
    with pytest.raises(ArchiveRejected):
        await hosting.deploy("safe", tgz({"index.html": "evil", "../x": "y"}))
    with pytest.raises(InvalidAppName):
        await hosting.deploy("API", tgz({"index.html": "x"}))
    assert await count(hosting, "SELECT count(*) FROM blobs") == before
    assert len((await hosting.app_info("safe")).deploys) == 1


async def test_blob_cache_serves_repeat_loads_from_memory(hosting: Hosting) -> None:
    await hosting.deploy("c", tgz({"index.html": "cached"}))
    site = await hosting.site("c")
    assert site is not None
    await hosting.load(site.files["index.html"])
    await hosting.load(site.files["index.html"])
    stats = hosting.cache_stats()
    assert stats["blob_cache_hits"] >= 1
    assert stats["blob_cache_bytes"] == len(b"cached")


async def test_list_apps(hosting: Hosting) -> None:
    await hosting.deploy("b", tgz({"index.html": "b"}))
    await hosting.deploy("a", tgz({"index.html": "a"}))
    apps = await hosting.list_apps()
    assert [a.name for a in apps] == ["a", "b"]
    assert all(a.current is not None and a.current.current for a in apps)


async def test_large_files_are_chunked_and_ranges_read_across_chunks(hosting: Hosting) -> None:
    import os

    data = os.urandom(700_000)   # three 256 KiB chunks
    await hosting.deploy("big", tgz({"index.html": "x", "big.bin": data}))
    site = await hosting.site("big")
    assert site is not None
    big = site.files["big.bin"]
    assert await count(hosting, "SELECT count(*) FROM blob_chunks WHERE length(data) > 0") == 4
    assert await hosting.load_range(big, 262_000, 530_000) == data[262_000:530_001]
    assert await hosting.load_range(big, 0, 0) == data[:1]
    assert await hosting.load(big) == data
    await hosting.remove("big")
    assert await count(hosting, "SELECT count(*) FROM blob_chunks") == 0, "chunks go with blobs"
