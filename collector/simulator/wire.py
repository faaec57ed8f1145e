"""Writing one export response on the socket, correctly or broken in the way a Fault asks."""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler

from collector.simulator.faults import Fault

GZIP_LEVEL = 1  # speed over ratio: benchmarks stream gigabytes through this
PORTAL_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Wi-Fi sign in</title></head>\n"
    b"<body><h1>Welcome</h1><p>Accept the terms to continue.</p></body></html>\n"
)
POLL_SECONDS = 0.05  # how quickly sleeping faults notice stop() or a departed client


class Wire:
    """The response side of one request: framing, pauses, and the ways to end a connection."""

    def __init__(self, handler: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        self.handler = handler
        self.sock: socket.socket = handler.connection
        self.stopping = stopping
        self.chunked = False

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)

    def start(
        self,
        headers: dict[str, str],
        framing: str,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        """Status line and headers of a 200; framing is "chunked", "length" or "close"."""
        h = self.handler
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        if framing == "chunked":
            h.send_header("Transfer-Encoding", "chunked")
        elif framing == "close":
            h.send_header("Connection", "close")
            h.close_connection = True
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        self.chunked = framing == "chunked"

    def write(self, data: bytes) -> None:
        if not data:
            return  # an empty chunk would end a chunked body
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self.handler.wfile.write(data)

    def end(self) -> None:
        if self.chunked:
            self.handler.wfile.write(b"0\r\n\r\n")

    def close(self) -> None:
        """Orderly close (FIN) once the handler returns, without finishing the body."""
        self.handler.close_connection = True

    def reset(self) -> None:
        """Abort with a TCP RST: linger on with a zero timeout, then close the descriptor."""
        self.handler.close_connection = True
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.handler.rfile.close()  # the buffered reader holds a reference to the socket
            self.sock.close()
        except OSError:
            pass

    def client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and not self.sock.recv(1, socket.MSG_PEEK)
        except OSError:
            return True

    def pause(self, seconds: float) -> bool:
        """Sleep; False as soon as the simulator stops or the client disconnects."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stopping.wait(min(left, POLL_SECONDS)) or self.client_gone():
                return False
        return not self.stopping.is_set()


def gzip_blocks(blocks: Iterable[bytes]) -> Iterator[bytes]:
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: gzip container
    for block in blocks:
        if out := z.compress(block):
            yield out
    yield z.flush()


def corrupt_gzip_blocks(blocks: Iterable[bytes], after_bytes: int) -> Iterator[bytes]:
    """A gzip stream that becomes garbage once about `after_bytes` compressed bytes are out.

    A full flush byte-aligns the stream at a block boundary; the next header byte declares the
    reserved block type 3, which every inflater rejects ("invalid block type"). Random garbage
    alone might happen to inflate for a while.
    """
    z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    sent = 0
    for block in blocks:
        for i in range(0, len(block), 16384):  # small steps keep the cut close to after_bytes
            out = z.compress(block[i : i + 16384])
            sent += len(out)
            yield out
            if sent >= after_bytes:
                break
        if sent >= after_bytes:
            break
    yield z.flush(zlib.Z_FULL_FLUSH)
    yield b"\x07" + random.Random(after_bytes).randbytes(4096)


def marker_line(fault: Fault) -> bytes:
    return fault.marker.encode() + (b"\n" if fault.newline else b"")


def cut_in_record(blocks: Iterable[bytes], after_bytes: int, marker: bytes) -> Iterator[bytes]:
    """Uncompressed body cut inside a record near `after_bytes`, then the marker line."""
    sent, held = 0, b""
    for block in blocks:
        if held:
            yield held
            sent += len(held)
        held = block
        if sent + len(held) > after_bytes:
            yield held[: _inside_record(held, after_bytes - sent)] + b"\n" + marker
            return
    if held:  # body shorter than after_bytes: cut its last record
        start = held.rfind(b"\n", 0, len(held) - 1) + 1
        yield held[: _inside_record(held, (start + len(held)) // 2)] + b"\n" + marker
    else:
        yield marker


def with_invalid_utf8(blocks: Iterable[bytes], fault: Fault) -> Iterator[bytes]:
    """The body with a raw 0xFF byte in `fault.field` of its first `fault.count` lines; the
    last line stays whole, so the body still ends on an event."""
    opening = b'"%s":"' % fault.field.encode()
    left, held = fault.count, None
    for block in blocks:
        if held is not None:
            yield held
        held = block
        if left:
            lines = block.split(b"\n")
            for i, line in enumerate(lines[:-2] if len(lines) > 1 else []):
                if left and opening in line:
                    lines[i] = line.replace(opening, opening + b"\xff", 1)
                    left -= 1
            held = b"\n".join(lines)
    if held is not None:
        yield held


def cut_on_line(blocks: Iterable[bytes], after_bytes: int) -> Iterator[bytes]:
    """The body up to the first line boundary after `after_bytes` (0: all of it)."""
    sent = 0
    for block in blocks:
        if after_bytes and sent + len(block) > after_bytes:
            at = block.find(b"\n", max(0, after_bytes - sent)) + 1
            yield block[: at or len(block)]
            return
        yield block
        sent += len(block)


def _inside_record(block: bytes, pos: int) -> int:
    """Move pos strictly inside a line and onto a UTF-8 character boundary."""
    if pos == 0 or block[pos - 1 : pos] == b"\n":
        pos += 1  # blocks hold whole lines: pos was at the start of a line
    if block[pos : pos + 1] == b"\n":
        pos -= 1  # cutting just before the newline would leave a complete record
    while pos < len(block) and block[pos] & 0xC0 == 0x80:
        pos += 1
    return pos


def send_body(wire: Wire, blocks: Iterator[bytes], fault: Fault, gzip: bool) -> None:
    """Stream a 200 body, applying `fault` (kind "none" or a body fault)."""
    kind, after = fault.kind, fault.after_bytes
    if kind == "terminated_early":
        marker = marker_line(fault)
        blocks = iter([marker]) if fault.alone else cut_in_record(blocks, after, marker)
    elif kind == "invalid_utf8":
        blocks = with_invalid_utf8(blocks, fault)
    elif kind == "unframed" and not gzip:
        blocks = cut_on_line(blocks, after)
    if kind == "gzip_corrupt":
        payload, gzip = corrupt_gzip_blocks(blocks, after), True
    else:
        payload = gzip_blocks(blocks) if gzip else blocks
    headers = {"Content-Encoding": "gzip"} if gzip else {}

    if kind == "cut_length":
        body = b"".join(payload)  # this fault alone needs the full size up front
        wire.start({**headers, "Content-Length": str(len(body))}, "length")
        wire.write(body[:after])
        wire.close()
        return
    wire.start(headers, "close" if kind in ("cut_silent", "unframed") else "chunked")
    cut = after if kind in ("reset", "cut_chunked", "cut_silent", "stall", "trickle") else None
    if kind == "unframed" and gzip and after:
        cut = after  # a proxy cuts the compressed bytes: no line boundary to cut on there
    sent = 0
    for block in payload:
        if wire.stopping.is_set():
            wire.close()
            return
        if cut is not None and sent + len(block) > cut:
            at = cut - sent
            if kind == "cut_silent" and not gzip:
                # An unframed body cut exactly on a line boundary looks whole to any reader;
                # the fault this models is the one the data shows: a cut inside a record.
                at = _inside_record(block, at)
            wire.write(block[:at])
            _break(wire, fault, rest=_chain(block[at:], payload))
            return
        wire.write(block)
        sent += len(block)
    if cut is not None and kind not in ("cut_silent", "unframed"):
        _break(wire, fault, rest=iter(()))  # the body was shorter than after_bytes
        return
    wire.end()


def send_fixed(wire: Wire, fault: Fault, gzip: bool) -> None:
    """A 200 with a fixed body (`html`, `raw_body` faults) in the fault's framing."""
    if fault.kind == "html":
        body = PORTAL_PAGE
    else:
        body = (fault.body or "").encode("utf-8", "surrogateescape")
    headers = {}
    if gzip:
        body = b"".join(gzip_blocks([body]))
        headers["Content-Encoding"] = "gzip"
    if fault.framing == "length":
        headers["Content-Length"] = str(len(body))
    wire.start(headers, fault.framing, fault.content_type)
    wire.write(body)
    if fault.framing == "close":
        wire.close()
    else:
        wire.end()


def _chain(first: bytes, more: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from more


def _break(wire: Wire, fault: Fault, rest: Iterator[bytes]) -> None:
    if fault.kind == "reset":
        wire.reset()
    elif fault.kind == "stall":
        wire.pause(fault.seconds)
        wire.close()
    elif fault.kind == "trickle":
        for block in rest:
            for i in range(len(block)):
                if not wire.pause(fault.interval):
                    wire.close()
                    return
                wire.write(block[i : i + 1])
        wire.end()
    else:  # cut_chunked, cut_silent: an orderly close, short of the end
        wire.close()
