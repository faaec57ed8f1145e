"""The retry policy: an immutable value that knows how many attempts remain and how long to wait.

Shaped like urllib3's `Retry`: each failure returns a new policy with the failure added to its
history, so the history is what the response and the logs report as "errors". Every stop rule
lives here: a failure that is not retryable, the last attempt, and a wait that would cross the
deadline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from collector.export.failures import AttemptFailed

# Statuses worth another attempt: rate limited, or the server (or a proxy) failing.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as reported to the caller; or the stop before an attempt that was
    never made (the budget spent, the deadline or a shutdown first), whose `attempt` is None:
    no query was sent, so the answer's `attempts` has nothing to count for it."""

    attempt: int | None
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

    @property
    def wait(self) -> float | None:
        """The wait before the next attempt, or None if the last failure ended the run."""
        last = self.history[-1] if self.history else None
        return last.wait if last is not None and last.next.startswith("retry") else None

    def after(
        self,
        failed: AttemptFailed,
        attempt: int,
        remaining: float,
        rng: random.Random,
        *,
        retry_now: str | None = None,
    ) -> RetryPolicy:
        """The policy after attempt number `attempt` failed with `failed`, `remaining` seconds
        before the deadline. `retry_now` says why to retry at once, whatever the failure."""
        wait: float | None = None
        if retry_now is None and not failed.retryable:
            next_step = f"stop: {failed.stop_reason}"
        elif attempt >= self.max_attempts:
            next_step = f"stop: EXPORT_MAX_ATTEMPTS={self.max_attempts} reached"
        elif retry_now is not None:
            wait, next_step = 0.0, retry_now
        else:
            wait = self.backoff(rng, failed.retry_after)
            next_step = "retry"
            if wait >= remaining:
                next_step = (
                    f"stop: the next wait ({wait:.1f} s) would cross the deadline "
                    f"({remaining:.1f} s left)"
                )
                wait = None
        failure = Failure(
            attempt,
            failed.kind,
            failed.message,
            bytes=failed.bytes,
            events=failed.events,
            status=failed.status,
            wait=wait,
            next=next_step,
        )
        return self.increment(failure)

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
