"""The docs query language: queries and sorts compiled to SQL, updates applied in Python.

Documents are JSON objects. A *field path* names a value inside one: ``"author"``,
``"meta.score"`` (object members only; arrays are not indexed into). ``_id``, ``_createdAt``
and ``_updatedAt`` are fields too (the row's columns).

Queries (every condition must hold)::

    {"author": "ann"}                           equality (a scalar: null, boolean, number, string)
    {"score": {"$gte": 10, "$lt": 20}}          operators on one field
    {"$or": [{...}, {...}], "$and": [...]}      alternatives / conjunctions of queries

    $eq v     the field is v: same kind (numbers by value, strings exactly); null matches
              a null or missing field
    $ne v     not $eq v (so a missing field matches, unless v is null)
    $gt $gte $lt $lte v   v a number or a string; matches fields of the same kind only
    $in [v..] $eq one of them (an empty list matches nothing); $nin: not $in
    $exists b the field is present (null counts as present) / missing
    $contains v  the field is an array with an element that is $eq v

Sort (``{"score": -1, "_id": 1}``, or ``"-score"``): values order as missing and null, then
numbers, strings, objects, arrays, false, true (objects and arrays do not order among
themselves); descending reverses that. Documents that compare equal keep insertion order.

Updates: ``{"$set": {path: value}, "$unset": {path: true}, "$inc": {path: n}}``. ``$set`` and
``$inc`` create missing parent objects; ``$inc`` of a missing field sets it to n. A path
through a value that is not an object is an error (for ``$unset``, nothing to remove).

Every field path becomes a SQL string literal (the rules of ``FIELD_PATH`` leave nothing to
escape but ``'``); every value is a bound parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fazt.capabilities._manifest import FIELD_PATH, MAX_FIELD_PATH
from fazt.errors import CapabilityError, InvalidQuery

MAX_CONDITIONS = 100       # leaves of one query
MAX_IN = 1000              # values of one $in / $nin
MAX_SORT_KEYS = 8
MAX_PARAMS = 10_000
COLUMNS = {"_id": ("id", "'text'"), "_createdAt": ("created_at", "'integer'"),
           "_updatedAt": ("updated_at", "'integer'")}
RESERVED = frozenset(COLUMNS)
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$contains")
UPDATES = ("$set", "$unset", "$inc")
_NUMBER = "IN ('integer','real')"
_RANK = ("CASE {t} WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 "
         "WHEN 'object' THEN 3 WHEN 'array' THEN 4 WHEN 'false' THEN 5 WHEN 'true' THEN 5 "
         "ELSE 0 END")

Scalar = None | bool | int | float | str


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def json_path(path: str) -> str:
    """The SQLite JSON path of a checked field path: ``meta.score`` -> ``$."meta"."score"``."""
    return "$" + "".join(f'."{name}"' for name in path.split("."))


def field_path(label: str, path: Any) -> str:
    if not isinstance(path, str) or len(path) > MAX_FIELD_PATH or not FIELD_PATH.fullmatch(path):
        raise InvalidQuery(f"{label}: {_show(path)} is not a field path (names separated by "
                           "dots, none empty, none starting with $, no \" or backslash)")
    head, _, rest = path.partition(".")
    if head in RESERVED and rest:
        raise InvalidQuery(f"{label}: {head} has no fields")
    return path


@dataclass
class Sql:
    """A WHERE or ORDER BY fragment and its parameters."""

    text: str
    params: list[Any] = field(default_factory=list)


class _Field:
    """The SQL for one field: its JSON type and its value."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path in COLUMNS:
            self.value, self.type = COLUMNS[path]
            self.array: str | None = None
        else:
            literal = sql_literal(json_path(path))
            self.value = f"json_extract(data, {literal})"
            self.type = f"json_type(data, {literal})"
            self.array = literal


