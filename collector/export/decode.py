"""From raw body chunks to validated event batches, decoding only the four fields we need.

`iter_content` chunks are split on b"\\n" with our own carry-over buffer: `iter_lines` is several
times slower, yields spurious empty lines, and `str.splitlines` would also split on U+2028 /
U+2029, which JSON allows raw inside strings. The whole lines of a chunk are decoded in place
(a `memoryview`, not a copy); only a line that spans two chunks is joined.

Each block is decoded first with strict types (every field present, `time` a number), so that
validation happens in C and the rest is column work (see `collector.export.batch`). A block that
does not fit (a malformed line, `time` as a string, Mixpanel's early-end marker) is decoded again
leniently, line by line if need be, and every bad line is counted and sampled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter

import msgspec
import numpy as np

from collector.export.batch import Batch, Row
from collector.window import ProjectTime, Window

__all__ = ["Batch", "EventFilter", "LineSplitter", "LineStats", "Row"]

TERMINATED_EARLY = b"terminated early"
MAX_LINE_BYTES = 4 * 1024 * 1024  # a longer "line" is not an event: drop it rather than hold it
SAMPLE_LIMIT = 5
SAMPLE_BYTES = 200
MILLISECONDS_ABOVE = 100_000_000_000  # a `time` past year 5138 in seconds is in milliseconds

Buffer = bytes | memoryview


# gc=False: these structs never hold cycles, and a million tracked objects per block would make
# the cyclic collector run over and over during a read.
class _Props(msgspec.Struct, gc=False):
    time: int | float
    distinct_id: str | int
    insert_id: str | None = msgspec.field(name="$insert_id", default=None)


class _Event(msgspec.Struct, gc=False):
    event: str
    properties: _Props


class _LooseProps(msgspec.Struct, gc=False):
    time: int | float | str | None = None
    distinct_id: str | int | None = None
    insert_id: str | None = msgspec.field(name="$insert_id", default=None)


class _LooseEvent(msgspec.Struct, gc=False):
    event: str | None = None
    properties: _LooseProps | None = None


_strict = msgspec.json.Decoder(_Event)
_loose = msgspec.json.Decoder(_LooseEvent)
_event = attrgetter("event")
_props = attrgetter("properties")
_time = attrgetter("time")
_user = attrgetter("distinct_id")
_insert_id = attrgetter("insert_id")


@dataclass
class LineStats:
    """What the decoder saw, across every attempt of one run."""

    lines: int = 0
    bad_lines: int = 0
    skipped: int = 0
    samples: list[str] = field(default_factory=list)

    def merge(self, other: LineStats) -> None:
        self.lines += other.lines
        self.bad_lines += other.bad_lines
        self.skipped += other.skipped
        self.samples.extend(other.samples[: SAMPLE_LIMIT - len(self.samples)])

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

    def decode_block(self, block: Buffer, stats: LineStats) -> tuple[Batch, bool]:
        """Events of one block of whole lines, and whether it held Mixpanel's early-end marker."""
        try:
            events = _strict.decode_lines(block)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            stats.lines += len(events)
            return self._columns(events, stats), False
        try:
            loose = _loose.decode_lines(block)
            stats.lines += len(loose)
            terminated = False
        except (msgspec.DecodeError, msgspec.ValidationError):
            loose, terminated = self._decode_one_by_one(bytes(block), stats)
        return self._columns(self._valid(loose, stats), stats), terminated

    def _columns(self, events: list[_Event], stats: LineStats) -> Batch:
        n = len(events)
        if not n:
            return Batch.empty()
        props = list(map(_props, events))
        times = np.fromiter(map(_time, props), np.float64, n)
        millis = times > MILLISECONDS_ABOVE
        if millis.any():
            times[millis] /= 1000.0
        if self.shift is not None:
            times -= self.shift
        else:
            times = np.fromiter(map(self.ptime.to_utc, times.tolist()), np.float64, n)
        mask = (times >= self.start) & (times < self.end)
        if self.names is not None:
            mask &= np.fromiter(map(self.names.__contains__, map(_event, events)), bool, n)
        kept = int(np.count_nonzero(mask))
        if kept < n:
            stats.skipped += n - kept
            keep = mask.tolist()
            events, props, times = (
                list(compress(events, keep)),
                list(compress(props, keep)),
                times[mask],
            )
        # str() of a str is the same object; numeric ids become their decimal text.
        return Batch(
            list(map(_event, events)),
            list(map(str, map(_user, props))),
            times,
            list(map(_insert_id, props)),
        )

    def _decode_one_by_one(self, block: bytes, stats: LineStats) -> tuple[list[_LooseEvent], bool]:
        events: list[_LooseEvent] = []
        terminated = False
        for line in block.split(b"\n"):
            if not line.strip():
                continue
            if line.strip() == TERMINATED_EARLY:
                terminated = True
                continue
            stats.lines += 1
            try:
                events.append(_loose.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError):
                stats.bad_lines += 1
                stats.sample(line, "not a valid event")
        return events, terminated

    def _valid(self, events: list[_LooseEvent], stats: LineStats) -> list[_Event]:
        """The events with every field present and a readable time, as strict events."""
        valid: list[_Event] = []
        for ev in events:
            props = ev.properties
            if props is None or ev.event is None or props.distinct_id is None or props.time is None:
                stats.bad_lines += 1
                stats.sample(msgspec.json.encode(ev), "missing event, distinct_id or time")
                continue
            t = props.time if type(props.time) is not str else _seconds(props.time)
            if t is None:
                stats.bad_lines += 1
                stats.sample(msgspec.json.encode(ev), "time is not a number")
                continue
            valid.append(_Event(ev.event, _Props(t, props.distinct_id, props.insert_id)))
        return valid


def _seconds(value: str) -> float | None:
    """Some accounts return `time` as a string: read it defensively (milliseconds come later)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    if t != t or t in (float("inf"), float("-inf")):
        return None
    return t
