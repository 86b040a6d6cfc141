"""The docs capability against a real encrypted database: inserts and their all-or-nothing
rules, the query language on a small collection, sorting, updates (and their rollback on a
conflict), refused input with its error class, size limits and quotas, app and user
isolation, the storage phase of the budget, and the indexes the manifest asks for."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fazt.budget import Budget, BudgetPolicy
from fazt.capabilities import Call, parse_capabilities
from fazt.capabilities._query import QueryCompiler, compile_sort
from fazt.capabilities.docs import FIND_MAX, INSERT_MANY_MAX, MAX_ID_BYTES, DocStore, _Target
from fazt.errors import (
    AuthRequired,
    BudgetExceeded,
    CapabilityError,
    DocumentExists,
    InvalidQuery,
    KeyTooLarge,
    QuotaExceeded,
    ValueTooLarge,
)
from fazt.storage import Database
from tests.capabilities.conftest import APP, OTHER, Clock, Delay, _write, caller

T0 = 1_800_000_000_000          # the clock fixture's start
MAX_DOC = 4096


@pytest.fixture
def store(db: Database, clock: Clock) -> DocStore:
    return DocStore(db, clock=clock, max_document_bytes=MAX_DOC)


def docs_call(store: DocStore, **kwargs: Any) -> Any:
    """A function calling docs methods as JS would: docs("insert", "posts", {...})."""
    return caller(store.provider(), **kwargs)


async def refused(kind: type[Exception], match: str, call: Any, *args: Any) -> Exception:
    """``call(*args)`` raises exactly ``kind`` (not a subclass) with ``match`` in its message."""
    with pytest.raises(kind, match=match) as info:
        await call(*args)
    assert type(info.value) is kind, f"{type(info.value).__name__}: {info.value}"
    return info.value


async def usage(db: Database, app: str = APP) -> tuple[int, int]:
    """(the app's docs usage in the ledger, the bytes its rows hold)."""

    def read(conn: Any) -> tuple[int, int]:
        row = conn.execute("SELECT bytes FROM app_usage WHERE app = ? AND capability = 'docs'",
                           (app,)).fetchone()
        actual = conn.execute(
            "SELECT coalesce(sum(length(CAST(collection AS BLOB)) + length(CAST(id AS BLOB)) + "
            "length(CAST(data AS BLOB))), 0) FROM app_docs WHERE app = ?", (app,)).fetchone()[0]
        return (0 if row is None else int(row[0])), int(actual)

    return await db.read(read, deadline=trio.current_time() + 5)


def ids(docs: list[dict[str, Any]]) -> list[str]:
    return [d["_id"] for d in docs]


POSTS: list[dict[str, Any]] = [
    {"_id": "p1", "title": "Hello", "author": "ann", "score": 5, "tags": ["a", "b"],
     "meta": {"views": 10, "lang": "en"}},
    {"_id": "p2", "title": "World", "author": "bob", "score": 2.5, "tags": [1.0],
     "meta": {"views": 3, "lang": "fr", "deep": {"level": 2}}},
    {"_id": "p3", "title": "Again", "author": "ann", "score": None, "meta": {"views": 7}},
    {"_id": "p4", "title": "Quiet", "author": "cat"},
    {"_id": "p5", "title": "Typed", "author": "bob", "score": "high",
     "tags": [True, None, "1"], "meta": "flat"},
]


async def add_posts(docs: Any, clock: Clock) -> None:
    """POSTS, one a second: p1 at T0, p5 at T0 + 4000."""
    for post in POSTS:
        await docs("insert", "posts", post)
        clock.now += 1000


# -- insert ------------------------------------------------------------------------------------

async def test_insert_returns_the_server_fields_first_and_keeps_a_given_id(
        store: DocStore, clock: Clock, db: Database) -> None:
    docs = docs_call(store)
    made = await docs("insert", "posts", {"title": "Hi", "author": "ann", "n": {"x": [1, None]}})
    assert list(made) == ["_id", "_createdAt", "_updatedAt", "title", "author", "n"]
    assert str(uuid.UUID(made["_id"])) == made["_id"]
    assert made["_createdAt"] == made["_updatedAt"] == T0
    assert made["n"] == {"x": [1, None]}
    assert await docs("get", "posts", made["_id"]) == made

    clock.now += 5
    kept = await docs("insert", "posts", {"_id": "post-1", "title": "Given"})
    assert kept == {"_id": "post-1", "_createdAt": T0 + 5, "_updatedAt": T0 + 5,
                    "title": "Given"}
    assert list(kept) == ["_id", "_createdAt", "_updatedAt", "title"]
    empty = await docs("insert", "posts", {"_id": "empty"})
    assert empty == {"_id": "empty", "_createdAt": T0 + 5, "_updatedAt": T0 + 5}
    generated = await docs("insert", "posts", {"_id": None, "x": 1})      # null: generated
    assert str(uuid.UUID(generated["_id"])) == generated["_id"]
    before = await usage(db)

    clock.now += 5
    await refused(DocumentExists, "already has a document with _id 'post-1'", docs, "insert",
                  "posts", {"_id": "post-1", "title": "Other"})
    assert await docs("get", "posts", "post-1") == kept
    assert await docs("count", "posts") == 4
    assert await usage(db) == before
    # The same _id in another collection is another document.
    assert (await docs("insert", "drafts", {"_id": "post-1"}))["_id"] == "post-1"


async def test_insert_many_is_all_or_nothing(store: DocStore, db: Database) -> None:
    docs = docs_call(store)
    made = await docs("insertMany", "posts", [{"_id": "a", "n": 1}, {"_id": "b", "n": 2}, {}])
    assert [d.get("n") for d in made] == [1, 2, None]
    assert ids(made)[:2] == ["a", "b"]
    assert all(list(d)[:3] == ["_id", "_createdAt", "_updatedAt"] for d in made)
    before = await usage(db)
    assert before[0] == before[1] > 0

    # One duplicate among many: none of them is inserted.
    await refused(DocumentExists, "already has a document with _id 'a'", docs, "insertMany",
                  "posts", [{"_id": "c"}, {"_id": "d"}, {"_id": "a"}, {"_id": "e"}])
    # Two documents with the same _id in one call.
    await refused(DocumentExists, "same _id", docs, "insertMany", "posts",
                  [{"_id": "f"}, {"_id": "g"}, {"_id": "f"}])
    # One bad document among good ones.
    await refused(CapabilityError, "not allowed", docs, "insertMany", "posts",
                  [{"_id": "h"}, {"bad.name": 1}])
    await refused(CapabilityError, "must be an object", docs, "insertMany", "posts",
                  [{"_id": "i"}, 5])
    assert await docs("count", "posts") == 3
    for missing in "cdefghi":
        assert await docs("get", "posts", missing) is None
    assert await usage(db) == before

    await refused(CapabilityError, f"1 to {INSERT_MANY_MAX} documents", docs, "insertMany",
                  "posts", [])
    await refused(CapabilityError, f"1 to {INSERT_MANY_MAX} documents", docs, "insertMany",
                  "posts", [{}] * (INSERT_MANY_MAX + 1))
    await refused(CapabilityError, "list of 1 to", docs, "insertMany", "posts", {"_id": "x"})
    assert len(await docs("insertMany", "bulk", [{"i": i} for i in range(INSERT_MANY_MAX)])) \
        == INSERT_MANY_MAX
    assert await docs("count", "bulk") == INSERT_MANY_MAX


# -- reads and the query language ----------------------------------------------------------------

async def test_get_find_findone_and_count(store: DocStore, clock: Clock) -> None:
    docs = docs_call(store)
    await add_posts(docs, clock)
    assert await docs("get", "posts", "nope") is None
    p2 = await docs("get", "posts", "p2")
    assert p2 == {"_createdAt": T0 + 1000, "_updatedAt": T0 + 1000, **POSTS[1]}
    assert list(p2)[:3] == ["_id", "_createdAt", "_updatedAt"]
    # No query, null, {}: everything, in insertion order.
    everything = ["p1", "p2", "p3", "p4", "p5"]
    assert ids(await docs("find", "posts")) == everything
    assert ids(await docs("find", "posts", None)) == everything
    assert ids(await docs("find", "posts", {}, {"limit": None, "sort": None})) == everything
    assert await docs("count", "posts") == 5
    assert await docs("count", "posts", {}) == 5
    assert await docs("find", "empty") == []
    assert await docs("count", "empty") == 0
    assert await docs("findOne", "empty") is None

    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"author": "ann"}, ["p1", "p3"]),
        ({"author": "ann", "title": "Again"}, ["p3"]),
        ({"meta.views": {"$gte": 7}}, ["p1", "p3"]),
        ({"meta.views": {"$gt": 3, "$lt": 10}}, ["p3"]),
        ({"meta.deep.level": 2}, ["p2"]),
        ({"meta.lang": {"$exists": False}}, ["p3", "p4", "p5"]),   # p5's meta is a string
        ({"meta": {"$exists": True}}, ["p1", "p2", "p3", "p5"]),
        ({"score": {"$gt": 1}}, ["p1", "p2"]),                    # numbers only, not "high"
        ({"score": {"$gt": "a"}}, ["p5"]),                         # strings only
        ({"score": {"$lte": 5.0}}, ["p1", "p2"]),
        ({"score": 5.0}, ["p1"]),                                  # 5 == 5.0
        ({"score": True}, []),
        ({"score": None}, ["p3", "p4"]),                           # null or missing
        ({"score": {"$exists": True}}, ["p1", "p2", "p3", "p5"]),  # null is present
        ({"score": {"$ne": None}}, ["p1", "p2", "p5"]),
        ({"author": {"$ne": "ann"}}, ["p2", "p4", "p5"]),
        ({"nothing": {"$ne": 1}}, everything),                     # missing is not 1
        ({"author": {"$in": ["ann", "cat"]}}, ["p1", "p3", "p4"]),
        ({"author": {"$nin": ["ann", "cat"]}}, ["p2", "p5"]),
        ({"author": {"$in": []}}, []),
        ({"author": {"$nin": []}}, everything),
        ({"score": {"$in": [None, 5.0]}}, ["p1", "p3", "p4"]),
        ({"score": {"$in": ["5", True]}}, []),
        ({"tags": {"$contains": "a"}}, ["p1"]),
        ({"tags": {"$contains": 1}}, ["p2"]),                      # 1.0 is 1, true is not
        ({"tags": {"$contains": True}}, ["p5"]),
        ({"tags": {"$contains": None}}, ["p5"]),
        ({"tags": {"$contains": "1"}}, ["p5"]),
        ({"title": {"$contains": "H"}}, []),                       # not an array
        ({"tags.0": "a"}, []),                                     # arrays are not indexed
        ({"$or": [{"author": "cat"}, {"score": {"$lt": 3}}]}, ["p2", "p4"]),
        ({"$and": [{"author": "bob"}, {"meta": {"$exists": True}}]}, ["p2", "p5"]),
        ({"$or": [{"$and": [{"author": "ann"}, {"score": None}]}, {"_id": "p5"}],
          "title": {"$ne": "Typed"}}, ["p3"]),
        ({"_id": "p2"}, ["p2"]),
        ({"_id": {"$in": ["p1", "p4", "zz"]}}, ["p1", "p4"]),
        ({"_id": {"$gt": "p3"}}, ["p4", "p5"]),
        ({"_id": {"$exists": True}}, everything),
        ({"_id": None}, []),
        ({"_createdAt": {"$gte": T0 + 2000}}, ["p3", "p4", "p5"]),
        ({"_createdAt": T0 + 1000.0}, ["p2"]),
        ({"_updatedAt": {"$lt": T0 + 1000}}, ["p1"]),
        ({"_createdAt": {"$gt": "1"}}, []),                        # not a string
    ]
    for query, expected in cases:
        assert ids(await docs("find", "posts", query)) == expected, query
        assert await docs("count", "posts", query) == len(expected), query
        first = await docs("findOne", "posts", query)
        assert (first and first["_id"]) == (expected[0] if expected else None), query

    assert (await docs("findOne", "posts", {"author": "bob"}, {"sort": {"score": -1}}))[
        "_id"] == "p5"          # a string sorts above a number
    assert (await docs("findOne", "posts", None, {"sort": "-_createdAt"}))["_id"] == "p5"
    assert await docs("findOne", "posts", {"author": "nobody"}) is None


