"""A JS worker process: ``python -m fazt.sandbox.worker PARENT_PID DATA_LIMIT_MB``.

Runs untrusted app code for exactly one deploy of one app. Start-up, before any app code:

1. limits (``RLIMIT_DATA``, no core files, no file writes), protocol on private fds, stdout
   pointed at stderr; the worker exits when its server is gone (EOF on the pipe, or the
   watchdog's periodic ``getppid`` check, which also stops JS that is running);
2. import PythonMonkey, install the watchdog and the event-loop stand-in;
3. evaluate ``runtime.js`` (loader, dispatch, capability stubs) and ``lockdown.js`` (only
   standard globals remain, the debugger is gone, every reachable object is frozen);
4. say ``ready``; then ``load`` compiles the app's modules and runs ``api/main.js``.

Requests are multiplexed: each JS slice (the first run of a handler, or one promise job) is
attributed to the request whose code enqueued it, and runs under the watchdog armed for that
request's deadline. A request past its deadline is failed at once and its remaining jobs are
dropped; other requests in the worker go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import select
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fazt import __version__
from fazt.sandbox._modules import ModuleSyntaxError, wrap, wrap_go
from fazt.sandbox._protocol import FrameReader, ProtocolError, encode

_HERE = Path(__file__).parent
_LOAD_S = 5.0                # time for the app's top-level module code
_FAIRNESS_S = 0.02           # run jobs at most this long before looking at the pipe again
MAX_LOG_LINES = 1000         # per request; one more line says the rest was dropped
MAX_CALLS_IN_FLIGHT = 64     # per request
# PythonMonkey hands a Python str to JS as an *external* string (JS reads Python's memory)
# unless the str holds a character beyond U+FFFF, which it copies. An external string's
# finalizer scans a table of every live one, so a GC that frees n of them costs O(n^2): the
# request and result texts of about a thousand requests made a 150-500 ms stall, every few
# seconds under load (docs/discussion/budgets-and-sandbox.md). Texts for JS end in this mark.
# A long text keeps the external form (two plain characters end it instead): the copy would
# hold it four times over in Python and twice more while converting, and long texts are few.
_COPY_MARK = "\U0010FFFF"
_KEEP_MARK = "  "
COPY_MAX_CHARS = 64 * 1024


@dataclass(eq=False)
class Request:
    id: int
    end: float                # JS may run until here (time.monotonic)
    budget_end: float         # the request's own deadline, for budget.remaining()
    slice_s: float
    js_s: float = 0.0
    log_lines: int = 0
    calls: set[int] = field(default_factory=set)
    finished: bool = False


class _TopLevelTimeout(Exception):
    """The module's top-level async work did not settle within the load's time."""


class _Handle:
    def cancel(self) -> None:  # PythonMonkey never cancels a job; present for the protocol
        pass

    def cancelled(self) -> bool:
        return False


class JobLoop:
    """The asyncio-loop stand-in PythonMonkey schedules promise jobs on.

    PythonMonkey calls ``call_soon_threadsafe`` for promise jobs (timers are removed by the
    lockdown). Each job is tagged with the request whose code was running when it was
    enqueued, so later slices are charged to that request. ``create_future`` and
    ``call_exception_handler`` serve its promise-rejection tracker, which the watchdog turns
    off; they stay as a guard, since a loop method that raises would crash PythonMonkey.
    """

    def __init__(self) -> None:
        self.ready: deque[tuple[Request | None, Callable[..., Any], tuple[Any, ...]]] = deque()
        self.current: Request | None = None

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any,
                             context: Any = None) -> _Handle:
        self.ready.append((self.current, callback, args))
        return _Handle()

    call_soon = call_soon_threadsafe

    def create_future(self) -> asyncio.Future[Any]:
        # PythonMonkey's rejection tracker turns every rejected promise into a Future.
        return asyncio.Future(loop=self)   # type: ignore[arg-type]

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        # "Future exception was never retrieved": PythonMonkey reports rejections that are
        # handled a moment later too, so these are noise. A request's outcome is what the
        # handler's promise settles to.
        pass

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"the fazt JS worker has no asyncio {name}")


def to_js(text: str) -> str:
    """``text`` made to reach JS as a copy when it is short (see ``_COPY_MARK``); JS's
    ``fromHost`` cuts the two UTF-16 units of either mark off again. Every text handed to JS
    per request goes through here."""
    return text + (_COPY_MARK if len(text) <= COPY_MAX_CHARS else _KEEP_MARK)


def _host_function(fallback: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if isinstance(fallback, str):
        fallback = to_js(fallback)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def safe(*args: Any) -> Any:
            try:
                return fn(*args)
            except Exception:   # noqa: BLE001 - see the note on host functions
                traceback.print_exc()
                return fallback

        return safe

    return decorate


class Worker:
    def __init__(self, proto_in: int, proto_out: int, parent_pid: int) -> None:
        import pythonmonkey as pm

        from fazt.sandbox._watchdog import Watchdog

        self._pm = pm
        self._in = proto_in
        self._out = proto_out
        self._reader = FrameReader()
        self._moved = 0          # bytes through the pipes since the last GC (see _collect)
        self._memory_limit = resource.getrlimit(resource.RLIMIT_DATA)[0]
        self._retiring = False
        self.loop = JobLoop()
        asyncio.events._set_running_loop(self.loop)  # type: ignore[arg-type]
        self.watchdog = Watchdog(parent_pid)
        self.requests: dict[int, Request] = {}
        self.calls: dict[int, Request] = {}
        self._next_call = 0
        self._load_end = 0.0            # JS belonging to no request may run until here
        self._outbox: list[bytes] = []  # frames not written yet (see send)
        self.poisoned = False
        self._deferred: deque[tuple[dict[str, Any], bytes]] = deque()  # see _wait_for
        self._blocked_s = 0.0    # time the running slice spent waiting in synchronous calls
        self._slice_started = 0.0
        self._slice_cap = 0.0      # the running slice's own time limit (time.monotonic)
        self._slice_limit = 0.0    # and the requests' ends, which it never passes
        host = {"send": self._on_log, "call": self._on_call, "callSync": self._on_call_sync,
                "remaining": self._on_remaining, "done": self._on_done, "fill": self._on_fill}
        self._result_bytes = b""     # a result's bytes, until JS has copied them (_on_fill)
        runtime_src = (_HERE / "runtime.js").read_text(encoding="utf-8")
        self.runtime = pm.eval(runtime_src, {"filename": "fazt:runtime"})(host)
        lockdown = pm.eval((_HERE / "lockdown.js").read_text(encoding="utf-8"),
                           {"filename": "fazt:lockdown"})
        self._go = pm.eval((_HERE / "go_compat.js").read_text(encoding="utf-8"),
                           {"filename": "fazt:go"})(self.runtime["internals"])
        lockdown(self.runtime["globals"])
        self._dispatch = self.runtime["dispatch"]
        self._deliver = self.runtime["deliver"]
        self._forget = self.runtime["forget"]

    # -- host functions (called from JS; strings and numbers only) --------------------------
    # They must never raise: a Python exception reaches JS as an Error whose text carries
    # host paths, and one raised inside a promise job crashes PythonMonkey. JS strings arrive
    # as a str subclass, hence the str() before parsing.

    @_host_function(None)
    def _on_log(self, kind: str, text: str) -> None:
        request = self.loop.current
        level, line = orjson.loads(str(text))
        if request is not None:
            request.log_lines += 1
            if request.log_lines > MAX_LOG_LINES:
                if request.log_lines == MAX_LOG_LINES + 1:
                    self.send({"t": "log", "rid": request.id, "level": "warn"},
                              f"log limit of {MAX_LOG_LINES} lines per request reached; "
                              "further lines dropped".encode(), now=True)
                return
        rid = request.id if request is not None else None
        self.send({"t": "log", "rid": rid, "level": level},
                  line.encode("utf-8", "replace"), now=True)

    @_host_function('{"code": "internal", "message": "capability call failed"}')
    def _on_call(self, text: str, binary: Any = "", at: float = -1,
                 is_text: bool = False) -> float | str:
        """A capability call: ``text`` is [cap, method, args] as JSON; when ``at`` >= 0,
        ``binary`` is the ``at``-th argument's bytes (PythonMonkey hands a Uint8Array over as a
        memoryview of its memory; with ``is_text``, a long string) and its place in the JSON
        holds null. The bytes (a string's as UTF-8, flagged "text") travel raw
        after the JSON: JSON.stringify of a multi-MB base64 string does not fit in a 128 MB
        worker (SpiderMonkey's JSON quoting reserves several times the string's size)."""
        request = self.loop.current
        if request is None or request.finished:
            return to_js(orjson.dumps({"code": "no_request", "message": "capabilities can "
                                       "only be used while a request is being handled"}).decode())
        if len(request.calls) >= MAX_CALLS_IN_FLIGHT:
            return to_js(orjson.dumps({"code": "too_many_calls", "message": "more than "
                                       f"{MAX_CALLS_IN_FLIGHT} capability calls in flight"})
                         .decode())
        self._next_call += 1
        cid = self._next_call
        request.calls.add(cid)
        self.calls[cid] = request
        body = str(text).encode()
        header: dict[str, Any] = {"t": "call", "rid": request.id, "cid": cid}
        if at >= 0:
            raw = str(binary).encode("utf-8") if is_text else bytes(memoryview(binary))
            header["bin"], header["arg"] = len(raw), int(at)
            if is_text:
                header["text"] = True
            body += raw
        self.send(header, body, now=True)
        return cid

    @_host_function('{"ok": false, "error": {"code": "internal", '
                    '"message": "capability call failed"}}')
    def _on_call_sync(self, text: str, binary: Any = "", at: float = -1,
                      is_text: bool = False) -> str:
        """A capability call that blocks until its result is in (the Go fazt's synchronous
        ``fazt.storage.kv.get(...)``): the worker runs nothing else meanwhile, which is why a
        Go-compatibility app's workers take one request at a time. Returns JSON text:
        ``{"ok": true, "size": N, "value": ...}`` (``value`` absent: undefined; ``size`` >= 0:
        the result has N bytes for ``fill``) or ``{"ok": false, "error": {code, message}}``."""
        cid = self._on_call(text, binary, at, is_text)
        if isinstance(cid, str):        # refused: an error object, already marked
            return to_js('{"ok":false,"error":' + cid[:-1] + "}")   # a short text
        request = self.calls[int(cid)]
        started = time.monotonic()
        try:
            answer = self._wait_for(int(cid), request)
        finally:
            waited = time.monotonic() - started
            self._blocked_s += waited
            # A wait is not JS time: the slice's cap moves on by it (the request's own end
            # and other requests' ends still bound it).
            self._slice_cap += waited
            if not request.finished:
                self.watchdog.arm(min(self._slice_cap, self._slice_limit))
        request.calls.discard(int(cid))
        self.calls.pop(int(cid), None)
        if answer is None:
            return to_js('{"ok":false,"error":{"code":"js_timeout","message":"the request ran '
                         'out of time waiting for a capability call"}}')
        header, body = answer
        if not header.get("ok", True):
            return to_js('{"ok":false,"error":' + body.decode() + "}")
        size = -1
        binary_size = header.get("bin")
        if binary_size is not None:
            cut = len(body) - int(binary_size)
            self._result_bytes, body = body[cut:], body[:cut]
            size = len(self._result_bytes)
        value = b',"value":' + body if body else b""
        return to_js((b'{"ok":true,"size":' + str(size).encode() + value + b"}").decode())

    def _wait_for(self, cid: int, request: Request) -> tuple[dict[str, Any], bytes] | None:
        """Read the pipe until the result of call ``cid`` comes; every other frame is kept in
        ``_deferred`` for the main loop. None when the request's time runs out, or the server
        cancels it (its JS is then stopped: nothing it does after would be seen)."""
        self.flush()
        while True:
            left = request.end - time.monotonic()
            if left <= 0 or request.finished:
                return None
            readable, _, _ = select.select([self._in], [], [], left)
            if not readable:
                return None
            data = os.read(self._in, 1 << 20)
            if not data:
                os._exit(0)              # the server is gone
            self._moved += len(data)
            found = None
            for header, body in self._reader.feed(data):
                kind = header["t"]
                if kind == "res" and int(header["cid"]) == cid:
                    found = (header, body)
                    continue
                if kind == "cancel" and int(header["id"]) == request.id:
                    request.finished = True
                    self.watchdog.arm(time.monotonic())  # stop its JS at once
                self._deferred.append((header, body))
            if found is not None:
                return found

    @_host_function(0.0)
    def _on_fill(self, view: Any) -> float:
        """Copy the result's bytes into the Uint8Array JS made for them."""
        data = self._result_bytes
        target = memoryview(view).cast("B")
        if len(target) != len(data):
            return 0.0
        target[:] = data
        self._result_bytes = b""     # JS has them now
        return 1.0

    @_host_function(0.0)
    def _on_remaining(self) -> float:
        request = self.loop.current
        if request is None:
            return 0.0
        return float(max(0, int((request.budget_end - time.monotonic()) * 1000)))

    @_host_function(None)
    def _on_done(self, rid: float, ok: bool, text: str) -> None:
        request = self.requests.get(int(rid))
        if request is None or request.finished:
            return
        text = str(text)
        if not ok and text.startswith(_THROWN_OOM):
            # SpiderMonkey's catchable out-of-memory is the string "out of memory" thrown at
            # the handler: the request failed for memory, and this worker's heap is suspect.
            self.poisoned = True
            self._finish(request, {"t": "fail", "id": request.id, "code": "js_memory"})
            return
        self._finish(request, {"t": "done", "id": request.id, "ok": bool(ok)}, text.encode())

    # -- the loop ---------------------------------------------------------------------------

    def send(self, header: dict[str, Any], body: bytes = b"", *, now: bool = False) -> None:
        """Queue a frame; ``flush`` writes the queue: before the next slice of JS starts (a
        slice may run for seconds: nothing may wait through one), before the loop waits, and
        at once with ``now`` (log lines and capability calls, sent mid-slice)."""
        self._outbox.append(encode(header, body))
        self._moved += len(body)
        if now:
            self.flush()

    def flush(self) -> None:
        if not self._outbox:
            return
        view = memoryview(b"".join(self._outbox))
        self._outbox.clear()
        while view:
            written = os.write(self._out, view)
            view = view[written:]

    def _charge_js(self, request: Request) -> None:
        """Add the running slice's JS time so far to ``request`` (waits in synchronous calls
        are not JS time)."""
        now = time.monotonic()
        request.js_s += max(0.0, now - self._slice_started - self._blocked_s)
        self._slice_started, self._blocked_s = now, 0.0

    def _finish(self, request: Request, header: dict[str, Any], body: bytes = b"") -> None:
        if request is self.loop.current:
            self._charge_js(request)    # answered from inside its slice: count it first
        request.finished = True
        self.requests.pop(request.id, None)
        if request.calls:
            for cid in request.calls:
                self.calls.pop(cid, None)
            self._forget(to_js(orjson.dumps(list(request.calls)).decode()))
            request.calls.clear()
        header["js_ms"] = round(request.js_s * 1000, 3)
        self.send(header, body)

    def run_slice(self, request: Request | None, fn: Callable[..., Any], *args: Any) -> None:
        """Run one piece of JS charged to ``request`` under the watchdog."""
        started = time.monotonic()
        # Requests already past their end (they waited in the pipe behind a long slice) are
        # answered now: their deadlines must not cut this slice short.
        self._expire(started)
        if request is not None and request.finished:
            return                      # a timed-out or cancelled request: drop its jobs
        self.flush()
        # A slice ends at its own request's limits, and never runs past the deadline of any
        # other request waiting in this worker: that one must be answered on time (or the
        # server kills the worker, and every request on it).
        if request is None:
            self._slice_cap, self._slice_limit = self._load_end, self._load_end
        else:
            self._slice_cap = started + request.slice_s
            self._slice_limit = min(min(r.end for r in self.requests.values())
                                    if self.requests else request.end, request.end)
        self.loop.current = request
        self.watchdog.arm(min(self._slice_cap, self._slice_limit))
        self._slice_started = started
        self._blocked_s = 0.0
        error: BaseException | None = None
        try:
            fn(*args)
        except Exception as exc:   # noqa: BLE001 - classified below, never re-raised into JS
            error = exc
        finally:
            self.watchdog.disarm()
            self.loop.current = None
            if request is not None:
                self._charge_js(request)
        if self.watchdog.orphaned:
            os._exit(0)                 # the server is gone: nobody is waiting for anything
        if self.watchdog.out_of_memory:
            self.poisoned = True
        if request is None or request.finished:
            if error is not None and request is None:
                raise error
            return
        if self.poisoned:
            self._finish(request, {"t": "fail", "id": request.id, "code": "js_memory"})
        elif error is not None and self.watchdog.expired:
            self._finish(request, {"t": "fail", "id": request.id, "code": "js_timeout"})
        elif error is not None:
            message = str(error)
            code = "js_memory" if "out of memory" in message else "js_error"
            if code == "js_memory":
                self.poisoned = True
            body = orjson.dumps({"name": "Error", "message": message[:2000], "stack": "",
                                 "code": None})
            self._finish(request, {"t": "fail" if code == "js_memory" else "done",
                                   "id": request.id, "ok": False, "code": code}, body)
        if self.poisoned:
            self.send({"t": "poisoned", "reason": "out of memory"})

    def handle(self, header: dict[str, Any], body: bytes) -> None:
        kind = header["t"]
        if kind == "req":
            request = Request(id=int(header["id"]), end=float(header["end_at"]),
                              budget_end=float(header["budget_at"]),
                              slice_s=header["slice_ms"] / 1000)
            self.requests[request.id] = request
            self.run_slice(request, self._dispatch, request.id, to_js(body.decode()))
        elif kind == "res":
            cid = int(header["cid"])
            owner = self.calls.pop(cid, None)
            if owner is None or owner.finished:
                return
            owner.calls.discard(cid)
            binary = header.get("bin")
            if binary is not None:  # the result's bytes follow its JSON; JS gets a Uint8Array
                cut = len(body) - int(binary)
                # JS makes the Uint8Array and _on_fill copies the bytes into it: a Python
                # bytearray handed to JS is never freed by PythonMonkey (VmData grew by each
                # blob read until the worker died).
                self._result_bytes = body[cut:]
                try:
                    self.run_slice(owner, self._deliver, cid, True,
                                   to_js(body[:cut].decode()), len(self._result_bytes))
                finally:
                    self._result_bytes = b""
            else:
                self.run_slice(owner, self._deliver, cid, bool(header["ok"]),
                               to_js(body.decode()))
        elif kind == "cancel":
            cancelled = self.requests.get(int(header["id"]))
            if cancelled is not None:
                cancelled.finished = True
                self.requests.pop(cancelled.id, None)
                for cid in cancelled.calls:
                    self.calls.pop(cid, None)
                if cancelled.calls:
                    self._forget(to_js(orjson.dumps(sorted(cancelled.calls)).decode()))
                    cancelled.calls.clear()
        elif kind == "load":
            self.load(header, body)
        else:
            raise ProtocolError(f"unknown message {kind!r}")

    def load(self, header: dict[str, Any], body: bytes) -> None:
        limit = self._memory_limit = int(header["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        files: dict[str, str] = orjson.loads(body)["files"]
        main = header["main"]
        go = header.get("runtime") == "go"
        self._load_end = time.monotonic() + _LOAD_S
        try:
            compiled: dict[str, Any] = {}

            def compile_module(path: str, source: str) -> None:
                compiled[path] = self._pm.eval(source, {"filename": path, "lineno": 1})

            for path, text in files.items():
                if path.endswith(".js") and not (go and path == main):
                    # Under the watchdog: source that closes the wrapper early
                    # ("}); while(true){} (function(){") runs right here.
                    source = wrap_go(path, text) if go else wrap(path, text)
                    self.run_slice(None, compile_module, path, source.source)
                    if not callable(compiled.get(path)):
                        raise ModuleSyntaxError(f"{path}: the file does not parse as one "
                                                "module (unbalanced braces?)")
            json_files = {p: t for p, t in files.items() if p.endswith(".json")}
            granted = orjson.dumps(header.get("granted") or {}).decode()
            env = orjson.dumps(header.get("env")).decode()     # null: env not granted
            if go:
                # A Go fazt script: compiled (and probed for a top-level return) by the
                # compatibility runtime, run afresh for each request.
                info = orjson.dumps({"app": header.get("app"), "version": __version__}).decode()
                failed: list[str] = []
                self.run_slice(None, lambda: failed.append(str(self._go["load"](
                    compiled, json_files, main, files.get(main, ""), env, info))))
                if failed and failed[0]:
                    raise ModuleSyntaxError(failed[0])
                self._dispatch = self._go["dispatch"]
            else:
                self.run_slice(None, self.runtime["load"], compiled, json_files, main,
                               granted, env)
            # Promise jobs the top level queued (async initialisation) belong to no request:
            # they run now, within the load's time, and never later outside any budget.
            while self.loop.ready:
                if time.monotonic() >= self._load_end:
                    raise _TopLevelTimeout
                _, callback, args = self.loop.ready.popleft()
                self.run_slice(None, callback, *args)
        except (ModuleSyntaxError, Exception) as exc:   # noqa: BLE001 - reported to the server
            self.loop.ready.clear()
            message = "out of time running the module's top level" \
                if self.watchdog.expired or isinstance(exc, _TopLevelTimeout) else str(exc)
            self.send({"t": "loaded", "ok": False}, message[:4000].encode())
            return
        self.send({"t": "loaded", "ok": True})

    def run(self) -> None:
        self.send({"t": "ready", "pid": os.getpid()})
        while True:
            while self._deferred:      # frames read during a synchronous call, in order
                self.handle(*self._deferred.popleft())
            if self.loop.ready:
                until = time.monotonic() + _FAIRNESS_S
                while self.loop.ready and time.monotonic() < until:
                    request, callback, args = self.loop.ready.popleft()
                    if request is not None:   # no job of no request runs after the load
                        self.run_slice(request, callback, *args)
                timeout: float | None = 0.0
            else:
                timeout = self._next_expiry()
            self.flush()
            if self._moved >= GC_AFTER_BYTES and not self.requests and not self.loop.ready:
                self._collect()
            readable, _, _ = select.select([self._in], [], [], timeout)
            if readable:
                data = os.read(self._in, 1 << 20)
                if not data:
                    return               # the server closed the pipe: exit
                self._moved += len(data)
                for header, body in self._reader.feed(data):
                    self.handle(header, body)
            self._expire()

    def _collect(self) -> None:
        """A full GC while idle. SpiderMonkey collects by its own heap heuristics, which know
        nothing of RLIMIT_DATA: garbage from a few large values (strings, the bytes of a blob)
        piles up until an allocation fails, and the request making it gets js_memory. A GC
        costs ~1.4 ms, so it runs only after GC_AFTER_BYTES have crossed the pipe (large
        values cross it: with 1 MB kv values and no GC, every third or fourth request failed)
        and only with no request in flight."""
        self._moved = 0
        self._pm.collect()
        # Memory that a GC does not give back (PythonMonkey keeps the buffers of blob results
        # alive) would end in an allocation failing mid-request: retire the worker first.
        if not self._retiring and _data_bytes() > self._memory_limit * RETIRE_AT:
            self._retiring = True       # requests already sent here still run
            self.send({"t": "retire", "reason": "memory still in use after a GC"})

    def _next_expiry(self) -> float | None:
        if not self.requests:
            return None
        return max(0.0, min(r.end for r in self.requests.values()) - time.monotonic())

    def _expire(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for request in [r for r in self.requests.values() if r.end <= now]:
            self._finish(request, {"t": "fail", "id": request.id, "code": "js_timeout"})


GC_AFTER_BYTES = 1024 * 1024
RETIRE_AT = 0.75            # of RLIMIT_DATA in use after a GC: the worker is retired


def _data_bytes() -> int:
    """The process's data segment now (what RLIMIT_DATA limits), from /proc/self/statm."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[5]) * resource.getpagesize()

_THROWN_OOM = '{"name":"thrown value","message":"out of memory"'


def _check_parent(parent_pid: int) -> None:
    if os.getppid() != parent_pid:      # the server died before the worker got going
        os._exit(1)


def main(argv: list[str]) -> None:
    parent_pid, data_mb = int(argv[0]), int(argv[1])
    _check_parent(parent_pid)
    # The protocol uses private copies of stdin/stdout; stray prints go to stderr.
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    limit = data_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    worker = Worker(proto_in, proto_out, parent_pid)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    try:
        worker.run()
    except (ProtocolError, BrokenPipeError):
        pass
    except MemoryError:
        if not worker.poisoned:    # a retired out-of-memory worker may fail to read its pipe
            traceback.print_exc()
    except BaseException:
        traceback.print_exc()      # the server logs the worker's stderr
        raise
    finally:
        with contextlib.suppress(Exception):
            worker.flush()          # the answers queued before the error
        sys.stdout.flush()
        sys.stderr.flush()
        # PythonMonkey's atexit tear-down can crash the process; nothing is left to clean up.
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
