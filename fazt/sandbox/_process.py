"""One JS worker process, seen from the server.

``WorkerProcess`` spawns ``python -m fazt.sandbox.worker`` with a scrubbed environment, reads
its frames in a task of the sandbox's nursery and routes them: ``log`` lines to the log sink,
``call``/``done``/``fail`` to the request that owns them. ``run()`` sends one request and waits
for its outcome inside the caller's cancel scope; capability calls it receives are executed in
the caller's own nursery, so the request's budget bounds them and cancelling the request
cancels them.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio

from fazt.budget import Budget, Phase
from fazt.capabilities import Binary
from fazt.errors import (
    BudgetExceeded,
    CapabilityError,
    FaztError,
    JsCrashed,
    JsError,
    JsMemory,
    capability_error_for,
)
from fazt.sandbox._protocol import FrameReader, ProtocolError, encode

log = logging.getLogger("fazt.sandbox")

LogSink = Callable[[str, str, str, "str | None"], None]
"""``sink(app, level, message, request_id)``: must not block."""

CapabilityHost = Callable[[str, str, list[Any], Budget], Awaitable[Any]]
"""``await host(cap, method, args, budget)`` -> a JSON-able result, or bytes that are JSON
text already (None: ``undefined`` in JS); raises FaztError."""

_MAX_STDERR_LINES = 200     # per worker, into the server log
_PHASE_TIMEOUTS = {f"{phase.value}_timeout": phase.value for phase in Phase}
_STDERR_DRAIN_S = 0.5       # after a worker died: wait this long for its last stderr lines
_WRITE_BATCH = 64           # frames joined into one pipe write at most
_QUIET_S = 0.05             # a request unanswered for this long is slow (run's on_slow)
# SpiderMonkey aborts the process on an out-of-memory it cannot report to JS (an allocation
# during a GC), and PythonMonkey's C++ on a failed `new`; each says so on stderr just before.
# Such a death is an out-of-memory, not a crash.
_OOM_DEATHS = (b"[unhandlable oom]", b"std::bad_alloc")



class State(enum.Enum):
    STARTING = "starting"
    SPARE = "spare"          # ready, no app code yet
    READY = "ready"          # app code loaded, taking requests
    RETIRING = "retiring"    # finishing in-flight requests, then exits
    DEAD = "dead"


@dataclass(frozen=True, kw_only=True)
class JsRequest:
    """What the handler sees as ``request`` (already JSON-encoded) and who asked."""

    body: bytes
    request_id: str


@dataclass(frozen=True, kw_only=True)
class JsOutcome:
    """The handler's normalized response (JSON from runtime.js) and the JS time it used."""

    response: dict[str, Any]
    js_s: float


@dataclass(eq=False)
class _Pending:
    id: int
    request_id: str
    on_slow: Callable[[], None] | None
    started: float                  # trio time
    slice_s: float = 0.0
    slow: bool = False              # on_slow was called
    inbox: _Mailbox = field(default_factory=lambda: _Mailbox())


Frame = tuple[dict[str, Any], bytes]