async def test_sort_limit_and_offset(store: DocStore, clock: Clock) -> None:
    docs = docs_call(store)
    await add_posts(docs, clock)

    async def order(sort: Any, **more: Any) -> list[str]:
        return ids(await docs("find", "posts", None, {"sort": sort, **more}))

    # missing and null (insertion order), numbers, strings
    assert await order("score") == ["p3", "p4", "p2", "p1", "p5"]
    assert await order({"score": 1}) == ["p3", "p4", "p2", "p1", "p5"]
    assert await order("-score") == ["p5", "p1", "p2", "p3", "p4"]
    assert await order({"score": -1.0}) == ["p5", "p1", "p2", "p3", "p4"]
    assert await order({"author": 1, "score": -1}) == ["p1", "p3", "p5", "p2", "p4"]
    assert await order({"author": -1, "score": 1}) == ["p4", "p2", "p5", "p3", "p1"]
    assert await order("author") == ["p1", "p3", "p2", "p5", "p4"]      # ties: insertion
    assert await order("-author") == ["p4", "p2", "p5", "p1", "p3"]     # ties: insertion
    assert await order("meta.views") == ["p4", "p5", "p2", "p3", "p1"]
    assert await order({"_id": -1}) == ["p5", "p4", "p3", "p2", "p1"]
    assert await order("-_createdAt") == ["p5", "p4", "p3", "p2", "p1"]
    assert await order({"_updatedAt": 1, "_id": -1}) == ["p1", "p2", "p3", "p4", "p5"]
    assert await order({}) == ["p1", "p2", "p3", "p4", "p5"]
    assert await order("_id", limit=2, offset=1) == ["p2", "p3"]
    assert await order("-score", limit=3) == ["p5", "p1", "p2"]
    assert await order(None, offset=4) == ["p5"]
    assert await order(None, offset=5) == []
    assert await order(None, limit=2.0) == ["p1", "p2"]     # a JS number that is whole
    assert ids(await docs("find", "posts", {"author": "ann"}, {"sort": "-score",
                                                              "limit": 1})) == ["p1"]


