"""A deadline on every socket write hypercorn makes, so a client that stops reading cannot pin
a connection (and shutdown) forever.

hypercorn 0.18's trio ``TCPServer.protocol_send`` writes inside a *shielded* cancel scope with no
deadline: neither the graceful-shutdown timeout, nor cancelling the server, nor a second signal
can interrupt a ``send_all`` to a peer whose receive window is full. This module replaces that
method (hypercorn is pinned for this reason) with one whose shielded scope carries a deadline:

* each write is split in 64 KiB pieces, and each piece gets ``send_timeout_s``: the rule is
  "no progress for that long", not a minimum speed (30 s per 64 KiB is about 2 KB/s);
* ``SendGuard.stop_all_by(deadline)`` pulls every pending and future write deadline in, which
  the server uses when it drains (deadline = end of the grace period) and on a second signal.

When a write's deadline passes the connection is closed as if the peer had gone away.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import TCPServer

log = logging.getLogger("fazt.http")
_PIECE_BYTES = 64 * 1024


class SendGuard:
    """Deadlines for the shielded socket writes of every connection in this process."""

    def __init__(self, *, send_timeout_s: float) -> None:
        self.send_timeout_s = send_timeout_s
        self._stop_by = math.inf
        self._active: set[trio.CancelScope] = set()
        self.writes_timed_out = 0

    def scope(self) -> trio.CancelScope:
        deadline = min(trio.current_time() + self.send_timeout_s, self._stop_by)
        return trio.CancelScope(shield=True, deadline=deadline)

    def stop_all_by(self, deadline: float) -> None:
        """No write may last past ``deadline`` (the ones under way included)."""
        self._stop_by = min(self._stop_by, deadline)
        for scope in self._active:
            scope.deadline = min(scope.deadline, deadline)

    async def protocol_send(self, server: Any, event: Event) -> None:
        """hypercorn's ``TCPServer.protocol_send`` with a bounded shielded write."""
        if not isinstance(event, RawData):
            await _original_protocol_send(server, event)
            return
        data = memoryview(event.data)
        async with server.send_lock:
            for offset in range(0, len(data), _PIECE_BYTES):
                scope = self.scope()
                self._active.add(scope)
                try:
                    with scope:
                        await server.stream.send_all(data[offset:offset + _PIECE_BYTES])
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    await server.protocol.handle(Closed())
                    return
                finally:
                    self._active.discard(scope)
                if scope.cancelled_caught:   # no progress in time: drop the connection
                    self.writes_timed_out += 1
                    log.info("closed a connection whose client stopped reading (%s)",
                             "shutdown" if self._stop_by <= trio.current_time() else
                             f"no progress in {self.send_timeout_s:g} s")
                    await trio.aclose_forcefully(server.stream)
                    await server.protocol.handle(Closed())
                    return


_original_protocol_send = TCPServer.protocol_send
_installed: SendGuard | None = None


def install_send_guard(guard: SendGuard) -> None:
    """Route every hypercorn trio connection's writes through ``guard`` (process-wide)."""
    global _installed
    _installed = guard

    async def protocol_send(self: TCPServer, event: Event) -> None:
        active = _installed
        if active is None:
            await _original_protocol_send(self, event)
        else:
            await active.protocol_send(self, event)

    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
