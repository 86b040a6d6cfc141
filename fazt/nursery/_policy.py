"""How the supervisor treats a service that dies after it became ready.

``RestartPolicy`` is the per-service configuration; ``RestartBudget`` is the supervisor's
bookkeeping of one service's recent crashes, kept apart so the arithmetic (sliding window,
doubling backoff with a cap) can be read and tested without any tasks running.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

__all__ = ["RestartBudget", "RestartPolicy"]

# 2.0 ** 64 seconds is far past any cap; stopping the exponent there keeps a huge
# ``max_restarts`` from overflowing a float.
_MAX_EXPONENT = 64


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """What to do when a service raises (or returns) after it called ``started()``.

    ``mode="fatal"`` (the default) stops every other service and ends the process loudly:
    a service we cannot restart safely must not leave fazt half-alive. ``mode="restart"``
    restarts it after an exponential backoff (``backoff_initial_s``, doubling, capped at
    ``backoff_max_s``) unless it already restarted ``max_restarts`` times within the last
    ``window_s`` seconds, in which case the crash becomes fatal after all.

    A failure during start-up (before ``started()``) is always fatal, whatever the mode.
    """

    mode: Literal["fatal", "restart"] = "fatal"
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in ("fatal", "restart"):
            raise ValueError(f"mode must be 'fatal' or 'restart', not {self.mode!r}")
        if self.max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        if self.window_s <= 0:
            raise ValueError("window_s must be > 0")
        if self.backoff_initial_s < 0:
            raise ValueError("backoff_initial_s must be >= 0")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")

    def backoff_s(self, restarts_in_window: int) -> float:
        """The pause before the next restart, given how many restarts the window holds."""
        exponent = min(restarts_in_window, _MAX_EXPONENT)
        return min(self.backoff_initial_s * 2.0**exponent, self.backoff_max_s)


class RestartBudget:
    """One service's recent restarts, in a sliding window of ``policy.window_s`` seconds.

    Because the backoff is derived from the restarts still inside the window, a service that
    has been healthy for a whole window starts again from ``backoff_initial_s``.
    """

    def __init__(self, policy: RestartPolicy) -> None:
        self._policy = policy
        self._restart_times: deque[float] = deque()

    def next_backoff_s(self, *, now: float) -> float | None:
        """Record a crash at ``now``; return the pause before restarting, or ``None`` if spent.

        ``None`` means the service already restarted ``max_restarts`` times within the window
        (or the policy is ``fatal``): the crash must bring the process down.
        """
        if self._policy.mode == "fatal":
            return None
        horizon = now - self._policy.window_s
        while self._restart_times and self._restart_times[0] <= horizon:
            self._restart_times.popleft()
        if len(self._restart_times) >= self._policy.max_restarts:
            return None
        backoff = self._policy.backoff_s(len(self._restart_times))
        self._restart_times.append(now)
        return backoff