async def test_values_of_every_kind_sort_by_kind_then_value(store: DocStore) -> None:
    docs = docs_call(store)
    values: list[tuple[str, Any]] = [
        ("t1", True), ("s1", "b"), ("n1", 3), ("o1", {"x": 1}), ("a1", [2]), ("f1", False),
        ("z1", None), ("m1", "<missing>"), ("s2", "B"), ("n2", -1.5), ("a2", []),
        ("s3", "\U0001f600"), ("o2", {}), ("s4", "\uff61"), ("n3", 1), ("n4", 1.0),
        ("s5", "é"), ("z2", None), ("t2", True), ("s6", "b"), ("n5", 10), ("f2", False),
    ]
    for doc_id, value in values:
        await docs("insert", "mixed", {"_id": doc_id} if value == "<missing>"
                   else {"_id": doc_id, "v": value})
    ascending = ["z1", "m1", "z2",                              # null and missing, as inserted
                 "n2", "n3", "n4", "n1", "n5",                  # numbers (1 and 1.0 tie)
                 "s2", "s1", "s6", "s5", "s4", "s3",            # strings, by code point
                 "o1", "o2",                                    # objects, as inserted
                 "a1", "a2",                                    # arrays, as inserted
                 "f1", "f2", "t1", "t2"]
    descending = ["t1", "t2", "f1", "f2", "a1", "a2", "o1", "o2",
                  "s3", "s4", "s5", "s1", "s6", "s2",
                  "n5", "n1", "n3", "n4", "n2",
                  "z1", "m1", "z2"]
    assert ids(await docs("find", "mixed", None, {"sort": "v"})) == ascending
    assert ids(await docs("find", "mixed", None, {"sort": {"v": -1}})) == descending
    # A second key orders the ties of the first; a descending _id reverses them.
    assert ids(await docs("find", "mixed", None, {"sort": {"v": 1, "_id": -1}})) == [
        "z2", "z1", "m1", "n2", "n4", "n3", "n1", "n5", "s2", "s6", "s1", "s5", "s4", "s3",
        "o2", "o1", "a2", "a1", "f2", "f1", "t2", "t1"]


# -- updates -----------------------------------------------------------------------------------

async def test_update_sets_incs_and_unsets(store: DocStore, clock: Clock) -> None:
    docs = docs_call(store)
    await add_posts(docs, clock)
    clock.now = T0 + 60_000
    assert await docs("update", "posts", {"_id": "p4"},
                      {"$set": {"meta.deep.level": 1, "title": "Loud"},
                       "$inc": {"views": 2, "stats.reads": 1.5},
                       "$unset": {"gone": True, "nothing.here": True}}) == 1
    p4 = await docs("get", "posts", "p4")
    assert p4 == {"_id": "p4", "_createdAt": T0 + 3000, "_updatedAt": T0 + 60_000,
                  "title": "Loud", "author": "cat", "meta": {"deep": {"level": 1}},
                  "views": 2, "stats": {"reads": 1.5}}
    # Fields keep their place; new ones come last, in the order the update names them.
    assert list(p4) == ["_id", "_createdAt", "_updatedAt", "title", "author", "meta", "views",
                        "stats"]

    clock.now += 1
    assert await docs("update", "posts", {"author": "ann"},
                      {"$inc": {"meta.views": -1}, "$unset": {"tags": True}}) == 2
    p1, p3 = await docs("find", "posts", {"author": "ann"})
    assert (p1["meta"], p3["meta"]) == ({"views": 9, "lang": "en"}, {"views": 6})
    assert "tags" not in p1
    assert p1["_updatedAt"] == p3["_updatedAt"] == T0 + 60_001
    assert p1["_createdAt"] == T0
    assert await docs("update", "posts", {"author": "nobody"}, {"$set": {"x": 1}}) == 0
    assert await docs("count", "posts", {"x": {"$exists": True}}) == 0
    # $unset of a missing field (or through a non-object) changes nothing but _updatedAt.
    clock.now += 1
    assert await docs("update", "posts", {"_id": "p5"},
                      {"$unset": {"absent": True, "meta.lang": True, "title.x": True}}) == 1
    p5 = await docs("get", "posts", "p5")
    assert p5 == {**POSTS[4], "_createdAt": T0 + 4000, "_updatedAt": T0 + 60_002}
    # $inc keeps integers whole, and an int plus a float is a float.
    await docs("update", "posts", {"_id": "p1"}, {"$inc": {"score": 2}})
    assert (await docs("get", "posts", "p1"))["score"] == 7
    await docs("update", "posts", {"_id": "p1"}, {"$inc": {"score": 0.5}})
    assert (await docs("get", "posts", "p1"))["score"] == 7.5
    # $set stores any JSON value, objects and arrays included; null is a value.
    await docs("update", "posts", {"_id": "p2"},
               {"$set": {"meta": {"a": [1, {"b": None}]}, "score": None}})
    p2 = await docs("get", "posts", "p2")
    assert (p2["meta"], p2["score"]) == ({"a": [1, {"b": None}]}, None)
    # A query with no conditions updates everything.
    assert await docs("update", "posts", None, {"$set": {"all": True}}) == 5
    assert await docs("count", "posts", {"all": True}) == 5


