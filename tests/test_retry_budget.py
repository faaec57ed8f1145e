from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from collector.export.budget import QueryBudget
from collector.export.retry import Failure, RetryPolicy, parse_retry_after


def test_full_jitter_backoff_is_bounded_and_capped() -> None:
    rng = random.Random(1)
    policy = RetryPolicy(max_attempts=10, base=1.0, cap=5.0)
    ceilings = []
    for n in range(1, 8):
        waits = [policy.backoff(rng) for _ in range(200)]
        ceilings.append(max(waits))
        assert all(0 <= w <= min(5.0, 2 ** (n - 1)) for w in waits)
        policy = policy.increment(Failure(n, "connection_broken", "x"))
    assert ceilings[0] <= 1.0 < ceilings[2]  # grows...
    assert max(ceilings) <= 5.0  # ...up to the cap


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(max_attempts=3, base=0.1, cap=0.2)
    assert policy.backoff(random.Random(0), retry_after=3.0) == 3.0


def test_policy_is_immutable_and_keeps_history() -> None:
    p0 = RetryPolicy(max_attempts=2)
    p1 = p0.increment(Failure(1, "http_5xx", "503"))
    p2 = p1.increment(Failure(2, "truncated", "cut"))
    assert p0.history == () and not p0.exhausted
    assert [f.kind for f in p2.history] == ["http_5xx", "truncated"]
    assert p2.exhausted


def test_parse_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after("garbage", now) is None
    assert parse_retry_after(None, now) is None


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_budget_enforces_per_second_and_per_hour() -> None:
    clock = FakeClock()
    budget = QueryBudget(per_hour=5, per_second=3, clock=clock)
    assert [budget.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert 0 < budget.try_acquire() <= 1.0  # the fourth in one second must wait
    clock.t += 1.0
    assert budget.try_acquire() == 0.0
    assert budget.try_acquire() == 0.0
    assert budget.remaining() == 0
    wait = budget.try_acquire()
    assert 3598 <= wait <= 3600 and budget.hourly_wait() == wait
    clock.t += 3600.0
    assert budget.remaining() == 5
