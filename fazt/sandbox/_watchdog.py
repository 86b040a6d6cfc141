"""Stop runaway JavaScript from inside the worker (runs only in a worker process).

PythonMonkey holds the GIL for as long as JS runs, so no Python-level timer can stop it. What
works (docs/discussion/sandbox.md, measured in stack-findings section 2) is SpiderMonkey's own
interrupt callback, reached through ctypes:

* ``JS_AddInterruptCallback(GLOBAL_CX, cb)`` registers ``cb``; SpiderMonkey calls it at safe
  points after ``JS_RequestInterruptCallback`` was called; ``cb`` returning false terminates
  the running script with an *uncatchable* error.
* A POSIX timer (``timer_create`` with ``SIGEV_THREAD``) whose notify function *is*
  ``JS_RequestInterruptCallback`` and whose argument is ``GLOBAL_CX``: glibc calls it from a
  native thread at the deadline, needing no GIL.

The callback checks the clock itself: SpiderMonkey also calls it for its own reasons, and a
timer may fire just after a slice ended.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

_CLOCK_MONOTONIC = 1
_SIGEV_THREAD = 2
_TIMER_ABSTIME = 1

_ADD_INTERRUPT = "_Z23JS_AddInterruptCallbackP9JSContextPFbS0_E"
_REQUEST_INTERRUPT = "_Z27JS_RequestInterruptCallbackP9JSContext"
_SET_REJECTION_TRACKER = ("_ZN2JS34SetPromiseRejectionTrackerCallbackEP9JSContextPFvS1_bNS_6Handle"
                          "IP8JSObjectEENS_29PromiseRejectionHandlingStateEPvES7_")
_SET_OOM_CALLBACK = "_ZN2JS22SetOutOfMemoryCallbackEP9JSContextPFvS1_PvES2_"

_InterruptCallback = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p)
_OomCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _SigevThread(ctypes.Structure):
    _fields_ = [("function", ctypes.c_void_p), ("attribute", ctypes.c_void_p)]


class _SigevUnion(ctypes.Union):
    _fields_ = [("pad", ctypes.c_int * 12), ("thread", _SigevThread)]


class _Sigevent(ctypes.Structure):
    _fields_ = [("sigev_value", ctypes.c_void_p), ("sigev_signo", ctypes.c_int),
                ("sigev_notify", ctypes.c_int), ("un", _SigevUnion)]


class Watchdog:
    """Arms a deadline around each JS slice; reports out-of-memory; notices an orphaned worker.

    Besides the deadline timer, a second timer requests an interrupt every
    ``PARENT_CHECK_S``: the callback then compares ``getppid()`` with the server's pid, and
    a worker whose server is gone (even a ``kill -9``) has its running JS terminated and
    ``orphaned`` set, so the worker exits within about a second even inside ``while(true){}``.
    (``PR_SET_PDEATHSIG`` cannot be used: it fires when the *thread* that spawned the worker
    exits, and trio spawns processes from its thread cache, whose idle threads exit.)

    ``arm(deadline)`` before a slice (``time.monotonic()`` seconds), ``disarm()`` after it.
    A slice still running at its deadline is terminated; the PythonMonkey call then raises
    ``SpiderMonkeyError`` with no JS exception, which ``expired`` lets the caller recognise.
    """

    PARENT_CHECK_S = 1.0

    def __init__(self, parent_pid: int) -> None:
        import pythonmonkey  # the worker has already imported it; this finds the module

        package = Path(pythonmonkey.__file__).parent
        mozjs = ctypes.CDLL(str(next(package.glob("libmozjs-*.so"))))
        pmso = ctypes.CDLL(str(package / "pythonmonkey.so"))
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        cx = ctypes.c_void_p.in_dll(pmso, "GLOBAL_CX").value
        if not cx:
            raise RuntimeError("pythonmonkey has no JSContext")
        self._deadline = float("inf")
        self._timer_at = float("inf")   # when the deadline timer goes off (inf: not set)
        self.expired = False
        self.out_of_memory = False
        self.orphaned = False
        self._parent_pid = parent_pid

        def on_interrupt(_cx: int | None) -> bool:
            now = time.monotonic()
            if self._timer_at <= now:
                self._timer_at = float("inf")   # it went off: this is (also) its interrupt
            if now >= self._deadline:
                self.expired = True
                return False
            if os.getppid() != self._parent_pid:
                self.orphaned = True
                return False
            if self._timer_at == float("inf") and self._deadline != float("inf"):
                # It went off early (it was set for an earlier slice, see arm()): set it
                # for the slice running now.
                self._set_timer(self._deadline)
            return True

        def on_oom(_cx: int | None, _data: int | None) -> None:
            self.out_of_memory = True

        # Kept on self: ctypes callbacks must outlive their registration.
        self._on_interrupt = _InterruptCallback(on_interrupt)
        self._on_oom = _OomCallback(on_oom)
        add = mozjs[_ADD_INTERRUPT]
        add.argtypes = [ctypes.c_void_p, _InterruptCallback]
        add.restype = ctypes.c_bool
        if not add(cx, self._on_interrupt):
            raise RuntimeError("JS_AddInterruptCallback failed")
        set_oom = mozjs[_SET_OOM_CALLBACK]
        set_oom.argtypes = [ctypes.c_void_p, _OomCallback, ctypes.c_void_p]
        set_oom.restype = None
        set_oom(cx, self._on_oom, None)
        # PythonMonkey's rejection tracker turns each rejected promise into an asyncio Future
        # and crashed the worker on rejections deep in a job (stack overflow, out of memory).
        # A request's outcome is what its handler's promise settles to; the tracker is off.
        tracker = mozjs[_SET_REJECTION_TRACKER]
        tracker.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        tracker.restype = None
        tracker(cx, None, None)

        request = ctypes.cast(mozjs[_REQUEST_INTERRUPT], ctypes.c_void_p).value
        event = _Sigevent()
        event.sigev_notify = _SIGEV_THREAD
        event.sigev_value = cx
        event.un.thread.function = request
        self._timer = ctypes.c_void_p()
        self._libc = libc
        libc.timer_create.argtypes = [ctypes.c_int, ctypes.POINTER(_Sigevent),
                                      ctypes.POINTER(ctypes.c_void_p)]
        libc.timer_settime.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                       ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        if libc.timer_create(_CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(self._timer)):
            raise OSError(ctypes.get_errno(), "timer_create failed")
        self._spec = _Itimerspec()
        self._zero = _Itimerspec()
        self._parent_timer = ctypes.c_void_p()
        if libc.timer_create(_CLOCK_MONOTONIC, ctypes.byref(event),
                             ctypes.byref(self._parent_timer)):
            raise OSError(ctypes.get_errno(), "timer_create failed")
        every = _Itimerspec()
        every.it_interval.tv_sec = every.it_value.tv_sec = int(self.PARENT_CHECK_S)
        every.it_interval.tv_nsec = every.it_value.tv_nsec = \
            int((self.PARENT_CHECK_S % 1) * 1e9)
        if libc.timer_settime(self._parent_timer, 0, ctypes.byref(every), None):
            raise OSError(ctypes.get_errno(), "timer_settime failed")

    def arm(self, deadline: float) -> None:
        """Terminate JS still running at ``deadline`` (time.monotonic seconds).

        The timer is set only when it is not set to go off between now and ``deadline``.
        One that goes off earlier (it was set for an earlier slice) makes the interrupt
        callback run in this slice, and the callback sets it for this slice's deadline.
        Slices of one request share a deadline, and later requests have later ones: most
        slices make no system call (two per slice were the larger part of a small request's
        cost in the worker)."""
        self._deadline = deadline
        self.expired = False
        # Kept only if it is still to go off, and no later than this deadline: one that went
        # off already is set again (its interrupt may have been taken by another callback).
        if not time.monotonic() < self._timer_at <= deadline and \
                not self._set_timer(deadline):
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    def disarm(self) -> None:
        """The slice ended. The timer stays set: going off between slices costs one callback
        at the next slice's first interrupt check."""
        self._deadline = float("inf")

    def _set_timer(self, at: float) -> bool:
        """Set the deadline timer to go off at ``at``; ``inf`` stops it. Never raises (it
        runs inside the interrupt callback); False if the system call failed. (In the
        callback, that leaves the running slice to the once-a-second parent check: up to a
        second late. ``timer_settime`` fails only for invalid arguments.)"""
        if at == float("inf"):
            spec = self._zero
        else:
            # CLOCK_MONOTONIC is the clock time.monotonic() reads on Linux.
            at = max(at, 1e-9)
            self._spec.it_value.tv_sec = int(at)
            self._spec.it_value.tv_nsec = int((at - int(at)) * 1e9)
            spec = self._spec
        if self._libc.timer_settime(self._timer, _TIMER_ABSTIME, ctypes.byref(spec), None):
            return False
        self._timer_at = at
        return True
