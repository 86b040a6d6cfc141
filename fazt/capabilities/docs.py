"""The ``docs`` capability: collections of JSON documents, queried like MongoDB.

    await docs.insert("posts", {title: "Hi", author: "ann"})  -> {_id, _createdAt, _updatedAt, ...}
    await docs.get("posts", id)                               -> the document or null
    await docs.find("posts", {author: "ann", score: {$gte: 3}}, {sort: {score: -1}, limit: 20})
    await docs.findOne("posts", {author: "ann"})              -> the first match or null
    await docs.update("posts", {_id: id}, {$set: {title: "Hello"}, $inc: {views: 1}}) -> count
    await docs.delete("posts", {author: "ann"})               -> count
    await docs.count("posts", {author: "ann"})                -> count
    docs.user.insert(...) ...                                  the same, confined to the user

The query language is in ``_query.py``. Rows are ``app_docs(app, scope, collection, id)`` (the
app from the grant, never from JS). Writes go through the group-commit writer (returned means
durable), are charged to the app's docs quota in the same transaction and change nothing when
they fail: an update that fails on one document leaves every document as it was. Indexes the
manifest names (``"docs": {"indexes": {"posts": ["author"]}}``) are partial expression indexes
kept in step with the live deploy by ``sync_indexes``, which the deploy's transaction runs.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from fazt.capabilities import _store
from fazt.capabilities._manifest import COLLECTION, DocsRequest, Requested
from fazt.capabilities._query import (
    QueryCompiler,
    check_fields,
    compile_sort,
    json_path,
    parse_update,
    sql_literal,
)
from fazt.capabilities._registry import Call, Provider, RawJson
from fazt.capabilities._store import Clock, arity, options, wall_clock_ms, whole_number
from fazt.errors import CapabilityError, DocumentExists, KeyTooLarge
from fazt.storage import Database

NAME = "docs"
MAX_DOCUMENT_BYTES = 1024 * 1024      # a document as JSON text
MAX_ID_BYTES = 256
FIND_DEFAULT = 100
FIND_MAX = 1000
MAX_OFFSET = 1_000_000
INSERT_MANY_MAX = 1000
METHODS = ("insert", "insertMany", "get", "find", "findOne", "update", "delete", "count")
_SIZE = ("length(CAST(collection AS BLOB)) + length(CAST(id AS BLOB)) + "
         "length(CAST(data AS BLOB))")
_INDEX_PREFIX = "docs:"


class DocStore:
    """The docs provider, and the upkeep of the indexes apps declare."""

    def __init__(self, db: Database, *, clock: Clock = wall_clock_ms,
                 max_document_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self._db = db
        self._clock = clock
        self._max_bytes = max_document_bytes

    def provider(self) -> Provider:
        return _store.scoped_provider(
            NAME, {m: _in_collection(getattr(self, f"_{m}")) for m in METHODS})

    # -- methods -----------------------------------------------------------------------------

    async def _insert(self, t: _Target, label: str, args: list[Any]) -> Any:
        (doc,) = arity(label, args, 1, 1)
        return RawJson(b"".join(await self._insert_docs(t, label, [doc])))

    async def _insertMany(self, t: _Target, label: str, args: list[Any]) -> Any:
        (docs,) = arity(label, args, 1, 1)
        if not isinstance(docs, list) or not 1 <= len(docs) <= INSERT_MANY_MAX:
            raise CapabilityError(f"{label}: takes a list of 1 to {INSERT_MANY_MAX} documents")
        return RawJson(b"[" + b",".join(await self._insert_docs(t, label, docs)) + b"]")

    async def _insert_docs(self, t: _Target, label: str, docs: list[Any]) -> list[bytes]:
        rows = [self._new_row(label, doc) for doc in docs]
        ids = [row[0] for row in rows]
        if len(set(ids)) != len(ids):
            raise DocumentExists(f"{label}: two documents have the same _id")
        now = self._clock()

        def write(conn: Any) -> None:
            grown = 0
            for doc_id, text in rows:
                if conn.execute(
                        "INSERT INTO app_docs (app, scope, collection, id, data, created_at, "
                        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (t.app, t.scope, t.collection, doc_id, text, now, now)).rowcount == 0:
                    raise DocumentExists(f"{label}: {t.collection} already has a document "
                                         f"with _id {doc_id[:100]!r}")
                grown += _size(t.collection, doc_id, text)
            _store.charge(conn, t.call, NAME, label, grown)

        await _store.write(self._db, t.call, write)
        return [_output(doc_id, now, now, text) for doc_id, text in rows]

    async def _get(self, t: _Target, label: str, args: list[Any]) -> Any:
        (doc_id,) = arity(label, args, 1, 1)
        doc_id = _id(label, doc_id)

        def read(conn: Any) -> Any:
            return conn.execute("SELECT id, created_at, updated_at, data FROM app_docs WHERE "
                                "app = ? AND scope = ? AND collection = ? AND id = ?",
                                (t.app, t.scope, t.collection, doc_id)).fetchone()

        row = await _store.read(self._db, t.call, read)
        return None if row is None else RawJson(_output(*row))

    async def _find(self, t: _Target, label: str, args: list[Any]) -> Any:
        query, *rest = arity(label, args, 0, 2) or [None]
        given = options(label, rest[0] if rest else None, ("sort", "limit", "offset"))
        limit = whole_number(label, "limit", given.get("limit", FIND_DEFAULT), 1, FIND_MAX)
        offset = whole_number(label, "offset", given.get("offset", 0), 0, MAX_OFFSET)
        rows = await self._select(t, label, query, given.get("sort"), limit, offset)
        return RawJson(b"[" + b",".join(_output(*row) for row in rows) + b"]")

    async def _findOne(self, t: _Target, label: str, args: list[Any]) -> Any:
        query, *rest = arity(label, args, 0, 2) or [None]
        given = options(label, rest[0] if rest else None, ("sort",))
        rows = await self._select(t, label, query, given.get("sort"), 1, 0)
        return RawJson(_output(*rows[0])) if rows else None

    async def _select(self, t: _Target, label: str, query: Any, sort: Any, limit: int,
                      offset: int) -> list[Any]:
        compiler = QueryCompiler(label)
        where = t.where(compiler.compile(query))
        order = compile_sort(label, sort)

        def read(conn: Any) -> list[Any]:
            rows: list[Any] = conn.execute(
                f"SELECT id, created_at, updated_at, data FROM app_docs WHERE {where} "  # noqa: S608
                f"ORDER BY {order} LIMIT ? OFFSET ?",
                [t.scope, *compiler.params, limit, offset]).fetchall()
            return rows

        rows: list[Any] = await _store.read(self._db, t.call, read)
        return rows

    async def _count(self, t: _Target, label: str, args: list[Any]) -> int:
        query = (arity(label, args, 0, 1) or [None])[0]
        compiler = QueryCompiler(label)
        where = t.where(compiler.compile(query))

        def read(conn: Any) -> int:
            row = conn.execute(f"SELECT count(*) FROM app_docs WHERE {where}",  # noqa: S608
                               [t.scope, *compiler.params]).fetchone()
            return int(row[0])

        return int(await _store.read(self._db, t.call, read))

    async def _update(self, t: _Target, label: str, args: list[Any]) -> int:
        query, changes = arity(label, args, 2, 2)
        compiler = QueryCompiler(label)
        where = t.where(compiler.compile(query))
        update = parse_update(label, changes)
        now = self._clock()
        max_bytes = self._max_bytes

        def write(conn: Any) -> int:
            rows = conn.execute(f"SELECT rowid, data FROM app_docs WHERE {where}",  # noqa: S608
                                [t.scope, *compiler.params]).fetchall()
            grown = 0
            for rowid, text in rows:
                doc = orjson.loads(text)
                update.apply(label, doc)
                new = _store.json_text(label, "document", doc, max_bytes)
                grown += len(new.encode("utf-8")) - len(text.encode("utf-8"))
                conn.execute("UPDATE app_docs SET data = ?, updated_at = ? WHERE rowid = ?",
                             (new, now, rowid))
            _store.charge(conn, t.call, NAME, label, grown)
            return len(rows)

        return int(await _store.write(self._db, t.call, write))

    async def _delete(self, t: _Target, label: str, args: list[Any]) -> int:
        (query,) = arity(label, args, 1, 1)
        if query is None:
            raise CapabilityError(f"{label}: takes a query ({{}} deletes every document)")
        compiler = QueryCompiler(label)
        where = t.where(compiler.compile(query))

        def write(conn: Any) -> int:
            sizes = conn.execute(f"DELETE FROM app_docs WHERE {where} RETURNING {_SIZE}",  # noqa: S608
                                 [t.scope, *compiler.params]).fetchall()
            _store.charge(conn, t.call, NAME, label, -sum(s for (s,) in sizes))
            return len(sizes)

        return int(await _store.write(self._db, t.call, write))

    # -- indexes -----------------------------------------------------------------------------

    @staticmethod
    def sync_indexes(conn: Any, app: str, requested: Requested | None) -> None:
        """Make the app's docs indexes those ``requested`` names (None: drop them all). Runs
        in the transaction that makes a deploy live (or removes the app)."""
        wanted: dict[str, str] = {}
        request = requested.get(NAME) if requested is not None else None
        if isinstance(request, DocsRequest):
            for collection, indexes in request.indexes.items():
                for fields in indexes:
                    name = _index_name(app, collection, fields)
                    columns = ", ".join(f"json_extract(data, {sql_literal(json_path(f))})"
                                        for f in fields)
                    wanted[name] = (f'CREATE INDEX "{name}" ON app_docs(app, collection, '
                                    f"scope, {columns}) "
                                    f"WHERE app = {sql_literal(app)} AND "
                                    f"collection = {sql_literal(collection)}")
        prefix = f"{_INDEX_PREFIX}{app}:"
        existing = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'app_docs' "
            "AND substr(name, 1, ?) = ?", (len(prefix), prefix))}
        for name in sorted(existing - set(wanted)):
            conn.execute(f'DROP INDEX "{name}"')
        for name in sorted(set(wanted) - existing):
            conn.execute(wanted[name])

    def _new_row(self, label: str, doc: Any) -> tuple[str, str]:
        if not isinstance(doc, dict):
            raise CapabilityError(f"{label}: a document must be an object")
        if "_createdAt" in doc or "_updatedAt" in doc:
            raise CapabilityError(f"{label}: _createdAt and _updatedAt are set by the server")
        doc = dict(doc)
        given = doc.pop("_id", None)
        doc_id = str(uuid.uuid4()) if given is None else _id(label, given)
        check_fields(label, doc)
        return doc_id, _store.json_text(label, "document", doc, self._max_bytes)


def _in_collection(impl: Callable[[_Target, str, list[Any]], Awaitable[Any]]
                   ) -> _store.ScopedMethod:
    """A docs method takes the collection as its first argument: it works on a _Target."""

    async def method(call: Call, scope: str, label: str, args: list[Any]) -> Any:
        if not args:
            raise CapabilityError(f"{label}: the first argument is the collection name")
        return await impl(_Target(call, scope, _collection(label, args[0])), label, args[1:])

    return method


class _Target:
    """One call's rows: the app (from the grant), the scope and the collection."""

    def __init__(self, call: Call, scope: str, collection: str) -> None:
        self.call = call
        self.app = call.app
        self.scope = scope
        self.collection = collection

    def where(self, condition: str) -> str:
        # The app and collection are literals (checked names) so that the partial indexes of
        # sync_indexes apply (they lead with app, collection and scope, so that the planner,
        # which has no statistics, prefers them to the unique index); the scope is the first
        # parameter.
        return (f"app = {sql_literal(self.app)} AND collection = {sql_literal(self.collection)}"
                f" AND scope = ? AND ({condition})")


