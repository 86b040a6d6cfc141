"""The log of outbound calls: one entry per ``net.fetch``, buffered, written in batches.

What an entry holds is what an operator needs to see where an app's requests go and how they
fare, and nothing a request carried in secret: app, request id, method, host, the path without
its query string, status, bytes each way, duration, error code, whether the cache answered.

``record`` never blocks nor raises (past ``max_buffer`` waiting entries, entries are dropped
and counted). ``run`` writes the buffer every ``flush_interval_s``, at once when an entry is an
error, and keeps each app's newest ``keep`` entries (an app making many calls cannot push
other apps' history out). Entries get their id when written; ``read`` pages
by id and ``wait`` lets a follower (``fazt net log -f``) sleep until new ones are in.
"""

from __future__ import annotations

import logging
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from typing import Any

import trio

from fazt.errors import BudgetExceeded, StorageError
from fazt.storage import Database

log = logging.getLogger("fazt.net")

_COLUMNS = ("ts", "app", "request_id", "method", "host", "path", "status", "bytes_out",
            "bytes_in", "duration_ms", "error", "cached")
# Built from the constant column names above, never from input.
_INSERT = (f"INSERT INTO net_log ({', '.join(_COLUMNS)}) "  # noqa: S608
           f"VALUES ({', '.join('?' * len(_COLUMNS))})")
_SELECT = (f"SELECT id, {', '.join(_COLUMNS)} FROM net_log WHERE id > ? "  # noqa: S608
           "AND (? IS NULL OR app = ?) ")
_PRUNE = ("DELETE FROM net_log WHERE app = ? AND id <= (SELECT id FROM net_log WHERE app = ? "
          "ORDER BY id DESC LIMIT 1 OFFSET ?)")
PRUNE_EVERY = 1000


@dataclass(frozen=True, kw_only=True)
class NetCall:
    ts: str
    app: str
    request_id: str | None
    method: str
    host: str
    path: str
    status: int | None
    bytes_out: int
    bytes_in: int
    duration_ms: float
    error: str | None
    cached: bool = False


@dataclass(frozen=True, kw_only=True)
class NetLogEntry(NetCall):
    id: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "app": self.app, "request_id": self.request_id,
                "method": self.method, "host": self.host, "path": self.path,
                "status": self.status, "bytes_out": self.bytes_out, "bytes_in": self.bytes_in,
                "duration_ms": self.duration_ms, "error": self.error, "cached": self.cached}


def now_iso_ms() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NetLog:
    def __init__(self, db: Database, *, op_timeout_s: float, keep: int = 10_000,
                 max_buffer: int = 10_000, flush_interval_s: float = 1.0) -> None:
        self._db = db
        self._op_timeout_s = op_timeout_s
        self._keep = keep
        self._max_buffer = max_buffer
        self._flush_interval_s = flush_interval_s
        self._buffer: list[NetCall] = []
        self._flush_soon = trio.Event()
        self._last_id = 0
        self._arrived = trio.Event()
        self._since_prune = 0
        self._unpruned: set[str] = set()      # apps written since the last prune
        self._released = False
        self.dropped = 0
        self.written = 0

    def record(self, entry: NetCall) -> None:
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            return
        self._buffer.append(entry)
        if entry.error is not None or (entry.status or 0) >= 400:
            self._flush_soon.set()      # failures show at once (what a follower waits for)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        def last(conn: Any) -> int:
            return int(conn.execute("SELECT ifnull(max(id), 0) FROM net_log").fetchone()[0])

        self._last_id = await self._db.read(last, deadline=self._deadline())
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self._flush_interval_s):
                    await self._flush_soon.wait()
                await self._flush()
        finally:
            with trio.CancelScope(shield=True):
                await self._flush()

    async def _flush(self) -> None:
        self._flush_soon = trio.Event()
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        prune = self._since_prune + len(batch) >= PRUNE_EVERY
        keep = self._keep
        apps = sorted({entry.app for entry in batch} | self._unpruned) if prune else []

        def write(conn: Any) -> int:
            conn.executemany(_INSERT, [astuple(entry) for entry in batch])
            conn.executemany(_PRUNE, [(app, app, keep) for app in apps])
            return int(conn.execute("SELECT max(id) FROM net_log").fetchone()[0])

        try:
            with trio.CancelScope(shield=True):   # bounded by the write's own deadline
                last_id = await self._db.write(write, deadline=self._deadline())
        except (StorageError, BudgetExceeded) as exc:
            log.warning("could not write %d net log entries: %s", len(batch), exc.code)
            self.dropped += len(batch)
            return
        self.written += len(batch)
        self._since_prune = 0 if prune else self._since_prune + len(batch)
        self._unpruned = set() if prune else self._unpruned | {e.app for e in batch}
        self._last_id = last_id
        self._arrived.set()
        self._arrived = trio.Event()

    async def read(self, *, app: str | None = None, limit: int = 100,
                   after: int | None = None) -> list[NetLogEntry]:
        """Entries in ascending id order: the newest ``limit`` (``after`` None), or the oldest
        ``limit`` with an id above ``after``; of one app, or of all."""
        order = "ORDER BY id DESC LIMIT ?" if after is None else "ORDER BY id ASC LIMIT ?"
        params = (-1 if after is None else after, app, app, limit)

        def select(conn: Any) -> list[NetLogEntry]:
            rows = conn.execute(_SELECT + order, params).fetchall()
            entries = [NetLogEntry(id=r[0], **{**dict(zip(_COLUMNS, r[1:], strict=True)),
                                               "cached": bool(r[-1])})
                       for r in rows]
            return entries[::-1] if after is None else entries

        return await self._db.read(select, deadline=self._deadline())

    async def wait(self, after: int, timeout_s: float) -> None:
        """Return once an entry with an id above ``after`` is written, or after
        ``timeout_s``."""
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(max(0.0, timeout_s)):
            while not self._released and self._last_id <= after:
                await self._arrived.wait()

    def release_waiters(self) -> None:
        """Make every current and later ``wait`` return at once (the server is draining)."""
        self._released = True
        self._arrived.set()

    async def delete_app(self, app: str) -> None:
        self._buffer = [e for e in self._buffer if e.app != app]

        def delete(conn: Any) -> None:
            conn.execute("DELETE FROM net_log WHERE app = ?", (app,))

        await self._db.write(delete, deadline=self._deadline())

    def stats(self) -> dict[str, int]:
        return {"buffered": len(self._buffer), "dropped": self.dropped, "written": self.written}

    def _deadline(self) -> float:
        return trio.current_time() + self._op_timeout_s
