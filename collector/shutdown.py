"""Graceful shutdown under gunicorn: on SIGTERM, reads in flight end with what they have.

Cloud Run sends SIGTERM and kills the instance 10 s later. gunicorn's gthread worker then stops
accepting and waits up to `graceful_timeout` (8 s) for the requests it is serving, but a read may
have up to EXPORT_DEADLINE_SECONDS (120 s) left: it would be killed without an answer and without
its summary log entry. So the worker's SIGTERM handler is wrapped to begin a process drain first
(`drain`, below): every read, running or new, ends within `DRAIN_SECONDS`,
and the request answers with what it has (`complete: false`) and logs its summary well inside
the grace.

The handler is installed from gunicorn's `post_worker_init` hook in gunicorn.conf.py, after
gunicorn set its own, and calls gunicorn's: an app-level SIGTERM handler in the WSGI module would
be replaced by gunicorn's, or replace its graceful drain.

A `/check` cut by the drain ends its reads early like any request; its writes to the alert state
are all or nothing (collector.stores.document). If it is delivering notifications, it takes no new
one, the send in flight is cut within the same grace, what was delivered is settled and the rest
released for the next run (collector.alerting.deliver).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import weakref
from types import FrameType
from typing import Any

log = logging.getLogger("collector.shutdown")

# Reads end this long after SIGTERM. The answer and its log entry take milliseconds after that,
# and gunicorn keeps an idle kept-alive connection up to 2 s more: all well inside 8 s.
DRAIN_SECONDS = 2.0


class _Drain:
    """Process-wide shutdown state: once begun, every deadline ends within the grace."""

    def __init__(self) -> None:
        # Re-entrant: with a worker that serves in its main thread, SIGTERM may arrive while
        # that very thread holds it (enrol, leave).
        self._lock = threading.RLock()
        self._live: weakref.WeakSet[Any] = weakref.WeakSet()  # runs under a watchdog
        self.until: float | None = None  # time.monotonic() by which every read ends
        self.begun = threading.Event()

    def enrol(self, deadline: Any, live: bool = True) -> None:
        # Under the same lock as `begin`: a run either is in its snapshot or sees `until`.
        with self._lock:
            if live:
                self._live.add(deadline)
            until = self.until
        if until is not None:
            deadline.cut(max(0.0, until - time.monotonic()))

    def leave(self, deadline: Any) -> None:
        with self._lock:
            self._live.discard(deadline)

    def begin(self, grace: float) -> int:
        with self._lock:
            if self.until is None:
                self.until = time.monotonic() + grace
            until = self.until
            live = list(self._live)
        self.begun.set()
        for deadline in live:
            deadline.cut(max(0.0, until - time.monotonic()))
        return len(live)

    def reset(self) -> None:
        with self._lock:
            self.until = None
            self.begun.clear()


_drain = _Drain()


def drain(grace: float) -> int:
    """Begin the process drain: reads in flight end within `grace` s; how many were running.

    Safe in a signal handler: its locks are re-entrant, and it logs nothing.
    """
    return _drain.begin(grace)


def draining() -> bool:
    return _drain.begun.is_set()


def reset_drain() -> None:
    """End the drain state (tests only: a real process exits after draining)."""
    _drain.reset()


def pause(seconds: float) -> None:
    """`time.sleep` that returns early once the process drains: a backoff never delays exit."""
    _drain.begun.wait(seconds)


def enrol(deadline: Any, live: bool = True) -> None:
    """A deadline joins the drain: cut at once if one has begun; `live` while it is watched."""
    _drain.enrol(deadline, live)


def leave(deadline: Any) -> None:
    _drain.leave(deadline)


def install(worker: Any, seconds: float = DRAIN_SECONDS) -> None:
    """Wrap the worker's SIGTERM handler so that a drain begins before gunicorn's own stop."""
    handle_exit = worker.handle_exit

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if not getattr(worker, "drain_started", None):
            worker.drain_started = time.monotonic()
            # Safe in a signal handler: no logging here, and no lock the main thread holds.
            worker.drain_cut = drain(seconds)
        handle_exit(sig, frame)

    worker.handle_exit = on_sigterm
    signal.signal(signal.SIGTERM, on_sigterm)
    # gunicorn asks that SIGTERM not interrupt system calls in flight; keep it that way.
    signal.siginterrupt(signal.SIGTERM, False)


def report(worker: Any) -> None:
    """From `worker_exit`: one entry saying how the drain went (nothing if there was none)."""
    started = getattr(worker, "drain_started", None)
    if started is None:
        return
    seconds = round(time.monotonic() - started, 3)
    cut = getattr(worker, "drain_cut", 0)
    log.info(
        "worker %s stopped %.1f s after SIGTERM; %d read(s) in flight were cut short",
        getattr(worker, "pid", "?"),
        seconds,
        cut,
        extra={"json_fields": {"drain": True, "seconds": seconds, "reads_cut": cut}},
    )
