"""From blocks of whole lines (`collector.export.lines`) to validated event batches, decoding
only the four fields we need.

Each block is decoded first with strict types, so that validation happens in C and the rest is
column work (see `collector.export.batch`). A block that does not fit (a bad line, `time` as a
string, Mixpanel's early-end marker) is decoded again leniently, line by line if need be.

A line is one of four things:
- an **event**: a JSON object with a string `event` and a `time` in range (`distinct_id` and
  `$insert_id` optional, as in Mixpanel);
- **not an event**: readable JSON that Mixpanel could not have stored as an event (no `event`
  name, no readable `time`, a wrong type, a number out of range). Skipped and counted; it cannot
  make an answer wrong, because Mixpanel does not count it either;
- **unreadable**: not valid JSON, invalid UTF-8, or longer than `MAX_LINE_BYTES`. It may have
  been an event, so an answer that met one is a lower bound;
- Mixpanel's **early-end marker**: any line that is not JSON and contains `terminated early`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter

import msgspec
import numpy as np

from collector.export.batch import Batch, Row
from collector.export.lines import MARKER, MAX_LINE_BYTES, Buffer, LineSplitter, first_line_kind
from collector.window import ProjectTime, Window

__all__ = [
    "MAX_LINE_BYTES",
    "Batch",
    "BodyEnd",
    "EventFilter",
    "LineSplitter",
    "LineStats",
    "Row",
    "first_line_kind",
]

SAMPLE_LIMIT = 5
SAMPLE_BYTES = 200
MILLISECONDS_ABOVE = 100_000_000_000  # a `time` past year 5138 in seconds is in milliseconds
LATEST_SECONDS = MILLISECONDS_ABOVE  # after the millisecond rescale, later is out of range
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError)
_NOT_AN_EVENT = msgspec.ValidationError  # a subclass of DecodeError: catch it first


# gc=False: these structs never hold cycles, and a million tracked objects per block would make
# the cyclic collector run over and over during a read.
class _Props(msgspec.Struct, gc=False):
    time: int | float
    # Missing and empty are the same to Mixpanel: an event with no user. A numeric id sends
    # its block down the lenient path, which gives it as text (the strict path then needs no
    # conversion per row).
    distinct_id: str = ""
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
    bad_lines: int = 0  # lines skipped: not events, and unreadable ones
    unreadable: int = 0  # of those, lines that could not be read at all
    skipped: int = 0  # valid events outside the window or the names asked for
    samples: list[str] = field(default_factory=list)

    def sample(self, line: Buffer, reason: str) -> None:
        if len(self.samples) < SAMPLE_LIMIT:
            text = bytes(line[:SAMPLE_BYTES]).decode("utf-8", "replace")
            more = "…" if len(line) > SAMPLE_BYTES else ""
            self.samples.append(f"{reason}: {text}{more}")

    def not_an_event(self, line: Buffer, reason: str) -> None:
        self.bad_lines += 1
        self.sample(line, f"not an event ({reason})")


@dataclass
class BodyEnd:
    """What one attempt's body showed about its own end."""

    started: bool = False  # a non-empty line was seen
    last_ok: bool = True  # the last non-empty line was an event (true while there is none)
    marker: bool = False  # Mixpanel's early-end marker
    unreadable: int = 0  # lines of this attempt that could not be read

    def unreadable_line(self, stats: LineStats, line: Buffer, reason: str) -> None:
        self.unreadable += 1
        stats.unreadable += 1
        stats.bad_lines += 1
        stats.sample(line, f"unreadable ({reason})")


