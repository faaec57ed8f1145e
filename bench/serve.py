"""A loopback HTTP server that sends one prepared body file as fast as the kernel can.

The simulator renders events in Python, which would cap any reader measured against it; the
benchmark renders the body once with the simulator, then serves those bytes from here.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

PACE_BYTES = 256 * 1024  # with a rate set, bytes per paced send


class FileServer:
    """Serves the body; `rate` (bytes/s) paces it like a network link of that speed."""

    def __init__(self, plain: Path, gzipped: Path | None = None, rate: float | None = None) -> None:
        self.plain = plain
        self.gzipped = gzipped
        self.rate = rate
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api/2.0/export"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                piece = conn.recv(65536)
                if not piece:
                    return
                request += piece
            headers = request.split(b"\r\n\r\n")[0].lower().split(b"\r\n")[1:]
            wants_gzip = any(h.startswith(b"accept-encoding:") and b"gzip" in h for h in headers)
            path = self.gzipped if (wants_gzip and self.gzipped) else self.plain
            size = path.stat().st_size
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {size}\r\nConnection: close\r\n"
                + ("Content-Encoding: gzip\r\n" if path is self.gzipped else "")
                + "\r\n"
            )
            try:
                conn.sendall(head.encode())
                with path.open("rb") as f:
                    offset = 0
                    started = time.monotonic()
                    while offset < size:
                        count = size - offset if self.rate is None else PACE_BYTES
                        sent = os.sendfile(conn.fileno(), f.fileno(), offset, count)
                        if sent == 0:
                            break
                        offset += sent
                        if self.rate is not None:
                            ahead = started + offset / self.rate - time.monotonic()
                            if ahead > 0:
                                time.sleep(ahead)
            except OSError:
                return  # the client went away: nothing to clean up
