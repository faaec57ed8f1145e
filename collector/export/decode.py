"""From raw body chunks to validated event rows, decoding only the four fields we need.

`iter_content` chunks are split on b"\\n" with our own carry-over buffer: `iter_lines` is several
times slower, yields spurious empty lines, and `str.splitlines` would also split on U+2028 /
U+2029, which JSON allows raw inside strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec

from collector.window import ProjectTime, Window

TERMINATED_EARLY = b"terminated early"
MAX_LINE_BYTES = 4 * 1024 * 1024  # a longer "line" is not an event: drop it rather than hold it
SAMPLE_LIMIT = 5
SAMPLE_BYTES = 200


class _Props(msgspec.Struct):
    time: int | float | str | None = None
    distinct_id: str | int | None = None
    insert_id: str | None = msgspec.field(name="$insert_id", default=None)


class _Event(msgspec.Struct):
    event: str | None = None
    properties: _Props | None = None


_decoder = msgspec.json.Decoder(_Event)


class Row(NamedTuple):
    """The fields of one event. Rows travel as plain tuples in this order (see `_rows`)."""

    event: str
    distinct_id: str
    time: float  # true UTC epoch seconds
    insert_id: str | None


@dataclass
class LineStats:
    """What the decoder saw, across every attempt of one run."""

    lines: int = 0
    bad_lines: int = 0
    skipped: int = 0
    samples: list[str] = field(default_factory=list)

    def sample(self, line: bytes, reason: str) -> None:
        if len(self.samples) < SAMPLE_LIMIT:
            text = line[:SAMPLE_BYTES].decode("utf-8", "replace")
            more = "…" if len(line) > SAMPLE_BYTES else ""
            self.samples.append(f"{reason}: {text}{more}")


class LineSplitter:
    """Cuts a byte stream into blocks of whole lines; keeps the unfinished tail between chunks."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._tail = b""
        self._dropping = False
        self.dropped = 0

    def feed(self, chunk: bytes) -> bytes:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._hold(chunk)
            return b""
        block = self._tail + chunk[: cut + 1]
        self._tail = b""
        if self._dropping:
            # The first line of this block ends an over-long line that was already dropped.
            block = block[block.find(b"\n") + 1 :]
            self._dropping = False
        self._hold(chunk[cut + 1 :])
        return block

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
        """True if the stream stopped inside a line: a body cut with no error."""
        return bool(self._tail.strip()) or self._dropping


class EventFilter:
    """Validates decoded events and keeps those of the window and names asked for.

    The server's own filtering (`where`, `event`) is never trusted: every row is checked here.
    """

    def __init__(self, window: Window, names: Iterable[str] | None, ptime: ProjectTime) -> None:
        self.start = window.start_ts
        self.end = window.end_ts
        self.names = frozenset(names) if names else None
        self.ptime = ptime
        self.shift = ptime.shift_for(window)

    def decode_block(self, block: bytes, stats: LineStats) -> tuple[list[Row], bool]:
        """Rows of one block of whole lines, and whether it carried Mixpanel's early-end marker."""
        try:
            events = _decoder.decode_lines(block)
            terminated = False
            stats.lines += len(events)
        except (msgspec.DecodeError, msgspec.ValidationError):
            events, terminated = self._decode_one_by_one(block, stats)
        return self._rows(events, stats), terminated

    def _decode_one_by_one(self, block: bytes, stats: LineStats) -> tuple[list[_Event], bool]:
        events: list[_Event] = []
        terminated = False
        for line in block.split(b"\n"):
            if not line.strip():
                continue
            if line.strip() == TERMINATED_EARLY:
                terminated = True
                continue
            stats.lines += 1
            try:
                events.append(_decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError):
                stats.bad_lines += 1
                stats.sample(line, "not a valid event")
        return events, terminated

    def _rows(self, events: list[_Event], stats: LineStats) -> list[Row]:
        rows: list[Row] = []
        start, end, names, shift = self.start, self.end, self.names, self.shift
        for ev in events:
            props = ev.properties
            if props is None or ev.event is None or props.distinct_id is None or props.time is None:
                stats.bad_lines += 1
                stats.sample(msgspec.json.encode(ev), "missing event, distinct_id or time")
                continue
            t = props.time
            if type(t) is not int or t > 100_000_000_000:
                t = _seconds(t)
                if t is None:
                    stats.bad_lines += 1
                    stats.sample(msgspec.json.encode(ev), "time is not a number")
                    continue
            t = t - shift if shift is not None else self.ptime.to_utc(t)
            if not (start <= t < end) or (names is not None and ev.event not in names):
                stats.skipped += 1
                continue
            did = props.distinct_id
            # A plain tuple in Row's field order: building a NamedTuple per event costs more than
            # decoding the event did.
            rows.append((ev.event, did if type(did) is str else str(did), t, props.insert_id))
        return rows


def _seconds(value: int | float | str) -> float | None:
    """Some accounts return `time` as a string, or in milliseconds: read both defensively."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    if t != t or t in (float("inf"), float("-inf")):
        return None
    return t / 1000.0 if t > 1e11 else t
