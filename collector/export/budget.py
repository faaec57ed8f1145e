"""A per-process budget of Export queries, kept under Mixpanel's per-project limits.

Mixpanel allows 60 queries per hour and 3 per second per project. Spending a query we know will
be refused earns a 429 and wastes a retry, so the budget answers "no" (with when to come back)
before the query is made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from collector.export.deadline import Deadline
from collector.export.retry import Failure

log = logging.getLogger("collector.export")


class QueryBudget:
    """Queries spent in the last hour (and second), by this process."""

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
        """Take a query if one is free now and return 0; otherwise return seconds until one is."""
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            if len(self._spent) >= self.per_hour:
                return 3600.0 - (now - self._spent[0])
            recent = [t for t in self._spent if now - t < 1.0]
            if len(recent) >= self.per_second:
                return 1.0 - (now - recent[0])
            self._spent.append(now)
            return 0.0

    def remaining(self) -> int:
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
        self, deadline: Deadline, attempt: int, sleep: Callable[[float], None]
    ) -> Failure | None:
        """Take a query for attempt number `attempt`: None once one may go out, else the
        reason none may (no query is spent). Waits out the per-second limit if time allows."""
        while True:
            if deadline.expired():
                # A drain (SIGTERM) or a wait that used the last of the time: spend no query.
                drained = deadline.drained
                why = (
                    "the service is shutting down (SIGTERM): the read was cut short to answer "
                    "in time"
                    if drained
                    else "the total deadline passed (EXPORT_DEADLINE_SECONDS)"
                )
                stop = "stop: shutting down" if drained else "stop: deadline reached"
                return Failure(attempt, deadline.cause, why + ": no further attempt", next=stop)
            wait = self.try_acquire()
            if wait <= 0:
                return None
            hourly = self.hourly_wait()
            if hourly > 0:
                message = (
                    f"the Export query budget of this process is spent "
                    f"(EXPORT_QUERIES_PER_HOUR={self.per_hour}); "
                    f"a query is free again in {hourly:.0f} s"
                )
                log.warning(message, extra={"json_fields": {"retry_in_seconds": round(hourly)}})
                return Failure(attempt, "budget", message, next="stop: budget spent")
            if wait >= deadline.remaining():
                message = "deadline reached waiting for the per-second budget"
                return Failure(attempt, "deadline", message, next="stop: deadline reached")
            sleep(wait)  # the per-second limit frees within a second
