"""The simulator's HTTP side: the export endpoint, as Mixpanel's answers it (faults included),
and the control endpoints (`/_sim/faults`, `/_sim/truth`, `/_sim/stats`)."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from collector.simulator import query
from collector.simulator.body import iter_body
from collector.simulator.faults import Fault
from collector.simulator.wire import Wire, send_body, send_fixed

if TYPE_CHECKING:
    from collector.simulator.server import Simulator

EXPORT_PATH = "/api/2.0/export"
RECORDED_HEADERS = ("accept-encoding", "user-agent")
MAX_CONTROL_BODY = 1 << 20


def _parse_moment(raw: str) -> float:
    """Epoch seconds or ISO 8601 (naive means UTC)."""
    try:
        value = float(raw)
    except ValueError:
        moment = datetime.fromisoformat(raw)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value):
        raise ValueError(f"not a moment: {raw!r}")
    return value


class Server(ThreadingHTTPServer):
    """One thread per connection, each handled by `Handler` for `sim`."""

    daemon_threads = True  # a stalled response must never keep the process alive
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, sim: Simulator) -> None:
        self.sim = sim
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away mid-response: expected here, not worth a traceback
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """One connection's requests: routing, the export, the control endpoints."""

    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like the real API
    server_version = "mixpanel-export-simulator"
    sys_version = ""
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests and benchmarks want a quiet server

    def setup(self) -> None:
        super().setup()
        self.server.sim._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.sim._track(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- routing --------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        wire = Wire(self, sim._stopping)
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
            if url.path == EXPORT_PATH:
                self._export(sim, wire, params, method)
            elif url.path == "/_sim/faults" and method in ("POST", "DELETE"):
                self._control_faults(sim, wire, method, body)
            elif url.path == "/_sim/truth" and method == "GET":
                self._control_truth(sim, wire, url.query)
            elif url.path == "/_sim/stats" and method == "GET":
                stats = {"queries": sim.queries, "faults_pending": sim.faults_pending}
                self._json(wire, 200, stats)
            else:
                self._json(wire, 404, {"error": f"no route for {method} {url.path}"})
        except OSError:
            self.close_connection = True  # the client left; nothing more to say

    def _read_body(self) -> bytes:
        """Read any request body, so that the next request on this connection parses cleanly."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length, self.close_connection = 0, True
        if length > MAX_CONTROL_BODY:
            self.close_connection = True  # not worth reading: drop the connection after replying
        return self.rfile.read(min(length, MAX_CONTROL_BODY)) if length > 0 else b""

    @staticmethod
    def _json(
        wire: Wire, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        wire.send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    # -- export ---------------------------------------------------------------------------------

    def _export(self, sim: Simulator, wire: Wire, params: dict[str, str], method: str) -> None:
        target = self.path
        header = self.headers.get("Authorization")
        try:
            auth: str | None = query.authenticate(header, params, sim.config, target)
            refusal = None
        except query.QueryError as exc:
            auth, refusal = None, exc
        seen = {k: v for k in RECORDED_HEADERS if (v := self.headers.get(k)) is not None}
        record = {"params": params, "auth": auth, "headers": seen, "at": time.time()}
        fault = sim._begin_query(record, takes_fault=method == "GET")
        if method != "GET":
            self._json(wire, 405, {"error": f"{method} not allowed; use GET"})
            return

        # Faults that happen before any check, as a proxy or overloaded backend would.
        if fault is not None and fault.kind == "status":
            body, content_type = fault.response(target)
            retry = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            wire.send_bytes(fault.status_code, body, content_type, retry)
            return
        gzip = "gzip" in self.headers.get("Accept-Encoding", "").lower()
        if fault is not None and fault.kind in ("html", "raw_body"):
            send_fixed(wire, fault, gzip)  # a proxy's page, or a body given as it is
            return
        if fault is not None and fault.kind == "stall_headers":
            wire.pause(fault.seconds)
            wire.close()
            return
        try:
            if refusal is not None:
                raise refusal
            q = query.parse(params, sim.today(), target)
        except query.QueryError as exc:
            self._json(wire, exc.status, exc.body)
            return
        blocks = iter_body(sim.source, sim._plan(q, fault))
        send_body(wire, blocks, fault or Fault.none(), gzip)

    # -- control --------------------------------------------------------------------------------

    def _control_faults(self, sim: Simulator, wire: Wire, method: str, body: bytes) -> None:
        if method == "DELETE":
            sim.clear_faults()
            self._json(wire, 200, {"faults_pending": 0})
            return
        try:
            payload = json.loads(body or b"null")
            specs = payload.get("faults") if isinstance(payload, dict) else None
            if not isinstance(specs, list):
                raise ValueError('expected a JSON object {"faults": [...]}')
            faults = [Fault.from_dict(spec) for spec in specs]
        except ValueError as exc:
            self._json(wire, 400, {"error": str(exc)})
            return
        sim.script(faults)
        self._json(wire, 200, {"queued": len(faults), "faults_pending": sim.faults_pending})

    def _control_truth(self, sim: Simulator, wire: Wire, raw_query: str) -> None:
        args = parse_qs(raw_query, keep_blank_values=True)
        try:
            start, end = (_parse_moment(args[k][-1]) for k in ("from", "to"))
        except (KeyError, ValueError):
            self._json(wire, 400, {"error": "from and to are required: ISO 8601 or epoch seconds"})
            return
        truth = sim.truth(start, end, args.get("event"))
        self._json(wire, 200, asdict(truth))
