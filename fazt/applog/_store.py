"""The app log store: lines buffered in memory, written in group commits, read back by id.

``append`` is synchronous and never blocks nor raises: a line goes into an in-memory buffer (at
most ``max_buffer`` lines; past that, lines are dropped and counted). ``run`` is the service loop
that writes the buffer in one ``Database.write`` every ``flush_interval_s`` (sooner once 256
lines wait), keeps each app to its newest ``keep_per_app`` lines, and wakes ``wait``-ers. Lines
get their id when they are written: until then ``read`` does not see them.

Every method must be called from the trio thread that runs ``run``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio

from fazt.errors import BudgetExceeded, StorageError
from fazt.storage import Database

log = logging.getLogger("fazt.applog")

LEVELS = ("debug", "info", "warn", "error")   # lowest first
MAX_MESSAGE_CHARS = 8192
FLUSH_SOON_LINES = 256      # a buffer this long is written without waiting for the interval
PRUNE_EVERY_LINES = 1000    # per app (or keep_per_app when smaller)
PRUNE_EVERY_S = 10.0

_RANK = {level: rank for rank, level in enumerate(LEVELS)}
_BUFFER_FULL = "log buffer full"
_WRITE_FAILED = "log write failed"

# Two fixed statements (no SQL is built from input). ``level IN`` always gets four values:
# the accepted levels, padded by repeating the highest one.
_SELECT = ("SELECT id, ts, level, request_id, message FROM app_logs "
           "WHERE app = ? AND id > ? AND level IN (?, ?, ?, ?) "
           "AND (? IS NULL OR request_id = ?) ")
_SELECT_OLDEST = _SELECT + "ORDER BY id ASC LIMIT ?"
_SELECT_NEWEST = _SELECT + "ORDER BY id DESC LIMIT ?"
_INSERT = ("INSERT INTO app_logs (app, ts, level, request_id, message) "
           "VALUES (?, ?, ?, ?, ?)")
_LAST_ID = "SELECT max(id) FROM app_logs WHERE app = ?"
_PRUNE = ("DELETE FROM app_logs WHERE app = ? AND id <= "
          "(SELECT id FROM app_logs WHERE app = ? ORDER BY id DESC LIMIT 1 OFFSET ?)")

_Row = tuple[str, str, str, str | None, str]   # app, ts, level, request_id, message


@dataclass(frozen=True, kw_only=True)
class LogLine:
    """One stored line. ``ts`` is UTC ISO 8601 with milliseconds (``...T05:14:45.123Z``)."""

    id: int
    ts: str
    level: str
    request_id: str | None
    message: str

    def to_json(self) -> dict[str, int | str | None]:
        return {"id": self.id, "ts": self.ts, "level": self.level,
                "request_id": self.request_id, "message": self.message}


def now_iso_ms() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AppLogStore:
    """Per-app log lines in the database; see the module docstring."""

    def __init__(self, db: Database, *, op_timeout_s: float, keep_per_app: int = 10_000,
                 max_buffer: int = 10_000, flush_interval_s: float = 0.1) -> None:
        if keep_per_app < 1 or max_buffer < 1 or not flush_interval_s > 0 \
                or not op_timeout_s > 0:
            raise ValueError("keep_per_app, max_buffer, flush_interval_s and op_timeout_s "
                             "must be positive")
        self._db = db
        self._op_timeout_s = op_timeout_s
        self._keep_per_app = keep_per_app
        self._max_buffer = max_buffer
        self._flush_interval_s = flush_interval_s
        self._prune_every_lines = min(PRUNE_EVERY_LINES, keep_per_app)
        self._buffer: list[_Row] = []
        self._lost: dict[tuple[str, str], int] = {}    # (app, reason) -> lines not yet reported
        self._unpruned: dict[str, int] = {}            # app -> lines written since its prune
        self._last_prune_at: float | None = None
        self._flush_soon = trio.Event()
        self._last_id: dict[str, int] = {}             # app -> newest id written by this store
        self._arrived: dict[str, trio.Event] = {}      # app -> set at its next write
        self._released = False
        self.dropped = 0    # lines lost: buffer full, or their write failed
        self.written = 0    # lines written, the "N lines dropped" notes included

    # -- producing --------------------------------------------------------------------------

    def append(self, app: str, level: str, message: str, *, request_id: str | None) -> None:
        """Buffer one line. Never blocks, never raises: when ``max_buffer`` lines wait, the line
        is dropped and counted, and the next write adds a warn line saying how many were lost.
        A level other than debug/info/warn/error is stored as info; a message is cut to 8192
        characters."""
        if len(self._buffer) >= self._max_buffer:
            self.dropped += 1
            key = (app, _BUFFER_FULL)
            self._lost[key] = self._lost.get(key, 0) + 1
            return
        if level not in _RANK:
            level = "info"
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS]
        self._buffer.append((app, now_iso_ms(), level, request_id, message))
        if len(self._buffer) >= FLUSH_SOON_LINES:
            self._flush_soon.set()

    # -- the service loop -------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write the buffer every ``flush_interval_s`` (sooner when it fills) until cancelled;
        then write what is left, shielded and bounded by ``op_timeout_s``."""
        self._last_prune_at = trio.current_time()
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
        now = trio.current_time()
        batch, self._buffer = self._buffer, []
        lost, self._lost = self._lost, {}
        stamp = now_iso_ms()
        notes: list[_Row] = [(app, stamp, "warn", None, f"{count} log lines dropped ({reason})")
                             for (app, reason), count in lost.items()]
        rows = batch + notes
        counts = Counter(row[0] for row in rows)
        prune_due = self._last_prune_at is None or now - self._last_prune_at >= PRUNE_EVERY_S
        to_prune = sorted(
            app for app in set(self._unpruned) | set(counts)
            if (pending := self._unpruned.get(app, 0) + counts.get(app, 0)) > 0
            and (pending >= self._prune_every_lines or prune_due))
        if prune_due:
            self._last_prune_at = now
        if not rows and not to_prune:
            return
        keep = self._keep_per_app

        def write(conn: Any) -> dict[str, int]:
            conn.executemany(_INSERT, rows)
            last_ids = {app: int(conn.execute(_LAST_ID, (app,)).fetchone()[0]) for app in counts}
            for app in to_prune:
                conn.execute(_PRUNE, (app, app, keep))
            return last_ids

        try:
            # Shielded: a cancelled flush must not leave a batch half-known (the write is bounded
            # by its own deadline); the cancellation is delivered right after.
            with trio.CancelScope(shield=True):
                last_ids = await self._db.write(write, deadline=now + self._op_timeout_s)
        except (StorageError, BudgetExceeded) as exc:
            log.warning("could not write %d app log lines: %s", len(rows), exc.code)
            self.dropped += len(batch)
            for app, count in Counter(row[0] for row in batch).items():
                self._lost[(app, _WRITE_FAILED)] = self._lost.get((app, _WRITE_FAILED), 0) + count
            for key, count in lost.items():     # their notes are retried with the next write
                self._lost[key] = self._lost.get(key, 0) + count
            return
        self.written += len(rows)
        for app, count in counts.items():
            self._unpruned[app] = self._unpruned.get(app, 0) + count
        for app in to_prune:
            self._unpruned.pop(app, None)
        for app, last_id in last_ids.items():
            self._last_id[app] = last_id
            arrived = self._arrived.pop(app, None)
            if arrived is not None:
                arrived.set()

    # -- consuming --------------------------------------------------------------------------

    async def read(self, app: str, *, limit: int = 100, after: int | None = None,
                   level: str | None = None, request_id: str | None = None) -> list[LogLine]:
        """Lines of ``app`` in ascending id order: with ``after`` None the newest ``limit``
        lines, otherwise the oldest ``limit`` lines with an id above ``after``. ``level`` keeps
        that level and above (debug < info < warn < error); ``request_id`` one request's."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        accepted = LEVELS if level is None else LEVELS[_rank(level):]
        padded = accepted + (accepted[-1],) * (len(LEVELS) - len(accepted))
        params = (app, -1 if after is None else after, *padded, request_id, request_id, limit)
        sql = _SELECT_NEWEST if after is None else _SELECT_OLDEST

        def select(conn: Any) -> list[LogLine]:
            rows = conn.execute(sql, params).fetchall()
            lines = [LogLine(id=r[0], ts=r[1], level=r[2], request_id=r[3], message=r[4])
                     for r in rows]
            return lines[::-1] if after is None else lines

        return await self._db.read(select, deadline=self._deadline())

    async def wait(self, app: str, after: int, timeout_s: float) -> None:
        """Return once a write of this store has stored a line of ``app`` with an id above
        ``after`` (at once if one already did), or after ``timeout_s``; never raises for the
        timeout. Also returns at once after ``release_waiters``."""
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(max(0.0, timeout_s)):
            while not self._released and self._last_id.get(app, 0) <= after:
                arrived = self._arrived.get(app)
                if arrived is None:
                    arrived = self._arrived[app] = trio.Event()
                await arrived.wait()

    def release_waiters(self) -> None:
        """Make every current and later ``wait`` return at once (the server is draining:
        long polls must not hold up the shutdown)."""
        self._released = True
        arrived, self._arrived = self._arrived, {}
        for event in arrived.values():
            event.set()

    # -- housekeeping -----------------------------------------------------------------------

    async def delete_app(self, app: str) -> None:
        """Delete every line of ``app``, buffered or stored (when the app is removed)."""
        self._buffer = [row for row in self._buffer if row[0] != app]
        for key in [key for key in self._lost if key[0] == app]:
            del self._lost[key]
        self._unpruned.pop(app, None)
        self._last_id.pop(app, None)

        def delete(conn: Any) -> None:
            conn.execute("DELETE FROM app_logs WHERE app = ?", (app,))

        # A flush that took the buffer earlier queued its write first: the delete runs after it.
        await self._db.write(delete, deadline=self._deadline())

    def stats(self) -> dict[str, int]:
        return {"buffered": len(self._buffer), "dropped": self.dropped, "written": self.written}

    def _deadline(self) -> float:
        return trio.current_time() + self._op_timeout_s


def _rank(level: str) -> int:
    try:
        return _RANK[level]
    except KeyError:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}") from None
