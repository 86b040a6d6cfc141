"""The supervisor's bookkeeping for one service: its cancel scope, events and reported state.

Each service runs inside its own shielded ``CancelScope``. The shield is what lets shutdown go
in reverse order even when the supervisor's caller is cancelled: that cancellation stops at the
slot, and the supervisor then cancels the slots one at a time, last started first.
"""

from __future__ import annotations

import trio

from ._policy import RestartBudget
from ._service import Service, ServiceState, StateName

__all__ = ["ReadyStatus", "Slot"]


class Slot:
    """Runtime state of one supervised service (private to the supervisor)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.name = service.name
        self.budget = RestartBudget(service.restart)
        # One scope per service, for its whole life (every restart and every backoff sleep),
        # so that cancelling it stops the service wherever it is.
        self.scope = trio.CancelScope(shield=True)
        self.ready = trio.Event()  # set the first time the service calls started()
        self.done = trio.Event()  # set when the service's supervising task has finished
        self.launched = False
        self.state: StateName = "stopped"
        self.restarts = 0
        self.last_error: str | None = None
        self.started_at: float | None = None

    def request_stop(self) -> None:
        """Cancel the service (or its restart backoff); shutdown then waits for ``done``."""
        if not self.done.is_set() and self.state != "crashed":
            self.state = "stopping"
        self.scope.cancel(reason="shutdown")

    def record_error(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"

    def snapshot(self) -> ServiceState:
        return ServiceState(
            name=self.name,
            state=self.state,
            restarts=self.restarts,
            last_error=self.last_error,
            started_at=self.started_at,
        )


class ReadyStatus(trio.TaskStatus[None]):
    """The ``task_status`` handed to one run of a service.

    The service runs directly in its supervising task (no extra nursery, so no exception
    groups to unwrap); this object only records readiness. A fresh one is made for every
    restart, so each run may call ``started()`` once, as with ``nursery.start()``.
    """

    def __init__(self, slot: Slot) -> None:
        self._slot = slot
        self._called = False

    def started(self, value: None = None) -> None:
        if self._called:
            raise RuntimeError("called 'started' twice on the same task status")
        self._called = True
        slot = self._slot
        slot.started_at = trio.current_time()
        if slot.state in ("starting", "restarting"):
            slot.state = "running"
        slot.ready.set()
