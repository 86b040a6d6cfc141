"""Pools of JS workers, one per app, under a total memory bound.

    Sandbox (a service: owns every worker process and the tasks that read them)
    ├── spares      generic workers, locked down, no app code: claiming one hides the
    │               ~350 ms PythonMonkey start-up; a replacement is spawned at once
    └── pools       app -> AppPool (one deploy's code; up to workers_per_app workers,
                    each multiplexing up to worker_concurrency requests)

Every worker counts its app's ``memory_mb`` (its RLIMIT_DATA) against ``total_memory_mb``;
spawning past it first evicts idle pools, else waits (bounded by the request's budget), and
gives ``js_busy`` when the app has no worker at all. Workers are retired after
``recycle_after`` requests, after running out of memory and when their deploy is replaced;
a retired worker finishes its in-flight requests and exits. Pools idle for ``idle_s`` are shut.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from fazt.budget import Budget, Phase
from fazt.errors import BudgetExceeded, JsBusy, JsCrashed, JsError, JsMemory
from fazt.sandbox._process import (
    CapabilityHost,
    JsOutcome,
    JsRequest,
    LogSink,
    State,
    WorkerProcess,
)

log = logging.getLogger("fazt.sandbox")

LOAD_RETRY_S = 10.0
"""An app whose code failed to load answers js_error for this long before loading again."""


@dataclass(frozen=True, kw_only=True)
class SandboxSettings:
    workers_per_app: int = 2
    worker_concurrency: int = 16
    memory_mb_default: int = 128
    memory_mb_max: int = 512
    total_memory_mb: int = 1024
    spares: int = 1
    idle_s: float = 300.0
    recycle_after: int = 10_000
    kill_grace_s: float = 0.25
    spawn_timeout_s: float = 15.0
    load_timeout_s: float = 10.0
    retire_timeout_s: float = 70.0


@dataclass(frozen=True, kw_only=True)
class AppCode:
    """One deploy's JS: ``files`` maps ``api/...`` paths to their text."""

    app: str
    deploy_id: int
    main: str
    files: Mapping[str, str]
    memory_mb: int
    granted: Mapping[str, list[str]]
    env: Mapping[str, str] | None = None    # None: the app is not granted env
    runtime: str = "fazt"       # "go": an app written for the Go fazt (go_compat.js)

    @property
    def concurrency(self) -> int | None:
        """Requests one worker takes at a time (None: the sandbox's setting). A Go fazt app
        makes synchronous calls, which block its worker: one at a time."""
        return 1 if self.runtime == "go" else None


CodeLoader = Callable[[], Awaitable[AppCode]]


@dataclass(eq=False)
class AppPool:
    app: str
    deploy_id: int
    generation: int
    code: AppCode | None = None
    load_error: JsError | None = None
    load_failed_at: float = 0.0
    start_failures: int = 0
    workers: list[WorkerProcess] = field(default_factory=list)
    starting: int = 0
    last_used: float = field(default_factory=time.monotonic)
    lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    waking: int = 0         # requests woken from the lot that have not run yet
    code_lock: trio.Lock = field(default_factory=trio.Lock)
    waiting: dict[object, float] = field(default_factory=dict)   # a queued request -> since

    def longest_wait_s(self, now: float) -> float:
        return max((now - since for since in self.waiting.values()), default=0.0)

    def wake(self, *, everyone: bool = False) -> None:
        """Wake the longest-parked request (``everyone``: all of them, to look again)."""
        woken = self.lot.unpark_all() if everyone else self.lot.unpark()
        self.waking += len(woken)

    def free_slots(self, concurrency: int) -> int:
        return sum(concurrency - w.in_flight for w in self.workers
                   if w.state is State.READY and w.in_flight < concurrency)

    @property
    def in_flight(self) -> int:
        return sum(w.in_flight for w in self.workers)

    def pick(self, concurrency: int) -> WorkerProcess | None:
        """The least busy worker that can take one more request."""
        best = None
        for worker in self.workers:
            if worker.state is State.READY and worker.in_flight < concurrency and \
                    (best is None or worker.in_flight < best.in_flight):
                best = worker
        return best


@dataclass
class Counters:
    spawns: int = 0
    recycles: int = 0
    kills: int = 0
    timeouts: int = 0
    ooms: int = 0
    crashes: int = 0
    evictions: int = 0