class QueryCompiler:
    """Compiles one query (a fresh compiler per query: it counts conditions)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.conditions = 0
        self.params: list[Any] = []

    def compile(self, query: Any) -> str:
        if query is None:
            return "1"
        sql = self._query(query)
        if len(self.params) > MAX_PARAMS:
            raise InvalidQuery(f"{self.label}: the query has more than {MAX_PARAMS} values")
        return sql

    def _query(self, query: Any) -> str:
        if not isinstance(query, dict):
            raise InvalidQuery(f"{self.label}: a query must be an object, got {_show(query)}")
        parts = []
        for key, value in query.items():
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise InvalidQuery(f"{self.label}: {key} takes a non-empty list of queries")
                joined = f" {key[1:].upper()} ".join(f"({self._query(q)})" for q in value)
                parts.append(f"({joined})")
            elif key.startswith("$"):
                raise InvalidQuery(f"{self.label}: unknown query operator {_show(key)} at the "
                                   "top level (known: $and, $or; field operators go inside a "
                                   "field: {\"score\": {\"$gt\": 1}})")
            else:
                parts.append(self._field(field_path(self.label, key), value))
        return " AND ".join(parts) if parts else "1"

    def _field(self, path: str, condition: Any) -> str:
        f = _Field(path)
        if isinstance(condition, dict):
            operators = [k for k in condition if k.startswith("$")]
            if not condition or len(operators) != len(condition):
                raise InvalidQuery(
                    f"{self.label}: {path}: an object is not a value to compare with; use "
                    "operators ({\"$gt\": 1}) or dotted paths (\"a.b\") for nested fields")
            return " AND ".join(self._operator(f, op, v) for op, v in condition.items())
        if isinstance(condition, list):
            raise InvalidQuery(f"{self.label}: {path}: a list is not a value to compare with; "
                               "use $in or $contains")
        return self._operator(f, "$eq", condition)

    def _operator(self, f: _Field, op: str, value: Any) -> str:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidQuery(f"{self.label}: the query has more than {MAX_CONDITIONS} "
                               "conditions")
        where = f"{self.label}: {f.path}: {op}"
        if op == "$eq":
            return self._eq(f, _scalar(where, value))
        if op == "$ne":
            return f"NOT coalesce({self._eq(f, _scalar(where, value))}, 0)"
        if op in ("$gt", "$gte", "$lt", "$lte"):
            sign = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise InvalidQuery(f"{where} takes a number or a string, got {_show(value)}")
            kind = "= 'text'" if isinstance(value, str) else _NUMBER
            self.params.append(value)
            return f"({f.value} {sign} ? AND {f.type} {kind})"
        if op in ("$in", "$nin"):
            if not isinstance(value, list) or len(value) > MAX_IN:
                raise InvalidQuery(f"{where} takes a list of at most {MAX_IN} values")
            matched = self._in(f, [_scalar(where, v) for v in value])
            return matched if op == "$in" else f"NOT coalesce({matched}, 0)"
        if op == "$exists":
            if not isinstance(value, bool):
                raise InvalidQuery(f"{where} takes true or false, got {_show(value)}")
            if f.array is None:
                return "1" if value else "0"
            return f"{f.type} IS {'NOT ' if value else ''}NULL"
        if op == "$contains":
            element = _scalar(where, value)
            if f.array is None:
                return "0"
            return (f"({f.type} = 'array' AND EXISTS (SELECT 1 FROM json_each(data, {f.array}) "  # noqa: S608
                    f"AS e WHERE {self._eq_typed('e.value', 'e.type', element)}))")
        raise InvalidQuery(f"{self.label}: {f.path}: unknown operator {_show(op)} "
                           f"(known: {', '.join(OPERATORS)})")

    def _eq(self, f: _Field, value: Scalar) -> str:
        if value is None:
            return f"({f.type} IS NULL OR {f.type} = 'null')"
        return self._eq_typed(f.value, f.type, value)

    def _eq_typed(self, value_sql: str, type_sql: str, value: Scalar) -> str:
        if value is None:
            return f"{type_sql} = 'null'"
        if isinstance(value, bool):
            return f"{type_sql} = '{'true' if value else 'false'}'"
        self.params.append(value)
        kind = "= 'text'" if isinstance(value, str) else _NUMBER
        return f"({value_sql} = ? AND {type_sql} {kind})"

    def _in(self, f: _Field, values: list[Scalar]) -> str:
        if not values:
            return "0"
        parts = []
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        strings = [v for v in values if isinstance(v, str)]
        for group, kind in ((numbers, _NUMBER), (strings, "= 'text'")):
            if group:
                self.params.extend(group)
                marks = ",".join("?" * len(group))
                parts.append(f"({f.value} IN ({marks}) AND {f.type} {kind})")
        for special in (None, True, False):
            if any(v is special for v in values):
                parts.append(self._eq(f, special))
        return "(" + " OR ".join(parts) + ")"


def compile_sort(label: str, sort: Any) -> str:
    """ORDER BY terms for ``sort`` (always ending in insertion order)."""
    keys: list[tuple[str, int]]
    if sort is None:
        keys = []
    elif isinstance(sort, str):
        keys = [(sort[1:], -1) if sort.startswith("-") else (sort, 1)]
    elif isinstance(sort, dict):
        keys = []
        for path, direction in sort.items():
            if direction not in (1, -1) or isinstance(direction, bool):
                raise InvalidQuery(f"{label}: sort: {_show(path)} must be 1 (ascending) or -1 "
                                   f"(descending), got {_show(direction)}")
            keys.append((path, int(direction)))
    else:
        raise InvalidQuery(f"{label}: sort must be a field path (\"-score\" for descending) or "
                           f"an object such as {{\"score\": -1}}, got {_show(sort)}")
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidQuery(f"{label}: sort has more than {MAX_SORT_KEYS} fields")
    terms = []
    for path, direction in keys:
        f = _Field(field_path(f"{label}: sort", path))
        order = "ASC" if direction == 1 else "DESC"
        if f.array is None:
            terms.append(f"{f.value} {order}")
        else:
            terms.append(f"{_RANK.format(t=f.type)} {order}")
            terms.append(f"CASE WHEN {f.type} IN ('object','array') THEN NULL "
                         f"ELSE {f.value} END {order}")
    terms.append("rowid ASC")
    return ", ".join(terms)


# -- updates -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Update:
    """A checked update: (operator, path as names, operand) in the order given."""

    steps: tuple[tuple[str, tuple[str, ...], Any], ...]

    def apply(self, label: str, doc: dict[str, Any]) -> None:
        """Change ``doc`` in place (the caller keeps the original text to roll back to)."""
        for op, names, operand in self.steps:
            *parents, last = names
            target: Any = doc
            for i, name in enumerate(parents):
                nxt = target.get(name)
                if nxt is None and name not in target:
                    if op == "$unset":
                        break
                    nxt = target[name] = {}
                if not isinstance(nxt, dict):
                    if op == "$unset":
                        break
                    raise CapabilityError(
                        f"{label}: cannot {op[1:]} {'.'.join(names)}: "
                        f"{'.'.join(names[:i + 1])} is {_kind(nxt)}, not an object")
                target = nxt
            else:
                if op == "$set":
                    target[last] = operand
                elif op == "$unset":
                    target.pop(last, None)
                else:
                    current = target.get(last, 0)
                    if isinstance(current, bool) or not isinstance(current, (int, float)):
                        raise CapabilityError(f"{label}: cannot inc {'.'.join(names)}: it is "
                                              f"{_kind(current)}, not a number")
                    result = current + operand
                    if not math.isfinite(result) or (isinstance(result, int)
                                                     and not -(2**63) <= result < 2**63):
                        raise CapabilityError(f"{label}: {'.'.join(names)}: the result is out "
                                              "of range")
                    target[last] = result


def parse_update(label: str, changes: Any) -> Update:
    if not isinstance(changes, dict) or not changes:
        raise InvalidQuery(f"{label}: changes must be an object of update operators, e.g. "
                           "{\"$set\": {\"done\": true}}")
    steps: list[tuple[str, tuple[str, ...], Any]] = []
    for op, fields in changes.items():
        if op not in UPDATES:
            hint = (" (to replace fields write {\"$set\": {...}})" if not op.startswith("$")
                    else "")
            raise InvalidQuery(f"{label}: unknown update operator {_show(op)} "
                               f"(known: {', '.join(UPDATES)}){hint}")
        if not isinstance(fields, dict) or not fields:
            raise InvalidQuery(f"{label}: {op} takes a non-empty object of field paths")
        for path, operand in fields.items():
            path = field_path(f"{label}: {op}", path)
            if path.partition(".")[0] in RESERVED:
                raise InvalidQuery(f"{label}: {op}: {path} is set by the server")
            if op == "$inc" and (isinstance(operand, bool)
                                 or not isinstance(operand, (int, float))):
                raise InvalidQuery(f"{label}: $inc: {path} takes a number, got {_show(operand)}")
            if op == "$set":
                check_fields(f"{label}: $set: {path}", operand)
            steps.append((op, tuple(path.split(".")), operand))
    paths = [".".join(names) for _, names, _ in steps]
    for i, a in enumerate(paths):
        for j, b in enumerate(paths):
            if i != j and (a == b or b.startswith(a + ".")):
                raise InvalidQuery(f"{label}: the update changes {a} and {b}, which overlap")
    return Update(tuple(steps))


def check_fields(label: str, value: Any) -> None:
    """Every object member name in ``value`` must be usable in a field path."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for name, child in item.items():
                if not FIELD_PATH.fullmatch(name) or "." in name:
                    raise CapabilityError(
                        f"{label}: field name {_show(name)} is not allowed (names are not "
                        "empty and have no '.', '\"', backslash or leading '$')")
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _scalar(where: str, value: Any) -> Scalar:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return float(value)         # SQLite integers are 64-bit; JS numbers are doubles anyway
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise InvalidQuery(f"{where} takes null, a boolean, a number or a string, got "
                       f"{_kind(value)} (compare nested fields by path: \"a.b\")")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
