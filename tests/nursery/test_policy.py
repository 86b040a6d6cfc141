"""RestartPolicy: validation and the backoff arithmetic, without any tasks running."""

from __future__ import annotations

import pytest

from fazt.nursery import RestartPolicy


def test_backoff_doubles_and_is_capped() -> None:
    policy = RestartPolicy(mode="restart", backoff_initial_s=0.5, backoff_max_s=3.0)
    assert [policy.backoff_s(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.backoff_s(10_000) == 3.0  # no float overflow


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "sometimes"},
        {"max_restarts": -1},
        {"window_s": 0.0},
        {"backoff_initial_s": -0.1},
        {"backoff_initial_s": 2.0, "backoff_max_s": 1.0},
    ],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]
