"""A gzip body cut exactly on a line boundary, inside valid framing, is still caught."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collector.export.budget import QueryBudget
from collector.export.finish import UNFRAMED_NOTE
from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.metrics.aggregators import DistinctUsers
from tests.conftest import past_window
from tests.helpers import make_settings

WINDOW = past_window()
LINES = b"".join(
    b'{"event":"A","properties":{"time":%d,"distinct_id":"u%d"}}\n' % (int(WINDOW.start_ts) + i, i)
    for i in range(100)
)
CUT = LINES.index(b"\n", len(LINES) // 2) + 1
HALF = LINES[:CUT].count(b"\n")


def gzip_body(whole: bool) -> bytes:
    z = zlib.compressobj(wbits=31)
    # A sync flush ends the deflate data on a byte boundary after line HALF: cutting there
    # leaves a decompressible stream of whole lines, with no gzip trailer.
    head = z.compress(LINES[:CUT]) + z.flush(zlib.Z_SYNC_FLUSH)
    return head + z.compress(LINES[CUT:]) + z.flush() if whole else head


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "gzip-cut"

    def do_GET(self) -> None:
        if self.mode == "close":
            body = LINES[:CUT]
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        body = gzip_body(whole=self.mode == "gzip-whole")
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[Handler]]]:
    handler = type("H", (Handler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/export", handler
    httpd.shutdown()
    httpd.server_close()


def read(url: str):
    reader = ExportReader(make_settings(url, EXPORT_MAX_ATTEMPTS="2"), QueryBudget(60, 3))
    sink = DistinctUsers()
    return reader.read(ExportQuery(WINDOW), sink), sink


def test_gzip_stream_without_trailer_is_not_complete(server) -> None:
    url, handler = server
    handler.mode = "gzip-cut"
    report, sink = read(url)
    assert not report.complete
    assert [e.kind for e in report.errors] == ["truncated", "truncated"]
    assert sink.value() == HALF  # whole lines were read: a lower bound


def test_whole_gzip_stream_is_complete(server) -> None:
    url, handler = server
    handler.mode = "gzip-whole"
    report, sink = read(url)
    assert report.complete and sink.value() == 100
    assert "warnings" not in report.as_dict()


def test_a_close_delimited_body_cut_on_a_line_boundary_is_a_lower_bound(server) -> None:
    url, handler = server
    handler.mode = "close"
    report, sink = read(url)
    assert not report.complete and sink.value() == HALF
    assert report.note == UNFRAMED_NOTE
    assert report.attempts == 1  # another attempt could not prove the end either
    assert "proxy" in report.as_dict()["warnings"][0]
