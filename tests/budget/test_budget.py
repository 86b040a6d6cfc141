"""Budget logic on trio's autojump clock: instant and deterministic."""

from __future__ import annotations

import pytest
import trio

from fazt.budget import Budget, BudgetPolicy, Phase
from fazt.errors import BudgetExceeded

POLICY = BudgetPolicy(request_s=10, js_cap_s=5, storage_cap_s=3, net_cap_s=4,
                      respond_reserve_s=0.1, min_op_s=0.005)


async def test_a_phase_is_capped(autojump_clock) -> None:
    budget = Budget.start(POLICY)
    start = trio.current_time()
    with pytest.raises(BudgetExceeded) as info, budget.fail_after(Phase.STORAGE):
        await trio.sleep(100)
    assert info.value.code == "storage_timeout"
    assert info.value.http_status == 504
    assert trio.current_time() - start == pytest.approx(3.0)


async def test_a_phase_never_runs_into_the_respond_reserve(autojump_clock) -> None:
    budget = Budget.start(POLICY)
    await trio.sleep(8)
    start = trio.current_time()
    with pytest.raises(BudgetExceeded) as info, budget.fail_after(Phase.NET):
        await trio.sleep(100)
    assert info.value.code == "net_timeout"
    # a capability call also leaves handoff_s for its error to reach the handler
    assert trio.current_time() - start == pytest.approx(2.0 - 0.1 - POLICY.handoff_s)
    assert budget.remaining() == pytest.approx(0.1 + POLICY.handoff_s)


async def test_capability_phases_end_a_handoff_before_js(autojump_clock) -> None:
    budget = Budget.start(POLICY)
    await trio.sleep(9)
    assert budget.phase_deadline(Phase.JS) == pytest.approx(budget.deadline - 0.1)
    for phase in (Phase.STORAGE, Phase.NET):
        assert budget.phase_deadline(phase) == pytest.approx(
            budget.deadline - 0.1 - POLICY.handoff_s)


async def test_respond_may_use_the_reserve(autojump_clock) -> None:
    budget = Budget.start(POLICY)
    await trio.sleep(9.95)
    with budget.fail_after(Phase.RESPOND):
        await trio.sleep(0.04)
    assert budget.remaining() == pytest.approx(0.01)


async def test_no_time_left_fails_before_starting(autojump_clock) -> None:
    budget = Budget.start(POLICY)
    await trio.sleep(9.9)
    ran = False
    with pytest.raises(BudgetExceeded) as info, budget.fail_after(Phase.JS):
        ran = True
    assert not ran, "admission control refuses an operation that cannot fit"
    assert info.value.code == "js_timeout"
    assert budget.statistics()[Phase.JS].exceeded == 1


async def test_manifest_may_lower_but_not_raise_the_request_budget(autojump_clock) -> None:
    assert Budget.start(POLICY, request_s=2).remaining() == pytest.approx(2)
    assert Budget.start(POLICY, request_s=60).remaining() == pytest.approx(10)
    with pytest.raises(ValueError):
        Budget.start(POLICY, request_s=0)


async def test_fast_operations_pass_and_are_counted(autojump_clock) -> None:
    budget = Budget.start(POLICY)
    for _ in range(3):
        with budget.fail_after(Phase.STORAGE):
            await trio.sleep(0.5)
    stats = budget.statistics()[Phase.STORAGE]
    assert stats.count == 3
    assert stats.exceeded == 0
    assert stats.total_s == pytest.approx(1.5)
    assert budget.remaining() == pytest.approx(8.5)


async def test_outer_cancellation_is_not_turned_into_budget_exceeded(autojump_clock) -> None:
    budget = Budget.start(POLICY)
    with trio.move_on_after(1) as outer:
        with budget.fail_after(Phase.JS):
            await trio.sleep(100)
    assert outer.cancelled_caught, "trio.Cancelled reached its own scope untouched"


async def test_errors_inside_pass_through(autojump_clock) -> None:
    budget = Budget.start(POLICY)
    with pytest.raises(KeyError), budget.fail_after(Phase.STORAGE):
        raise KeyError("x")


def test_bad_policies() -> None:
    with pytest.raises(ValueError):
        BudgetPolicy(request_s=0)
    with pytest.raises(ValueError):
        BudgetPolicy(request_s=1, respond_reserve_s=2)