class _Mailbox:
    """The frames for one request: the reader task puts, the request's task gets. (A trio
    memory channel per request did the same at about twice the cost, on every request.)"""

    __slots__ = ("_closed", "_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Frame] = deque()
        self._waiter: trio.lowlevel.Task | None = None
        self._closed = False

    def put(self, item: Frame) -> None:
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            task, self._waiter = self._waiter, None
            trio.lowlevel.reschedule(task)

    async def get(self) -> Frame:
        """The next frame; raises trio.EndOfChannel once closed and empty."""
        if not self._items and not self._closed:
            self._waiter = trio.lowlevel.current_task()

            def abort(_: Any) -> trio.lowlevel.Abort:
                self._waiter = None
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        if self._items:
            return self._items.popleft()
        raise trio.EndOfChannel


@dataclass(eq=False)
class WorkerProcess:
    """A spawned worker; create with ``spawn()``."""

    process: trio.Process
    app: str | None = None
    deploy_id: int | None = None
    memory_mb: int = 0
    state: State = State.STARTING
    spawned_at: float = field(default_factory=time.monotonic)
    served: int = 0
    poisoned: bool = False
    killed_stuck: bool = False      # killed for not answering (counted by the sandbox)
    _stdin: trio.abc.SendStream | None = None
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _next_id: int = 0
    _outbox: trio.MemorySendChannel[bytes] | None = None
    _closing: bool = False
    _writer_idle: bool = True   # the writer task has nothing queued or being written
    _busy: trio.Event = field(default_factory=trio.Event)  # set: requests are in flight
    _last_heard: float = 0.0    # trio time of its last frame, or of a request to it while idle
    _silence_watch: bool = False
    _nursery: trio.Nursery | None = None
    _ready: trio.Event = field(default_factory=trio.Event)
    _loaded: trio.Event = field(default_factory=trio.Event)
    _load_error: str | None = None
    _exited: trio.Event = field(default_factory=trio.Event)
    _stderr_closed: trio.Event = field(default_factory=trio.Event)
    _log_sink: LogSink | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def alive(self) -> bool:
        return self.state is not State.DEAD

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    async def spawn(cls, nursery: trio.Nursery, *, data_limit_mb: int,
                    log_sink: LogSink) -> WorkerProcess:
        """Start a worker process (then ``await wait_ready()``)."""
        # MALLOC_MMAP_THRESHOLD_ pins glibc's threshold: by default it rises after large
        # blocks are freed, and the next multi-MB frames (a blob) then came from the heap,
        # which fragmented until a 4 MB read hit RLIMIT_DATA (a crash every ~14 blob reads).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
        process = await trio.lowlevel.open_process(
            [sys.executable, "-I", "-m", "fazt.sandbox.worker", str(os.getpid()),
             str(data_limit_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd="/")
        worker = cls(process=process, _log_sink=log_sink, _nursery=nursery,
                     _last_heard=trio.current_time())
        worker._stdin = process.stdin
        outbox, inbox = trio.open_memory_channel[bytes](math.inf)
        worker._outbox = outbox
        nursery.start_soon(worker._write_frames, inbox)
        nursery.start_soon(worker._read_frames)
        nursery.start_soon(worker._read_stderr)
        nursery.start_soon(worker._reap)
        nursery.start_soon(worker._notice_slow)
        return worker

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the worker is locked down and ready for app code."""
        with trio.move_on_after(timeout_s):
            await self._ready.wait()
        if self.state is not State.SPARE:
            self.kill()
            raise JsCrashed(f"JS worker did not start within {timeout_s} s")

    async def load(self, *, app: str, deploy_id: int, files: Mapping[str, str], main: str,
                   memory_mb: int, granted: Mapping[str, list[str]],
                   env: Mapping[str, str] | None, timeout_s: float,
                   runtime: str = "fazt") -> None:
        """Load one deploy's code; raises JsError (the app's own error) or JsCrashed.
        ``env``: the values of the app's granted env names (None: env is not granted).
        ``runtime`` "go": an app written for the Go fazt (the worker's go_compat.js)."""
        self.app, self.deploy_id, self.memory_mb = app, deploy_id, memory_mb
        try:
            self._post({"t": "load", "app": app, "main": main, "memory_mb": memory_mb,
                        "runtime": runtime, "granted": dict(granted),
                        "env": None if env is None else dict(env)},
                       orjson.dumps({"files": dict(files)}))
        except ProtocolError as exc:
            self.kill()
            raise JsError(f"the app's api/ code is too large to load ({exc})") from exc
        with trio.move_on_after(timeout_s):
            await self._loaded.wait()
        if not self._loaded.is_set():
            self.kill()
            raise JsError(f"loading {main} took longer than {timeout_s} s")
        if self._load_error is not None:
            self.kill()
            raise JsError(self._load_error)
        if not self.alive:
            raise JsCrashed("the JS worker died while loading the app")
        self.state = State.READY

    def retire(self) -> None:
        """Take no new requests; exit once the in-flight ones are done."""
        if self.state in (State.READY, State.SPARE, State.STARTING):
            self.state = State.RETIRING
        if self.state is State.RETIRING and not self._pending:
            self._close_outbox()

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        self._mark_dead()

    async def aclose(self) -> None:
        """Kill, reap and close the pipes (the sandbox shutting down)."""
        self.kill()
        await self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                await stream.aclose()

    async def wait_exited(self) -> None:
        await self._exited.wait()

    # -- requests ---------------------------------------------------------------------------

    async def run(self, request: JsRequest, *, budget: Budget, capabilities: CapabilityHost,
                  kill_grace_s: float, on_slow: Callable[[], None] | None = None) -> JsOutcome:
        """Run the handler for one request. Raises BudgetExceeded(js), JsError, JsMemory,
        JsCrashed; cancellation of the caller cancels the request in the worker.
        ``on_slow`` is called once the answer takes a while (see ``_notice_slow``)."""
        if self.state is not State.READY:
            raise JsCrashed("the JS worker is not taking requests")
        self._next_id += 1
        # JS may use everything but the respond reserve; one slice is capped in the worker.
        js_deadline = budget.deadline - budget.policy.respond_reserve_s
        now = trio.current_time()
        if js_deadline - now < budget.policy.min_op_s:
            raise BudgetExceeded("no time left to run the handler", phase=Phase.JS.value)
        pending = _Pending(id=self._next_id, request_id=request.request_id, on_slow=on_slow,
                           started=now, slice_s=budget.policy.js_cap_s)
        if not self._pending:
            self._busy.set()            # _notice_slow starts looking
            if not self._silence_watch:
                self._last_heard = now  # idle until now: its silence starts here
        self._pending[pending.id] = pending
        self.served += 1
        answer = None
        try:
            # Everything, the send included, is bounded: a worker stuck in native code that
            # stops reading its pipe must not hold the request past its deadline.
            with trio.CancelScope(deadline=js_deadline + kill_grace_s) as wait:
                # Deadlines cross as CLOCK_MONOTONIC instants (the clock both processes
                # read), so time the frame spends in the pipe is not added to them.
                mono = time.monotonic() - trio.current_time()
                self._post({"t": "req", "id": pending.id, "end_at": mono + js_deadline,
                            "budget_at": mono + budget.deadline,
                            "slice_ms": round(budget.policy.js_cap_s * 1000, 3)}, request.body)
                answer = await self._answer(pending, budget, capabilities)
            if wait.cancelled_caught:
                # This request is over. Is the worker stuck, or only busy with another
                # request's slice (it reads this request's frame only once that slice ends)?
                # No slice may run longer than js_cap_s: a worker silent for longer is stuck.
                longest = max([p.slice_s for p in self._pending.values()],
                              default=budget.policy.js_cap_s)
                self._kill_if_silent(longest + kill_grace_s)
                raise BudgetExceeded("the handler ran past its deadline", phase=Phase.JS.value)
            if answer is None:
                if not self.poisoned:
                    with trio.move_on_after(_STDERR_DRAIN_S):
                        await self._stderr_closed.wait()    # did it die of out-of-memory?
                raise JsMemory("the JS worker ran out of memory") if self.poisoned else \
                    JsCrashed("the JS worker died during the request")
            return self._outcome(*answer, request.request_id)
        finally:
            self._pending.pop(pending.id, None)
            if answer is None and self.alive:
                self._post_quietly({"t": "cancel", "id": pending.id})
            if self.state is State.RETIRING and not self._pending:  # type: ignore[comparison-overlap]
                self._close_outbox()

    async def _answer(self, pending: _Pending, budget: Budget,
                      capabilities: CapabilityHost) -> Frame | None:
        """The worker's answer to ``pending``, or None if the worker died first. Capability
        calls the handler makes meanwhile run in a nursery inside the request's scope, which
        exists only once the first call comes: most requests cost no task of their own."""
        try:
            first = await pending.inbox.get()
        except trio.EndOfChannel:
            return None
        if first[0]["t"] != "call":
            return first
        self._notice(pending)           # a request that makes calls is slow enough
        async with trio.open_nursery() as calls:
            item: Frame | None = first
            while True:
                if item is None:
                    try:
                        item = await pending.inbox.get()
                    except trio.EndOfChannel:
                        calls.cancel_scope.cancel(reason="the worker died")
                        return None
                header, body = item
                item = None
                if header["t"] == "call":
                    calls.start_soon(self._call, header, body, budget, capabilities)
                    continue
                calls.cancel_scope.cancel(reason="request finished")
                return header, body

    async def _notice_slow(self) -> None:
        """Call ``on_slow`` for each request still unanswered after ``_QUIET_S`` (the HTTP
        layer then watches for its client going away). One task per worker that looks
        twice per ``_QUIET_S`` while requests are in flight, instead of a timer per
        request."""
        while self.state is not State.DEAD:
            if not self._pending:
                self._busy = trio.Event()
                await self._busy.wait()     # set by run(), and by _mark_dead
                continue
            await trio.sleep(_QUIET_S / 2)
            horizon = trio.current_time() - _QUIET_S
            for pending in list(self._pending.values()):
                if pending.started <= horizon:
                    self._notice(pending)

    @staticmethod
    def _notice(pending: _Pending) -> None:
        if not pending.slow and pending.on_slow is not None:
            pending.slow = True
            try:
                pending.on_slow()
            except Exception:   # the caller's hook must not stop the worker
                log.exception("on_slow hook of request %s failed", pending.request_id)

    def _kill_if_silent(self, limit_s: float) -> None:
        """A request ran out without an answer: kill the worker if it has been silent for
        ``limit_s`` (longer than any slice may run), now or once that time has passed."""
        silent = trio.current_time() - self._last_heard
        if silent > limit_s:
            log.warning("JS worker %d (%s) silent for %.1f s while requests wait: killed",
                        self.pid, self.app, silent)
            self.killed_stuck = True
            self.kill()
        elif not self._silence_watch and self._nursery is not None:
            self._silence_watch = True
            self._nursery.start_soon(self._watch_silence, self._last_heard, limit_s)

    async def _watch_silence(self, since: float, limit_s: float) -> None:
        try:
            await trio.sleep_until(since + limit_s)
            if self.alive and self._last_heard == since:
                self._kill_if_silent(limit_s - 1e-9)
        finally:
            self._silence_watch = False

    def _outcome(self, header: dict[str, Any], body: bytes, request_id: str) -> JsOutcome:
        js_s = float(header.get("js_ms", 0)) / 1000
        if header["t"] == "fail":
            if header.get("code") == "js_memory":
                raise JsMemory("the handler ran out of memory")
            raise BudgetExceeded("the handler ran out of time", phase=Phase.JS.value)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise JsCrashed("the JS worker sent an unreadable answer") from exc
        if not isinstance(payload, dict):
            raise JsCrashed("the JS worker sent an unreadable answer")
        if not header.get("ok"):
            self._log_js_error(payload, request_id)
            code = payload.get("code") if isinstance(payload, dict) else None
            if isinstance(code, str) and code in _PHASE_TIMEOUTS:
                # A capability call ran out of its phase and the handler let the error go:
                # the request ran out of time in that phase, not in JS.
                raise BudgetExceeded(f"the {_PHASE_TIMEOUTS[code]} phase ran out of time",
                                     phase=_PHASE_TIMEOUTS[code])
            refused = capability_error_for(code, str(payload.get("message"))) \
                if isinstance(code, str) else None
            if refused is not None:
                # A refused capability call the handler let go (over quota, value too large,
                # no user...): the client gets that error's status and code.
                raise refused
            raise JsError(f"{payload.get('name')}: {payload.get('message')}")
        if not isinstance(payload, dict):
            raise JsCrashed("the JS worker sent an unreadable answer")
        return JsOutcome(response=payload, js_s=js_s)

    def _log_js_error(self, payload: dict[str, Any], request_id: str) -> None:
        if self._log_sink is None or self.app is None:
            return
        name, message = payload.get("name"), payload.get("message")
        stack = payload.get("stack")
        if not isinstance(stack, str):
            stack = ""
        frames = "\n".join(f"    at {line}" for line in stack.splitlines()
                           if line and "fazt:" not in line)
        text = f"uncaught {name}: {message}" + (f"\n{frames}" if frames else "")
        self._log_sink(self.app, "error", text, request_id)

    async def _call(self, header: dict[str, Any], body: bytes, budget: Budget,
                    capabilities: CapabilityHost) -> None:
        cid = header.get("cid")
        try:
            binary, at = header.get("bin"), header.get("arg", -1)
            raw: bytes | None = None
            if binary is not None:      # one argument's bytes follow the JSON
                if not isinstance(binary, int) or not 0 <= binary <= len(body):
                    raise CapabilityError("malformed capability call")
                body, raw = body[:len(body) - binary], body[len(body) - binary:]
            cap, method, args = orjson.loads(body)
            if not isinstance(cap, str) or not isinstance(method, str) \
                    or not isinstance(args, list):
                raise CapabilityError("malformed capability call")
            if raw is not None:
                if not isinstance(at, int) or not 0 <= at < len(args):
                    raise CapabilityError("malformed capability call")
                args[at] = raw.decode("utf-8") if header.get("text") else raw
            result = await capabilities(cap, method, args, budget)
            if isinstance(result, Binary):      # JSON, then bytes the worker hands JS as is
                self._post_quietly({"t": "res", "cid": cid, "ok": True,
                                    "bin": len(result.data)},
                                   orjson.dumps(dict(result.value)) + result.data)
                return
            if result is None:
                reply = b""
            elif isinstance(result, bytes):     # already JSON text (a stored value)
                reply = bytes(result)
            else:
                reply = orjson.dumps(result)
            ok = True
        except FaztError as exc:
            # A capability's own message is written for the app's author (a net error's says
            # what went wrong upstream): it goes to the handler whole. Others (storage) may
            # name internals: the generic text for their status.
            message = exc.message if isinstance(exc, CapabilityError) else exc.public_message()
            reply, ok = orjson.dumps({"code": exc.code, "message": message}), False
        except (ValueError, TypeError):
            reply, ok = orjson.dumps({"code": "capability_error",
                                      "message": "malformed capability call"}), False
        self._post_quietly({"t": "res", "cid": cid, "ok": ok}, reply)

    # -- the pipes --------------------------------------------------------------------------

    def _post(self, header: dict[str, Any], body: bytes = b"") -> None:
        """Send a frame. It is never awaited, so a caller's cancellation can never cut a
        frame in half (which would desynchronise the pipe for every request on the worker).

        A worker with nothing else in flight gets the frame written at once (the low-load
        latency: the writer task would cost two scheduler rounds); otherwise, or for what a
        full pipe did not take, the frame is queued for the writer task, which joins
        everything queued into one write."""
        data = encode(header, body)
        if self._outbox is None or self._closing or not self.alive:
            raise JsCrashed("the JS worker is gone")
        if self._writer_idle and len(self._pending) <= 1 and self._stdin is not None:
            try:
                written = os.write(self._stdin.fileno(), data)  # type: ignore[attr-defined]
            except OSError:     # full (non-blocking) or broken: the writer task deals with it
                written = 0
            if written == len(data):
                return
            data = data[written:]
        self._writer_idle = False       # from now on, frames queue behind this one
        try:
            self._outbox.send_nowait(data)
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            raise JsCrashed("the JS worker is gone") from exc

    def _post_quietly(self, header: dict[str, Any], body: bytes = b"") -> None:
        with contextlib.suppress(JsCrashed, ProtocolError):
            self._post(header, body)

    async def _write_frames(self, inbox: trio.MemoryReceiveChannel[bytes]) -> None:
        stdin = self._stdin
        assert stdin is not None
        try:
            async with inbox:
                async for data in inbox:
                    # Everything queued meanwhile goes in the same write: under load one
                    # write (and one wake-up of the worker) carries many frames.
                    batch = [data]
                    with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                        while len(batch) < _WRITE_BATCH:
                            batch.append(inbox.receive_nowait())
                    await stdin.send_all(b"".join(batch) if len(batch) > 1 else data)
                    self._writer_idle = inbox.statistics().current_buffer_used == 0
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._mark_dead()
        finally:
            # The outbox is closed (retired) or the worker died: closing its stdin is how a
            # worker is told to exit.
            self._writer_idle = False
            self._stdin = None
            with trio.CancelScope(shield=True):
                await stdin.aclose()

    async def _read_frames(self) -> None:
        reader = FrameReader()
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                data = await stdout.receive_some(1 << 20)
                if not data:
                    break
                for header, body in reader.feed(bytes(data)):
                    self._route(header, body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except (ProtocolError, KeyError, ValueError, TypeError) as exc:
            log.warning("JS worker %d (%s) broke the protocol: %s; killed", self.pid, self.app,
                        exc)
            self.kill()
        finally:
            self._mark_dead()
            with trio.CancelScope(shield=True):
                await stdout.aclose()

    def _route(self, header: dict[str, Any], body: bytes) -> None:
        self._last_heard = trio.current_time()
        kind = header["t"]
        if kind == "log":
            self._on_log(header, body)
        elif kind in ("call", "done", "fail"):
            if kind == "fail" and header.get("code") == "js_memory":
                # Retire it now, before the failed request's caller can send another request
                # here: the worker's own "poisoned" frame may come in a later read.
                self._poison()
            pending = self._pending.get(header["rid"] if kind == "call" else header["id"])
            if pending is not None:
                pending.inbox.put((header, body))
        elif kind == "ready":
            self.state = State.SPARE
            self._ready.set()
        elif kind == "loaded":
            if not header.get("ok"):
                self._load_error = body.decode("utf-8", "replace")
            self._loaded.set()
        elif kind == "poisoned":
            self._poison()
        elif kind == "retire":          # its memory stays high after a GC: replace it
            log.info("JS worker %d (%s) asks to be replaced: %s", self.pid, self.app,
                     header.get("reason"))
            self.retire()
        else:
            raise ProtocolError(f"unknown message {kind!r}")

    def _poison(self) -> None:
        """After an out-of-memory the worker's allocations keep failing: retire it."""
        if not self.poisoned:
            self.poisoned = True
            log.info("JS worker %d (%s) ran out of memory: retiring it", self.pid, self.app)
        self.retire()

    def _on_log(self, header: dict[str, Any], body: bytes) -> None:
        if self._log_sink is None or self.app is None:
            return
        rid = header.get("rid")
        pending = self._pending.get(rid) if rid is not None else None
        level = header.get("level")
        self._log_sink(self.app, level if isinstance(level, str) else "info",
                       body.decode("utf-8", "replace"),
                       pending.request_id if pending is not None else None)

    async def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        lines = 0
        buffer = b""
        try:
            while True:
                data = await stderr.receive_some(65536)
                if not data:
                    break
                buffer += data
                if any(marker in buffer for marker in _OOM_DEATHS):
                    self.poisoned = True
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    lines += 1
                    if lines <= _MAX_STDERR_LINES:
                        log.warning("JS worker %d (%s): %s", self.pid, self.app,
                                    line[:2000].decode("utf-8", "replace"))
                buffer = buffer[-65536:]
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._stderr_closed.set()
            with trio.CancelScope(shield=True):
                await stderr.aclose()

    async def _reap(self) -> None:
        try:
            await self.process.wait()
        finally:
            self._mark_dead()
            self._exited.set()

    def _close_outbox(self) -> None:
        """No more frames: the writer sends what is queued, then closes the worker's stdin."""
        if self._outbox is not None and not self._closing:
            self._closing = True
            self._outbox.close()

    def _mark_dead(self) -> None:
        if self.state is State.DEAD:
            return
        self.state = State.DEAD
        self._ready.set()
        self._loaded.set()
        for pending in self._pending.values():
            pending.inbox.close()
        self._busy.set()                # _notice_slow ends
        self._close_outbox()
