"""The budget of Export queries, kept under Mixpanel's per-project limits.

Mixpanel allows 60 queries per hour and 3 per second per project. Spending a query we know will
be refused earns a 429 and wastes a retry, so the budget answers "no" (with when to come back)
before the query is made.

`QueryBudget` counts the queries of this process. `collector.export.shared_budget.SharedBudget`
keeps the same interface over a store every process of the project shares (`BUDGET_STORE`);
both decide with `take`, here, from `try_acquire` and `hourly_wait`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from collector.errors import StoreError
from collector.export.deadline import Deadline
from collector.export.retry import Failure

log = logging.getLogger("collector.export")


# The `next` of a budget failure whose store could not be checked (not a spent budget).
STORE_FAILED = "stop: budget store failed"


class QueryBudget:
    """Queries spent in the last hour (and second), by this process."""

    scope = "of this process"  # whose queries the budget counts, for its messages

    def __init__(
        self,
        per_hour: int,
        per_second: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_hour = per_hour
        self.per_second = per_second
        self._clock = clock
        self._spent: deque[float] = deque()
        self._lock = threading.Lock()

    def _forget_old(self, now: float) -> None:
        while self._spent and now - self._spent[0] >= 3600.0:
            self._spent.popleft()

    def try_acquire(self) -> float:
        """Take a query if one is free now and return 0; otherwise return seconds until one is.

        A budget kept elsewhere raises StoreError when it cannot be checked."""
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            if len(self._spent) >= self.per_hour:
                return 3600.0 - (now - self._spent[0])
            # From the newest back: the hour may hold far more than a second (a simulator's).
            recent = list(itertools.takewhile(lambda t: now - t < 1.0, reversed(self._spent)))
            if len(recent) >= self.per_second:
                return 1.0 - (now - recent[-1])
            self._spent.append(now)
            return 0.0

    def remaining(self) -> int:
        """Queries left in the current hour."""
        with self._lock:
            self._forget_old(self._clock())
            return self.per_hour - len(self._spent)

    def hourly_wait(self) -> float:
        """Seconds until an hourly slot frees (0 when one is free)."""
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            if len(self._spent) < self.per_hour:
                return 0.0
            return 3600.0 - (now - self._spent[0])

    def take(
        self,
        deadline: Deadline,
        sleep: Callable[[float], None],
        *,
        wait_for_hourly: bool = False,
    ) -> Failure | None:
        """Take a query for the next attempt: None once one may go out, else the reason none
        may, as the entry of an attempt not made (no query is spent, so it has no number).
        Waits out the per-second limit if time allows; with `wait_for_hourly`, a spent hourly
        budget too (for callers that would rather wait than fail, such as a backfill), as long
        as a query frees before the deadline."""
        while True:
            if deadline.expired():
                return _expired(deadline)
            try:
                wait = self.try_acquire()
            except StoreError as exc:
                # Never fall back to no budget: every process would then spend the project's.
                log.error("%s", exc.message, extra={"json_fields": {"budget_store_error": True}})
                return Failure(None, "budget", exc.message, next=STORE_FAILED)
            if wait <= 0:
                return None
            hourly = self.hourly_wait()
            if hourly > 0 and wait_for_hourly and hourly < deadline.remaining():
                log.info(
                    "the Export query budget %s is spent: waiting %.0f s for a query",
                    self.scope,
                    hourly,
                    extra={"json_fields": {"budget_wait_seconds": round(hourly, 1)}},
                )
                sleep(hourly)
                continue
            if hourly > 0:
                message = (
                    f"the Export query budget {self.scope} is spent "
                    f"(EXPORT_QUERIES_PER_HOUR={self.per_hour}); "
                    f"a query is free again in {hourly:.0f} s"
                )
                if wait_for_hourly:
                    message += ", after the deadline (EXPORT_DEADLINE_SECONDS)"
                log.warning(
                    "%s", message, extra={"json_fields": {"retry_in_seconds": round(hourly)}}
                )
                return Failure(None, "budget", message, next="stop: budget spent")
            if wait >= deadline.remaining():
                message = "deadline reached waiting for the per-second budget"
                return Failure(None, "deadline", message, next="stop: deadline reached")
            sleep(wait)  # the per-second limit frees within a second


def _expired(deadline: Deadline) -> Failure:
    """Why no query may go out once the deadline passed: a drain (SIGTERM), or a wait that
    used the last of the time."""
    drained = deadline.drained
    why = (
        "the service is shutting down (SIGTERM): the read was cut short to answer in time"
        if drained
        else "the total deadline passed (EXPORT_DEADLINE_SECONDS)"
    )
    stop = "stop: shutting down" if drained else "stop: deadline reached"
    return Failure(None, deadline.cause, why + ": no further attempt", next=stop)