class Sandbox:
    def __init__(self, settings: SandboxSettings, *, log_sink: LogSink) -> None:
        self.settings = settings
        self._log_sink = log_sink
        self._pools: dict[str, AppPool] = {}
        self._spares: list[WorkerProcess] = []
        self._spares_starting = 0
        self._reserved_mb = 0
        self._nursery: trio.Nursery | None = None
        self._refill = trio.Event()
        self._all: set[WorkerProcess] = set()
        self._held: dict[WorkerProcess, int] = {}   # pool workers -> the MB reserved for them
        self.counters = Counters()

    # -- service ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._keep_spares)
                nursery.start_soon(self._evict_idle)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True, deadline=trio.current_time() + 10):
                for worker in list(self._all):
                    worker.kill()
                for worker in list(self._all):
                    await worker.aclose()

    # -- requests ---------------------------------------------------------------------------

    async def handle(self, *, app: str, deploy_id: int, generation: int, load_code: CodeLoader,
                     request: JsRequest, budget: Budget, capabilities: CapabilityHost,
                     on_slow: Callable[[], None] | None = None) -> JsOutcome:
        """Run ``request`` in one of the app's workers. ``on_slow`` is called (maybe more than
        once) when the request has to wait for its code or for a slow answer. Not while it
        queues for a free worker: under load that is every queued request, and what it costs
        to notice a client gone then is small (its request runs at most ``_QUIET_S``)."""
        while True:
            pool = self._pool(app, deploy_id, generation)
            pool.last_used = time.monotonic()
            if pool.code is None:
                if on_slow is not None:
                    on_slow()
                async with pool.code_lock:
                    if pool.code is None:
                        pool.code = await load_code()
            try:
                worker = await self._acquire(pool, budget)
            except BudgetExceeded:      # no worker in time: a timeout all the same
                self.counters.timeouts += 1
                raise
            if worker is not None:
                break       # else the pool was replaced or evicted while we waited: again
        try:
            outcome = await worker.run(request, budget=budget, capabilities=capabilities,
                                       kill_grace_s=self.settings.kill_grace_s, on_slow=on_slow)
        except BudgetExceeded:
            self.counters.timeouts += 1
            raise
        except JsMemory:
            self.counters.ooms += 1
            raise
        except JsCrashed:
            self.counters.crashes += 1
            raise
        finally:
            self._release(pool, worker)
        budget.record(Phase.JS, outcome.js_s)
        return outcome

    def _pool(self, app: str, deploy_id: int, generation: int) -> AppPool:
        pool = self._pools.get(app)
        if pool is not None and (pool.deploy_id == deploy_id or generation <= pool.generation):
            return pool   # same deploy, or this request read an older index: newest code wins
        if pool is not None:
            log.info("app %s: deploy %d replaces %d; retiring its JS workers", app, deploy_id,
                     pool.deploy_id)
            self._retire_pool(pool)
        pool = AppPool(app=app, deploy_id=deploy_id, generation=generation)
        self._pools[app] = pool
        return pool

    async def _acquire(self, pool: AppPool, budget: Budget) -> WorkerProcess | None:
        """A worker of ``pool`` with room for one more request; None when the pool stopped
        being the app's current one (redeployed, evicted) while we waited."""
        settings = self.settings
        assert pool.code is not None
        concurrency = pool.code.concurrency or settings.worker_concurrency
        # Requests wait their turn: while others are parked or woken but not yet running, a
        # newcomer queues behind them even if a slot is free (it is the one a woken request
        # is about to take).
        queued = bool(pool.lot) or pool.waking > 0
        deadline = budget.deadline - budget.policy.respond_reserve_s
        me: object | None = None
        try:
            while True:
                if self._pools.get(pool.app) is not pool:
                    return None
                if pool.load_error is not None:
                    if time.monotonic() - pool.load_failed_at < LOAD_RETRY_S:
                        raise JsError(pool.load_error.message)
                    pool.load_error = None     # try again: the failure may have been load
                worker = pool.pick(concurrency)
                live = sum(1 for w in pool.workers if w.state is State.READY)
                # One worker starts at a time: a waiter woken for another reason while one is
                # on its way must not start a second for the same demand.
                if pool.starting == 0 and live < settings.workers_per_app and \
                        (worker is None or worker.in_flight > 0):
                    self._start_worker(pool, needed=worker is None)
                if worker is not None and not queued:
                    if pool.lot and pool.free_slots(concurrency) - 1 > pool.waking:
                        # Room for more than this one and the requests already woken (newcomers
                        # queued behind them while they were about to run): the next in line.
                        pool.wake()
                    return worker
                queued = False
                if me is None:          # queued: the runtime view shows how long
                    me = object()
                    pool.waiting[me] = time.monotonic()
                with trio.move_on_at(deadline):     # only a request that waits needs a scope
                    await pool.lot.park()
                    pool.waking -= 1    # woken (a cancelled park was never counted as woken)
                    continue
                raise BudgetExceeded("no JS worker became free in time", phase=Phase.JS.value)
        finally:
            if me is not None:
                del pool.waiting[me]

    def _release(self, pool: AppPool, worker: WorkerProcess) -> None:
        pool.last_used = time.monotonic()
        if worker.state is State.READY and worker.served >= self.settings.recycle_after:
            self.counters.recycles += 1
            self._retire(worker)
        # One slot came free: wake one waiter, the longest parked (a wake-up for everyone
        # made every completion cost O(waiters) under load).
        pool.wake()

    def _start_worker(self, pool: AppPool, *, needed: bool) -> None:
        assert pool.code is not None
        memory = pool.code.memory_mb
        if not self._reserve(memory, may_evict=needed):
            if not needed:
                return              # busy but served: grow later
            if pool.workers or pool.starting:
                return              # one will free up
            if self._reserved_mb - self._freeing_mb() + memory <= self.settings.total_memory_mb:
                return              # retired workers are exiting: their memory comes back
            raise JsBusy(f"the JS memory limit ({self.settings.total_memory_mb} MB) is "
                         "reached; no worker can be started for this app")
        pool.starting += 1
        assert self._nursery is not None, "the sandbox service is not running"
        self._nursery.start_soon(self._grow, pool, memory)

    async def _grow(self, pool: AppPool, memory: int) -> None:
        """Claim a spare (or spawn), load the pool's code; the memory reserved for it is
        released when the worker exits, or here if it never becomes one of the pool's."""
        code = pool.code
        assert code is not None and self._nursery is not None
        worker: WorkerProcess | None = None
        try:
            worker = self._take_spare() or await self._spawn()
            self._refill.set()
            await worker.load(app=code.app, deploy_id=code.deploy_id, files=code.files,
                              main=code.main, memory_mb=memory, granted=code.granted, env=code.env,
                              runtime=code.runtime, timeout_s=self.settings.load_timeout_s)
        except (JsError, JsCrashed, OSError) as exc:
            # Nothing one worker does may take the sandbox service (and the server) down:
            # the app's own error, a crash while loading, or the host out of processes/fds.
            if worker is not None:
                worker.kill()
            self._release_mb(memory)
            if isinstance(exc, JsError):
                self._log_sink(code.app, "error", f"loading {code.main} failed: {exc.message}",
                               None)
                pool.load_error = exc
                pool.load_failed_at = time.monotonic()
            else:
                log.warning("app %s: a JS worker failed to start: %s", code.app, exc)
                pool.start_failures += 1
                if pool.start_failures >= 2:    # once is bad luck; twice in a row, back off
                    pool.load_error = JsError(f"the JS worker failed to start or load: {exc}")
                    pool.load_failed_at = time.monotonic()
        else:
            pool.start_failures = 0
            self._held[worker] = memory
            self._nursery.start_soon(self._watch, pool, worker, memory)
            if self._pools.get(pool.app) is pool:
                pool.workers.append(worker)
            else:
                self._retire(worker)       # the deploy was replaced while this one loaded
        finally:
            pool.starting -= 1
            pool.wake(everyone=True)

    async def _forget_on_exit(self, worker: WorkerProcess) -> None:
        await worker.wait_exited()
        self._all.discard(worker)
        if worker.killed_stuck:
            self.counters.kills += 1
        self._refill.set()          # a spare that died is replaced

    async def _watch(self, pool: AppPool, worker: WorkerProcess, memory: int) -> None:
        await worker.wait_exited()
        self._held.pop(worker, None)
        if worker in pool.workers:
            pool.workers.remove(worker)
        self._release_mb(memory)
        pool.wake(everyone=True)
        for waiting in self._pools.values():    # requests waiting for memory to come back
            waiting.wake(everyone=True)
        self._refill.set()

    def _retire(self, worker: WorkerProcess) -> None:
        worker.retire()
        assert self._nursery is not None
        self._nursery.start_soon(self._reap_retired, worker)

    async def _reap_retired(self, worker: WorkerProcess) -> None:
        with trio.move_on_after(self.settings.retire_timeout_s):
            await worker.wait_exited()
            return
        log.warning("JS worker %d (%s) did not exit after retiring: killed", worker.pid,
                    worker.app)
        self.counters.kills += 1
        worker.kill()

    def _retire_pool(self, pool: AppPool) -> None:
        for worker in pool.workers:
            self._retire(worker)
        pool.wake(everyone=True)

    # -- spares and memory ------------------------------------------------------------------

    async def _spawn(self) -> WorkerProcess:
        assert self._nursery is not None
        worker = await WorkerProcess.spawn(self._nursery,
                                           data_limit_mb=self.settings.memory_mb_max,
                                           log_sink=self._log_sink)
        self._all.add(worker)
        self._nursery.start_soon(self._forget_on_exit, worker)
        self.counters.spawns += 1
        await worker.wait_ready(self.settings.spawn_timeout_s)
        return worker

    def _take_spare(self) -> WorkerProcess | None:
        while self._spares:
            worker = self._spares.pop(0)
            self._release_mb(self.settings.memory_mb_default)
            if worker.state is State.SPARE:
                return worker
        return None

    async def _keep_spares(self) -> None:
        while True:
            self._refill = trio.Event()
            alive = [w for w in self._spares if w.state is State.SPARE]
            for _ in range(len(self._spares) - len(alive)):
                self._release_mb(self.settings.memory_mb_default)
            self._spares = alive
            while len(self._spares) + self._spares_starting < self.settings.spares and \
                    self._reserve(self.settings.memory_mb_default, may_evict=False):
                self._spares_starting += 1
                try:
                    self._spares.append(await self._spawn())
                except (JsCrashed, OSError) as exc:
                    self._release_mb(self.settings.memory_mb_default)
                    log.warning("a spare JS worker failed to start: %s", exc)
                    await trio.sleep(1)
                finally:
                    self._spares_starting -= 1
            await self._refill.wait()

    def _reserve(self, memory_mb: int, *, may_evict: bool) -> bool:
        """Count ``memory_mb`` against the bound; only a worker a request cannot do without
        may evict idle apps to fit (never a spare, never an optional extra worker)."""
        if may_evict and self._reserved_mb + memory_mb > self.settings.total_memory_mb:
            self._evict_for(memory_mb)
        if self._reserved_mb + memory_mb > self.settings.total_memory_mb:
            return False
        self._reserved_mb += memory_mb
        return True

    def _release_mb(self, memory_mb: int) -> None:
        self._reserved_mb = max(0, self._reserved_mb - memory_mb)

    def _freeing_mb(self) -> int:
        """Memory of retired or dead workers: released when they have exited."""
        return sum(mb for worker, mb in self._held.items()
                   if worker.state in (State.RETIRING, State.DEAD))

    def _evict_for(self, memory_mb: int) -> None:
        """Retire idle pools, least recently used first, until ``memory_mb`` would fit."""
        idle = sorted((p for p in self._pools.values() if p.in_flight == 0 and p.workers),
                      key=lambda p: p.last_used)
        freed = self._freeing_mb()      # already on its way back: evict no more than needed
        for pool in idle:
            if self._reserved_mb - freed + memory_mb <= self.settings.total_memory_mb:
                break
            freed += sum(w.memory_mb for w in pool.workers if w.state is State.READY)
            self._evict(pool)

    def reload(self, app: str) -> None:
        """The app's grant or env changed: its workers finish what they run and exit; the next
        request loads the code again, with the new ``caps``."""
        pool = self._pools.pop(app, None)
        if pool is not None:
            log.info("app %s: settings changed; reloading its JS workers", app)
            self._retire_pool(pool)

    def _evict(self, pool: AppPool) -> None:
        self.counters.evictions += 1
        if self._pools.get(pool.app) is pool:
            del self._pools[pool.app]
        self._retire_pool(pool)

    async def _evict_idle(self) -> None:
        interval = max(0.5, min(self.settings.idle_s / 4, 10.0))
        while True:
            await trio.sleep(interval)
            cutoff = time.monotonic() - self.settings.idle_s
            for pool in list(self._pools.values()):
                if pool.in_flight == 0 and pool.starting == 0 and pool.last_used < cutoff:
                    log.info("app %s: JS pool idle for %.0f s: shut down", pool.app,
                             self.settings.idle_s)
                    self._evict(pool)

    # -- introspection ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "reserved_mb": self._reserved_mb,
            "total_memory_mb": self.settings.total_memory_mb,
            "spares": len(self._spares),
            "counters": dict(self.counters.__dict__),
            "pools": {
                app: {"deploy_id": pool.deploy_id, "in_flight": pool.in_flight,
                      "starting": pool.starting, "queued": len(pool.waiting),
                      "longest_wait_s": round(pool.longest_wait_s(now), 3),
                      "workers": [{"pid": w.pid, "state": w.state.value,
                                   "in_flight": w.in_flight, "served": w.served,
                                   "age_s": round(now - w.spawned_at, 1),
                                   "rss_bytes": process_rss(w.pid)}
                                  for w in pool.workers]}
                for app, pool in self._pools.items()},
        }


def process_rss(pid: int | str) -> int | None:
    """A process's resident memory in bytes ("self" for this one; None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None
