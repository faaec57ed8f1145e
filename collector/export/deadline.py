"""A total deadline that holds whatever the server does.

Connect and read timeouts bound one wait for bytes, not a whole download: a server that trickles
a byte every few seconds keeps a read alive forever, and `iter_content` with a large chunk size
blocks until the chunk is full. So the reader also arms a watchdog that shuts the attempt's
socket down when the deadline passes; the blocked read returns at once and the reader ends the
run with what it has.

On SIGTERM the process drains (`drain`): every running or new deadline ends within a short grace,
its watchdog re-arms and fires, and backoff waits (`pause`) return early, so an in-flight read
ends with what it has and the request still answers before the platform kills the process.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from requests.adapters import HTTPAdapter
from urllib3 import connection, connectionpool

_local = threading.local()


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.started = clock()
        self.ends = self.started + seconds
        self.fired = False
        self.drained = False  # cut short by a process drain (SIGTERM), not by its own end
        self.changed = threading.Condition()  # notified when `ends` moves or a watchdog stops
        _drain.enrol(self, live=False)

    def remaining(self) -> float:
        return max(0.0, self.ends - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def expired(self) -> bool:
        return self.fired or self._clock() >= self.ends

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


class _Drain:
    """Process-wide shutdown state: once begun, every deadline ends within the grace."""

    def __init__(self) -> None:
        # Re-entrant: with a worker that serves in its main thread, SIGTERM may arrive while
        # that very thread holds it (enrol, leave).
        self._lock = threading.RLock()
        self._live: weakref.WeakSet[Deadline] = weakref.WeakSet()  # runs under a watchdog
        self.until: float | None = None  # time.monotonic() by which every read ends
        self.begun = threading.Event()

    def enrol(self, deadline: Deadline, live: bool = True) -> None:
        # Under the same lock as `begin`: a run either is in its snapshot or sees `until`.
        with self._lock:
            if live:
                self._live.add(deadline)
            until = self.until
        if until is not None:
            deadline.cut(max(0.0, until - time.monotonic()))

    def leave(self, deadline: Deadline) -> None:
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


class SocketTracker:
    """Remembers the sockets opened in this thread while active, to cut them at the deadline."""

    def __init__(self) -> None:
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.cut = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            cut = self.cut
        if cut:
            _shutdown(sock)

    def cut_all(self) -> None:
        with self._lock:
            self.cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # Already closed or never connected: then there is nothing left to interrupt.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _register(sock: socket.socket | None) -> None:
    tracker: SocketTracker | None = getattr(_local, "tracker", None)
    if tracker is not None and sock is not None:
        tracker.add(sock)


class _TrackedHTTPConnection(connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _register(self.sock)


class _TrackedHTTPSConnection(connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _register(sock)  # covers the TLS handshake; the wrapped socket is registered below
        return sock

    def connect(self) -> None:
        super().connect()
        _register(self.sock)


class _TrackedHTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


class TrackingAdapter(HTTPAdapter):
    """An adapter whose connections report their sockets to the active `SocketTracker`."""

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _TrackedHTTPPool,
            "https": _TrackedHTTPSPool,
        }


def new_session() -> requests.Session:
    session = requests.Session()
    adapter = TrackingAdapter(max_retries=0)  # retries are the reader's job, over the body too
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@contextmanager
def watchdog(deadline: Deadline) -> Iterator[SocketTracker]:
    """While active, sockets opened in this thread are shut down when the deadline passes.

    The deadline may move earlier while it runs (a drain): the watcher waits on the deadline's
    condition, not a fixed timer, so it re-arms at once.
    """
    tracker = SocketTracker()
    done = threading.Event()

    def watch() -> None:
        with deadline.changed:
            while not done.is_set() and (left := deadline.remaining()) > 0:
                deadline.changed.wait(left)
        if not done.is_set():
            deadline.fired = True
            tracker.cut_all()

    watcher = threading.Thread(target=watch, name="export-watchdog", daemon=True)
    previous = getattr(_local, "tracker", None)
    _local.tracker = tracker
    _drain.enrol(deadline)
    watcher.start()
    try:
        yield tracker
    finally:
        done.set()
        with deadline.changed:
            deadline.changed.notify_all()
        _drain.leave(deadline)
        _local.tracker = previous
