"""Supervisor behaviour: ordered start, restart with backoff, fatal crashes, reverse shutdown.

Every test here runs on trio's autojump clock, so the timings asserted below are exact virtual
times and the module runs instantly, and takes the ``hang_guard`` fixture, which turns a
supervisor that hangs into a prompt failure instead of a stuck test run. Both are explicit
arguments on purpose: pytest-trio only installs a clock, and only runs an async fixture, that
the test function itself names (``usefixtures`` would silently skip the guard). Fake services
record what happens to them into a shared ``Log``; the assertions are made against that record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from fazt.nursery import RestartPolicy, ServiceCrashed, ServiceState, Supervisor

FATAL = RestartPolicy()
RESTART = RestartPolicy(mode="restart")
HANG_AFTER_S = 10_000.0  # virtual seconds; the longest test needs about 100


@pytest.fixture
async def hang_guard(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    """Fail the test if it is still running after ``HANG_AFTER_S`` of virtual time.

    With the autojump clock, time only reaches this deadline once every task is blocked with
    nothing else scheduled, i.e. when the test would otherwise hang forever.
    """

    # pytest-trio only installs a clock the test function itself asks for.
    assert trio.lowlevel.current_clock() is autojump_clock, "add autojump_clock to the test"

    async def watchdog() -> None:
        await trio.sleep(HANG_AFTER_S)
        raise AssertionError(f"still running after {HANG_AFTER_S:g} virtual seconds: hung")

    nursery.start_soon(watchdog)


class Boom(Exception):
    """The failure our fake services raise."""


@dataclass(frozen=True)
class Event:
    service: str
    what: str  # enter | ready | crash | cancelled | exit
    at: float
    detail: str = ""


@dataclass
class Log:
    events: list[Event] = field(default_factory=list)

    def add(self, service: str, what: str, detail: str = "") -> None:
        self.events.append(Event(service, what, trio.current_time(), detail))

    def names(self, what: str) -> list[str]:
        """The services that recorded ``what``, in the order they did."""
        return [e.service for e in self.events if e.what == what]

    def times(self, service: str, what: str) -> list[float]:
        return [e.at for e in self.events if e.service == service and e.what == what]

    def sequence(self) -> list[tuple[str, str]]:
        return [(e.service, e.what) for e in self.events]


class FakeService:
    """A service whose start-up, crashes and stopping are scripted by its arguments.

    - ``start_s``: time spent getting ready; ``gate``: also wait for this event before ready.
    - ``fail_on_start``: raise before ``started()``.
    - ``crash_runs``: the first N runs crash ``crash_after_s`` after becoming ready.
    - ``return_after_s``: return normally (without being cancelled) after becoming ready.
    - ``stop_s``: shielded cleanup time when cancelled; ``fail_on_stop``: raise when cancelled.
    """

    def __init__(
        self,
        name: str,
        log: Log,
        *,
        restart: RestartPolicy = FATAL,
        start_s: float = 1.0,
        gate: trio.Event | None = None,
        fail_on_start: bool = False,
        crash_runs: int = 0,
        crash_after_s: float = 1.0,
        return_after_s: float | None = None,
        stop_s: float = 0.0,
        fail_on_stop: bool = False,
    ) -> None:
        self.name = name
        self.restart = restart
        self.log = log
        self.start_s = start_s
        self.gate = gate
        self.fail_on_start = fail_on_start
        self.crash_runs = crash_runs
        self.crash_after_s = crash_after_s
        self.return_after_s = return_after_s
        self.stop_s = stop_s
        self.fail_on_stop = fail_on_stop
        self.runs = 0
        self.entered = trio.Event()
        self.crashed = trio.Event()
        self._ready_runs: dict[int, trio.Event] = {}
        self.cancel_reasons: list[str | None] = []

    def _ready_event(self, run: int) -> trio.Event:
        return self._ready_runs.setdefault(run, trio.Event())

    async def wait_run_ready(self, run: int) -> None:
        """Wait until the ``run``-th run (1-based) has called ``started()``."""
        await self._ready_event(run).wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.runs += 1
        run = self.runs
        self.log.add(self.name, "enter")
        self.entered.set()
        try:
            await trio.sleep(self.start_s)
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_on_start:
                raise Boom(f"{self.name} failed to start")
            task_status.started()
            self.log.add(self.name, "ready")
            self._ready_event(run).set()
            if run <= self.crash_runs:
                await trio.sleep(self.crash_after_s)
                self.log.add(self.name, "crash")
                self.crashed.set()
                raise Boom(f"{self.name} crash {run}")
            if self.return_after_s is not None:
                await trio.sleep(self.return_after_s)
                return
            await trio.sleep_forever()
        except trio.Cancelled as cancelled:
            self.log.add(self.name, "cancelled")
            self.cancel_reasons.append(cancelled.reason)
            if self.fail_on_stop:
                raise Boom(f"{self.name} failed to stop") from None
            raise
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(self.stop_s)
            self.log.add(self.name, "exit")


def states(supervisor: Supervisor) -> dict[str, str]:
    return {s.name: s.state for s in supervisor.snapshot()}


def tasks_living() -> int:
    return trio.lowlevel.current_statistics().tasks_living


async def shut_down_once_ready(supervisor: Supervisor) -> None:
    await supervisor.wait_ready()
    supervisor.request_shutdown("test over")


@contextmanager
def no_leaked_tasks() -> Iterator[None]:
    """Assert that everything started inside the block has finished by its end."""
    before = tasks_living()
    yield
    assert tasks_living() == before


# --- start-up -------------------------------------------------------------------------------


async def test_services_start_in_order_each_ready_before_the_next(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    services = [FakeService(name, log, start_s=1.0) for name in ("db", "sandbox", "http")]
    supervisor = Supervisor(services)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        # start() returned only once the last service was ready.
        assert log.sequence() == [
            ("db", "enter"),
            ("db", "ready"),
            ("sandbox", "enter"),
            ("sandbox", "ready"),
            ("http", "enter"),
            ("http", "ready"),
        ]
        assert [log.times(s.name, "enter")[0] for s in services] == [0.0, 1.0, 2.0]
        assert trio.current_time() == pytest.approx(3.0)
        await supervisor.wait_ready()
        supervisor.request_shutdown("test over")


async def test_wait_ready_returns_once_every_service_is_ready(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    supervisor = Supervisor([FakeService(n, log, start_s=2.0) for n in ("a", "b")])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await supervisor.wait_ready()
        assert log.names("ready") == ["a", "b"]
        assert trio.current_time() == pytest.approx(4.0)
        supervisor.request_shutdown("test over")


async def test_startup_failure_stops_started_services_in_reverse_order(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    a, b = FakeService("a", log), FakeService("b", log)
    # Even with a restart policy: a service that never got ready is not restarted.
    c = FakeService("c", log, fail_on_start=True, restart=RESTART)
    supervisor = Supervisor([a, b, c])
    with no_leaked_tasks(), pytest.raises(ServiceCrashed) as excinfo:
        await supervisor.run()
    assert excinfo.value.service == "c"
    assert isinstance(excinfo.value.__cause__, Boom)
    assert str(excinfo.value.__cause__) == "c failed to start"
    assert log.names("cancelled") == ["b", "a"]
    assert c.runs == 1
    assert states(supervisor) == {"a": "stopped", "b": "stopped", "c": "crashed"}
    with pytest.raises(RuntimeError, match="before every service was ready"):
        await supervisor.wait_ready()


async def test_startup_failure_reports_through_nursery_start(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    supervisor = Supervisor([FakeService("a", log), FakeService("b", log, fail_on_start=True)])
    async with trio.open_nursery() as nursery:
        # A plain ServiceCrashed, not an ExceptionGroup, even through nursery.start().
        with pytest.raises(ServiceCrashed, match="'b' failed during start-up"):
            await nursery.start(supervisor.run)
    assert log.names("cancelled") == ["a"]


# --- shutdown -------------------------------------------------------------------------------


async def test_shutdown_stops_services_in_reverse_order_one_at_a_time(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    services = [FakeService(n, log, stop_s=1.0) for n in ("db", "sandbox", "http")]
    supervisor = Supervisor(services)
    with no_leaked_tasks():
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            t0 = trio.current_time()
            supervisor.request_shutdown("SIGTERM")
    assert log.names("cancelled") == ["http", "sandbox", "db"]
    assert log.names("exit") == ["http", "sandbox", "db"]
    # Each service is cancelled only after the one started after it has fully exited.
    assert log.times("http", "cancelled") == [pytest.approx(t0)]
    assert log.times("sandbox", "cancelled") == [pytest.approx(t0 + 1.0)]
    assert log.times("db", "cancelled") == [pytest.approx(t0 + 2.0)]
    assert trio.current_time() == pytest.approx(t0 + 3.0)
    assert all(s.cancel_reasons == ["shutdown"] for s in services)
    assert set(states(supervisor).values()) == {"stopped"}


async def test_cancelling_the_caller_also_stops_in_reverse_order(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    services = [FakeService(n, log, stop_s=1.0) for n in ("db", "sandbox", "http")]
    supervisor = Supervisor(services)
    with no_leaked_tasks():
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                scope.cancel(reason="test")
        assert scope.cancelled_caught
    assert log.names("cancelled") == ["http", "sandbox", "db"]
    assert log.times("sandbox", "cancelled")[0] == pytest.approx(log.times("http", "exit")[0])
    assert log.times("db", "cancelled")[0] == pytest.approx(log.times("sandbox", "exit")[0])


async def test_request_shutdown_is_idempotent(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fazt.nursery")
    log = Log()
    supervisor = Supervisor([FakeService("a", log, start_s=0.0)])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        supervisor.request_shutdown("SIGTERM")
        supervisor.request_shutdown("SIGINT")  # e.g. a second signal while stopping
        supervisor.request_shutdown("SIGTERM")
    requested = [r.getMessage() for r in caplog.records if "shutdown requested" in r.getMessage()]
    assert requested == ["shutdown requested: SIGTERM"]
    assert log.names("cancelled") == ["a"]
    assert "all services stopped (SIGTERM)" in caplog.messages


async def test_request_shutdown_before_run_starts_nothing(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    supervisor = Supervisor([FakeService("a", log), FakeService("b", log)])
    supervisor.request_shutdown("changed my mind")
    with no_leaked_tasks():
        await supervisor.run()
    assert log.events == []
    with pytest.raises(RuntimeError):
        await supervisor.wait_ready()


async def test_request_shutdown_during_startup_stops_the_starting_service(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    b = FakeService("b", log, gate=trio.Event())  # never gets ready on its own
    c = FakeService("c", log)
    supervisor = Supervisor([FakeService("a", log), b, c])
    with no_leaked_tasks():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.run)
            await b.entered.wait()
            supervisor.request_shutdown("SIGINT")
    assert log.names("cancelled") == ["b", "a"]
    assert c.runs == 0


async def test_stop_timeout_is_enforced_and_shutdown_continues(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = Log()
    stuck = FakeService("http", log, stop_s=100.0)  # shields its cleanup for 100 s
    supervisor = Supervisor([FakeService("db", log), stuck], stop_timeout_s=5.0)
    with no_leaked_tasks():
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            t0 = trio.current_time()
            supervisor.request_shutdown("SIGTERM")
    # db was stopped once http's 5 s were up, not after http's 100 s cleanup.
    assert log.times("db", "cancelled") == [pytest.approx(t0 + 5.0)]
    assert log.names("exit") == ["db", "http"]
    # trio cannot abandon a task: run() returns once the stuck service finally finishes.
    assert log.times("http", "exit") == [pytest.approx(t0 + 100.0)]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any("'http' did not stop within 5.0 s" in r.getMessage() for r in errors)


# --- crashes after start-up -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected_backoffs"),
    [
        (RESTART, [0.1, 0.2, 0.4, 0.8, 1.6]),
        (RestartPolicy(mode="restart", backoff_max_s=0.3), [0.1, 0.2, 0.3, 0.3, 0.3]),
    ],
)
async def test_crashed_service_restarts_with_exponential_backoff(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
    policy: RestartPolicy,
    expected_backoffs: list[float],
) -> None:
    log = Log()
    a, c = FakeService("a", log), FakeService("c", log)
    b = FakeService("b", log, restart=policy, start_s=0.0, crash_runs=5, crash_after_s=1.0)
    supervisor = Supervisor([a, b, c])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await b.wait_run_ready(6)  # five crashes, five restarts, then it stays up
        crashes = log.times("b", "crash")
        restarts = log.times("b", "enter")[1:]
        assert [r - c for c, r in zip(crashes, restarts, strict=True)] == pytest.approx(
            expected_backoffs
        )
        # The other services kept running throughout.
        assert (a.runs, c.runs) == (1, 1)
        assert log.names("cancelled") == []
        [_, b_state, _] = supervisor.snapshot()
        assert b_state.state == "running"
        assert b_state.restarts == 5
        assert b_state.last_error == "Boom: b crash 5"
        assert b_state.started_at == pytest.approx(restarts[-1])
        supervisor.request_shutdown("test over")
    assert log.names("cancelled") == ["c", "b", "a"]


async def test_crash_is_logged_with_its_traceback_before_restarting(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = Log()
    b = FakeService("b", log, restart=RESTART, crash_runs=1)
    supervisor = Supervisor([b])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await b.wait_run_ready(2)
        supervisor.request_shutdown("test over")
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "'b' crashed; restarting in 0.10 s" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], Boom)


async def test_exceeding_max_restarts_is_fatal(
    autojump_clock: trio.testing.MockClock, hang_guard: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log()
    policy = RestartPolicy(mode="restart", max_restarts=2, window_s=60.0)
    b = FakeService("b", log, restart=policy, crash_runs=99)
    supervisor = Supervisor([FakeService("a", log), b, FakeService("c", log)])
    with no_leaked_tasks(), pytest.raises(ServiceCrashed) as excinfo:
        await supervisor.run()
    assert excinfo.value.service == "b"
    assert "after 2 restarts within 60 s" in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, Boom)
    assert str(excinfo.value.__cause__) == "b crash 3"
    assert b.runs == 3
    assert log.names("cancelled") == ["c", "a"]
    [b_state] = [s for s in supervisor.snapshot() if s.name == "b"]
    assert (b_state.state, b_state.restarts, b_state.last_error) == (
        "crashed",
        2,
        "Boom: b crash 3",
    )
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "'b'" in critical[0].getMessage()
    assert "b crash 3" in critical[0].getMessage()


async def test_restart_window_forgets_old_crashes(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    # One restart allowed per 10 s, and each run lives 20 s: the budget never runs out, and
    # the backoff starts again from the initial value every time.
    policy = RestartPolicy(mode="restart", max_restarts=1, window_s=10.0)
    b = FakeService("b", log, restart=policy, start_s=0.0, crash_runs=4, crash_after_s=20.0)
    supervisor = Supervisor([b])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await b.wait_run_ready(5)
        crashes = log.times("b", "crash")
        restarts = log.times("b", "enter")[1:]
        assert [r - c for c, r in zip(crashes, restarts, strict=True)] == pytest.approx([0.1] * 4)
        assert supervisor.snapshot()[0].restarts == 4
        supervisor.request_shutdown("test over")


async def test_fatal_crash_stops_the_others_in_reverse_order(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = Log()
    b = FakeService("b", log, crash_runs=1)  # default policy: fatal
    supervisor = Supervisor([FakeService("a", log), b, FakeService("c", log)])
    with no_leaked_tasks(), pytest.raises(ServiceCrashed, match="'b' crashed") as excinfo:
        await supervisor.run()
    assert excinfo.value.service == "b"
    assert isinstance(excinfo.value.__cause__, Boom)
    assert b.runs == 1
    assert log.names("cancelled") == ["c", "a"]
    assert states(supervisor) == {"a": "stopped", "b": "crashed", "c": "stopped"}
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert [r.exc_info[1] if r.exc_info else None for r in critical] == [excinfo.value.__cause__]


@pytest.mark.parametrize("policy", [RestartPolicy(), RestartPolicy(mode="restart", max_restarts=0)])
async def test_service_that_returns_counts_as_a_crash(
    autojump_clock: trio.testing.MockClock, hang_guard: None, policy: RestartPolicy
) -> None:
    log = Log()
    b = FakeService("b", log, restart=policy, return_after_s=1.0)
    supervisor = Supervisor([FakeService("a", log), b])
    with pytest.raises(ServiceCrashed) as excinfo:
        await supervisor.run()
    assert isinstance(excinfo.value.__cause__, RuntimeError)
    assert "exited unexpectedly" in str(excinfo.value.__cause__)
    assert log.names("cancelled") == ["a"]


async def test_returning_service_is_restarted_under_a_restart_policy(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    b = FakeService("b", log, restart=RESTART, return_after_s=1.0)
    supervisor = Supervisor([b])
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        await b.wait_run_ready(3)
        assert "exited unexpectedly" in (supervisor.snapshot()[0].last_error or "")
        supervisor.request_shutdown("test over")


async def test_request_shutdown_during_backoff_returns_promptly(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    policy = RestartPolicy(mode="restart", backoff_initial_s=30.0, backoff_max_s=30.0)
    b = FakeService("b", log, restart=policy, crash_runs=1)
    supervisor = Supervisor([FakeService("a", log), b])
    with no_leaked_tasks():
        async with trio.open_nursery() as nursery:
            await nursery.start(supervisor.run)
            await b.crashed.wait()
            # Let the crash reach the supervisor: every task is then blocked, b in its backoff.
            await trio.testing.wait_all_tasks_blocked()
            assert states(supervisor)["b"] == "restarting"
            t0 = trio.current_time()
            supervisor.request_shutdown("SIGTERM")
        assert trio.current_time() == pytest.approx(t0)
    assert b.runs == 1
    assert log.names("cancelled") == ["a"]
    assert states(supervisor) == {"a": "stopped", "b": "stopped"}


async def test_failure_while_stopping_is_reported(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    supervisor = Supervisor([FakeService("a", log), FakeService("b", log, fail_on_stop=True)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(shut_down_once_ready, supervisor)
        with pytest.raises(ServiceCrashed, match="'b' failed while stopping") as excinfo:
            await supervisor.run()
    assert isinstance(excinfo.value.__cause__, Boom)
    assert log.names("cancelled") == ["b", "a"]  # the failure did not cut shutdown short


class GroupOnStopService:
    """A service whose internal nursery fails while it is being cancelled."""

    name = "grouped"
    restart = RestartPolicy()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def child() -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise Boom("child failed during cancellation")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(child)
            task_status.started()
            await trio.sleep_forever()


async def test_exception_group_raised_while_stopping_becomes_service_crashed(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    supervisor = Supervisor([GroupOnStopService()])
    with no_leaked_tasks():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shut_down_once_ready, supervisor)
            with pytest.raises(ServiceCrashed) as excinfo:
                await supervisor.run()
    # Callers see one ServiceCrashed (the group is its cause, with the service's error in it).
    assert excinfo.value.service == "grouped"
    cause = excinfo.value.__cause__
    assert isinstance(cause, ExceptionGroup)
    assert cause.subgroup(Boom) is not None


# --- snapshot -------------------------------------------------------------------------------


async def test_snapshot_follows_each_service_through_its_states(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    gate = trio.Event()
    b = FakeService("b", log, gate=gate)
    c = FakeService("c", log, stop_s=10.0)
    supervisor = Supervisor([FakeService("a", log), b, c])
    assert supervisor.snapshot() == [
        ServiceState(name=n, state="stopped", restarts=0, last_error=None, started_at=None)
        for n in ("a", "b", "c")
    ]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run)
        await b.entered.wait()
        assert states(supervisor) == {"a": "running", "b": "starting", "c": "stopped"}
        assert supervisor.snapshot()[0].started_at == pytest.approx(1.0)
        gate.set()
        await supervisor.wait_ready()
        assert states(supervisor) == {"a": "running", "b": "running", "c": "running"}
        supervisor.request_shutdown("SIGTERM")
        await trio.sleep(5.0)  # c takes 10 s to stop: look at it halfway through
        assert states(supervisor) == {"a": "running", "b": "running", "c": "stopping"}
    assert states(supervisor) == {"a": "stopped", "b": "stopped", "c": "stopped"}


# --- construction ----------------------------------------------------------------------


async def test_duplicate_service_names_are_rejected(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    log = Log()
    with pytest.raises(ValueError, match="duplicate"):
        Supervisor([FakeService("a", log), FakeService("a", log)])


async def test_run_can_only_be_called_once(
    autojump_clock: trio.testing.MockClock,
    hang_guard: None,
) -> None:
    supervisor = Supervisor([])
    supervisor.request_shutdown("done")
    await supervisor.run()
    with pytest.raises(RuntimeError, match="once"):
        await supervisor.run()
