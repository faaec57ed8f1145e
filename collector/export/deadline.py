"""A total deadline that holds whatever the server does.

Connect and read timeouts bound one wait for bytes, not a whole download: a server that trickles
a byte every few seconds keeps a read alive forever, and `iter_content` with a large chunk size
blocks until the chunk is full. So the reader also arms a watchdog that shuts the attempt's
socket down when the deadline passes; the blocked read returns at once and the reader ends the
run with what it has.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
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

    def remaining(self) -> float:
        return max(0.0, self.ends - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def expired(self) -> bool:
        return self.fired or self._clock() >= self.ends


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
    """While active, sockets opened in this thread are shut down when the deadline passes."""
    tracker = SocketTracker()

    def fire() -> None:
        deadline.fired = True
        tracker.cut_all()

    timer = threading.Timer(deadline.remaining(), fire)
    timer.daemon = True
    previous = getattr(_local, "tracker", None)
    _local.tracker = tracker
    timer.start()
    try:
        yield tracker
    finally:
        timer.cancel()
        _local.tracker = previous
