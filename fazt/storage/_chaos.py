"""The storage chaos seam: faults injected into one app's storage jobs, for chaos tests.

Installed as ``StorageSettings.fault_hook`` only when the server runs with ``chaos = true``
(which ``production = true`` refuses). Rules are per app (``Job.tag``) and are set at run time
through the admin API::

    delay  N ms before the job runs          fail   the job fails with a storage error
    hang   until the job's deadline passes   ... each with a probability, on reads, writes or both

The hook runs in the storage thread that is about to run the job, so a delayed or hanging
write holds up the single writer - as a slow disk would, for every app. Delays and hangs
sleep in short steps and end as soon as the job's caller has gone or its deadline has passed:
the job then fails with ``storage_timeout`` like any late job, and the thread moves on.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from fazt.errors import BadRequest, StorageBusy, StorageError, StorageFull

from ._jobs import Job

KINDS = ("delay", "fail", "hang")
OPS = ("read", "write", "both")
ERRORS = {"storage_error": StorageError, "storage_busy": StorageBusy,
          "storage_full": StorageFull}
MAX_DELAY_MS = 60_000
_STEP_S = 0.005


@dataclass(frozen=True, kw_only=True)
class Fault:
    kind: str                       # delay | fail | hang
    delay_ms: int = 0               # for delay
    error: str = "storage_error"    # for fail
    probability: float = 1.0
    ops: str = "both"               # read | write | both

    @classmethod
    def from_json(cls, value: Any) -> Fault:
        """Check a rule from the admin API (errors name the field)."""
        if not isinstance(value, dict):
            raise BadRequest("a fault is an object: {\"kind\": \"delay\", \"delay_ms\": 200}")
        unknown = sorted(set(value) - {"kind", "delay_ms", "error", "probability", "ops"})
        if unknown:
            raise BadRequest(f"unknown key {unknown[0]!r} (known: kind, delay_ms, error, "
                             "probability, ops)")
        kind = value.get("kind")
        if kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        delay = value.get("delay_ms", 0)
        if isinstance(delay, bool) or not isinstance(delay, int) \
                or not 0 <= delay <= MAX_DELAY_MS or (kind == "delay" and delay == 0):
            raise BadRequest(f"delay_ms must be an integer from 1 to {MAX_DELAY_MS} (for delay)")
        error = value.get("error", "storage_error")
        if error not in ERRORS:
            raise BadRequest(f"error must be one of {', '.join(ERRORS)}, got {error!r}")
        probability = value.get("probability", 1.0)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) \
                or not 0 < probability <= 1:
            raise BadRequest("probability must be a number above 0 and at most 1")
        ops = value.get("ops", "both")
        if ops not in OPS:
            raise BadRequest(f"ops must be one of {', '.join(OPS)}, got {ops!r}")
        return cls(kind=kind, delay_ms=delay, error=error, probability=float(probability),
                   ops=ops)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "delay_ms": self.delay_ms, "error": self.error,
                "probability": self.probability, "ops": self.ops}


class Chaos:
    """The fault hook and its rules (set from trio, read from the storage threads)."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._rules: dict[str, Fault] = {}
        self._injected: dict[str, int] = {}
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not security

    def set(self, app: str, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self._rules.pop(app, None)
            else:
                self._rules[app] = fault

    def get(self, app: str) -> Fault | None:
        return self._rules.get(app)

    def injected(self, app: str) -> int:
        """How many of the app's jobs a fault has hit so far."""
        return self._injected.get(app, 0)

    def __call__(self, op: str, job: Job[Any]) -> None:
        app = job.tag
        fault = self._rules.get(app) if app is not None else None
        if app is None or fault is None or fault.ops not in (op, "both"):
            return
        with self._lock:
            if self._random.random() >= fault.probability:
                return
            self._injected[app] = self._injected.get(app, 0) + 1
        if fault.kind == "fail":
            raise ERRORS[fault.error](f"injected by chaos ({fault.error})")
        end = time.monotonic() + (fault.delay_ms / 1000 if fault.kind == "delay" else
                                  MAX_DELAY_MS / 1000)
        while not job.should_stop() and time.monotonic() < end:
            time.sleep(_STEP_S)
