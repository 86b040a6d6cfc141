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

import base64
import binascii
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import trio

from fazt.budget import Phase
from fazt.capabilities._registry import Call, Method, Provider, RawJson
from fazt.errors import (
    AuthRequired,
    BudgetExceeded,
    CapabilityError,
    KeyTooLarge,
    QuotaExceeded,
    StorageError,
    ValueTooLarge,
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
_USER_PREFIX = "u:"

Clock = Callable[[], int]
"""Unix time in milliseconds (a seam: tests move time forward)."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class KvStore:
    """The kv provider: the methods JS can call, and the background sweep of expired keys."""

    def __init__(self, db: Database, *, clock: Clock = wall_clock_ms,
                 max_value_bytes: int = MAX_VALUE_BYTES) -> None:
        self._db = db
        self._clock = clock
        self._max_value_bytes = max_value_bytes

    def provider(self) -> Provider:
        methods: dict[str, Method] = {}
        for name in ("get", "set", "delete", "list", "increment"):
            methods[name] = self._method(name, user=False)
            methods[f"user.{name}"] = self._method(name, user=True)
        return Provider(name=NAME, methods=methods)

    def _method(self, name: str, *, user: bool) -> Method:
        impl = getattr(self, f"_{name}")
        label = f"kv.user.{name}" if user else f"kv.{name}"

        async def method(call: Call, args: list[Any]) -> Any:
            if user and not call.user:
                raise AuthRequired(f"{label} needs a signed-in user")
            scope = _USER_PREFIX + call.user if user and call.user else ""
            return await impl(call, scope, label, args)

        return method

    # -- methods -----------------------------------------------------------------------------

    async def _get(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        key = _key(label, _arity(label, args, 1, 1)[0])
        now = self._clock()

        def read(conn: Any) -> str | None:
            row = conn.execute("SELECT value FROM app_kv WHERE app = ? AND scope = ? AND key = ? "
                               "AND (expires_at IS NULL OR expires_at > ?)",
                               (call.app, scope, key, now)).fetchone()
            return None if row is None else row[0]

        value = await self._read(call, read)
        return None if value is None else RawJson(value.encode("utf-8"))

    async def _set(self, call: Call, scope: str, label: str, args: list[Any]) -> None:
        key, value, *rest = _arity(label, args, 2, 3)
        key = _key(label, key)
        text = self._value_text(label, value)
        ttl = _ttl(label, rest[0] if rest else None)
        now = self._clock()
        expires = None if ttl is None else now + ttl

        def write(conn: Any) -> None:
            old = _size_of(conn, call.app, scope, key)
            _charge(conn, call, label, _entry_bytes(key, text) - old)
            conn.execute("INSERT INTO app_kv (app, scope, key, value, expires_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                         "value = excluded.value, expires_at = excluded.expires_at, "
                         "updated_at = excluded.updated_at",
                         (call.app, scope, key, text, expires, now))

        await self._write(call, write)

    async def _delete(self, call: Call, scope: str, label: str, args: list[Any]) -> bool:
        key = _key(label, _arity(label, args, 1, 1)[0])
        now = self._clock()

        def write(conn: Any) -> bool:
            row = conn.execute("DELETE FROM app_kv WHERE app = ? AND scope = ? AND key = ? "
                               "RETURNING length(CAST(key AS BLOB)) + "
                               "length(CAST(value AS BLOB)), expires_at",
                               (call.app, scope, key)).fetchone()
            if row is None:
                return False
            _charge(conn, call, label, -row[0])
            return row[1] is None or row[1] > now    # an expired key was not there

        return bool(await self._write(call, write))

    async def _list(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        prefix, *rest = _arity(label, args, 0, 2) or [""]
        if prefix is None:
            prefix = ""
        if not isinstance(prefix, str):
            raise CapabilityError(f"{label}(prefix): the prefix must be a string")
        if len(prefix.encode("utf-8")) > MAX_KEY_BYTES:
            raise KeyTooLarge(f"{label}(prefix): the prefix is over {MAX_KEY_BYTES} bytes")
        options = _options(label, rest[0] if rest else None, ("limit", "cursor"))
        limit = options.get("limit", LIST_DEFAULT)
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_MAX:
            raise CapabilityError(f"{label}: limit must be an integer from 1 to {LIST_MAX}")
        after = _decode_cursor(label, options.get("cursor"))
        low, high = prefix, _prefix_end(prefix)
        now = self._clock()

        def read(conn: Any) -> list[tuple[str, str, int | None]]:
            sql = ("SELECT key, value, expires_at FROM app_kv WHERE app = ? AND scope = ? "
                   "AND key >= ? AND (expires_at IS NULL OR expires_at > ?)")
            params: list[Any] = [call.app, scope, low, now]
            if high is not None:
                sql += " AND key < ?"
                params.append(high)
            if after is not None:
                sql += " AND key > ?"
                params.append(after)
            sql += " ORDER BY key LIMIT ?"
            params.append(limit + 1)
            rows: list[tuple[str, str, int | None]] = conn.execute(sql, params).fetchall()
            return rows

        rows = await self._read(call, read)
        more = len(rows) > limit
        rows = rows[:limit]
        items = b",".join(
            b'{"key":' + orjson.dumps(key) + b',"value":' + value.encode("utf-8")
            + b',"expiresAt":' + (b"null" if expires is None else str(expires).encode()) + b"}"
            for key, value, expires in rows)
        cursor = _encode_cursor(rows[-1][0]) if more and rows else None
        return RawJson(b'{"items":[' + items + b'],"cursor":' + orjson.dumps(cursor) + b"}")

    async def _increment(self, call: Call, scope: str, label: str, args: list[Any]) -> Any:
        key, *rest = _arity(label, args, 1, 3)
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
            old = 0 if row is None else _entry_bytes(key, row[0])
            _charge(conn, call, label, _entry_bytes(key, text) - old)
            conn.execute("INSERT INTO app_kv (app, scope, key, value, expires_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                         "value = excluded.value, expires_at = excluded.expires_at, "
                         "updated_at = excluded.updated_at",
                         (call.app, scope, key, text, expires, now))
            return result

        return await self._write(call, write)

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

    def _value_text(self, label: str, value: Any) -> str:
        data = orjson.dumps(value)
        if len(data) > self._max_value_bytes:
            raise ValueTooLarge(f"{label}: the value is {len(data)} bytes as JSON, over the "
                                f"{self._max_value_bytes}-byte limit")
        return data.decode("utf-8")

    async def _read(self, call: Call, fn: Callable[[Any], Any]) -> Any:
        with call.budget.fail_after(Phase.STORAGE) as scope:
            return await self._db.read(fn, deadline=scope.deadline)

    async def _write(self, call: Call, fn: Callable[[Any], Any]) -> Any:
        with call.budget.fail_after(Phase.STORAGE) as scope:
            return await self._db.write(fn, deadline=scope.deadline)


def _arity(label: str, args: list[Any], low: int, high: int) -> list[Any]:
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise CapabilityError(f"{label} takes {want} argument{'' if high == 1 else 's'}, "
                              f"got {len(args)}")
    return args


def _key(label: str, key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise CapabilityError(f"{label}: the key must be a non-empty string")
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise KeyTooLarge(f"{label}: the key is over {MAX_KEY_BYTES} bytes")
    if "\x00" in key:
        raise CapabilityError(f"{label}: the key contains a NUL character")
    return key


def _ttl(label: str, options: Any) -> int | None:
    ttl = _options(label, options, ("ttlMs",)).get("ttlMs")
    if ttl is None:
        return None
    if isinstance(ttl, float) and ttl.is_integer():
        ttl = int(ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_MS:
        raise CapabilityError(f"{label}: ttlMs must be a whole number of milliseconds from 1 "
                              f"to {MAX_TTL_MS}")
    return ttl


def _options(label: str, options: Any, known: tuple[str, ...]) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise CapabilityError(f"{label}: options must be an object")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise CapabilityError(f"{label}: unknown option {unknown[0]!r} "
                              f"(known: {', '.join(known)})")
    return {k: v for k, v in options.items() if v is not None}


def _entry_bytes(key: str, value_text: str) -> int:
    return len(key.encode("utf-8")) + len(value_text.encode("utf-8"))


def _size_of(conn: Any, app: str, scope: str, key: str) -> int:
    row = conn.execute("SELECT length(CAST(key AS BLOB)) + length(CAST(value AS BLOB)) "
                       "FROM app_kv WHERE app = ? AND scope = ? AND key = ?",
                       (app, scope, key)).fetchone()
    return 0 if row is None else int(row[0])


def _charge(conn: Any, call: Call, label: str, delta: int) -> None:
    """Add ``delta`` bytes to the app's kv usage; refuse growth past its quota."""
    if delta == 0:
        return
    row = conn.execute("SELECT bytes FROM app_usage WHERE app = ? AND capability = ?",
                       (call.app, NAME)).fetchone()
    used = 0 if row is None else int(row[0])
    if delta > 0 and call.quota_bytes is not None and used + delta > call.quota_bytes:
        raise QuotaExceeded(f"{label}: the app's kv data would grow to {used + delta} bytes, "
                            f"over its {call.quota_bytes // (1024 * 1024)} MB quota")
    conn.execute("INSERT INTO app_usage (app, capability, bytes) VALUES (?, ?, ?) "
                 "ON CONFLICT DO UPDATE SET bytes = max(0, bytes + ?)",
                 (call.app, NAME, max(0, delta), delta))


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:     # surrogates are not text: skip them
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_cursor(label: str, cursor: Any) -> str | None:
    if cursor is None:
        return None
    if not isinstance(cursor, str) or len(cursor) > 2 * MAX_KEY_BYTES:
        raise CapabilityError(f"{label}: invalid cursor")
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                                validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise CapabilityError(f"{label}: invalid cursor") from exc
