"""The HTTP transport of a read: a session whose sockets can be cut when the deadline passes.

urllib3's connection classes are subclassed so that every socket a run opens (plain or TLS,
pooled keep-alive sockets included) is registered with the run's `SocketTracker`; the watchdog
shuts them down when the run's `Deadline` passes, which makes a blocked read return at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from requests.adapters import HTTPAdapter
from urllib3 import connection, connectionpool

from collector import shutdown
from collector.export.deadline import Deadline

_local = threading.local()


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
    shutdown.enrol(deadline)
    watcher.start()
    try:
        yield tracker
    finally:
        done.set()
        with deadline.changed:
            deadline.changed.notify_all()
        shutdown.leave(deadline)
        _local.tracker = previous
