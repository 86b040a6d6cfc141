"""What the storage capabilities (kv, docs, blobs) share: argument checks, the quota ledger,
and running a read or a write in the storage phase of the request's budget."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fazt.budget import Phase
from fazt.capabilities._registry import Call, Method, Provider
from fazt.errors import AuthRequired, CapabilityError, KeyTooLarge, QuotaExceeded, ValueTooLarge
from fazt.storage import Database

USER_PREFIX = "u:"

Clock = Callable[[], int]
"""Unix time in milliseconds (a seam: tests move time forward)."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


ScopedMethod = Callable[[Call, str, str, list[Any]], Awaitable[Any]]
"""``await impl(call, scope, label, args)``: a store's method, given the rows' scope and the
name errors use (``kv.user.get``)."""


def scoped_provider(name: str, impls: Mapping[str, ScopedMethod]) -> Provider:
    """A store's provider: each method for the app's own data, and as ``user.<method>`` for
    the signed-in user's."""
    methods: dict[str, Method] = {}
    for method, impl in impls.items():
        methods[method] = _scoped(impl, f"{name}.{method}", user=False)
        methods[f"user.{method}"] = _scoped(impl, f"{name}.user.{method}", user=True)
    return Provider(name=name, methods=methods)


def _scoped(impl: ScopedMethod, label: str, *, user: bool) -> Method:
    async def method(call: Call, args: list[Any]) -> Any:
        return await impl(call, scope_of(call, label, user=user), label, args)

    return method


def scope_of(call: Call, label: str, *, user: bool) -> str:
    """The rows' scope: '' for the app's own data, 'u:<user>' for the ``.user`` methods."""
    if not user:
        return ""
    if not call.user:
        raise AuthRequired(f"{label} needs a signed-in user")
    return USER_PREFIX + call.user


async def read(db: Database, call: Call, fn: Callable[[Any], Any]) -> Any:
    with call.budget.fail_after(Phase.STORAGE) as scope:
        return await db.read(fn, deadline=scope.deadline, tag=call.app)


async def write(db: Database, call: Call, fn: Callable[[Any], Any]) -> Any:
    with call.budget.fail_after(Phase.STORAGE) as scope:
        return await db.write(fn, deadline=scope.deadline, tag=call.app)


def arity(label: str, args: list[Any], low: int, high: int) -> list[Any]:
    if not low <= len(args) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise CapabilityError(f"{label} takes {want} argument{'' if high == 1 else 's'}, "
                              f"got {len(args)}")
    return args


def options(label: str, value: Any, known: tuple[str, ...]) -> dict[str, Any]:
    """An options object: only ``known`` keys; null values are as if absent."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CapabilityError(f"{label}: options must be an object")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise CapabilityError(f"{label}: unknown option {unknown[0]!r} "
                              f"(known: {', '.join(known)})")
    return {k: v for k, v in value.items() if v is not None}


def whole_number(label: str, name: str, value: Any, low: int, high: int) -> int:
    """An integer option in [low, high] (JS numbers such as 10.0 count as whole)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CapabilityError(f"{label}: {name} must be a whole number from {low} to {high}")
    return value


def charge(conn: Any, call: Call, capability: str, label: str, delta: int) -> None:
    """Add ``delta`` bytes to the app's usage of ``capability``; refuse growth past its quota.
    Runs in the write's transaction, so the ledger and the data never disagree."""
    if delta == 0:
        return
    # One statement (the write path's statements each cost a GIL round trip): add, then
    # check what it came to. Raising rolls the addition back with the rest of the job.
    grown = conn.execute("INSERT INTO app_usage (app, capability, bytes) VALUES (?, ?, ?) "
                         "ON CONFLICT DO UPDATE SET bytes = max(0, bytes + ?) RETURNING bytes",
                         (call.app, capability, max(0, delta), delta)).fetchone()[0]
    if delta > 0 and call.quota_bytes is not None and grown > call.quota_bytes:
        raise QuotaExceeded(f"{label}: the app's {capability} data would grow to "
                            f"{grown} bytes, over its "
                            f"{call.quota_bytes // (1024 * 1024)} MB quota")


def json_text(label: str, what: str, value: Any, max_bytes: int) -> str:
    """``value`` as JSON text, within ``max_bytes`` (UTF-8)."""
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:     # nested too deeply, an integer past 64 bits
        raise CapabilityError(f"{label}: the {what} cannot be stored: {exc}") from None
    if len(data) > max_bytes:
        raise ValueTooLarge(f"{label}: the {what} is {len(data)} bytes as JSON, over the "
                            f"{max_bytes}-byte limit")
    return data.decode("utf-8")


def prefix_end(prefix: str) -> str | None:
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


@dataclass(frozen=True)
class KeyPage:
    """One page of a ``list(prefix, {limit, cursor})``: keys starting with ``prefix``, after
    ``after`` (the cursor's key), at most ``limit``."""

    prefix: str
    after: str | None
    limit: int


def key_page(label: str, args: list[Any], *, max_key_bytes: int, default: int,
             maximum: int) -> KeyPage:
    """The checked arguments of a ``list(prefix, {limit, cursor})`` call."""
    prefix, *rest = arity(label, args, 0, 2) or [""]
    prefix = "" if prefix is None else prefix
    if not isinstance(prefix, str):
        raise CapabilityError(f"{label}(prefix): the prefix must be a string")
    if len(prefix.encode("utf-8")) > max_key_bytes:
        raise KeyTooLarge(f"{label}(prefix): the prefix is over {max_key_bytes} bytes")
    given = options(label, rest[0] if rest else None, ("limit", "cursor"))
    return KeyPage(prefix=prefix,
                   after=decode_cursor(label, given.get("cursor"), max_key_bytes),
                   limit=whole_number(label, "limit", given.get("limit", default), 1, maximum))


async def read_key_page(db: Database, call: Call, select: str, params: Sequence[Any],
                        page: KeyPage) -> tuple[list[Any], str | None]:
    """The rows of ``select`` (``SELECT key, ... WHERE ...``) on ``page``, in key order, and
    the cursor of the next page (None: this is the last)."""
    sql = select + " AND key >= ?"
    values = [*params, page.prefix]
    high = prefix_end(page.prefix)
    if high is not None:
        sql += " AND key < ?"
        values.append(high)
    if page.after is not None:
        sql += " AND key > ?"
        values.append(page.after)
    sql += " ORDER BY key LIMIT ?"
    values.append(page.limit + 1)      # one more says whether a next page exists

    def fetch(conn: Any) -> list[Any]:
        rows: list[Any] = conn.execute(sql, values).fetchall()
        return rows

    rows = await read(db, call, fetch)
    more = len(rows) > page.limit
    rows = rows[:page.limit]
    return rows, encode_cursor(rows[-1][0]) if more and rows else None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(label: str, cursor: Any, max_key_bytes: int) -> str | None:
    if cursor is None:
        return None
    if not isinstance(cursor, str) or len(cursor) > 2 * max_key_bytes:
        raise CapabilityError(f"{label}: invalid cursor")
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                                validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise CapabilityError(f"{label}: invalid cursor") from exc