class EventFilter:
    """Validates decoded events and keeps those of the window and names asked for.

    The server's own filtering (`where`, `event`) is never trusted: every row is checked here.
    """

    def __init__(
        self,
        window: Window,
        names: Iterable[str] | None,
        ptime: ProjectTime,
        ranges: Iterable[Window] = (),
    ) -> None:
        self.start = window.start_ts
        self.end = window.end_ts
        # Several pieces of the window: a row must fall in one of them.
        self.ranges = [(r.start_ts, r.end_ts) for r in ranges]
        self.names = frozenset(names) if names else None
        self.ptime = ptime
        self.shift = ptime.shift_for(window)

    def decode_block(self, block: Buffer, stats: LineStats, end: BodyEnd) -> Batch:
        """The events of one block of whole lines; what it shows of the body's end goes to
        `end`."""
        try:
            events = _strict.decode_lines(block)
        except (*_UNREADABLE, _NOT_AN_EVENT):
            pass
        else:
            if events:
                stats.lines += len(events)
                end.started, end.last_ok = True, True
            return self._columns(events, stats, end)
        try:
            loose = _loose.decode_lines(block)
        except (*_UNREADABLE, _NOT_AN_EVENT):
            return self._columns(self._one_by_one(bytes(block), stats, end), stats, end)
        if not loose:
            return Batch.empty()
        stats.lines += len(loose)
        end.started = True
        valid = []
        for ev in loose:
            strict = _as_event(ev, stats)
            if strict is not None:
                valid.append(strict)
        end.last_ok = _as_event(loose[-1], None) is not None
        return self._columns(valid, stats, end)

    def _one_by_one(self, block: bytes, stats: LineStats, end: BodyEnd) -> list[_Event]:
        events: list[_Event] = []
        for line in block.split(b"\n"):
            text = line.strip()
            if not text:
                continue
            end.started = True
            end.last_ok = False
            try:
                loose = _loose.decode(text)
            except _NOT_AN_EVENT as exc:  # before _UNREADABLE: it is a kind of DecodeError
                if _is_marker(text):
                    end.marker = True
                    continue
                stats.lines += 1
                stats.not_an_event(text, _short_reason(exc))
                continue
            except _UNREADABLE as exc:
                if _is_marker(text):
                    end.marker = True  # not a line of data: not counted
                    continue
                stats.lines += 1
                reason = "invalid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not JSON"
                end.unreadable_line(stats, text, reason)
                continue
            stats.lines += 1
            event = _as_event(loose, stats)
            if event is not None:
                events.append(event)
                end.last_ok = True
        return events

    def _columns(self, events: list[_Event], stats: LineStats, end: BodyEnd) -> Batch:
        n = len(events)
        if not n:
            return Batch.empty()
        props = list(map(_props, events))
        times = np.fromiter(map(_time, props), np.float64, n)
        millis = times > MILLISECONDS_ABOVE
        if millis.any():
            times[millis] /= 1000.0
        if times.min() < 0 or times.max() >= LATEST_SECONDS:
            events, props, times = self._in_range(events, props, times, stats, end)
            n = len(events)
            if not n:
                return Batch.empty()
        if self.shift is not None:
            times -= self.shift
        else:
            times = np.fromiter(map(self.ptime.to_utc, times.tolist()), np.float64, n)
        mask = (times >= self.start) & (times < self.end)
        if len(self.ranges) > 1:
            inside = np.zeros(n, dtype=bool)
            for low, high in self.ranges:
                inside |= (times >= low) & (times < high)
            mask &= inside
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
        return Batch(
            list(map(_event, events)),
            list(map(_user, props)),
            times,
            list(map(_insert_id, props)),
        )

    @staticmethod
    def _in_range(
        events: list[_Event],
        props: list[_Props],
        times: np.ndarray,
        stats: LineStats,
        end: BodyEnd,
    ) -> tuple[list[_Event], list[_Props], np.ndarray]:
        """Drops rows whose `time` is before 1970 or after year 5138: no event has one."""
        ok = (times >= 0) & (times < LATEST_SECONDS)
        for i in np.flatnonzero(~ok).tolist():
            stats.not_an_event(msgspec.json.encode(events[i]), "time out of range")
        if not ok[-1]:
            end.last_ok = False
        keep = ok.tolist()
        return list(compress(events, keep)), list(compress(props, keep)), times[ok]


def _as_event(ev: _LooseEvent, stats: LineStats | None) -> _Event | None:
    """The strict event of a lenient one, or None (counted in `stats` when given)."""
    props = ev.properties
    reason = None
    if ev.event is None or props is None or props.time is None:
        reason = "no event name or no time"
    else:
        t = props.time if type(props.time) is not str else _seconds(props.time)
        if t is None:
            reason = "time is not a number"
    if reason is not None:
        if stats is not None:
            stats.not_an_event(msgspec.json.encode(ev), reason)
        return None
    assert props is not None and ev.event is not None
    # Mixpanel treats distinct_id as a string: 7 and "7" are the same user.
    user = "" if props.distinct_id is None else str(props.distinct_id)
    return _Event(ev.event, _Props(t, user, props.insert_id))  # type: ignore[arg-type]


def _is_marker(text: bytes) -> bool:
    """Mixpanel's early-end marker: a line that is not JSON and says `terminated early`."""
    if MARKER not in text.lower():
        return False
    try:
        msgspec.json.decode(text)
    except (*_UNREADABLE, RecursionError):
        return True
    return False  # JSON that merely mentions it (an event named so, say)


def _seconds(value: str) -> float | None:
    """Some accounts return `time` as a string: read it defensively (milliseconds come later)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        return None
    if t != t or t in (float("inf"), float("-inf")):
        return None
    return t


def _short_reason(exc: Exception) -> str:
    return str(exc).split(" - at ")[0][:80]
