"""The simulator on loopback: its lifecycle, fault queue, request log and ground truth.

The HTTP side (the export endpoint and the control endpoints) is `collector.simulator.handler`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from collector.simulator import query
from collector.simulator.body import BodyPlan, day_bounds
from collector.simulator.config import SimConfig
from collector.simulator.events import EventSource, Truth
from collector.simulator.faults import Fault
from collector.simulator.handler import EXPORT_PATH, Handler, Server


class Simulator:
    """A Mixpanel Raw Event Export look-alike serving deterministic events on 127.0.0.1."""

    def __init__(
        self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or SimConfig()
        self.source = EventSource(self.config)
        self.host, self._port = host, port
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._clock: Callable[[], float] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        self._server = Server((self.host, self._port), Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled and trickling responses end within a poll interval."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wakes handlers blocked on a client that does not read
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + EXPORT_PATH

    # -- faults and observations ----------------------------------------------------------------

    def script(self, faults: Iterable[Fault]) -> None:
        """Append to the FIFO: the Nth following export query gets the Nth fault."""
        faults = list(faults)
        if not all(isinstance(f, Fault) for f in faults):
            raise TypeError("script() takes Fault values")
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults_pending(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def queries(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def set_clock(self, clock: Callable[[], datetime | float] | None) -> None:
        """Serve only the events processed by `clock()` (late events, SimConfig.late_rate,
        appear when it passes their processing time); None: every event, as by default."""
        self._clock = None if clock is None else lambda: _epoch(clock())

    def truth(
        self,
        start: datetime | float,
        end: datetime | float,
        events: Iterable[str] | None = None,
        arrived_by: datetime | float | Callable[[int], float] | None = None,
    ) -> Truth:
        """Ground truth for true UTC times in [start, end), optionally only these event names,
        and only the events processed by `arrived_by` (a moment, or a function of an event's
        time to one, in epoch seconds)."""
        if isinstance(events, str):
            events = [events]  # one name, not its characters
        names = None if events is None else set(events)
        by = arrived_by if callable(arrived_by) or arrived_by is None else _epoch(arrived_by)
        return self.source.truth(_epoch(start), _epoch(end), names, by)

    def today(self) -> date:
        return self.config.today or datetime.now(self.config.zone).date()

    # -- used by the handler --------------------------------------------------------------------

    def _begin_query(self, record: dict[str, Any], takes_fault: bool = True) -> Fault | None:
        """Log one request to the export path; a GET query also takes the next fault."""
        with self._lock:
            fault = self._faults.popleft() if self._faults and takes_fault else None
            record["fault"] = fault.kind if fault else None
            self._requests.append(record)
            return fault

    def _track(self, conn: socket.socket, active: bool) -> None:
        with self._lock:
            if active:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _plan(self, q: query.ExportQuery, fault: Fault | None) -> BodyPlan:
        cfg = self.config
        leak = fault if fault is not None and fault.kind == "leak" else None
        names = None
        if q.events is not None and cfg.honour_event_filter and not (leak and leak.other_events):
            names = frozenset(self.source.indices(set(q.events)))
        where = q.where if cfg.honour_where and not (leak and leak.out_of_window) else None
        start, end = day_bounds(q.from_date, q.to_date, cfg.zone)
        extra = fault.rate if fault is not None and fault.kind == "duplicate_lines" else 0.0
        arrived_by = None if self._clock is None else self._clock() * 1000
        return BodyPlan(start, end, names, where, q.limit, extra, arrived_by)


def _epoch(moment: datetime | float) -> float:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("truth() needs timezone-aware datetimes")
        return moment.timestamp()
    return float(moment)
