"""What a supervised service looks like, and how its state is reported.

A service is anything with a ``name``, a ``restart`` policy and a trio-style ``run`` that calls
``task_status.started()`` once it is ready and then runs until it is cancelled. This is the
same shape ``nursery.start()`` expects, so a service can be tested on its own with a plain
nursery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import trio

from ._policy import RestartPolicy

__all__ = ["Service", "ServiceState", "StateName"]

StateName = Literal["starting", "running", "restarting", "stopping", "stopped", "crashed"]
"""``starting``: run() entered, not ready yet. ``running``: ready. ``restarting``: crashed and
waiting out the backoff or the restarted run() is not ready yet. ``stopping``: cancelled by
shutdown, not finished yet. ``stopped``: not running (before start-up, or after shutdown).
``crashed``: died fatally, or failed while it was being stopped."""


class Service(Protocol):
    """A long-running part of the fazt process (storage, sandbox manager, HTTP server...).

    ``name`` and ``restart`` are read-only here so that frozen dataclasses and plain class
    attributes both satisfy the protocol.
    """

    @property
    def name(self) -> str:
        """A short, unique name for logs and the status page."""
        ...

    @property
    def restart(self) -> RestartPolicy:
        """How the supervisor treats a crash after start-up."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Get ready, call ``task_status.started()`` once, then serve until cancelled.

        Cleanup belongs in ``finally`` blocks: shutdown cancels this call and waits (bounded)
        for it to return.
        """
        ...


@dataclass(frozen=True, kw_only=True)
class ServiceState:
    """A point-in-time view of one service, as ``Supervisor.snapshot()`` reports it.

    ``started_at`` is on trio's clock (``trio.current_time()``) and is the moment the current
    (or last) run of the service called ``started()``; ``None`` if it never did.
    """

    name: str
    state: StateName
    restarts: int
    last_error: str | None
    started_at: float | None
