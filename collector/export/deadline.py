"""A total deadline that holds whatever the server does.

Connect and read timeouts bound one wait for bytes, not a whole download: a server that trickles
a byte every few seconds keeps a read alive forever, and `iter_content` with a large chunk size
blocks until the chunk is full. So a run has one `Deadline`, and its watchdog
(`collector.export.transport.watchdog`) shuts the run's sockets when it passes; the blocked read
returns at once and the reader ends the run with what it has.

On SIGTERM the process drains (`collector.shutdown.drain`): every deadline ends within a short
grace, its watchdog re-arms and fires, so an in-flight read ends with what it has and the
request still answers before the platform kills the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from collector import shutdown


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.started = clock()
        self.ends = self.started + seconds
        self.fired = False
        self.drained = False  # cut short by a process drain (SIGTERM), not by its own end
        self.changed = threading.Condition()  # notified when `ends` moves or a watchdog stops
        shutdown.enrol(self, live=False)

    def remaining(self) -> float:
        return max(0.0, self.ends - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def expired(self) -> bool:
        return self.fired or self._clock() >= self.ends

    def past(self) -> float:
        """Seconds since the end: negative before it."""
        return self._clock() - self.ends

    @property
    def cause(self) -> str:
        """Why the run ends early: "shutdown" if a drain cut it short, else "deadline"."""
        return "shutdown" if self.drained else "deadline"

    def cut(self, grace: float) -> None:
        """End within `grace` seconds from now if that is sooner; a watchdog re-arms at once."""
        with self.changed:
            ends = self._clock() + grace
            if ends < self.ends:
                self.ends = ends
                self.drained = True
            self.changed.notify_all()