async def test_a_conflict_on_the_last_document_leaves_every_document_unchanged(
        store: DocStore, clock: Clock, db: Database) -> None:
    docs = docs_call(store)
    made = await docs("insertMany", "counters", [
        {"_id": "c1", "n": 1, "box": {}}, {"_id": "c2", "n": 2, "box": {"k": 1}},
        {"_id": "c3", "n": "three", "box": 5}, {"_id": "c4", "n": None, "box": None}])
    before = await usage(db)
    clock.now += 10_000
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({"_id": {"$in": ["c1", "c2", "c3"]}}, {"$inc": {"n": 1}},
         "cannot inc n: it is a string, not a number"),
        ({"_id": {"$ne": "c3"}}, {"$inc": {"n": 1}}, "cannot inc n: it is null, not a number"),
        ({"_id": {"$in": ["c1", "c2", "c3"]}}, {"$set": {"box.k": 2}},
         "cannot set box.k: box is a number, not an object"),
        ({"_id": {"$in": ["c1", "c2", "c3"]}}, {"$inc": {"box.k": 2}},
         "cannot inc box.k: box is a number, not an object"),
        ({"_id": {"$in": ["c1", "c4"]}}, {"$set": {"box.k.deep": 1}},
         "cannot set box.k.deep: box is null, not an object"),
        ({"_id": {"$in": ["c1", "c2"]}}, {"$set": {"box.k.deep": 1}},
         "cannot set box.k.deep: box.k is a number, not an object"),
        ({}, {"$set": {"fine": 1}, "$inc": {"n": 1}}, "cannot inc n"),
    ]
    for query, changes, message in cases:
        error = await refused(CapabilityError, message, docs, "update", "counters", query,
                              changes)
        assert error.code == "capability_error"
        assert await docs("find", "counters") == made, changes
    assert await usage(db) == before
    # Without the conflicting document, the same update goes through.
    assert await docs("update", "counters", {"_id": {"$in": ["c1", "c2"]}},
                      {"$inc": {"n": 1}}) == 2
    assert [d.get("n") for d in await docs("find", "counters")] == [2, 3, "three", None]


async def test_an_update_may_not_name_overlapping_paths_or_server_fields(
        store: DocStore) -> None:
    docs = docs_call(store)
    original = await docs("insert", "posts", {"_id": "p", "a": {"b": 1}, "n": 1})
    bad: list[tuple[Any, str]] = [
        ({"$set": {"a": {}}, "$unset": {"a.b": True}}, "overlap"),
        ({"$inc": {"a.b": 1}, "$set": {"a": 1}}, "overlap"),
        ({"$set": {"a.b.c": 1}, "$unset": {"a.b": True}}, "overlap"),
        ({"$set": {"_id": "q"}}, "_id is set by the server"),
        ({"$inc": {"_updatedAt": 1}}, "_updatedAt is set by the server"),
        ({"$unset": {"_createdAt": True}}, "_createdAt is set by the server"),
        ({"$set": {"_id.x": 1}}, "_id has no fields"),
        ({"$push": {"a": 1}}, r"unknown update operator '\$push'"),
        ({"a": 1}, r"to replace fields write \{\"\$set\""),
        ({}, "changes must be an object"),
        ([], "changes must be an object"),
        (None, "changes must be an object"),
        ({"$set": {}}, r"\$set takes a non-empty object"),
        ({"$unset": ["a"]}, r"\$unset takes a non-empty object"),
        ({"$inc": {"n": "1"}}, r"\$inc: n takes a number"),
        ({"$inc": {"n": True}}, r"\$inc: n takes a number"),
        ({"$inc": {"n": None}}, r"\$inc: n takes a number"),
        ({"$set": {"a..b": 1}}, "is not a field path"),
        ({"$set": {"$a": 1}}, "is not a field path"),
        ({"$set": {"": 1}}, "is not a field path"),
    ]
    for changes, message in bad:
        await refused(InvalidQuery, message, docs, "update", "posts", {}, changes)
    assert await docs("get", "posts", "p") == original


async def test_an_update_may_not_name_the_same_path_under_two_operators(
        store: DocStore) -> None:
    """Two operators on the very same path overlap too. (A regression test: the overlap check
    once compared paths by identity, ``a is not b``; a one-name path is the same str object as
    the key it came from, so when both operators' keys were the same object - literals, or
    JSON keys from orjson's key cache, as the worker's calls are - the pair went through.)"""
    docs = docs_call(store)
    original = await docs("insert", "posts", {"_id": "p", "a": 1, "n": 1})
    for text in (b'{"$set": {"n": 5}, "$inc": {"n": 1}}',
                 b'{"$set": {"a": 2}, "$unset": {"a": true}}'):
        changes = orjson.loads(text)     # as the worker's JSON arrives
        await refused(InvalidQuery, "overlap", docs, "update", "posts", {}, changes)
        assert await docs("get", "posts", "p") == original


async def test_inc_keeps_results_within_64_bit_integers(store: DocStore) -> None:
    """A result a 64-bit integer holds is kept; one it cannot is refused. (Found: the check is
    ``abs(result) >= 2**63``, which also refuses -2**63, the smallest 64-bit integer, so a
    document holding it - insert accepts it - cannot even be incremented by 0.)"""
    docs = docs_call(store)
    await docs("insert", "n", {"_id": "top", "n": 2**63 - 2})
    await docs("insert", "n", {"_id": "bottom", "n": -(2**63) + 1})
    assert await docs("update", "n", {"_id": "top"}, {"$inc": {"n": 1}}) == 1
    await refused(CapabilityError, "out of range", docs, "update", "n", {"_id": "top"},
                  {"$inc": {"n": 1}})
    assert (await docs("get", "n", "top"))["n"] == 2**63 - 1
    assert await docs("update", "n", {"_id": "bottom"}, {"$inc": {"n": -1}}) == 1
    assert (await docs("get", "n", "bottom"))["n"] == -(2**63)
    await refused(CapabilityError, "out of range", docs, "update", "n", {"_id": "bottom"},
                  {"$inc": {"n": -1}})


# -- refused input -----------------------------------------------------------------------------

