"""The ``kv`` capability: an app's keys and JSON values, with expiry.

    await kv.set("count", 1)                    await kv.get("count")         -> 1
    await kv.set("session:ab", {...}, {ttlMs: 60000})
    await kv.increment("hits", 1)  -> 2         await kv.delete("count")      -> true
    await kv.list("session:", {limit: 50, cursor})  -> {items: [{key, value, expiresAt}], cursor}
    kv.user.get(...) ...                        the same, confined to the signed-in user

Rows are ``app_kv(app, scope, key)``: the app comes from the grant, never from JS, and the
scope ('' or 'u:<user>') is a column of its own, so no key reaches another app or user. Keys
are compared as UTF-8 bytes (code point order). Expired keys are never returned; ``sweep``
deletes them in the background. Every write goes through the group-commit writer (returned
means durable), checks the app's kv quota in the same transaction, and changes nothing when it
fails. Every call runs in the storage phase of the request's budget.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Any

import orjson
import trio

from fazt.capabilities import _store
from fazt.capabilities._registry import Call, Provider, RawJson
from fazt.capabilities._store import Clock, arity, options, wall_clock_ms, whole_number
from fazt.errors import (
    BudgetExceeded,
    CapabilityError,
    KeyTooLarge,
    StorageError,
)
from fazt.storage import Database

log = logging.getLogger("fazt.capabilities")

NAME = "kv"
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1024 * 1024           # the value as JSON text
MAX_TTL_MS = 10 * 365 * 86_400_000       # ten years
LIST_DEFAULT = 100
LIST_MAX = 1000
SWEEP_BATCH = 500
METHODS = ("get", "set", "delete", "list", "increment")


class KvStore:
    """The kv provider: the methods JS can call, and the background sweep of expired keys."""

    def __init__(self, db: Database, *, clock: Clock = wall_clock_ms,
                 max_value_bytes: int = MAX_VALUE_BYTES) -> None:
        self._db = db
        self._clock = clock
        self._max_value_bytes = max_value_bytes

    def provider(self) -> Provider:
        return _store.scoped_provider(NAME, {m: getattr(self, f"_{m}") for m in METHODS})

    # -- methods -----------------------------------------------------------------------------

    async def _get(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        key = _key(label, arity(label, args, 1, 1)[0])
        now = self._clock()

        def read(conn: Any) -> str | None:
            row = conn.execute("SELECT value FROM app_kv WHERE app = ? AND scope = ? AND key = ? "
                               "AND (expires_at IS NULL OR expires_at > ?)",
                               (call.app, scope, key, now)).fetchone()
            return None if row is None else row[0]

        value = await _store.read(self._db, call, read)
        return None if value is None else RawJson(value.encode("utf-8"))

    async def _set(self, call: Call, scope: str, label: str, args: list[Any]) -> None:
        key, value, *rest = arity(label, args, 2, 3)
        key = _key(label, key)
        text = _store.json_text(label, "value", value, self._max_value_bytes)
        ttl = _ttl(label, rest[0] if rest else None)
        now = self._clock()
        expires = None if ttl is None else now + ttl

        def write(conn: Any) -> None:
            _put(conn, call, scope, label, key, text, expires, now,
                 old_bytes=_size_of(conn, call.app, scope, key))

        await _store.write(self._db, call, write)

    async def _delete(self, call: Call, scope: str, label: str, args: list[Any]) -> bool:
        key = _key(label, arity(label, args, 1, 1)[0])
        now = self._clock()

        def write(conn: Any) -> bool:
            row = conn.execute("DELETE FROM app_kv WHERE app = ? AND scope = ? AND key = ? "
                               "RETURNING length(CAST(key AS BLOB)) + "
                               "length(CAST(value AS BLOB)), expires_at",
                               (call.app, scope, key)).fetchone()
            if row is None:
                return False
            _store.charge(conn, call, NAME, label, -row[0])
            return row[1] is None or row[1] > now    # an expired key was not there

        return bool(await _store.write(self._db, call, write))

    async def _list(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        page = _store.key_page(label, args, max_key_bytes=MAX_KEY_BYTES, default=LIST_DEFAULT,
                               maximum=LIST_MAX)
        rows, cursor = await _store.read_key_page(
            self._db, call, "SELECT key, value, expires_at FROM app_kv WHERE app = ? AND "
            "scope = ? AND (expires_at IS NULL OR expires_at > ?)",
            (call.app, scope, self._clock()), page)
        items = b",".join(
            b'{"key":' + orjson.dumps(key) + b',"value":' + value.encode("utf-8")
            + b',"expiresAt":' + (b"null" if expires is None else str(expires).encode()) + b"}"
            for key, value, expires in rows)
        return RawJson(b'{"items":[' + items + b'],"cursor":' + orjson.dumps(cursor) + b"}")

    async def _increment(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        key, *rest = arity(label, args, 1, 3)
        key = _key(label, key)
        by = rest[0] if rest and rest[0] is not None else 1
        if isinstance(by, bool) or not isinstance(by, (int, float)) or not math.isfinite(by):
            raise CapabilityError(f"{label}(key, by): by must be a finite number")
        ttl = _ttl(label, rest[1] if len(rest) > 1 else None)
        now = self._clock()

        def write(conn: Any) -> Any:
            row = conn.execute("SELECT value, expires_at FROM app_kv WHERE app = ? AND "
                               "scope = ? AND key = ?", (call.app, scope, key)).fetchone()
            live = row is not None and (row[1] is None or row[1] > now)
            current: Any = orjson.loads(row[0]) if live else 0
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise CapabilityError(f"{label}: the value of {key[:100]!r} is not a number")
            result = current + by
            if not math.isfinite(result) or (isinstance(result, int)
                                             and abs(result) > 2**63 - 1):
                raise CapabilityError(f"{label}: the result is out of range")
            text = orjson.dumps(result).decode()
            # A live key keeps its expiry unless a new ttlMs is given.
            expires = now + ttl if ttl is not None else (row[1] if live else None)
            _put(conn, call, scope, label, key, text, expires, now,
                 old_bytes=0 if row is None else _entry_bytes(key, row[0]))
            return result

        return await _store.write(self._db, call, write)

    # -- background --------------------------------------------------------------------------

    async def sweep(self, *, op_timeout_s: float) -> int:
        """Delete every key expired by now, in batches; returns how many."""
        total = 0
        while True:
            now = self._clock()

            def write(conn: Any, now: int = now) -> int:
                rows = conn.execute(
                    "DELETE FROM app_kv WHERE (app, scope, key) IN (SELECT app, scope, key "
                    "FROM app_kv WHERE expires_at <= ? LIMIT ?) RETURNING app, "
                    "length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))",
                    (now, SWEEP_BATCH)).fetchall()
                freed: dict[str, int] = defaultdict(int)
                for app, size in rows:
                    freed[app] += size
                conn.executemany("UPDATE app_usage SET bytes = max(0, bytes - ?) WHERE app = ? "
                                 "AND capability = ?", [(n, a, NAME) for a, n in freed.items()])
                return len(rows)

            deleted = await self._db.write(write, deadline=trio.current_time() + op_timeout_s)
            total += deleted
            if deleted < SWEEP_BATCH:
                return total

    async def sweep_forever(self, *, interval_s: float, op_timeout_s: float) -> None:
        """Sweep every ``interval_s``; a sweep that fails (storage busy) is tried next time."""
        while True:
            await trio.sleep(interval_s)
            try:
                await self.sweep(op_timeout_s=op_timeout_s)
            except (StorageError, BudgetExceeded) as exc:
                log.warning("sweeping expired kv keys failed (%s); trying again in %.0f s",
                            exc.code, interval_s)

    # -- helpers -----------------------------------------------------------------------------


def _key(label: str, key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise CapabilityError(f"{label}: the key must be a non-empty string")
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise KeyTooLarge(f"{label}: the key is over {MAX_KEY_BYTES} bytes")
    if "\x00" in key:
        raise CapabilityError(f"{label}: the key contains a NUL character")
    return key


def _ttl(label: str, value: Any) -> int | None:
    ttl = options(label, value, ("ttlMs",)).get("ttlMs")
    return None if ttl is None else whole_number(label, "ttlMs", ttl, 1, MAX_TTL_MS)




def _put(conn: Any, call: Call, scope: str, label: str, key: str, text: str,
         expires: int | None, now: int, *, old_bytes: int) -> None:
    """Store ``text`` under ``key`` (inserted or replaced), charging the size difference."""
    _store.charge(conn, call, NAME, label, _entry_bytes(key, text) - old_bytes)
    conn.execute("INSERT INTO app_kv (app, scope, key, value, expires_at, updated_at) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                 "value = excluded.value, expires_at = excluded.expires_at, "
                 "updated_at = excluded.updated_at",
                 (call.app, scope, key, text, expires, now))


def _entry_bytes(key: str, value_text: str) -> int:
    return len(key.encode("utf-8")) + len(value_text.encode("utf-8"))


def _size_of(conn: Any, app: str, scope: str, key: str) -> int:
    row = conn.execute("SELECT length(CAST(key AS BLOB)) + length(CAST(value AS BLOB)) "
                       "FROM app_kv WHERE app = ? AND scope = ? AND key = ?",
                       (app, scope, key)).fetchone()
    return 0 if row is None else int(row[0])
