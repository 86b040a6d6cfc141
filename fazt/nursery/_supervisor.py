"""Run fazt's services in order, restart or fail loudly on a crash, stop them in reverse.

Shape (all inside one nursery that the supervisor owns)::

    Supervisor.run ── main scope ── start service 1, wait until ready, start service 2, ...
                   │                then sleep until shutdown or a fatal crash cancels it
                   └─ finally (shielded): stop the services last-first, each bounded
    one task per service ── shielded per-service scope ── run, crash, backoff, run again...

The per-service scopes are shielded so that cancelling ``Supervisor.run`` does not cancel every
service at once: the cancellation lands on the main scope only, and the ``finally`` clause then
stops the services one at a time, so the HTTP server drains before storage closes. Slot tasks
never raise into the nursery; they record a fatal crash and cancel the main scope, and ``run``
raises a plain ``ServiceCrashed`` after the nursery has closed (no exception group).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from fazt.errors import FaztError

from ._errors import ServiceCrashed
from ._service import Service, ServiceState
from ._slot import ReadyStatus, Slot

__all__ = ["Supervisor"]

logger = logging.getLogger("fazt.nursery")


class Supervisor:
    """Start services in order, keep them alive per their policy, stop them in reverse order.

    ``run()`` may be called once. ``request_shutdown()`` and ``snapshot()`` are synchronous and
    must be called from the trio thread (signal handling via ``trio.open_signal_receiver`` is).
    """

    def __init__(self, services: Sequence[Service], *, stop_timeout_s: float = 15.0) -> None:
        names = [service.name for service in services]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate service names: {duplicates}")
        if stop_timeout_s <= 0:
            raise ValueError("stop_timeout_s must be > 0")
        self._slots = [Slot(service) for service in services]
        self._stop_timeout_s = stop_timeout_s
        # Cancelled by request_shutdown() or a fatal crash; wraps start-up and the idle wait.
        self._main_scope = trio.CancelScope()
        self._run_called = False
        self._ready = False
        self._settled = trio.Event()  # all services ready, or run() finished without that
        self._shutdown_reason: str | None = None
        self._failure: tuple[str, str, BaseException] | None = None  # name, message, cause

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every service, report ready, and return once shutdown has completed.

        Raises ``ServiceCrashed`` (``__cause__`` = the service's exception) if a service fails
        during start-up or dies fatally later; in both cases the services already running
        have been stopped in reverse order first.
        """
        if self._run_called:
            raise RuntimeError("Supervisor.run() can only be called once")
        self._run_called = True
        try:
            async with trio.open_nursery() as nursery:
                try:
                    with self._main_scope:
                        await self._start_all(nursery)
                        self._ready = True
                        self._settled.set()
                        logger.info("all %d services ready", len(self._slots))
                        task_status.started()
                        await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True):
                        await self._stop_all()
        finally:
            self._settled.set()
        if self._failure is not None:
            name, message, cause = self._failure
            raise ServiceCrashed(name, message) from cause
        logger.info("all services stopped (%s)", self._shutdown_reason or "cancelled")

    def request_shutdown(self, reason: str) -> None:
        """Begin an orderly shutdown; ``run()`` returns once it is complete. Idempotent."""
        if self._shutdown_reason is not None or self._main_scope.cancel_called:
            return
        self._shutdown_reason = reason
        logger.info("shutdown requested: %s", reason)
        self._main_scope.cancel(reason=f"shutdown: {reason}")

    async def wait_ready(self) -> None:
        """Wait until every service has called ``started()``.

        Raises ``RuntimeError`` if ``run()`` ends before that (a start-up failure, or a
        shutdown requested during start-up).
        """
        await self._settled.wait()
        if not self._ready:
            raise RuntimeError("the supervisor stopped before every service was ready")

    def snapshot(self) -> list[ServiceState]:
        """The state of every service, in start order."""
        return [slot.snapshot() for slot in self._slots]

    async def _start_all(self, nursery: trio.Nursery) -> None:
        """Start the services one by one; each must be ready before the next is launched."""
        for slot in self._slots:
            # Launch nothing more once shutdown was requested (even before run() began).
            await trio.lowlevel.checkpoint_if_cancelled()
            slot.launched = True
            slot.state = "starting"
            logger.info("starting %s", slot.name)
            nursery.start_soon(self._supervise, slot, name=f"fazt.nursery:{slot.name}")
            # A start-up failure cancels the main scope, which ends this wait.
            await slot.ready.wait()

    async def _stop_all(self) -> None:
        """Stop the launched services last-first, each bounded by ``stop_timeout_s``."""
        for slot in reversed(self._slots):
            if not slot.launched or slot.done.is_set():
                continue
            logger.info("stopping %s", slot.name)
            slot.request_stop()
            with trio.move_on_after(self._stop_timeout_s):
                await slot.done.wait()
            if not slot.done.is_set():
                logger.error(
                    "service %r did not stop within %.1f s; stopping the others anyway"
                    " (the process exits once it finishes)",
                    slot.name,
                    self._stop_timeout_s,
                )

    async def _supervise(self, slot: Slot) -> None:
        """The task that owns one service: runs it inside its shielded scope until stopped."""
        try:
            with slot.scope:
                await self._keep_running(slot)
            if slot.state != "crashed":
                slot.state = "stopped"
        except Exception as exc:  # noqa: BLE001 - becomes ServiceCrashed, with the cause
            # What is left of an exception group once the scope has absorbed its own
            # Cancelled, e.g. a service whose internal nursery failed while being stopped.
            # Raising it instead would reach the caller wrapped in an ExceptionGroup.
            stopping = slot.scope.cancel_called
            self._fail(slot, exc, "failed while stopping" if stopping else "crashed")
        finally:
            slot.done.set()

    async def _keep_running(self, slot: Slot) -> None:
        """Run the service; on a crash apply its restart policy, until stopped or fatal."""
        while True:
            error = await self._run_once(slot)
            if error is None:
                return  # cancelled by shutdown and finished cleanly
            if slot.scope.cancel_called:
                self._fail(slot, error, "failed while stopping")
                return
            if not slot.ready.is_set():
                self._fail(slot, error, "failed during start-up")
                return
            backoff_s = slot.budget.next_backoff_s(now=trio.current_time())
            if backoff_s is None:
                policy = slot.service.restart
                if policy.mode == "fatal":
                    self._fail(slot, error, "crashed")
                else:
                    self._fail(
                        slot,
                        error,
                        f"crashed again after {policy.max_restarts} restarts"
                        f" within {policy.window_s:g} s",
                    )
                return
            slot.record_error(error)
            slot.state = "restarting"
            slot.restarts += 1
            logger.error(
                "service %r crashed; restarting in %.2f s (restart %d)",
                slot.name,
                backoff_s,
                slot.restarts,
                exc_info=error,
            )
            await trio.sleep(backoff_s)
            logger.info("restarting %s", slot.name)

    async def _run_once(self, slot: Slot) -> Exception | None:
        """One run of the service: the exception it died of, or ``None`` if it was stopped.

        Only ``Exception`` is caught, and only around the service call; ``Cancelled`` and
        other ``BaseException``s propagate untouched.
        """
        try:
            await slot.service.run(task_status=ReadyStatus(slot))
        except Exception as exc:  # noqa: BLE001 - the restart policy decides; nothing is lost
            return exc
        if slot.scope.cancel_called:
            return None
        return RuntimeError("exited unexpectedly (run() returned without being cancelled)")

    def _fail(self, slot: Slot, error: BaseException, message: str) -> None:
        """Record a fatal failure, log it loudly, and make ``run()`` shut everything down."""
        slot.state = "crashed"
        slot.record_error(error)
        # A FaztError (wrong key, bad config) says all there is to say; anything else is a bug
        # whose traceback is wanted.
        leaf = _sole_leaf(error)
        expected = isinstance(leaf, FaztError)
        logger.critical("service %r %s: %s", slot.name, message,
                        leaf if expected else repr(error), exc_info=None if expected else error)
        if self._failure is None:
            self._failure = (slot.name, message, error)
        self._main_scope.cancel(reason=f"crash: {slot.name}")


def _sole_leaf(error: BaseException) -> BaseException:
    """The one exception inside nested single-member groups (strict nurseries wrap errors)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