async def test_bad_collection_names_documents_and_field_names_are_refused(
        store: DocStore) -> None:
    docs = docs_call(store)
    for name in ("", ".hidden", "-x", "a/b", "a:b", "u:alice", "x" * 65, "é", "a b", None, 5,
                 ["posts"]):
        for method, args in (("insert", [{}]), ("find", []), ("get", ["x"]), ("count", []),
                             ("user.find", [])):
            call = docs_call(store, user="alice") if method.startswith("user.") else docs
            await refused(CapabilityError, "is not a collection name", call, method, name,
                          *args)
    assert (await docs("insert", "A-z_0.9" + "x" * 57, {"_id": "ok"}))["_id"] == "ok"

    for doc in ([], "text", 5, None, [{"a": 1}]):
        await refused(CapabilityError, "a document must be an object", docs, "insert",
                      "posts", doc)
    for doc in ({"_createdAt": 1}, {"_updatedAt": 1}):
        await refused(CapabilityError, "set by the server", docs, "insert", "posts", doc)
    for bad_name in ("a.b", "$a", 'a"b', "a\\b", "", "."):
        for doc in ({bad_name: 1}, {"ok": {bad_name: 1}}, {"ok": {"deeper": {bad_name: 1}}},
                    {"ok": [1, {bad_name: 1}]}):
            await refused(CapabilityError, "is not allowed", docs, "insert", "posts", doc)
            await refused(CapabilityError, "is not allowed", docs, "insertMany", "posts",
                          [{"_id": "fine"}, doc])
    await docs("insert", "posts", {"_id": "p"})
    for bad_name in ("a.b", "$a", 'a"b', "a\\b", ""):
        await refused(CapabilityError, "is not allowed", docs, "update", "posts", {},
                      {"$set": {"x": {"y": [{bad_name: 1}]}}})
    # Names that are fine: $ inside, quotes, spaces, unicode, a leading underscore.
    odd = {"a$b": 1, "it's": 2, "x y": 3, "é😀": 4, "_id2": 5, "-": 6}
    stored = await docs("insert", "posts", {"_id": "odd", **odd})
    assert await docs("get", "posts", "odd") == stored
    for name, value in odd.items():
        assert ids(await docs("find", "posts", {name: value})) == ["odd"], name
    assert await docs("count", "posts") == 2        # nothing else was written

    for bad_id in ("", 5, True, ["x"], {"a": 1}, "a\x00b"):
        await refused(CapabilityError, "_id must be a non-empty string", docs, "insert",
                      "posts", {"_id": bad_id})
        await refused(CapabilityError, "_id must be a non-empty string", docs, "get",
                      "posts", bad_id)


async def test_bad_queries_sorts_and_options_are_refused(store: DocStore) -> None:
    docs = docs_call(store)
    await docs("insert", "posts", {"_id": "p", "a": 1, "tags": [1]})
    bad_queries: list[tuple[Any, str]] = [
        ([], "a query must be an object"),
        ("a", "a query must be an object"),
        ({"$not": {"a": 1}}, r"unknown query operator '\$not'"),
        ({"$nor": []}, r"unknown query operator '\$nor'"),
        ({"a": {"$regex": "x"}}, r"unknown operator '\$regex'"),
        ({"a": {"$size": 1}}, r"unknown operator '\$size'"),
        ({"a": {"b": 1}}, "an object is not a value to compare with"),
        ({"a": {"$eq": 1, "b": 1}}, "an object is not a value to compare with"),
        ({"a": {}}, "an object is not a value to compare with"),
        ({"a": [1]}, "a list is not a value to compare with"),
        ({"a": {"$eq": {"b": 1}}}, r"\$eq takes null, a boolean, a number or a string"),
        ({"a": {"$eq": [1]}}, r"\$eq takes null, a boolean, a number or a string"),
        ({"a": {"$ne": {"b": 1}}}, r"\$ne takes null, a boolean"),
        ({"tags": {"$contains": [1]}}, r"\$contains takes null, a boolean"),
        ({"a": {"$in": [[1]]}}, r"\$in takes null, a boolean"),
        ({"a": {"$in": 1}}, r"\$in takes a list"),
        ({"a": {"$in": "ab"}}, r"\$in takes a list"),
        ({"a": {"$nin": {"x": 1}}}, r"\$nin takes a list"),
        ({"a": {"$in": list(range(1001))}}, r"\$in takes a list of at most 1000"),
        ({"a": {"$gt": None}}, r"\$gt takes a number or a string"),
        ({"a": {"$lte": True}}, r"\$lte takes a number or a string"),
        ({"a": {"$lt": [1]}}, r"\$lt takes a number or a string"),
        ({"a": {"$exists": 1}}, r"\$exists takes true or false"),
        ({"$and": []}, r"\$and takes a non-empty list"),
        ({"$or": {"a": 1}}, r"\$or takes a non-empty list"),
        ({"$or": [1]}, "a query must be an object"),
        ({"a..b": 1}, "is not a field path"),
        ({"a.": 1}, "is not a field path"),
        ({"a.$b": 1}, "is not a field path"),
        ({'a"b': 1}, "is not a field path"),
        ({"a\\b": 1}, "is not a field path"),
        ({"": 1}, "is not a field path"),
        ({"x" * 257: 1}, "is not a field path"),
        ({"_id.x": 1}, "_id has no fields"),
        ({"$or": [{"a": i} for i in range(101)]}, "more than 100 conditions"),
    ]
    for query, message in bad_queries:
        for method, extra in (("find", []), ("count", []), ("findOne", []), ("delete", []),
                              ("update", [{"$set": {"z": 1}}])):
            await refused(InvalidQuery, message, docs, method, "posts", query, *extra)
    assert await docs("find", "posts") == [await docs("get", "posts", "p")]
    assert "z" not in (await docs("get", "posts", "p"))

    bad_sorts: list[tuple[Any, str]] = [
        ({"a": 0}, "must be 1 .ascending. or -1"),
        ({"a": 2}, "must be 1 .ascending. or -1"),
        ({"a": True}, "must be 1 .ascending. or -1"),
        ({"a": "asc"}, "must be 1 .ascending. or -1"),
        ({"a": "-1"}, "must be 1 .ascending. or -1"),
        ({"a": None}, "must be 1 .ascending. or -1"),
        (["a"], "sort must be a field path"),
        (1, "sort must be a field path"),
        ("", "is not a field path"),
        ("-", "is not a field path"),
        ("a..b", "is not a field path"),
        ("$a", "is not a field path"),
        ({"_id.x": 1}, "_id has no fields"),
        ({f"f{i}": 1 for i in range(9)}, "more than 8 fields"),
    ]
    for sort, message in bad_sorts:
        await refused(InvalidQuery, message, docs, "find", "posts", {}, {"sort": sort})
        await refused(InvalidQuery, message, docs, "findOne", "posts", {}, {"sort": sort})

    for limit in (0, -1, FIND_MAX + 1, 1.5, "10", True):
        await refused(CapabilityError, f"limit must be a whole number from 1 to {FIND_MAX}",
                      docs, "find", "posts", {}, {"limit": limit})
    assert len(await docs("find", "posts", {}, {"limit": FIND_MAX})) == 1
    for offset in (-1, 0.5, "1", 1_000_001):
        await refused(CapabilityError, "offset must be a whole number", docs, "find", "posts",
                      {}, {"offset": offset})
    await refused(CapabilityError, "unknown option 'skip'", docs, "find", "posts", {},
                  {"skip": 1})
    await refused(CapabilityError, "unknown option 'limit'", docs, "findOne", "posts", {},
                  {"limit": 1})
    await refused(CapabilityError, "options must be an object", docs, "find", "posts", {},
                  "-a")

    arity: list[tuple[str, list[Any], str]] = [
        ("insert", [], "takes 1 argument, got 0"),
        ("insert", [{}, {}], "takes 1 argument, got 2"),
        ("insertMany", [], "takes 1 argument, got 0"),
        ("get", [], "takes 1 argument, got 0"),
        ("get", ["p", "q"], "takes 1 argument, got 2"),
        ("find", [{}, {}, {}], "takes 0 to 2 arguments, got 3"),
        ("findOne", [{}, {}, {}], "takes 0 to 2 arguments, got 3"),
        ("count", [{}, {}], "takes 0 to 1 arguments?, got 2"),
        ("update", [{}], "takes 2 arguments, got 1"),
        ("update", [{}, {"$set": {"a": 2}}, {}], "takes 2 arguments, got 3"),
        ("delete", [], "takes 1 argument, got 0"),
        ("delete", [{}, {}], "takes 1 argument, got 2"),
    ]
    for method, args, message in arity:
        await refused(CapabilityError, message, docs, method, "posts", *args)
    for method in ("insert", "find", "user.count"):
        await refused(CapabilityError, "the first argument is the collection name",
                      docs_call(store, user="u"), method)
    await refused(CapabilityError, r"takes a query \(\{\} deletes every document\)", docs,
                  "delete", "posts", None)
    assert await docs("count", "posts") == 1
    assert (await docs("get", "posts", "p"))["a"] == 1


