"""The blobs capability against a real encrypted database: put/get/delete/list semantics, key,
content-type and option checks, the size limit and the quota (nothing half written), the
usage ledger, isolation between apps and users, signed URLs with a controllable clock, the
URL secret, and the storage phase of the budget."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fazt.capabilities import Binary
from fazt.capabilities.blobs import (
    BINARY_TYPE,
    MAX_BLOB_BYTES,
    MAX_KEY_BYTES,
    TEXT_TYPE,
    URL_DEFAULT_S,
    URL_MAX_S,
    URL_PREFIX,
    BlobStore,
)
from fazt.errors import (
    AuthRequired,
    BudgetExceeded,
    CapabilityError,
    KeyTooLarge,
    QuotaExceeded,
    ValueTooLarge,
)
from fazt.storage import Database, StorageSettings
from tests.capabilities.conftest import APP, OTHER, Clock, Delay, _write, caller

LIMIT = 4096
SECRET = b"s" * 32


@pytest.fixture
def store(db: Database, clock: Clock) -> BlobStore:
    return BlobStore(db, url_secret=SECRET, clock=clock, max_blob_bytes=LIMIT)


def blobs_call(store: BlobStore, **kwargs: Any) -> Any:
    """A function calling blobs methods as JS would: blobs("put", "k", b"...")."""
    return caller(store.provider(), **kwargs)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def usage(db: Database, app: str = APP) -> int:
    def read(conn: Any) -> int:
        row = conn.execute("SELECT bytes FROM app_usage WHERE app = ? AND capability = 'blobs'",
                           (app,)).fetchone()
        return 0 if row is None else int(row[0])

    return int(await db.read(read, deadline=trio.current_time() + 5))


async def stored_bytes(db: Database, app: str = APP) -> int:
    def read(conn: Any) -> int:
        return int(conn.execute("SELECT coalesce(sum(length(CAST(key AS BLOB)) + size), 0) "
                                "FROM app_blobs WHERE app = ?", (app,)).fetchone()[0])

    return int(await db.read(read, deadline=trio.current_time() + 5))


async def row_count(db: Database) -> int:
    return int(await db.read(lambda c: c.execute("SELECT count(*) FROM app_blobs").fetchone()[0],
                             deadline=trio.current_time() + 5))


def query_of(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def key_of(url: str) -> str:
    path = urlsplit(url).path
    assert path.startswith(URL_PREFIX)
    return unquote(path[len(URL_PREFIX):])


# -- put / get / delete -------------------------------------------------------------------------

async def test_put_text_and_bytes_then_get(store: BlobStore, clock: Clock) -> None:
    blobs = blobs_call(store)
    assert await blobs("get", "missing") is None

    text = "héllo 😀 wörld"
    meta = await blobs("put", "notes/a.txt", text)
    body = text.encode("utf-8")
    assert meta == {"key": "notes/a.txt", "size": len(body), "contentType": TEXT_TYPE,
                    "sha256": sha(body), "public": False, "updatedAt": clock.now}
    got = await blobs("get", "notes/a.txt")
    assert isinstance(got, Binary)
    assert got.data == body
    assert dict(got.value) == meta

    raw = bytes(range(256)) * 3
    clock.now += 5
    meta = await blobs("put", "bin", raw)
    assert meta["contentType"] == BINARY_TYPE
    assert meta["size"] == 768 and meta["sha256"] == sha(raw)
    assert meta["updatedAt"] == clock.now
    got = await blobs("get", "bin")
    assert got.data == raw and got.value["contentType"] == BINARY_TYPE

    # the content type and the public flag are the caller's choice
    meta = await blobs("put", "img.png", b"\x89PNG", {"contentType": "image/png",
                                                      "public": True})
    assert meta["contentType"] == "image/png" and meta["public"] is True
    got = await blobs("get", "img.png")
    assert got.value["public"] is True and got.value["contentType"] == "image/png"
    # null options are as if absent
    meta = await blobs("put", "n", "x", {"contentType": None, "public": None})
    assert meta["contentType"] == TEXT_TYPE and meta["public"] is False
    meta = await blobs("put", "ct", "<b>", {"contentType": "text/html; charset=utf-8"})
    assert meta["contentType"] == "text/html; charset=utf-8"

    # empty data is a blob of 0 bytes
    meta = await blobs("put", "empty", b"")
    assert meta["size"] == 0 and meta["sha256"] == sha(b"")
    assert (await blobs("get", "empty")).data == b""
    meta = await blobs("put", "empty-text", "")
    assert meta["size"] == 0 and meta["contentType"] == TEXT_TYPE

    # base64 inside JSON ({"$bytes": ...}) is bytes too
    meta = await blobs("put", "b64", {"$bytes": "AAEC/w=="})
    assert meta["size"] == 4 and meta["contentType"] == BINARY_TYPE
    assert (await blobs("get", "b64")).data == b"\x00\x01\x02\xff"
    with pytest.raises(CapabilityError, match="base64"):
        await blobs("put", "b64", {"$bytes": "!!!"})
    for bad in (5, None, [1, 2], {"x": 1}, {"$bytes": 5}, True):
        with pytest.raises(CapabilityError, match="must be a string"):
            await blobs("put", "bad-data", bad)
    assert await blobs("get", "bad-data") is None


async def test_delete(store: BlobStore, db: Database) -> None:
    blobs = blobs_call(store)
    await blobs("put", "k", b"12345")
    assert await blobs("delete", "k") is True
    assert await blobs("get", "k") is None
    assert await blobs("delete", "k") is False
    assert await usage(db) == 0
    assert await row_count(db) == 0


async def test_overwrite_replaces_everything_and_changes_usage_by_the_difference(
        store: BlobStore, db: Database, clock: Clock) -> None:
    blobs = blobs_call(store, quota=1_000_000)
    await blobs("put", "k", b"x" * 1000, {"contentType": "image/png", "public": True})
    assert await usage(db) == 1 + 1000
    clock.now += 1000
    meta = await blobs("put", "k", "short")
    assert meta == {"key": "k", "size": 5, "contentType": TEXT_TYPE, "sha256": sha(b"short"),
                    "public": False, "updatedAt": clock.now}
    assert await usage(db) == 1 + 5
    got = await blobs("get", "k")
    assert got.data == b"short" and dict(got.value) == meta
    await blobs("put", "k", b"y" * 3000)
    assert await usage(db) == 1 + 3000
    # the same size again: no change
    await blobs("put", "k", b"z" * 3000)
    assert await usage(db) == 1 + 3000
    assert await row_count(db) == 1
    assert await usage(db) == await stored_bytes(db)


async def test_usage_counts_key_bytes_not_characters(store: BlobStore, db: Database) -> None:
    blobs = blobs_call(store)
    await blobs("put", "é😀", b"abc")           # 2 + 4 key bytes
    assert await usage(db) == 6 + 3
    await blobs("delete", "é😀")
    assert await usage(db) == 0


# -- list ---------------------------------------------------------------------------------------

async def test_list_is_ordered_by_code_point_and_paginates(store: BlobStore,
                                                           clock: Clock) -> None:
    blobs = blobs_call(store)
    keys = ["a", "a/1", "a/2", "a\U0010ffff", "a\U0010ffffz", "ab", "b", "é", "é/x", "éa",
            "\ud7ffx", "\ue000", "😀", "😀/1", "z"]
    for i, key in enumerate(reversed(keys)):
        clock.now += 1
        await blobs("put", key, key * (i + 1))
    seen: list[str] = []
    cursor = None
    pages = 0
    for _ in range(20):
        page = await blobs("list", "", {"limit": 4, "cursor": cursor})
        pages += 1
        for item in page["items"]:
            data = (await blobs("get", item["key"])).data
            assert item == {"key": item["key"], "size": len(data),
                            "contentType": TEXT_TYPE, "sha256": sha(data), "public": False,
                            "updatedAt": item["updatedAt"]}
            assert "data" not in item
        seen += [item["key"] for item in page["items"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    by_bytes = sorted(keys, key=lambda k: k.encode("utf-8"))
    assert seen == by_bytes
    assert pages == 4
    # exactly a page's worth: no cursor
    whole = await blobs("list", "", {"limit": len(keys)})
    assert len(whole["items"]) == len(keys) and whole["cursor"] is None
    default = await blobs("list")
    assert [i["key"] for i in default["items"]] == by_bytes and default["cursor"] is None
    assert [i["key"] for i in (await blobs("list", None))["items"]] == by_bytes

    def with_prefix(p: str) -> list[str]:
        return [k for k in by_bytes if k.startswith(p)]

    for prefix in ("a", "a/", "é", "é/", "😀", "a\U0010ffff", "\U0010ffff", "\ue000", "zz"):
        got = [i["key"] for i in (await blobs("list", prefix))["items"]]
        assert got == with_prefix(prefix), prefix
    # a prefix with non-ASCII, paged one at a time
    pages_e: list[str] = []
    cursor = None
    for _ in range(10):
        page = await blobs("list", "é", {"limit": 1, "cursor": cursor})
        pages_e += [i["key"] for i in page["items"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert pages_e == ["é", "é/x", "éa"]


async def test_list_options_are_checked(store: BlobStore) -> None:
    blobs = blobs_call(store)
    await blobs("put", "k", "v")
    for limit in (0, 1001, "10", 1.5, True):
        with pytest.raises(CapabilityError, match="limit"):
            await blobs("list", "", {"limit": limit})
    assert len((await blobs("list", "", {"limit": 1000}))["items"]) == 1
    assert len((await blobs("list", "", {"limit": 10.0}))["items"]) == 1
    with pytest.raises(CapabilityError, match="invalid cursor"):
        await blobs("list", "", {"cursor": "%%%"})
    with pytest.raises(CapabilityError, match="invalid cursor"):
        await blobs("list", "", {"cursor": 5})
    with pytest.raises(CapabilityError, match="unknown option"):
        await blobs("list", "", {"after": "a"})
    with pytest.raises(CapabilityError, match="prefix must be a string"):
        await blobs("list", 5)
    with pytest.raises(KeyTooLarge):
        await blobs("list", "p" * (MAX_KEY_BYTES + 1))
    with pytest.raises(CapabilityError, match="options must be an object"):
        await blobs("list", "", 5)
    with pytest.raises(CapabilityError, match="takes 0 to 2 arguments"):
        await blobs("list", "", {}, "extra")


# -- keys, content types, options ---------------------------------------------------------------

async def test_invalid_keys_are_refused_and_nothing_is_stored(store: BlobStore,
                                                              db: Database) -> None:
    blobs = blobs_call(store)
    for bad in ("", None, 5, ["k"], "a\x00b", "a\nb", "\r", "\t", "a\x1fb", "a\x7fb"):
        for method, args in (("put", [bad, b"x"]), ("get", [bad]), ("delete", [bad]),
                             ("url", [bad])):
            with pytest.raises(CapabilityError) as info:
                await blobs(method, *args)
            assert type(info.value) is CapabilityError, (bad, method)
    # the limit is in UTF-8 bytes, not characters
    assert (await blobs("put", "k" * MAX_KEY_BYTES, b"x"))["size"] == 1
    assert (await blobs("put", "é" * (MAX_KEY_BYTES // 2), b"x"))["size"] == 1
    for too_long in ("k" * (MAX_KEY_BYTES + 1), "é" * (MAX_KEY_BYTES // 2 + 1),
                     "😀" * (MAX_KEY_BYTES // 4 + 1)):
        for method, args in (("put", [too_long, b"x"]), ("get", [too_long]),
                             ("delete", [too_long]), ("url", [too_long])):
            with pytest.raises(KeyTooLarge):
                await blobs(method, *args)
    # keys that look like paths or scopes are plain keys
    for odd in (" ", "../x", "a//b", "u:alice:x", "%2F", "?#&=", "\u2028"):
        await blobs("put", odd, odd)
        assert (await blobs("get", odd)).data == odd.encode("utf-8")
    assert await row_count(db) == 2 + 7
    assert await usage(db) == await stored_bytes(db)


@pytest.mark.parametrize("content_type", [
    "text/plain\r\nX-Injected: 1",
    "text/plain\nX: y",
    "text/html\r\n;x",              # CR/LF before the parameters
    "text/plain\n; charset=utf-8",
    "text/plain;\r\nx",
    "text/plain; a=\u00e9",
    "text/plain\x0b; a",
    "text/plain\x85; a",
    "textplain",
    "text/",
    "/plain",
    "",
    "text/pl ain",
    "text/plain; " + "x" * 300,     # over 255 characters
])
async def test_invalid_content_types_are_refused(store: BlobStore, db: Database,
                                                 content_type: str) -> None:
    blobs = blobs_call(store)
    with pytest.raises(CapabilityError, match="contentType"):
        await blobs("put", "k", b"data", {"contentType": content_type})
    assert await blobs("get", "k") is None
    assert await usage(db) == 0


async def test_content_type_bounds_and_types(store: BlobStore) -> None:
    blobs = blobs_call(store)
    at_limit = "a/" + "b" * 253
    assert len(at_limit) == 255
    assert (await blobs("put", "k", b"x", {"contentType": at_limit}))["contentType"] == at_limit
    with pytest.raises(CapabilityError, match="contentType"):
        await blobs("put", "k", b"x", {"contentType": at_limit + "b"})
    for bad in (5, True, ["text/plain"], {"type": "text/plain"}):
        with pytest.raises(CapabilityError, match="contentType"):
            await blobs("put", "k", b"x", {"contentType": bad})
    for good in ("application/vnd.api+json", "image/svg+xml", "text/plain;charset=utf-8",
                 "multipart/form-data; boundary=----x"):
        assert (await blobs("put", "g", b"x", {"contentType": good}))["contentType"] == good


async def test_options_and_arity_are_checked(store: BlobStore) -> None:
    blobs = blobs_call(store)
    for public in (1, 0, "true", [], {}):
        with pytest.raises(CapabilityError, match="public must be true or false"):
            await blobs("put", "k", b"x", {"public": public})
    with pytest.raises(CapabilityError, match="unknown option"):
        await blobs("put", "k", b"x", {"type": "image/png"})
    with pytest.raises(CapabilityError, match="options must be an object"):
        await blobs("put", "k", b"x", "image/png")
    with pytest.raises(CapabilityError, match="takes 2 to 3 arguments"):
        await blobs("put", "k")
    with pytest.raises(CapabilityError, match="takes 2 to 3 arguments"):
        await blobs("put", "k", b"x", {}, APP)
    with pytest.raises(CapabilityError, match="takes 1 argument, got 2"):
        await blobs("get", "k", OTHER)
    with pytest.raises(CapabilityError, match="takes 1 argument, got 2"):
        await blobs("delete", "k", {"app": OTHER})
    with pytest.raises(CapabilityError, match="takes 1 to 2 arguments"):
        await blobs("url", "k", {}, OTHER)
    with pytest.raises(CapabilityError, match="unknown option"):
        await blobs("url", "k", {"expires": 10})
    assert await blobs("get", "k") is None


async def test_a_users_blob_cannot_be_public(store: BlobStore, db: Database) -> None:
    alice = blobs_call(store, user="alice")
    with pytest.raises(CapabilityError, match="cannot be public"):
        await alice("user.put", "k", b"x", {"public": True})
    assert await alice("user.get", "k") is None
    meta = await alice("user.put", "k", b"x", {"public": False})
    assert meta["public"] is False
    assert await usage(db) == 2


# -- size limit and quota -----------------------------------------------------------------------

async def test_size_limit_leaves_nothing_stored(store: BlobStore, db: Database) -> None:
    blobs = blobs_call(store)
    assert (await blobs("put", "at", b"x" * LIMIT))["size"] == LIMIT
    with pytest.raises(ValueTooLarge, match=f"{LIMIT + 1} bytes"):
        await blobs("put", "over", b"x" * (LIMIT + 1))
    with pytest.raises(ValueTooLarge):
        await blobs("put", "over", "é" * (LIMIT // 2 + 1))     # UTF-8 bytes, not characters
    assert await blobs("get", "over") is None
    # an overwrite that is too large keeps the old blob
    with pytest.raises(ValueTooLarge):
        await blobs("put", "at", b"y" * (LIMIT + 1))
    assert (await blobs("get", "at")).data == b"x" * LIMIT
    assert await usage(db) == 2 + LIMIT
    alice = blobs_call(store, user="alice")
    with pytest.raises(ValueTooLarge):
        await alice("user.put", "over", b"x" * (LIMIT + 1))
    assert await row_count(db) == 1


async def test_the_default_limit_is_four_mib(db: Database, clock: Clock) -> None:
    blobs = blobs_call(BlobStore(db, url_secret=SECRET, clock=clock))
    assert MAX_BLOB_BYTES == 4 * 1024 * 1024
    data = secrets.token_bytes(1024) * 4096
    meta = await blobs("put", "max", data)
    assert meta["size"] == MAX_BLOB_BYTES and meta["sha256"] == sha(data)
    assert (await blobs("get", "max")).data == data
    with pytest.raises(ValueTooLarge):
        await blobs("put", "over", data + b"!")
    assert await blobs("get", "over") is None


def test_the_url_secret_must_be_long_enough(db: Database) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        BlobStore(db, url_secret=b"x" * 31)


async def test_quota_leaves_nothing_stored(store: BlobStore, db: Database) -> None:
    blobs = blobs_call(store, quota=10_000)
    for i in range(3):
        await blobs("put", f"k{i}", b"x" * 3000)
    assert await usage(db) == 3 * (2 + 3000)
    with pytest.raises(QuotaExceeded, match="quota"):
        await blobs("put", "k3", b"x" * 3000)
    assert await blobs("get", "k3") is None
    assert await usage(db) == 3 * 3002
    # growing an existing blob past the quota keeps the old one; shrinking is allowed
    with pytest.raises(QuotaExceeded):
        await blobs("put", "k0", b"y" * 4000)
    assert (await blobs("get", "k0")).data == b"x" * 3000
    await blobs("put", "k0", b"y" * 10)
    await blobs("put", "k3", b"z" * 2900)
    assert await usage(db) == 3002 * 2 + 12 + 2902
    # exactly at the quota is allowed, one byte more is not
    room = 10_000 - await usage(db)
    await blobs("put", "k4", b"w" * (room - 2))
    assert await usage(db) == 10_000
    with pytest.raises(QuotaExceeded):
        await blobs("put", "k5", b"")
    # a user's blobs count against the app's quota too
    alice = blobs_call(store, quota=10_000, user="alice")
    with pytest.raises(QuotaExceeded):
        await alice("user.put", "a", b"1")
    assert await alice("user.get", "a") is None
    assert await usage(db) == await stored_bytes(db) == 10_000
    # deleting frees room
    assert await blobs("delete", "k1") is True
    await alice("user.put", "a", b"1")
    assert await usage(db) == await stored_bytes(db)


@given(ops=st.lists(st.tuples(st.sampled_from(["put", "put", "put-text", "delete"]),
                              st.sampled_from(["", "u:alice", "u:bob"]),
                              st.sampled_from(["a", "b", "ü", "😀/x", "long" * 30]),
                              st.integers(0, 1500)),
                    max_size=30))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_usage_always_equals_the_bytes_stored(tmp_path_factory: pytest.TempPathFactory,
                                              ops: list[tuple[str, str, str, int]]) -> None:
    path = tmp_path_factory.mktemp("blob-usage")
    db = Database.open(StorageSettings(path=path / "fazt.db", key=secrets.token_bytes(32),
                                       readers=1))
    try:
        trio.run(_check_usage, db, ops)
    finally:
        db.close()


QUOTA = 4000


async def _check_usage(db: Database, ops: list[tuple[str, str, str, int]]) -> None:
    await _write(db, lambda c: c.execute("INSERT INTO apps VALUES ('alpha', 'now', NULL)"))
    store = BlobStore(db, url_secret=SECRET, clock=Clock(), max_blob_bytes=1200)
    callers = {scope: blobs_call(store, quota=QUOTA, user=scope[2:] or None)
               for scope in ("", "u:alice", "u:bob")}
    model: dict[tuple[str, str], bytes] = {}

    def used() -> int:
        return sum(len(k.encode("utf-8")) + len(v) for (_, k), v in model.items())

    for op, scope, key, size in ops:
        blobs = callers[scope]
        prefix = "user." if scope else ""
        if op == "delete":
            assert await blobs(prefix + "delete", key) is ((scope, key) in model)
            model.pop((scope, key), None)
            continue
        data: Any = bytes([size % 251]) * size if op == "put" else "t" * size
        new = len(key.encode("utf-8")) + size
        old = model.get((scope, key))
        delta = new - (0 if old is None else len(key.encode("utf-8")) + len(old))
        if size > 1200:
            with pytest.raises(ValueTooLarge):
                await blobs(prefix + "put", key, data)
        elif delta > 0 and used() + delta > QUOTA:
            with pytest.raises(QuotaExceeded):
                await blobs(prefix + "put", key, data)
        else:
            await blobs(prefix + "put", key, data)
            model[(scope, key)] = data if isinstance(data, bytes) else data.encode("utf-8")
        assert await usage(db) == used()
    for scope, blobs in callers.items():
        prefix = "user." if scope else ""
        listed = (await blobs(prefix + "list", "", {"limit": 1000}))["items"]
        assert {i["key"]: i["size"] for i in listed} == \
            {k: len(v) for (s, k), v in model.items() if s == scope}
        for (s, k), v in model.items():
            if s == scope:
                assert (await blobs(prefix + "get", k)).data == v
    assert await usage(db) == await stored_bytes(db) == used()


# -- isolation ----------------------------------------------------------------------------------

async def test_apps_and_users_never_see_each_others_blobs(store: BlobStore) -> None:
    alpha, beta = blobs_call(store), blobs_call(store, app=OTHER)
    alice, bob = blobs_call(store, user="alice"), blobs_call(store, user="bob")
    await alpha("put", "secret", "alpha's", {"public": True})
    await alice("user.put", "secret", "alice's")
    await bob("user.put", "secret", "bob's")
    assert await beta("get", "secret") is None
    assert (await beta("list", ""))["items"] == []
    assert await beta("delete", "secret") is False
    assert (await alpha("get", "secret")).data == b"alpha's"
    assert (await alice("user.get", "secret")).data == b"alice's"
    assert (await bob("user.get", "secret")).data == b"bob's"
    assert [i["key"] for i in (await alpha("list", ""))["items"]] == ["secret"]
    assert [i["key"] for i in (await alice("user.list", ""))["items"]] == ["secret"]
    # alice's user.* calls made as app OTHER see nothing of alpha's users
    alice_beta = blobs_call(store, app=OTHER, user="alice")
    assert await alice_beta("user.get", "secret") is None
    # a user's delete touches only that user's blob
    assert await bob("user.delete", "secret") is True
    assert (await alice("user.get", "secret")).data == b"alice's"
    assert (await alpha("get", "secret")).data == b"alpha's"
    # the user scope is a column of its own: no key spelling reaches it
    for key in ("u:alice:secret", "u:alice", "alice:secret", "../secret", "u:alice/secret"):
        assert await alpha("get", key) is None
    for method, args in (("user.get", ["secret"]), ("user.put", ["k", b"x"]),
                         ("user.list", [""]), ("user.delete", ["secret"]),
                         ("user.url", ["secret"])):
        with pytest.raises(AuthRequired):
            await alpha(method, *args)
    # the lookup behind the blob URLs is scoped the same way
    deadline = trio.current_time() + 5
    assert (await store.lookup(APP, "secret", scope="", deadline=deadline)).data == b"alpha's"
    assert (await store.lookup(APP, "secret", scope="u:alice", deadline=deadline)).data == \
        b"alice's"
    assert await store.lookup(APP, "secret", scope="u:bob", deadline=deadline) is None
    assert await store.lookup(OTHER, "secret", scope="", deadline=deadline) is None


# -- signed URLs --------------------------------------------------------------------------------

async def test_url_signature_verifies_only_for_what_it_was_made_for(store: BlobStore,
                                                                    clock: Clock) -> None:
    blobs = blobs_call(store)
    await blobs("put", "a/b.txt", "x")
    url = await blobs("url", "a/b.txt")
    assert url.startswith(URL_PREFIX + "a/b.txt?")
    q = query_of(url)
    assert set(q) == {"expires", "sig"}
    assert int(q["expires"]) == clock.now // 1000 + URL_DEFAULT_S
    exp, sig = q["expires"], q["sig"]
    assert store.check_url(APP, "a/b.txt", scope="", expires=exp, sig=sig) is True
    # another app, key, scope; a tampered signature or expiry
    assert store.check_url(OTHER, "a/b.txt", scope="", expires=exp, sig=sig) is False
    assert store.check_url(APP, "a/b.txT", scope="", expires=exp, sig=sig) is False
    assert store.check_url(APP, "a/b.txt", scope="u:alice", expires=exp, sig=sig) is False
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    assert store.check_url(APP, "a/b.txt", scope="", expires=exp, sig=flipped) is False
    assert store.check_url(APP, "a/b.txt", scope="", expires=exp, sig=sig[:-1]) is False
    assert store.check_url(APP, "a/b.txt", scope="", expires=exp, sig="") is False
    assert store.check_url(APP, "a/b.txt", scope="", expires=str(int(exp) + 1),
                           sig=sig) is False
    assert store.check_url(APP, "a/b.txt", scope="", expires=str(int(exp) - 1),
                           sig=sig) is False
    for bad in ("", "-1", "1e9", " " + exp, exp + " ", "9" * 13, "0x10"):
        assert store.check_url(APP, "a/b.txt", scope="", expires=bad, sig=sig) is False, bad
    # only a signature, or only an expiry: a bad URL, not an unsigned one
    assert store.check_url(APP, "a/b.txt", scope="", expires=None, sig=sig) is False
    assert store.check_url(APP, "a/b.txt", scope="", expires=exp, sig=None) is False
    # no signature at all: unsigned (public blobs only)
    assert store.check_url(APP, "a/b.txt", scope="", expires=None, sig=None) is None
    # another secret does not verify it
    other = BlobStore(store._db, url_secret=b"t" * 32, clock=clock)
    assert other.check_url(APP, "a/b.txt", scope="", expires=exp, sig=sig) is False
    # a URL for a missing blob is still made (it 404s when served)
    assert query_of(await blobs("url", "nothing"))["sig"]


@pytest.mark.parametrize("expires", ["\u00b2", "\u0661\u0662", "\uff11", "\u2460"])
def test_check_url_refuses_expiries_that_are_not_ascii_digits(store: BlobStore,
                                                              expires: str) -> None:
    # str.isdigit() is true for "²" and other non-ASCII digits; the HTTP layer percent-decodes
    # the query as UTF-8, so `?expires=%C2%B2&sig=x` reaches check_url as "²".
    assert store.check_url(APP, "k", scope="", expires=expires, sig="x") is False


@pytest.mark.parametrize("sig", ["\u00e9", "abc\u00ff", "😀"])
def test_check_url_refuses_non_ascii_signatures(store: BlobStore, clock: Clock,
                                                sig: str) -> None:
    # hmac.compare_digest raises TypeError on str with non-ASCII characters
    expires = str(clock.now // 1000 + 60)
    assert store.check_url(APP, "k", scope="", expires=expires, sig=sig) is False


async def test_url_expiry_with_a_controllable_clock(store: BlobStore, clock: Clock) -> None:
    blobs = blobs_call(store)
    clock.now = 1_800_000_000_500            # half-way through a second
    q = query_of(await blobs("url", "k", {"expiresIn": 60}))
    assert int(q["expires"]) == 1_800_000_000 + 60

    def check() -> bool | None:
        return store.check_url(APP, "k", scope="", expires=q["expires"], sig=q["sig"])

    assert check() is True
    clock.now += 59_000
    assert check() is True
    clock.now = (1_800_000_000 + 60) * 1000 + 999      # the expiry second itself is valid
    assert check() is True
    clock.now += 1                                      # after it, expired
    assert check() is False
    clock.now += 86_400_000
    assert check() is False
    # the clock moving back does not matter to a valid signature
    clock.now = 1_800_000_000_000
    assert check() is True


async def test_expires_in_bounds(store: BlobStore, clock: Clock) -> None:
    blobs = blobs_call(store)
    now_s = clock.now // 1000
    assert int(query_of(await blobs("url", "k", {"expiresIn": 1}))["expires"]) == now_s + 1
    assert int(query_of(await blobs("url", "k", {"expiresIn": URL_MAX_S}))["expires"]) == \
        now_s + URL_MAX_S
    assert int(query_of(await blobs("url", "k", {"expiresIn": 30.0}))["expires"]) == now_s + 30
    assert int(query_of(await blobs("url", "k", {}))["expires"]) == now_s + URL_DEFAULT_S
    assert int(query_of(await blobs("url", "k", None))["expires"]) == now_s + URL_DEFAULT_S
    for bad in (0, -1, URL_MAX_S + 1, 1.5, "60", True, float("inf")):
        with pytest.raises(CapabilityError, match="expiresIn"):
            await blobs("url", "k", {"expiresIn": bad})
    long = query_of(await blobs("url", "k", {"expiresIn": URL_MAX_S}))
    clock.now += URL_MAX_S * 1000
    assert store.check_url(APP, "k", scope="", expires=long["expires"], sig=long["sig"])
    clock.now += 1000
    assert not store.check_url(APP, "k", scope="", expires=long["expires"], sig=long["sig"])


async def test_user_urls_carry_the_scope(store: BlobStore) -> None:
    alice = blobs_call(store, user="alice")
    await alice("user.put", "photo", b"\xff")
    url = await alice("user.url", "photo", {"expiresIn": 60})
    q = query_of(url)
    assert q["scope"] == "u:alice"
    assert store.check_url(APP, "photo", scope="u:alice", expires=q["expires"],
                           sig=q["sig"]) is True
    assert store.check_url(APP, "photo", scope="u:bob", expires=q["expires"],
                           sig=q["sig"]) is False
    assert store.check_url(APP, "photo", scope="", expires=q["expires"], sig=q["sig"]) is False
    assert store.check_url(OTHER, "photo", scope="u:alice", expires=q["expires"],
                           sig=q["sig"]) is False
    # a scope without a signature is a bad URL, not an unsigned one
    assert store.check_url(APP, "photo", scope="u:alice", expires=None, sig=None) is False
    # the app's own url() for the same key signs another scope
    app_q = query_of(await blobs_call(store)("url", "photo", {"expiresIn": 60}))
    assert "scope" not in app_q and app_q["sig"] != q["sig"]


@pytest.mark.parametrize("key", ["with space.txt", "ünïcödé/😀.png", "100%/a%2Fb", "a/b/c",
                                 "?x=1&sig=y#frag", "+plus+", "a;b,c", "~-._", "\u2028"])
async def test_url_paths_decode_back_to_the_key(store: BlobStore, key: str) -> None:
    url = await blobs_call(store)("url", key)
    path = url.partition("?")[0]
    assert path.isascii() and " " not in path and "#" not in path
    assert key_of(url) == key
    q = query_of(url)
    assert store.check_url(APP, key, scope="", expires=q["expires"], sig=q["sig"]) is True


async def test_load_secret_is_made_once(db: Database) -> None:
    first = await BlobStore.load_secret(db, op_timeout_s=5)
    second = await BlobStore.load_secret(db, op_timeout_s=5)
    assert isinstance(first, bytes) and len(first) == 32
    assert first == second
    assert first != b"\x00" * 32
    # a store made with it signs URLs another store made with it verifies
    a = BlobStore(db, url_secret=first, clock=Clock())
    b = BlobStore(db, url_secret=second, clock=Clock())
    q = query_of(await blobs_call(a)("url", "k"))
    assert b.check_url(APP, "k", scope="", expires=q["expires"], sig=q["sig"]) is True


# -- budget -------------------------------------------------------------------------------------

async def test_a_slow_storage_call_ends_at_the_budget(store: BlobStore, delay: Delay,
                                                      db: Database) -> None:
    blobs = blobs_call(store, request_s=0.3)
    await blobs("put", "k", b"1")
    delay.seconds = 0.5
    for method, args in (("get", ["k"]), ("put", ["k2", b"2"]), ("list", [""]),
                         ("delete", ["nothing"])):
        started = trio.current_time()
        with pytest.raises(BudgetExceeded) as info:
            await blobs(method, *args)
        assert info.value.code == "storage_timeout", method
        assert trio.current_time() - started < 0.3 + 0.15, method
    delay.seconds = 0
    fresh = blobs_call(store)
    assert (await fresh("get", "k")).data == b"1"
    # a put cut off at the budget may or may not have been written; the ledger agrees anyway
    assert await usage(db) == await stored_bytes(db)
