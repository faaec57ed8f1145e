"""The worst case a schedule can spend of Mixpanel's Export queries in one hour.

Mixpanel allows 60 Export queries per hour per project, and the service keeps the same budget
over a rolling hour. One scheduled run spends at most `queries_per_run` queries (the service's
EXPORT_MAX_ATTEMPTS) per Scheduler attempt, and Scheduler makes up to 1 + retries attempts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from collector.schedule.cron import runs_per_hour
from collector.schedule.jobs import JobSpec

EXPORT_QUERIES_PER_HOUR = 60


@dataclass(frozen=True)
class JobCost:
    name: str
    runs_per_hour: int
    attempts_per_run: int
    queries_per_attempt: int

    @property
    def queries(self) -> int:
        return self.runs_per_hour * self.attempts_per_run * self.queries_per_attempt

    def line(self) -> str:
        return (
            f"{self.name}: {self.runs_per_hour} runs x (1 + {self.attempts_per_run - 1} retries)"
            f" x {self.queries_per_attempt} queries = {self.queries}"
        )


@dataclass(frozen=True)
class Budget:
    costs: tuple[JobCost, ...]
    limit: int
    spread_minutes: int

    @property
    def worst_case(self) -> int:
        return sum(cost.queries for cost in self.costs)

    @property
    def fits(self) -> bool:
        return self.worst_case <= self.limit


def run_spread_seconds(service_deadline: float, retries: int, max_backoff: float) -> float:
    """How long after its start minute one run can still be spending queries.

    Every Scheduler attempt queries for at most the service's deadline, and a retry comes at most
    `max_backoff` after the previous attempt ended.
    """
    return (1 + retries) * service_deadline + retries * max_backoff


def worst_hour(
    specs: Iterable[JobSpec],
    *,
    retries: int,
    queries_per_run: int,
    spread_seconds: float,
    limit: int = EXPORT_QUERIES_PER_HOUR,
    prefix: str = "",
) -> Budget:
    """Sum over jobs of runs per rolling hour x (1 + retries) x queries per run.

    A sum of each job's worst hour: never less than the real worst hour of the whole schedule.
    """
    spread = math.ceil(spread_seconds / 60)
    costs = tuple(
        JobCost(
            name=prefix + spec.name,
            runs_per_hour=runs_per_hour(spec.schedule, spread),
            attempts_per_run=1 + retries,
            queries_per_attempt=queries_per_run,
        )
        for spec in specs
    )
    return Budget(costs=costs, limit=limit, spread_minutes=spread)
