"""One Export query budget for the whole project, kept in a store that every worker, instance
and job shares (`BUDGET_STORE`: a directory, or a Cloud Storage prefix).

Mixpanel's limits (60 queries an hour, 3 a second) are per project, so a budget per process
lets two gunicorn workers, or two Cloud Run instances, spend twice the limit. Here a unit of
budget is an object in the store:

    second/<k>   k = 0 .. EXPORT_QUERIES_PER_SECOND - 1
    hour/<k>     k = 0 .. EXPORT_QUERIES_PER_HOUR - 1

each holding when it was last used and by whom (`{"at": <epoch seconds>, "by": "<host>/<pid>/
<token>"}`). A slot is free once its last use is a window (1 s, 3600 s) and a small margin
old. Taking a query takes one free second-slot, then one free hour-slot, each by a write
conditional on the version read (`if_version`): of two takers of one slot, one wins, and the
other moves on to the next slot. So the limits hold without any central counter: at most
`per_second` takes can fall within any second and `per_hour` within any hour, because each
needs a slot of its own.

Why slots rather than one counter document: Cloud Storage accepts about one write per second
to one object and answers faster updates with 429, and every take would write the counter; a
burst of three queries in one second would contend on it and fail. With slots, a second-slot
is written at most once a second and an hour-slot once an hour, and the takers of a burst start
at different slots (an index from a hash of the taker and the time), so they rarely meet. The
second-slot is written first: if the hour-slot is then lost (another took the last one), what
was wasted is one second of the per-second budget, not an hour of the hourly one.

What this process has seen of each slot (its last use and version) is cached. A last use only
moves forward, so a slot seen used within the window cannot free before it ends: it is skipped
with no request. An hour-slot that looks free is read before anything is written, so a process
learns that the hour is spent from reads alone, without spending a second-slot on it; a take
usually costs one or two reads and two writes, not 60 reads. `remaining()` (`/healthz`) and
`hourly_wait()` answer from the cache alone: exact for what this process has seen, and at worst
optimistic about what other processes took since.

Times are wall-clock (`time.time`): slots are compared across processes and machines, whose
monotonic clocks share no origin. The margin absorbs small clock differences and the moment
between taking a slot and the query reaching Mixpanel.

A store that fails (`StoreError`: unreachable, forbidden, a directory that cannot be written)
stops the attempt with a budget error naming BUDGET_STORE: the run answers 503
`budget_exhausted`, with a short `retry_in_seconds`, and no query is sent. There is no silent
fallback to a per-process budget: that would spend the project's limit once per process, the
very thing the setting is there to prevent, and earn 429s for every tool that reads the
project; an operator who wants a per-process budget unsets BUDGET_STORE.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.errors import StoreConflict, StoreError
from collector.export.budget import QueryBudget
from collector.stores import ABSENT, BlobStore

log = logging.getLogger("collector.export")

SECOND, HOUR = 1.0, 3600.0
MARGIN = 0.25  # seconds a slot stays taken past its window (clocks, the trip to Mixpanel)
STORE_RETRY_SECONDS = 10.0  # the retry_in_seconds of an answer after the store failed
MIN_WAIT = 0.05  # when every slot tried was lost to another taker: look again shortly


@dataclass(frozen=True)
class Slot:
    """What this process last saw of one slot: when it was last used (None: never, or not
    readable), and the version to write it back with."""

    used_at: float | None
    version: Any

    def free_at(self, window: float) -> float:
        return float("-inf") if self.used_at is None else self.used_at + window + MARGIN


class SharedBudget(QueryBudget):
    """The project's query budget, as slots in `store` shared by every process; the same
    interface (and the same `take`) as the per-process budget it replaces."""

    def __init__(
        self,
        store: BlobStore,
        per_hour: int,
        per_second: int,
        *,
        clock: Callable[[], float] = time.time,
        taker: str | None = None,
    ) -> None:
        super().__init__(per_hour, per_second, clock)
        self.store = store
        self._taker = taker  # None: this host and process, named when a slot is written
        self._token = secrets.token_hex(3)  # two processes with one pid (containers) differ
        self._seen: dict[str, Slot] = {}
        self._store_failed_at: float | None = None
        self._turns = itertools.count()

    @property
    def scope(self) -> str:  # type: ignore[override]
        return f"of the project (shared in BUDGET_STORE={self.store.describe()})"

    @property
    def taker(self) -> str:
        """Who takes a slot, as written in it: host, process (now: a fork has its own pid)."""
        return self._taker or f"{socket.gethostname()}/{os.getpid()}/{self._token}"

    # -- the interface ----------------------------------------------------------------------

    def try_acquire(self) -> float:
        """Take a second-slot and an hour-slot and return 0; else seconds until one frees.
        Raises StoreError, naming BUDGET_STORE, when the store fails."""
        with self._lock:
            spent = self._wait_seen("hour", self.per_hour, HOUR, self._clock())
        if spent > 0:
            return spent  # every hour-slot was seen taken: no request needed to know
        try:
            # An hour-slot is found free (reading only) before a second-slot is written, so a
            # process learns that the hour is spent without spending a second on it.
            hour = self._first_free("hour", self.per_hour, HOUR)
            if hour is None:
                wait = self._wait("hour", self.per_hour, HOUR)
            else:
                wait = self._take("second", self.per_second, SECOND)
                if wait == 0:
                    wait = self._take("hour", self.per_hour, HOUR, start=hour)
        except StoreError as exc:
            with self._lock:
                self._store_failed_at = self._clock()
            raise StoreError(self._unavailable(exc)) from exc
        with self._lock:
            self._store_failed_at = None
        return wait

    def remaining(self) -> int:
        """Hour-slots not seen taken: this process's view, without a request."""
        with self._lock:
            now = self._clock()
            return self.per_hour - sum(
                1 for k in range(self.per_hour) if self._busy(f"hour/{k}", HOUR, now)
            )

    def hourly_wait(self) -> float:
        """Seconds until an hour-slot frees, when every one was seen taken (0 otherwise); just
        after the store failed, at least the time before it is worth asking again."""
        with self._lock:
            now = self._clock()
            wait = self._wait_seen("hour", self.per_hour, HOUR, now)
            if self._store_failed_at is not None:
                wait = max(wait, self._store_failed_at + STORE_RETRY_SECONDS - now)
            return max(0.0, wait)

    # -- slots --------------------------------------------------------------------------------

    def _first_free(self, kind: str, count: int, window: float) -> int | None:
        """A slot of `kind` free now, read to be sure (nothing is written); None if none is.
        A slot seen taken is skipped unread: it cannot have freed since."""
        start = self._start(count)
        for i in range(count):
            name = f"{kind}/{(start + i) % count}"
            with self._lock:
                taken = self._busy(name, window, self._clock())
            if not taken and self._read(name, window).free_at(window) <= self._clock():
                return (start + i) % count
        return None

    def _take(self, kind: str, count: int, window: float, start: int | None = None) -> float:
        """Take one free slot of `kind` (0), or the seconds until one may be free."""
        start = self._start(count) if start is None else start
        for i in range(count):
            if self._claim(f"{kind}/{(start + i) % count}", window):
                return 0.0
        return self._wait(kind, count, window)

    def _wait(self, kind: str, count: int, window: float) -> float:
        """After no slot of `kind` could be taken: seconds until one frees. A slot lost to a
        taker this process has not read since is not known taken: look again soon."""
        with self._lock:
            return max(self._wait_seen(kind, count, window, self._clock()), MIN_WAIT)

    def _claim(self, name: str, window: float) -> bool:
        """Write `name` as used now if it is free; False if it is taken or another won it."""
        for _ in range(2):  # with the version seen, then once more with a fresh one
            with self._lock:
                seen = self._seen.get(name)
            if seen is None:
                seen = self._read(name, window)
            now = self._clock()
            if seen.free_at(window) > now:
                return False
            body = json.dumps({"at": now, "by": self.taker}).encode()
            try:
                version = self.store.put(name, body, if_version=seen.version)
            except StoreConflict:
                with self._lock:  # someone else wrote it since: read it before judging
                    self._seen.pop(name, None)
                continue
            with self._lock:
                self._seen[name] = Slot(now, version)
            return True
        return False

    def _read(self, name: str, window: float) -> Slot:
        got = self.store.get(name)
        if got is None:
            slot = Slot(None, ABSENT)
        else:
            data, version = got
            slot = Slot(self._used_at(name, data, window), version)
        with self._lock:
            self._seen[name] = slot
        return slot

    def _used_at(self, name: str, data: bytes, window: float) -> float | None:
        try:
            at = float(json.loads(data)["at"])
        except (ValueError, TypeError, KeyError):
            at = None
        if at is not None and at <= self._clock() + window:
            return at
        # Not ours to keep: a slot nobody can read (or stamped by a clock far ahead) would be
        # lost for good, so it counts as free and the next take rewrites it.
        log.warning(
            "query budget slot %s/%s is unreadable or in the future; it is taken as free",
            self.store.describe(),
            name,
        )
        return None

    def _busy(self, name: str, window: float, now: float) -> bool:
        seen = self._seen.get(name)
        return seen is not None and seen.free_at(window) > now

    def _wait_seen(self, kind: str, count: int, window: float, now: float) -> float:
        """Seconds until a slot of `kind` frees, if every one was seen taken; else 0."""
        frees = []
        for k in range(count):
            seen = self._seen.get(f"{kind}/{k}")
            if seen is None or seen.free_at(window) <= now:
                return 0.0
            frees.append(seen.free_at(window))
        return min(frees) - now

    def _start(self, count: int) -> int:
        """Where this take starts looking: takers of one burst, in one process or several,
        start at different slots and rarely write the same one."""
        key = f"{self.taker}/{next(self._turns)}/{time.time_ns()}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % count

    def _unavailable(self, exc: StoreError) -> str:
        return (
            f"the project's Export query budget (BUDGET_STORE={self.store.describe()}) could "
            f"not be checked: {exc.message}. No query was sent: without it this process cannot "
            "know what the project has left. Check that the store is reachable and that this "
            "service may read and write it (on Cloud Storage: roles/storage.objectUser on the "
            "bucket), or unset BUDGET_STORE to count queries per process; try again in "
            f"{STORE_RETRY_SECONDS:.0f} s"
        )