def _collection(label: str, name: Any) -> str:
    if not isinstance(name, str) or not COLLECTION.fullmatch(name):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise CapabilityError(f"{label}: {shown} is not a collection name (1 to 64 letters, "
                              "digits, _ . and -, not starting with . or -)")
    return name


def _id(label: str, value: Any) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise CapabilityError(f"{label}: _id must be a non-empty string without NUL")
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise KeyTooLarge(f"{label}: _id is over {MAX_ID_BYTES} bytes")
    return value



def _size(collection: str, doc_id: str, text: str) -> int:
    return len(collection.encode("utf-8")) + len(doc_id.encode("utf-8")) + len(
        text.encode("utf-8"))


def _output(doc_id: str, created: int, updated: int, text: str) -> bytes:
    """The document as JS sees it: its fields, with _id, _createdAt and _updatedAt first."""
    head = (b'{"_id":' + orjson.dumps(doc_id) + b',"_createdAt":' + str(created).encode()
            + b',"_updatedAt":' + str(updated).encode())
    body = text.encode("utf-8")
    return head + (b"}" if body == b"{}" else b"," + body[1:])


def _index_name(app: str, collection: str, fields: tuple[str, ...]) -> str:
    digest = hashlib.sha256("\x00".join((collection, *fields)).encode("utf-8")).hexdigest()
    return f"{_INDEX_PREFIX}{app}:{digest[:16]}"
