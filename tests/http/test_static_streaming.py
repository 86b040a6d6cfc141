"""Large files are streamed one chunk at a time and byte ranges read only their chunks."""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio

from fazt.hosting import StaticFile
from fazt.http._static import serve_static
from tests.http.test_static import make_site, never_immutable, response_of

BIG = os.urandom(3 * 2**20 + 12345)   # over the 1 MiB streaming threshold
CHUNK = 256 * 1024


class RangeStore:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    async def load(self, file: StaticFile) -> bytes:
        raise AssertionError("a large file must not be loaded whole")

    async def load_range(self, file: StaticFile, first: int, last: int) -> bytes:
        self.ranges.append((first, last))
        return self.data[first:last + 1]


async def connected() -> dict[str, Any]:
    """A client that stays connected and sends no body."""
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def get(headers: list[tuple[bytes, bytes]] | None = None, method: str = "GET",
              receive=connected):
    site, _ = make_site({"big.bin": BIG})
    store = RangeStore(BIG)
    scope: dict[str, Any] = {"type": "http", "method": method, "path": "/big.bin",
                             "raw_path": b"/big.bin", "query_string": b"",
                             "headers": headers or []}
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)

    await serve_static(scope, receive, send, site=site, load=store.load,
                       immutable=never_immutable, load_range=store.load_range)
    return response_of(messages), store


async def test_whole_file_streams_in_chunks() -> None:
    response, store = await get()
    assert response.status == 200
    assert response.body == BIG
    assert int(response.headers["content-length"]) == len(BIG)
    assert all(last - first + 1 <= CHUNK for first, last in store.ranges)
    assert len(response.body_messages) == len(store.ranges) > 10


async def test_unaligned_range_reads_each_chunk_once() -> None:
    first = CHUNK + 1
    response, store = await get([(b"range", f"bytes={first}-{len(BIG) - 1}".encode())])
    assert response.body == BIG[first:]
    assert store.ranges[0] == (first, 2 * CHUNK - 1)
    assert all(f % CHUNK == 0 for f, _ in store.ranges[1:])


async def test_client_disconnect_stops_the_reads() -> None:
    sent = trio.Event()

    async def disconnects_after_first_chunk() -> dict[str, Any]:
        await sent.wait()
        return {"type": "http.disconnect"}

    site, _ = make_site({"big.bin": BIG})
    store = RangeStore(BIG)
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/big.bin",
                             "raw_path": b"/big.bin", "query_string": b"", "headers": []}
    bodies = 0

    async def send(message: Any) -> None:
        nonlocal bodies
        if message["type"] == "http.response.body":
            bodies += 1
            sent.set()
            await trio.sleep(0)   # let the disconnect be noticed, as a real socket write would

    await serve_static(scope, disconnects_after_first_chunk, send, site=site, load=store.load,
                       immutable=never_immutable, load_range=store.load_range)
    assert len(store.ranges) <= 3, "reading stopped soon after the client left"
    assert len(BIG) // CHUNK > 10


async def test_range_reads_only_its_span() -> None:
    response, store = await get([(b"range", b"bytes=2000000-2000099")])
    assert response.status == 206
    assert response.body == BIG[2000000:2000100]
    assert store.ranges == [(2000000, 2000099)]


async def test_suffix_range_of_a_large_file() -> None:
    response, store = await get([(b"range", b"bytes=-10")])
    assert response.body == BIG[-10:]
    assert store.ranges == [(len(BIG) - 10, len(BIG) - 1)]


@pytest.mark.parametrize("method", ["HEAD"])
async def test_head_reads_nothing(method: str) -> None:
    response, store = await get(method=method)
    assert response.body == b""
    assert store.ranges == []
