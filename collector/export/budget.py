"""A per-process budget of Export queries, kept under Mixpanel's per-project limits.

Mixpanel allows 60 queries per hour and 3 per second per project. Spending a query we know will
be refused earns a 429 and wastes a retry, so the budget answers "no" (with when to come back)
before the query is made.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class QueryBudget:
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
