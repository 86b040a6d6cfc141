"""The docs capability against a small pure-Python model of the query language, written from
the specification in ``fazt/capabilities/_query.py``'s docstring (and not from its code):
hypothesis generates documents, queries, sorts and updates, and find, findOne, count, update
and delete must agree with the model on a real encrypted database."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fazt.capabilities.docs import DocStore
from fazt.errors import CapabilityError
from fazt.storage import Database
from tests.capabilities.conftest import Clock, caller

# -- the model ---------------------------------------------------------------------------------

MISSING = object()
SERVER_FIELDS = ("_id", "_createdAt", "_updatedAt")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def lookup(doc: dict[str, Any], path: str) -> Any:
    """The value at ``path`` (object members only), or MISSING."""
    value: Any = doc
    for name in path.split("."):
        if not isinstance(value, dict) or name not in value:
            return MISSING
        value = value[name]
    return value


def equals(value: Any, wanted: Any) -> bool:
    """$eq: the same kind (numbers by value, strings exactly); null is null or missing."""
    if wanted is None:
        return value is MISSING or value is None
    if isinstance(wanted, bool):
        return isinstance(value, bool) and value == wanted
    if is_number(wanted):
        return is_number(value) and value == wanted
    return isinstance(value, str) and value == wanted


def holds(value: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return equals(value, operand)
    if op == "$ne":
        return not equals(value, operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        same_kind = is_number(value) if is_number(operand) else isinstance(value, str)
        if not same_kind:
            return False
        return {"$gt": value > operand, "$gte": value >= operand, "$lt": value < operand,
                "$lte": value <= operand}[op]
    if op == "$in":
        return any(equals(value, v) for v in operand)
    if op == "$nin":
        return not any(equals(value, v) for v in operand)
    if op == "$exists":
        return (value is not MISSING) is operand
    assert op == "$contains"
    return isinstance(value, list) and any(equals(e, operand) for e in value)


def matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, condition in query.items():
        if key == "$and":
            ok = all(matches(doc, q) for q in condition)
        elif key == "$or":
            ok = any(matches(doc, q) for q in condition)
        elif isinstance(condition, dict):
            value = lookup(doc, key)
            ok = all(holds(value, op, operand) for op, operand in condition.items())
        else:
            ok = equals(lookup(doc, key), condition)
        if not ok:
            return False
    return True


def sort_key(value: Any) -> tuple[int, Any]:
    """Missing and null, numbers, strings, objects, arrays, false, true; objects and arrays
    are equal among themselves."""
    if value is MISSING or value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (5, int(value))
    if is_number(value):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, 0) if isinstance(value, dict) else (4, 0)


def sort_keys(sort: Any) -> list[tuple[str, int]]:
    if sort is None:
        return []
    if isinstance(sort, str):
        return [(sort[1:], -1)] if sort.startswith("-") else [(sort, 1)]
    return list(sort.items())


def ordered(docs: list[dict[str, Any]], sort: Any) -> list[dict[str, Any]]:
    """Stable sorts from the last key to the first: equal keys keep insertion order, also
    for descending keys (Python's reverse=True is stable)."""
    result = list(docs)
    for path, direction in reversed(sort_keys(sort)):
        result.sort(key=lambda d, p=path: sort_key(lookup(d, p)), reverse=direction == -1)
    return result


class Conflict(Exception):
    """The update cannot be applied to this document."""


def apply(doc: dict[str, Any], changes: dict[str, dict[str, Any]]) -> None:
    for op, fields in changes.items():
        for path, operand in fields.items():
            *parents, last = path.split(".")
            target = doc
            for name in parents:
                if name not in target:
                    if op == "$unset":
                        break
                    target[name] = {}
                elif not isinstance(target[name], dict):
                    if op == "$unset":
                        break
                    raise Conflict(path)
                target = target[name]
            else:
                if op == "$set":
                    target[last] = copy.deepcopy(operand)
                elif op == "$unset":
                    target.pop(last, None)
                elif last not in target:
                    target[last] = operand
                elif is_number(target[last]):
                    result = target[last] + operand
                    # Beyond the docstring: an integer result past 64 bits, or a double that is
                    # not finite, is refused too (a double as large as 2**63 is a double).
                    if not math.isfinite(result) or (isinstance(result, int) and not isinstance(
                            result, bool) and not -(2**63) <= result < 2**63):
                        raise Conflict(path)
                    target[last] = result
                else:
                    raise Conflict(path)


class Model:
    """A collection: documents as find returns them, in insertion order."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def find(self, query: dict[str, Any] | None, sort: Any = None, limit: int = 100,
             offset: int = 0) -> list[dict[str, Any]]:
        found = [d for d in self.docs if matches(d, query or {})]
        return ordered(found, sort)[offset:offset + limit]

    def update(self, query: dict[str, Any], changes: dict[str, Any], now: int) -> int | None:
        """The count, or None when a document conflicts (then nothing changes)."""
        targets = [i for i, d in enumerate(self.docs) if matches(d, query)]
        new = {}
        for i in targets:
            doc = copy.deepcopy(self.docs[i])
            try:
                apply(doc, changes)
            except Conflict:
                return None
            doc["_updatedAt"] = now
            new[i] = doc
        for i, doc in new.items():
            self.docs[i] = doc
        return len(targets)

    def delete(self, query: dict[str, Any]) -> int:
        before = len(self.docs)
        self.docs = [d for d in self.docs if not matches(d, query)]
        return before - len(self.docs)


def typed(value: Any) -> Any:
    """A value whose == tells 1, 1.0 and true apart, and sees key order."""
    if isinstance(value, dict):
        return ("object", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("array", [typed(v) for v in value])
    return (type(value).__name__, value)


# -- strategies --------------------------------------------------------------------------------

T0 = 1_800_000_000_000
TOP = ("a", "b", "it's", "é")
SUB = ("x", "y")
PATHS = (*TOP, *(f"{t}.{s}" for t in TOP[:3] for s in SUB), "a.x.y", "b.y.x")
IDS = ("d0", "d1", "d2", "B", "b", "é", "\U0001f600", "\uff61", "x y", "it's", "10", "9")

# Mostly values from a small set, so that queries (drawn apart from the documents) select
# some documents but not all; sometimes any finite float, 63-bit integer or short string.
COMMON = (None, True, False, 0, 1, 1.0, -0.0, 2.5, -1, "", "a", "B", "b", "é", "\U0001f600",
          "\uff61", "1", "it's")
common = st.sampled_from(COMMON)
wide = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                 st.integers(-(2**62), 2**62),
                 st.text(alphabet="abBé\U0001f600\uff61\x00'", max_size=3))


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each ``weight`` times as likely (one_of weighs its branches
    alike, repeated ones included)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(pool) - 1).flatmap(lambda i: pool[i])


scalars = weighted((5, common), (1, wide))
arrays = st.lists(scalars, max_size=3)
leaf = weighted((2, scalars), (1, arrays))
inner = st.one_of(leaf, st.dictionaries(st.sampled_from(SUB), leaf, max_size=2))
values = weighted((4, scalars), (2, arrays), (1, st.dictionaries(st.sampled_from(SUB), inner,
                                                                 max_size=2)))
documents = st.dictionaries(st.sampled_from(TOP), values, min_size=1, max_size=4)


@st.composite
def collections(draw: st.DrawFn) -> list[tuple[list[dict[str, Any]], int]]:
    """Batches of documents to insert with insertMany, and the clock step before each."""
    docs = draw(st.lists(documents, max_size=10))
    given_ids = draw(st.lists(st.sampled_from(IDS), unique=True, min_size=len(docs),
                              max_size=len(docs)))
    keep = draw(st.lists(st.booleans(), min_size=len(docs), max_size=len(docs)))
    with_ids = [{"_id": i, **d} if k else d for d, i, k in zip(docs, given_ids, keep,
                                                                 strict=True)]
    cuts = sorted(draw(st.lists(st.integers(0, len(docs)), max_size=2)))
    bounds = [0, *cuts, len(docs)]
    batches = [with_ids[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return [(batch, draw(st.integers(0, 2))) for batch in batches]


Pool = dict[str, list[Any]]


def pool_of(batches: list[tuple[list[dict[str, Any]], int]]) -> Pool:
    """The scalars each path holds in these documents (array elements included), the given
    _ids and the insertion times: query operands drawn from them select some documents."""
    pool: Pool = {"_id": [], "_createdAt": [], "_updatedAt": []}
    now = T0
    for batch, step in batches:
        now += step
        pool["_createdAt"].append(now)
        pool["_updatedAt"].append(now)
        for doc in batch:
            if "_id" in doc:
                pool["_id"].append(doc["_id"])
            for path in PATHS:
                value = lookup(doc, path)
                for v in value if isinstance(value, list) else [value]:
                    if v is not MISSING and not isinstance(v, (dict, list)):
                        pool.setdefault(path, []).append(v)
    return pool


def scalars_for(path: str, pool: Pool) -> st.SearchStrategy[Any]:
    if path == "_id":
        default = st.one_of(st.sampled_from(IDS), scalars)
    elif path in ("_createdAt", "_updatedAt"):
        default = st.one_of(st.integers(T0 - 1, T0 + 8), st.just(T0 + 2.0), scalars)
    else:
        default = scalars
    present = pool.get(path)
    if not present:
        return default
    return weighted((3, st.sampled_from(present)), (2, st.sampled_from(present).flatmap(twins)),
                    (1, default))


def twins(value: Any) -> st.SearchStrategy[Any]:
    """Values easily confused with ``value``: 1, 1.0, true and "1" are four different kinds
    of values (but 1 and 1.0 are equal numbers)."""
    if isinstance(value, bool):
        return st.sampled_from([int(value), float(value), str(int(value)), not value])
    if is_number(value):
        if value in (0, 1):
            return st.sampled_from([bool(value), bool(value), 1 - value, float(value),
                                    int(value), str(value)])
        near = [float(value), str(value), value + 1]
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            near.append(int(value))
        return st.sampled_from(near)
    if value is None:
        return st.sampled_from([False, 0, "", "null"])
    return st.sampled_from([value.upper(), value + "a", value[:-1]])


@st.composite
def conditions(draw: st.DrawFn, path: str, pool: Pool) -> Any:
    value = scalars_for(path, pool)
    if draw(st.integers(0, 2)) == 0:
        return draw(value)                       # plain equality
    condition = {}
    operators = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
                                 "$exists", "$contains"])
    for op in draw(st.lists(operators, min_size=1, max_size=draw(st.sampled_from([1, 1, 2])),
                            unique=True)):
        if op in ("$gt", "$gte", "$lt", "$lte"):
            operand = draw(value.filter(lambda v: is_number(v) or isinstance(v, str)))
        elif op in ("$in", "$nin"):
            operand = draw(st.lists(value, max_size=3))
        elif op == "$exists":
            operand = draw(st.booleans())
        else:
            operand = draw(value)
        condition[op] = operand
    return condition


QUERY_PATHS = (*PATHS, *TOP, "_id", "_createdAt", "_updatedAt")     # top-level fields twice


@st.composite
def queries(draw: st.DrawFn, pool: Pool, depth: int = 0) -> dict[str, Any]:
    """1 or 2 fields and $and/$or of such queries, nested at most twice."""
    present = sorted(path for path, found in pool.items() if found)
    paths = (weighted((2, st.sampled_from(present)), (1, st.sampled_from(QUERY_PATHS)))
             if present else st.sampled_from(QUERY_PATHS))
    fields = draw(st.lists(paths, min_size=1 if depth == 0 else 0,
                           max_size=draw(st.sampled_from([1, 1, 2])), unique=True))
    query = {path: draw(conditions(path, pool)) for path in fields}
    if depth < 2 and draw(st.integers(0, 2)) == 0:
        for key in draw(st.lists(st.sampled_from(["$and", "$or"]), min_size=1, max_size=2,
                                 unique=True)):
            query[key] = draw(st.lists(queries(pool, depth + 1), min_size=1, max_size=2))
    return query


sort_paths = st.sampled_from((*PATHS, "_id", "_createdAt", "_updatedAt"))
sorts = st.one_of(
    st.none(),
    st.builds(lambda p, desc: "-" + p if desc else p, sort_paths, st.booleans()),
    st.dictionaries(sort_paths, st.sampled_from([1, -1]), min_size=1, max_size=2))


def _overlap(paths: list[str]) -> bool:
    return any(a == b or b.startswith(a + ".")
               for i, a in enumerate(paths) for j, b in enumerate(paths) if i != j)


@st.composite
def updates(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """1 to 3 non-overlapping changes (overlaps are refused; test_docs.py checks that)."""
    paths = draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique=True)
                 .filter(lambda ps: not _overlap(ps)))
    changes: dict[str, dict[str, Any]] = {}
    for path in paths:
        op = draw(st.sampled_from(["$set", "$unset", "$inc"]))
        if op == "$set":
            operand: Any = draw(values)
        elif op == "$unset":
            operand = True
        else:
            operand = draw(st.one_of(st.integers(-5, 5), st.sampled_from([0.5, -2.25, 1e9])))
        changes.setdefault(op, {})[path] = operand
    return changes


# -- running both ------------------------------------------------------------------------------

_names = itertools.count()


class Harness:
    """The store and the model side by side, in a fresh collection."""

    def __init__(self, store: DocStore, clock: Clock) -> None:
        self.docs = caller(store.provider())
        self.clock = clock
        self.collection = f"c{next(_names)}"
        self.model = Model()

    async def load(self, batches: list[tuple[list[dict[str, Any]], int]]) -> None:
        for batch, step in batches:
            self.clock.now += step
            made = await self.docs("insertMany", self.collection, batch)
            expected = []
            for doc, out in zip(batch, made, strict=True):
                fields = {k: v for k, v in doc.items() if k != "_id"}
                expected.append({"_id": doc.get("_id", out["_id"]),
                                 "_createdAt": self.clock.now, "_updatedAt": self.clock.now,
                                 **copy.deepcopy(fields)})
            assert typed(made) == typed(expected)
            self.model.docs += expected
        await self.check_all()

    async def check_all(self) -> None:
        stored = await self.docs("find", self.collection, None, {"limit": 1000})
        assert typed(stored) == typed(self.model.docs)


def _run(db: Database, clock: Clock, fn: Any, *args: Any) -> None:
    async def main() -> None:
        clock.now = T0              # the times pool_of expects (each example, a new collection)
        harness = Harness(DocStore(db, clock=clock), clock)
        await fn(harness, *args)

    trio.run(main)


MODEL_SETTINGS = settings(max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow,
                                                 HealthCheck.filter_too_much])


@given(batches=collections(), data=st.data())
@MODEL_SETTINGS
def test_find_findone_and_count_agree_with_the_model(
        db: Database, clock: Clock, batches: Any, data: st.DataObject) -> None:
    reads = data.draw(st.lists(st.tuples(st.one_of(st.none(), queries(pool_of(batches))), sorts,
                                         st.one_of(st.none(), st.integers(1, 4)),
                                         st.one_of(st.none(), st.integers(0, 4))),
                               min_size=1, max_size=3))
    _run(db, clock, _reads, batches, reads)


async def _reads(h: Harness, batches: Any, reads: Any) -> None:
    await h.load(batches)
    for query, sort, limit, offset in reads:
        options = {"sort": sort, "limit": limit, "offset": offset}
        found = await h.docs("find", h.collection, query, options)
        expected = h.model.find(query, sort, limit or 100, offset or 0)
        assert typed(found) == typed(expected), (query, sort, limit, offset)
        count = await h.docs("count", h.collection, query)
        assert count == len(h.model.find(query, limit=1000)), query
        first = await h.docs("findOne", h.collection, query, {"sort": sort})
        everything = h.model.find(query, sort)
        assert typed(first) == typed(everything[0] if everything else None), (query, sort)


@given(batches=collections(), data=st.data())
@MODEL_SETTINGS
def test_update_agrees_with_the_model(db: Database, clock: Clock, batches: Any,
                                      data: st.DataObject) -> None:
    steps = data.draw(st.lists(st.tuples(queries(pool_of(batches)), updates(),
                                         st.integers(1, 3)), min_size=1, max_size=3))
    _run(db, clock, _updates, batches, steps)


async def _updates(h: Harness, batches: Any, steps: Any) -> None:
    await h.load(batches)
    for query, changes, step in steps:
        h.clock.now += step
        expected = h.model.update(query, changes, h.clock.now)
        if expected is None:
            with pytest.raises(CapabilityError) as info:
                await h.docs("update", h.collection, query, changes)
            assert info.value.code == "capability_error", info.value
            assert "cannot" in str(info.value)
        else:
            assert await h.docs("update", h.collection, query, changes) == expected, \
                (query, changes)
        await h.check_all()


@given(batches=collections(), data=st.data())
@MODEL_SETTINGS
def test_delete_agrees_with_the_model(db: Database, clock: Clock, batches: Any,
                                      data: st.DataObject) -> None:
    deletes = data.draw(st.lists(queries(pool_of(batches)), min_size=1, max_size=3))
    _run(db, clock, _deletes, batches, deletes)


async def _deletes(h: Harness, batches: Any, deletes: Any) -> None:
    await h.load(batches)
    for query in deletes:
        assert await h.docs("delete", h.collection, query) == h.model.delete(query), query
        await h.check_all()


@given(batches=collections(), data=st.data())
@MODEL_SETTINGS
def test_a_mixed_sequence_agrees_with_the_model(db: Database, clock: Clock, batches: Any,
                                                data: st.DataObject) -> None:
    pool = pool_of(batches)
    ops = data.draw(st.lists(st.one_of(
        st.tuples(st.just("update"), queries(pool), updates()),
        st.tuples(st.just("delete"), queries(pool), st.none()),
        st.tuples(st.just("insert"), documents, st.none()),
        st.tuples(st.just("find"), queries(pool), sorts)), min_size=1, max_size=6))
    _run(db, clock, _mixed, batches, ops)


async def _mixed(h: Harness, batches: Any, ops: Any) -> None:
    await h.load(batches)
    for op, first, second in ops:
        h.clock.now += 1
        if op == "update":
            expected = h.model.update(first, second, h.clock.now)
            if expected is None:
                with pytest.raises(CapabilityError, match="cannot"):
                    await h.docs("update", h.collection, first, second)
            else:
                assert await h.docs("update", h.collection, first, second) == expected
        elif op == "delete":
            assert await h.docs("delete", h.collection, first) == h.model.delete(first)
        elif op == "insert":
            made = await h.docs("insert", h.collection, first)
            h.model.docs.append({"_id": made["_id"], "_createdAt": h.clock.now,
                                 "_updatedAt": h.clock.now, **copy.deepcopy(first)})
            assert typed(made) == typed(h.model.docs[-1])
        else:
            found = await h.docs("find", h.collection, first, {"sort": second})
            assert typed(found) == typed(h.model.find(first, second)), (first, second)
    await h.check_all()


# -- the model itself, on the specification's examples ---------------------------------------

def test_the_model_follows_the_specification() -> None:
    doc = {"_id": "x", "n": 1, "f": 1.0, "t": True, "z": None, "s": "b", "arr": [1, None, "s"],
           "o": {"k": {"deep": 2}}}
    assert matches(doc, {"n": 1.0}) and matches(doc, {"f": 1}) and not matches(doc, {"t": 1})
    assert matches(doc, {"missing": None}) and matches(doc, {"z": None})
    assert matches(doc, {"missing": {"$ne": 1}}) and not matches(doc, {"missing": {"$ne": None}})
    assert not matches(doc, {"s": {"$gt": 1}}) and matches(doc, {"s": {"$gt": "a"}})
    assert not matches(doc, {"n": {"$in": []}}) and matches(doc, {"n": {"$nin": []}})
    assert matches(doc, {"z": {"$exists": True}}) and matches(doc, {"q": {"$exists": False}})
    assert matches(doc, {"arr": {"$contains": None}})
    assert not matches(doc, {"arr": {"$contains": True}})
    assert matches(doc, {"o.k.deep": 2}) and not matches(doc, {"arr.0": 1})
    assert matches(doc, {"$or": [{"n": 2}, {"s": "b"}], "$and": [{"f": {"$lte": 1}}]})
    mixed = [{"_id": str(i), "v": v} for i, v in enumerate(
        [True, "a", {}, [1], None, 2, False, "\U0001f600", "\uff61", 1.5])] + [{"_id": "m"}]
    assert [d["_id"] for d in ordered(mixed, "v")] == ["4", "m", "9", "5", "1", "8", "7", "2",
                                                       "3", "6", "0"]
    assert [d["_id"] for d in ordered(mixed, {"v": -1})] == ["0", "6", "3", "2", "7", "8",
                                                             "1", "5", "9", "4", "m"]
    updated = {"n": 1, "o": {}}
    apply(updated, {"$set": {"p.q": 1}, "$inc": {"n": 2, "new": 0.5},
                    "$unset": {"o.none": True, "n.x": True}})
    assert updated == {"n": 3, "o": {}, "p": {"q": 1}, "new": 0.5}
    for bad in ({"$inc": {"s": 1}}, {"$set": {"n.x": 1}}, {"$inc": {"z": 1}}):
        with pytest.raises(Conflict):
            apply(copy.deepcopy(doc), bad)
