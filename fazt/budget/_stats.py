"""What the requests' budgets went to, over the server's life: per phase, how many operations,
how long the phase took per request (p50, p99 of the recent ones) and how often it ran out.
For /api/_debug/runtime."""

from __future__ import annotations

from collections import deque
from typing import Any

from fazt.budget._budget import Budget, Phase

WINDOW = 1024       # the recent requests the percentiles are taken over


class BudgetStats:
    def __init__(self, *, window: int = WINDOW) -> None:
        self.requests = 0
        self._counts = dict.fromkeys(Phase, 0)
        self._exceeded = dict.fromkeys(Phase, 0)
        self._recent: dict[Phase, deque[float]] = {p: deque(maxlen=window) for p in Phase}

    def add(self, budget: Budget) -> None:
        """Account for one finished request's budget."""
        self.requests += 1
        for phase, stats in budget.statistics().items():
            self._counts[phase] += stats.count
            self._exceeded[phase] += stats.exceeded
            self._recent[phase].append(stats.total_s)

    def snapshot(self) -> dict[str, Any]:
        return {phase.value: {"count": self._counts[phase],
                              "exceeded": self._exceeded[phase],
                              "p50_ms": _percentile_ms(self._recent[phase], 0.50),
                              "p99_ms": _percentile_ms(self._recent[phase], 0.99)}
                for phase in Phase}


def _percentile_ms(values: deque[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)