# -- limits and the quota ----------------------------------------------------------------------

async def test_size_limits_leave_nothing_written(store: DocStore, db: Database) -> None:
    docs = docs_call(store)
    overhead = len(b'{"s":""}')
    await refused(ValueTooLarge, f"over the {MAX_DOC}-byte limit", docs, "insert", "posts",
                  {"_id": "big", "s": "x" * (MAX_DOC - overhead + 1)})
    await refused(ValueTooLarge, f"over the {MAX_DOC}-byte limit", docs, "insert", "posts",
                  {"s": "é" * ((MAX_DOC - overhead) // 2 + 1)})     # bytes, not characters
    await refused(ValueTooLarge, "over the", docs, "insertMany", "posts",
                  [{"_id": "ok"}, {"s": "x" * MAX_DOC}])
    assert await docs("count", "posts") == 0
    assert await usage(db) == (0, 0)
    # The _id is a column, not part of the document's size.
    small = await docs("insert", "posts", {"_id": "small", "s": "x" * 100})
    fits = await docs("insert", "posts", {"_id": "i" * MAX_ID_BYTES,
                                          "s": "x" * (MAX_DOC - overhead)})
    assert await docs("get", "posts", "i" * MAX_ID_BYTES) == fits
    # "small" would fit, the last document would not: neither changes.
    await refused(ValueTooLarge, "over the", docs, "update", "posts", {},
                  {"$set": {"t": "y" * (MAX_DOC - 150)}})
    await refused(ValueTooLarge, "over the", docs, "update", "posts", {"_id": "small"},
                  {"$set": {"s": "x" * MAX_DOC}})
    assert await docs("find", "posts") == [small, fits]
    stored = await usage(db)
    assert stored[0] == stored[1]
    assert await docs("update", "posts", {"_id": "small"},
                      {"$set": {"s": "x" * (MAX_DOC - overhead)}}) == 1

    for too_long in ("k" * (MAX_ID_BYTES + 1), "é" * (MAX_ID_BYTES // 2 + 1)):
        await refused(KeyTooLarge, f"_id is over {MAX_ID_BYTES} bytes", docs, "insert",
                      "posts", {"_id": too_long})
        await refused(KeyTooLarge, f"_id is over {MAX_ID_BYTES} bytes", docs, "insertMany",
                      "posts", [{"_id": "fine"}, {"_id": too_long}])
        await refused(KeyTooLarge, f"_id is over {MAX_ID_BYTES} bytes", docs, "get",
                      "posts", too_long)
    assert await docs("count", "posts") == 2


async def test_the_quota_refuses_growth_and_writes_nothing(store: DocStore,
                                                           db: Database) -> None:
    docs = docs_call(store, quota=500)
    doc_size = len("posts") + len("q0") + len('{"s":"' + "x" * 100 + '"}')      # 115
    for i in range(4):
        await docs("insert", "posts", {"_id": f"q{i}", "s": "x" * 100})
    assert await usage(db) == (4 * doc_size, 4 * doc_size)
    await refused(QuotaExceeded, "would grow to 575 bytes, over its", docs, "insert", "posts",
                  {"_id": "q4", "s": "x" * 100})
    await refused(QuotaExceeded, "quota", docs, "insertMany", "posts",
                  [{"_id": "q5"}, {"_id": "q6", "s": "x" * 100}])
    await refused(QuotaExceeded, "quota", docs, "update", "posts", {"_id": "q0"},
                  {"$set": {"more": "y" * 50}})
    assert await docs("count", "posts") == 4
    assert await docs("find", "posts", {"more": {"$exists": True}}) == []
    assert await usage(db) == (4 * doc_size, 4 * doc_size)
    # Shrinking is allowed at the quota, and so is growing into the room it made.
    assert await docs("update", "posts", {"_id": "q0"}, {"$set": {"s": "x"}}) == 1
    await docs("insert", "posts", {"_id": "q5", "s": "x" * 20})
    assert await docs("delete", "posts", {"_id": {"$in": ["q1", "q2"]}}) == 2
    await docs("insert", "posts", {"_id": "q6", "s": "x" * 100})
    used, actual = await usage(db)
    assert used == actual <= 500
    assert await usage(db, OTHER) == (0, 0)


@given(ops=st.lists(st.tuples(
    st.sampled_from(["insert", "insertMany", "set", "inc", "unset", "delete"]),
    st.sampled_from(["", "alice"]),                   # the app's scope or a user's
    st.sampled_from(["c", "posts.2024"]),
    st.sampled_from(["a", "é", "😀" * 3, "long" * 10, None]),
    st.text(alphabet="xé😀", max_size=40)), max_size=25))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_usage_always_equals_the_bytes_stored(db: Database, clock: Clock,
                                              ops: list[tuple[str, str, str, Any, str]]) -> None:
    trio.run(_check_usage, db, clock, ops)


async def _check_usage(db: Database, clock: Clock,
                       ops: list[tuple[str, str, str, Any, str]]) -> None:
    def clear(conn: Any) -> None:
        conn.execute("DELETE FROM app_docs")
        conn.execute("DELETE FROM app_usage")

    await _write(db, clear)
    store = DocStore(db, clock=clock, max_document_bytes=200)
    calls = {"": docs_call(store, quota=600), "alice": docs_call(store, quota=600,
                                                                   user="alice")}
    for op, who, collection, doc_id, text in ops:
        docs = calls[who]
        prefix = "user." if who else ""
        query = {} if doc_id is None else {"_id": doc_id}
        try:
            if op == "insert":
                await docs(prefix + "insert", collection, {"_id": doc_id, "t": text})
            elif op == "insertMany":
                await docs(prefix + "insertMany", collection,
                           [{"_id": doc_id, "t": text}, {"t": text[::-1], "n": 1}])
            elif op == "set":
                await docs(prefix + "update", collection, query, {"$set": {"t": text}})
            elif op == "inc":
                await docs(prefix + "update", collection, query, {"$inc": {"n": len(text)}})
            elif op == "unset":
                await docs(prefix + "update", collection, query, {"$unset": {"t": True}})
            else:
                await docs(prefix + "delete", collection, query)
        except (DocumentExists, QuotaExceeded, ValueTooLarge):
            pass            # refused: nothing was written, and the ledger must agree
        used, actual = await usage(db)
        assert used == actual, (op, who, collection, doc_id)
        assert used <= 600
    assert await usage(db, OTHER) == (0, 0)


# -- isolation ---------------------------------------------------------------------------------

async def test_apps_users_and_the_app_scope_never_see_each_others_documents(
        store: DocStore) -> None:
    alpha, beta = docs_call(store), docs_call(store, app=OTHER)
    alice, bob = docs_call(store, user="alice"), docs_call(store, user="bob")
    await alpha("insert", "posts", {"_id": "p1", "owner": "alpha"})
    await alice("user.insert", "posts", {"_id": "p1", "owner": "alice"})    # no conflict
    await bob("user.insertMany", "posts", [{"_id": "p1", "owner": "bob"},
                                           {"_id": "p2", "owner": "bob"}])
    # Another app sees nothing, and its writes touch only its own documents.
    assert await beta("find", "posts") == []
    assert await beta("get", "posts", "p1") is None
    assert await beta("count", "posts") == 0
    assert await beta("update", "posts", {}, {"$set": {"owner": "beta"}}) == 0
    assert await beta("delete", "posts", {}) == 0
    await beta("insert", "posts", {"_id": "p1", "owner": "beta"})           # no conflict
    assert await beta("update", "posts", {}, {"$set": {"seen": True}}) == 1
    # Every scope sees its own.
    assert [d["owner"] for d in await alpha("find", "posts")] == ["alpha"]
    assert [d["owner"] for d in await alice("user.find", "posts")] == ["alice"]
    assert [d["owner"] for d in await bob("user.find", "posts")] == ["bob", "bob"]
    assert (await alice("get", "posts", "p1"))["owner"] == "alpha"    # app scope, not hers
    assert await alice("user.get", "posts", "p2") is None
    assert await alice("user.count", "posts", {"owner": "bob"}) == 0
    assert (await alice("user.findOne", "posts"))["owner"] == "alice"
    assert await alice("user.update", "posts", {}, {"$set": {"edited": True}}) == 1
    assert await bob("user.count", "posts", {"edited": True}) == 0
    assert await alpha("count", "posts", {"edited": True}) == 0
    assert await bob("user.delete", "posts", {}) == 2
    assert [d["owner"] for d in await alice("user.find", "posts")] == ["alice"]
    assert [d["owner"] for d in await alpha("find", "posts")] == ["alpha"]
    assert [d.get("seen") for d in await beta("find", "posts")] == [True]
    with pytest.raises(DocumentExists):
        await alice("user.insert", "posts", {"_id": "p1"})

    # The scope and the app are columns of their own: no collection or _id spelling
    # reaches them.
    for doc_id in ("u:alice:p1", "u:alice", "alice:p1", "alpha:p1", "beta/p1", "../p1"):
        assert await alpha("get", "posts", doc_id) is None
        assert await beta("get", "posts", doc_id) is None
        assert await alice("user.get", "posts", doc_id) is None
    assert await alpha("find", "posts", {"_id": {"$gt": "p1"}}) == []
    for collection in ("u:alice:posts", "alpha:posts", "../posts", "posts/"):
        await refused(CapabilityError, "is not a collection name", alpha, "find", collection)
    for collection in ("Posts", "posts.", "posts_", "alpha.posts"):
        assert await alpha("find", collection) == []

    # The user methods need a user.
    for no_user in (alpha, docs_call(store, user="")):
        for method, args in (("user.find", []), ("user.insert", [{}]), ("user.get", ["p1"]),
                             ("user.update", [{}, {"$set": {"x": 1}}]),
                             ("user.delete", [{}]), ("user.count", []),
                             ("user.findOne", []), ("user.insertMany", [[{}]])):
            error = await refused(AuthRequired, "needs a signed-in user", no_user, method,
                                  "posts", *args)
            assert error.code == "auth_required"
    assert await alpha("count", "posts") == 1


# -- the budget --------------------------------------------------------------------------------

async def test_a_slow_storage_call_ends_at_the_budget_and_the_database_stays_usable(
        store: DocStore, delay: Delay) -> None:
    docs = docs_call(store, request_s=0.3)
    await docs("insert", "posts", {"_id": "p", "n": 1})
    delay.seconds = 0.5
    for method, args in (("find", [{"n": 1}]), ("count", []), ("get", ["p"]),
                         ("update", [{}, {"$inc": {"n": 1}}])):
        started = trio.current_time()
        with pytest.raises(BudgetExceeded) as info:
            await docs(method, "posts", *args)
        assert info.value.code == "storage_timeout"
        assert trio.current_time() - started < 0.3 + 0.1
    delay.seconds = 0
    fresh = docs_call(store)
    assert await fresh("get", "posts", "p") is not None
    await fresh("insert", "posts", {"_id": "q"})
    assert await fresh("update", "posts", {"_id": "q"}, {"$set": {"ok": True}}) == 1
    assert ids(await fresh("find", "posts", {"ok": True})) == ["q"]


# -- indexes -----------------------------------------------------------------------------------

async def _index_names(db: Database) -> dict[str, str]:
    def read(conn: Any) -> dict[str, str]:
        return dict(conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'index' "
                                 "AND name LIKE 'docs:%'").fetchall())

    return await db.read(read, deadline=trio.current_time() + 5)


async def _sync(db: Database, app: str, capabilities: Any) -> None:
    requested = None if capabilities is None else parse_capabilities(capabilities)
    await _write(db, lambda conn: DocStore.sync_indexes(conn, app, requested))


def _find_sql(query: Any, sort: Any = None) -> tuple[str, list[Any]]:
    """The statement docs.find runs for ``query`` in alpha's "posts" (built as _select does)."""
    budget = Budget.start(BudgetPolicy())
    compiler = QueryCompiler("docs.find")
    where = _Target(Call(app=APP, budget=budget), "", "posts").where(compiler.compile(query))
    sql = (f"SELECT id, created_at, updated_at, data FROM app_docs WHERE {where} "
           f"ORDER BY {compile_sort('docs.find', sort)} LIMIT ? OFFSET ?")
    return sql, ["", *compiler.params, 100, 0]


async def _plan(db: Database, query: Any, sort: Any = None) -> str:
    """EXPLAIN QUERY PLAN of a find, on the writer connection after a real statement of the
    same shape (EXPLAIN alone may plan with the schema the connection had before)."""
    sql, params = _find_sql(query, sort)

    def explain(conn: Any) -> str:
        conn.execute(sql, params).fetchall()
        return " | ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))

    return str(await _write(db, explain))


async def test_sync_indexes_creates_replaces_and_drops_only_the_apps_indexes(
        store: DocStore, db: Database, clock: Clock) -> None:
    alpha, beta = docs_call(store), docs_call(store, app=OTHER)
    await add_posts(alpha, clock)
    await beta("insert", "posts", {"author": "ann"})
    queries: list[tuple[Any, Any]] = [
        ({"author": "ann"}, None), ({"author": "bob", "meta.views": {"$gte": 3}}, "-score"),
        ({"author": {"$in": ["ann", "cat"]}}, {"meta.views": -1}), ({"title": "Quiet"}, None),
        ({"author": None}, None), ({"score": {"$gt": 1}}, "_id")]

    async def results() -> list[Any]:
        return [await alpha("find", "posts", q, {"sort": s}) for q, s in queries]

    without = await results()
    assert [len(r) for r in without] == [2, 1, 3, 1, 0, 2]

    await _sync(db, APP, {"docs": {"indexes": {"posts": ["author", ["author", "meta.views"]],
                                               "drafts": ["title"]}}})
    await _sync(db, OTHER, {"docs": {"indexes": {"posts": ["author"]}}})
    first = await _index_names(db)
    alpha_names = {n for n in first if n.startswith("docs:alpha:")}
    beta_names = {n for n in first if n.startswith("docs:beta:")}
    assert len(alpha_names) == 3 and len(beta_names) == 1 and len(first) == 4
    assert all(len(n.rsplit(":", 1)[1]) == 16 for n in first)
    assert sum("json_extract(data, '$.\"meta\".\"views\"')" in first[n] for n in alpha_names) \
        == 1
    assert all("WHERE app = 'alpha'" in first[n] for n in alpha_names)

    plan = await _plan(db, {"author": "ann"})
    assert "docs:alpha:" in plan, plan
    assert "docs:alpha:" in await _plan(db, {"author": "bob", "meta.views": {"$gte": 3}},
                                        "-score")
    assert await results() == without

    # The same request again changes nothing; another replaces the stale indexes.
    await _sync(db, APP, {"docs": {"indexes": {"posts": ["author", ["author", "meta.views"]],
                                               "drafts": ["title"]}}})
    assert await _index_names(db) == first
    await _sync(db, APP, {"docs": {"indexes": {"posts": ["title", "author"]}}})
    second = await _index_names(db)
    new_alpha = {n for n in second if n.startswith("docs:alpha:")}
    assert len(new_alpha) == 2
    assert len(new_alpha & alpha_names) == 1          # "author" on posts is kept
    assert {n: second[n] for n in beta_names} == {n: first[n] for n in beta_names}
    assert "docs:alpha:" in await _plan(db, {"title": "Quiet"})
    assert await results() == without

    # No docs request, or no manifest: every alpha index goes; beta's stay.
    await _sync(db, APP, {"kv": {}})
    assert set(await _index_names(db)) == beta_names
    await _sync(db, APP, {"docs": {"indexes": {"posts": ["author"]}}})
    await _sync(db, APP, None)
    assert set(await _index_names(db)) == beta_names
    assert "docs:" not in await _plan(db, {"author": "ann"})
    assert await results() == without
    assert len(await beta("find", "posts", {"author": "ann"})) == 1


async def test_the_planner_uses_an_index_for_the_plain_statement(db: Database) -> None:
    await _sync(db, APP, {"docs": {"indexes": {"posts": ["author", "it's.x"]}}})
    assert "docs:alpha:" in await _plan(db, {"it's.x": 1})     # a quote in the path
    sql = ("SELECT id FROM app_docs WHERE app = 'alpha' AND collection = 'posts' AND scope = ? "
           "AND (json_extract(data, '$.\"author\"') = ? AND "
           "json_type(data, '$.\"author\"') = 'text')")

    def explain(conn: Any) -> str:
        conn.execute(sql, ("", "ann")).fetchall()
        return " | ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql,
                                                          ("", "ann")))

    plan = await _write(db, explain)
    assert "USING INDEX docs:alpha:" in plan, plan
