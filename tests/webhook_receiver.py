"""A loopback HTTP receiver for notification tests and the demo.

    with WebhookReceiver(statuses=[500, 200], signing_key="k") as rx:
        post_something_to(rx.url + "/hook")
        rx.received[0]["status"]         # 500: what the receiver answered
        rx.received[0]["body"]           # the parsed JSON body (None if it was not JSON)
        rx.received[0]["signature_ok"]   # True / False; None when no signing_key was given

Answers follow the script (`statuses=` or `.script([...])`), one entry per POST, then 200 "ok"
once the script runs out. An entry is a status code or a `Reply` for a body, headers (for example
`Reply(429, headers={"Retry-After": "1"})`), a delay before answering, an answer written a byte
at a time (`trickle=0.2`: every byte, from the status line on; `slow_body=0.2`: the status and
headers at once, then the body), or no answer at all until the receiver stops (`hang=True`).
With a `signing_key`, a POST whose `X-Collector-Signature` does not verify is answered 401
without using up the script, as a real receiver would. Only 127.0.0.1 is bound, on a free port.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from collector.alerting.notification import verify_signature


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering, to make a client time out
    trickle: float = 0.0  # seconds between the bytes of the whole answer
    slow_body: float = 0.0  # seconds between the bytes of the body, after prompt headers
    hang: bool = False  # never answer (until the receiver stops)


class WebhookReceiver:
    def __init__(
        self,
        statuses: Iterable[int | Reply] | None = None,
        signing_key: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signing_key = signing_key
        self.received: list[dict[str, Any]] = []
        self._clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # ends hanging and trickling answers
        self._script: deque[Reply] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.script(statuses or [])

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, replies: Iterable[int | Reply]) -> None:
        """Replace the answers still to come."""
        with self._lock:
            self._script = deque(r if isinstance(r, Reply) else Reply(int(r)) for r in replies)

    def start(self) -> WebhookReceiver:
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval keeps stop() quick: shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="webhook-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        signature_ok = None
        if self.signing_key is not None:
            signature_ok = verify_signature(
                raw,
                headers.get("x-collector-timestamp", ""),
                headers.get("x-collector-signature", ""),
                self.signing_key,
                now=self._clock(),
            )
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            if signature_ok is False:
                reply = Reply(401, "bad signature")
            else:
                reply = self._script.popleft() if self._script else Reply()
            # Recorded before answering, so a client sees its request here once it has a reply.
            self.received.append(
                {
                    "path": path,
                    "headers": headers,
                    "body": body,
                    "raw": raw,
                    "signature_ok": signature_ok,
                    "status": reply.status,
                }
            )
        return reply


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = receiver._answer(self.path, headers, raw)
            stopping = receiver._stopping
            if reply.hang:
                stopping.wait()
                return
            if reply.delay:
                stopping.wait(reply.delay)
            payload = reply.body.encode()
            head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
            head += [f"{name}: {value}" for name, value in reply.headers.items()]
            head += ["Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(payload)}"]
            start = ("\r\n".join(head) + "\r\n\r\n").encode()
            try:
                if reply.trickle:
                    _trickle(self.wfile, start + payload, reply.trickle, stopping)
                else:
                    self.wfile.write(start)
                    self.wfile.flush()
                    _trickle(self.wfile, payload, reply.slow_body, stopping)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


def _trickle(out: Any, data: bytes, interval: float, stopping: threading.Event) -> None:
    if not interval:
        out.write(data)
        out.flush()
        return
    for i in range(len(data)):
        if stopping.wait(interval):
            return
        out.write(data[i : i + 1])
        out.flush()
