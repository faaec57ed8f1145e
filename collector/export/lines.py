"""Cutting a body's byte stream into blocks of whole lines, and sniffing its first line.

`iter_content` chunks are split on b"\\n" with our own carry-over buffer: `iter_lines` is several
times slower, yields spurious empty lines, and `str.splitlines` would also split on U+2028 /
U+2029, which JSON allows raw inside strings. The whole lines of a chunk are handed on in place
(a `memoryview`, not a copy); only a line that spans two chunks is joined.
"""

from __future__ import annotations

MARKER = b"terminated early"  # Mixpanel's early-end marker, in every form seen
# Mixpanel refuses events over 1 MB; a longer "line" is not one of its events: drop it rather
# than hold it.
MAX_LINE_BYTES = 4 * 1024 * 1024
SNIFF_BYTES = 64 * 1024  # enough of a body's start to see what its first line is

Buffer = bytes | memoryview


class LineSplitter:
    """Cuts a byte stream into blocks of whole lines; keeps the unfinished tail between chunks."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._tail = b""
        self._dropping = False
        self.dropped = 0

    def feed(self, chunk: bytes) -> list[Buffer]:
        """The whole lines that `chunk` completes: at most a joined line and a view of the rest."""
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._hold(chunk)
            return []
        blocks: list[Buffer] = []
        start = 0
        if self._tail or self._dropping:
            start = chunk.find(b"\n") + 1
            if self._dropping:
                self._dropping = False  # this newline ends an over-long line already dropped
            elif len(self._tail) + start > self.max_line:
                self.dropped += 1  # the newline came, but too late
            else:
                blocks.append(self._tail + chunk[:start])
            self._tail = b""
        if start <= cut:
            blocks.append(memoryview(chunk)[start : cut + 1])
        self._hold(chunk[cut + 1 :])
        return blocks

    def _hold(self, piece: bytes) -> None:
        if self._dropping:
            return
        if len(self._tail) + len(piece) > self.max_line:
            self._tail = b""
            self._dropping = True
            self.dropped += 1
            return
        self._tail += piece

    @property
    def unfinished(self) -> bool:
        """True if the stream stopped inside a line (if it ends now, it was cut or lacks its
        last newline)."""
        return bool(self._tail.strip()) or self._dropping

    @property
    def dropping(self) -> bool:
        """True while inside an over-long line (the stream stopped inside it if it ends now)."""
        return self._dropping

    def tail(self) -> bytes:
        """The bytes after the last newline: a last line without its newline, or a cut."""
        return self._tail if self._tail.strip() else b""


def first_line_kind(block: Buffer) -> str | None:
    """What the first non-empty line of a body is: "event" (it opens a JSON object: decoding
    judges the rest), "marker", "other" (not an export body), or None for blank lines only."""
    data = bytes(block[:SNIFF_BYTES])
    for line in data.split(b"\n"):
        text = line.strip()
        if not text:
            continue
        if text.startswith(b"{"):
            return "event"
        return "marker" if MARKER in text.lower() else "other"
    return None
