"""The retry policy: an immutable value that knows how many attempts remain and how long to wait.

Shaped like urllib3's `Retry`: each failure returns a new policy with the failure added to its
history, so the history is what the response and the logs report as "errors".
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as reported to the caller."""

    attempt: int
    kind: str
    message: str
    bytes: int = 0
    events: int = 0
    status: int | None = None
    wait: float | None = None
    next: str = "retry"  # or "stop: <why>", so the response says why the run ended here

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attempt": self.attempt,
            "kind": self.kind,
            "message": self.message,
            "bytes": self.bytes,
            "events": self.events,
        }
        if self.status is not None:
            out["status"] = self.status
        if self.wait is not None:
            out["wait"] = round(self.wait, 3)
        out["next"] = self.next
        return out


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base: float = 1.0
    cap: float = 30.0
    history: tuple[Failure, ...] = field(default=())

    @property
    def attempts_made(self) -> int:
        return len(self.history)

    @property
    def exhausted(self) -> bool:
        return len(self.history) >= self.max_attempts

    def increment(self, failure: Failure) -> RetryPolicy:
        return replace(self, history=(*self.history, failure))

    def backoff(self, rng: random.Random, retry_after: float | None = None) -> float:
        """Wait after the next failure (call before `increment`).

        Full jitter: uniform(0, min(cap, base * 2**(n-1))) for the n-th failure, and never
        shorter than the server's Retry-After.
        """
        n = len(self.history) + 1
        ceiling = min(self.cap, self.base * (2 ** (n - 1)))
        wait = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
