"""The per-request time budget (DESIGN.md section 2).

A ``Budget`` carries one absolute trio deadline for the whole request. Work is done in phases
that draw from it:

    js       JS execution             at most ``js_cap_s`` per slice
    storage  one storage operation    at most ``storage_cap_s``
    net      one outbound call        at most ``net_cap_s``
    respond  writing the response     ``respond_reserve_s`` is kept back for it

Every phase except ``respond`` ends ``respond_reserve_s`` before the request deadline, so a
request that ran out of time can still say so. A capability call (storage, net) ends another
``handoff_s`` earlier: its error must reach the handler, and the handler's answer the server,
before the JS deadline - else a storage call that used up the budget looked like a JS timeout.
An operation whose phase cannot give it ``min_op_s`` fails *before* it starts (admission
control) instead of wasting the remainder.
Expiry raises ``BudgetExceeded(phase=...)`` when the phase's scope exits, the way
``trio.fail_after`` raises ``TooSlowError``; ``trio.Cancelled`` itself is never caught.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio

from fazt.errors import BudgetExceeded


class Phase(enum.StrEnum):
    JS = "js"
    STORAGE = "storage"
    NET = "net"
    RESPOND = "respond"


@dataclass(frozen=True, kw_only=True)
class BudgetPolicy:
    """Limits of one request's budget; the server derives it from its config."""

    request_s: float = 10.0
    js_cap_s: float = 5.0
    storage_cap_s: float = 3.0
    net_cap_s: float = 4.0
    respond_reserve_s: float = 0.1
    handoff_s: float = 0.05
    min_op_s: float = 0.005

    def __post_init__(self) -> None:
        for name in ("request_s", "js_cap_s", "storage_cap_s", "net_cap_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 0 <= self.respond_reserve_s < self.request_s:
            raise ValueError("respond_reserve_s must be in [0, request_s)")
        if self.min_op_s < 0:
            raise ValueError("min_op_s must not be negative")

    def cap_s(self, phase: Phase) -> float:
        return {Phase.JS: self.js_cap_s, Phase.STORAGE: self.storage_cap_s,
                Phase.NET: self.net_cap_s, Phase.RESPOND: self.respond_reserve_s}[phase]


@dataclass(frozen=True, kw_only=True)
class PhaseStats:
    count: int
    total_s: float
    exceeded: int


@dataclass(kw_only=True)
class Budget:
    """One request's deadline and what its phases used of it."""

    deadline: float
    policy: BudgetPolicy
    started_at: float
    _used_s: dict[Phase, float] = field(default_factory=dict)
    _counts: dict[Phase, int] = field(default_factory=dict)
    _exceeded: dict[Phase, int] = field(default_factory=dict)

    @classmethod
    def start(cls, policy: BudgetPolicy, *, request_s: float | None = None) -> Budget:
        """A budget beginning now: ``request_s`` (e.g. from the app's manifest) capped by the
        policy's ``request_s``."""
        total = policy.request_s if request_s is None else min(request_s, policy.request_s)
        if total <= 0:
            raise ValueError("request_s must be positive")
        now = trio.current_time()
        return cls(deadline=now + total, policy=policy, started_at=now)

    def remaining(self) -> float:
        """Seconds left for the whole request (never negative)."""
        return max(0.0, self.deadline - trio.current_time())

    def remaining_ms(self) -> int:
        return int(self.remaining() * 1000)

    def phase_deadline(self, phase: Phase) -> float:
        """When an operation of ``phase`` started now must end."""
        now = trio.current_time()
        end = self.deadline if phase is Phase.RESPOND else \
            self.deadline - self.policy.respond_reserve_s
        if phase in (Phase.STORAGE, Phase.NET):
            end -= self.policy.handoff_s
        return min(now + self.policy.cap_s(phase), end)

    @contextmanager
    def fail_after(self, phase: Phase) -> Iterator[trio.CancelScope]:
        """Run one operation of ``phase``: refused before it starts when it cannot fit,
        cancelled at its deadline, and turned into BudgetExceeded(phase) at the scope's exit."""
        phase = Phase(phase)
        deadline = self.phase_deadline(phase)
        started = trio.current_time()
        self._counts[phase] = self._counts.get(phase, 0) + 1
        if deadline - started < self.policy.min_op_s:
            self._exceeded[phase] = self._exceeded.get(phase, 0) + 1
            raise BudgetExceeded(f"no time left for the {phase} phase", phase=phase.value)
        scope = trio.CancelScope(deadline=deadline)
        try:
            with scope:
                yield scope
        finally:
            self._used_s[phase] = self._used_s.get(phase, 0.0) + trio.current_time() - started
        if scope.cancelled_caught:
            self._exceeded[phase] = self._exceeded.get(phase, 0) + 1
            raise BudgetExceeded(phase=phase.value)

    def record(self, phase: Phase, used_s: float, *, exceeded: bool = False) -> None:
        """Account for work of ``phase`` measured elsewhere (JS time reported by a worker)."""
        phase = Phase(phase)
        self._counts[phase] = self._counts.get(phase, 0) + 1
        self._used_s[phase] = self._used_s.get(phase, 0.0) + max(0.0, used_s)
        if exceeded:
            self._exceeded[phase] = self._exceeded.get(phase, 0) + 1

    def statistics(self) -> dict[Phase, PhaseStats]:
        """Per-phase operation count, time used and expiries (for traces and /api/_debug)."""
        return {phase: PhaseStats(count=self._counts.get(phase, 0),
                                  total_s=self._used_s.get(phase, 0.0),
                                  exceeded=self._exceeded.get(phase, 0))
                for phase in Phase if phase in self._counts}
