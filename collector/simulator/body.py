"""The body of one export response, streamed as blocks of whole lines.

Events are collected per shuffle window (an hour at modest rates, less at high rates so that a
window stays around 20k lines in memory), shuffled deterministically, duplicates placed a few
lines after their original, and the malformed lines slotted in at positions drawn from the query.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from collector.simulator.events import Event, EventSource

BLOCK_LINES = 512  # ~400 KiB per block at ~0.8 KB a line
WINDOW_LINES = 20_000
DUPLICATE_SPREAD = 8  # a duplicate lands 0..7 lines after its original


@dataclass(frozen=True)
class BodyPlan:
    start: int  # true UTC bounds of the requested days: [start, end)
    end: int
    names: frozenset[int] | None  # indices of event names to send; None: all
    where: tuple[tuple[int, int], ...] | None  # [lo, hi) ranges on `time` as written; None: all
    limit: int | None = None  # maximum number of event lines
    extra_duplicates: float = 0.0  # Fault.duplicate_lines: more repeated keyed lines
    arrived_by: float | None = None  # only events processed by then (epoch ms); None: all


def day_bounds(first: date, last: date, zone: ZoneInfo) -> tuple[int, int]:
    """True UTC [start, end) of the project-zone days first..last (inclusive)."""
    start = datetime.combine(first, time(), zone).timestamp()
    end = datetime.combine(last + timedelta(days=1), time(), zone).timestamp()
    return int(start), int(end)


def window_minutes(events_per_minute: float) -> int:
    for minutes in (60, 30, 20, 15, 10, 5, 2):
        if minutes * events_per_minute <= WINDOW_LINES:
            return minutes
    return 1


def iter_body(source: EventSource, plan: BodyPlan) -> Iterator[bytes]:
    """UTF-8 blocks, each a run of whole lines. Empty body when no event matches."""
    bad = _BadLines(source, plan)
    pending: tuple[list[bytes], int] | None = None
    # One window of look-ahead: the last window must know it is last so that a malformed line
    # never ends the body (a reader may take a non-JSON last line for a cut body).
    for window in _windows(source, plan):
        if pending:
            yield from _blocks(bad.place(*pending, last=False))
        pending = window
    if pending:
        yield from _blocks(bad.place(*pending, last=True))


def _blocks(lines: list[bytes]) -> Iterator[bytes]:
    for i in range(0, len(lines), BLOCK_LINES):
        yield b"".join(lines[i : i + BLOCK_LINES])


def _windows(source: EventSource, plan: BodyPlan) -> Iterator[tuple[list[bytes], int]]:
    """(lines, a written time seen in them) per non-empty shuffle window, in time order."""
    seed, step = source.config.seed, window_minutes(source.config.events_per_minute)
    first, stop = plan.start // 60, -(-plan.end // 60)
    ranges = plan.where or ()
    arrived_by = plan.arrived_by
    sent = 0
    for window in range(first - first % step, stop, step):
        timed: list[tuple[int, Event]] = []
        for minute in range(max(window, first), min(window + step, stop)):
            offset = source.offset(minute)
            if ranges and all(
                minute * 60 + 60 + offset <= lo or minute * 60 + offset >= hi for lo, hi in ranges
            ):
                continue  # nothing in this minute can pass `where`: skip generating it
            for event in source.minute(minute):
                t = event[0]
                if not plan.start <= t < plan.end:
                    continue
                if arrived_by is not None and source.processed_ms(t, event[5]) > arrived_by:
                    continue  # not in the export yet
                if plan.names is not None and event[1] not in plan.names:
                    continue
                if ranges and not any(lo <= t + offset < hi for lo, hi in ranges):
                    continue
                timed.append((t + offset, event))
        if not timed:
            continue
        rng = random.Random(f"{seed}:order:{window}")
        rng.shuffle(timed)
        lines = _with_duplicates(source.render(timed), timed, rng, plan.extra_duplicates)
        if plan.limit is not None:
            lines = lines[: plan.limit - sent]
            sent += len(lines)
        yield lines, timed[0][0]
        if plan.limit is not None and sent >= plan.limit:
            return


def _with_duplicates(
    lines: list[bytes], timed: list[tuple[int, Event]], rng: random.Random, extra: float
) -> list[bytes]:
    """Each repeated line goes 0..7 lines after its original: close, not always adjacent."""
    copies: list[tuple[int, bytes]] = []
    for i, (_written, event) in enumerate(timed):
        if event[4] or (extra and event[3] is not None and rng.random() < extra):
            copies.append((i + 1 + rng.randrange(DUPLICATE_SPREAD), lines[i]))
    if not copies:
        return lines
    copies.sort(key=lambda copy: copy[0])
    out: list[bytes] = []
    done = 0
    for after, line in copies:
        if after > done:
            out += lines[done:after]
            done = after
        out.append(line)
    out += lines[done:]
    return out


class _BadLines:
    """Places `malformed_per_query` bad lines at positions drawn from the query itself."""

    def __init__(self, source: EventSource, plan: BodyPlan) -> None:
        cfg = source.config
        self.count = cfg.malformed_per_query
        names = sorted(plan.names) if plan.names is not None else None
        query = f"{plan.start}:{plan.end}:{names}:{plan.where}:{plan.limit}"
        self.rng = random.Random(f"{cfg.seed}:bad:{query}")
        self.name = source.name_json(names[0] if names else 0)  # a name the reader asked for
        expected = self._expected_lines(source, plan)
        self.positions = sorted(self.rng.randrange(max(1, expected)) for _ in range(self.count))
        self.made = 0
        self.seen = 0

    @staticmethod
    def _expected_lines(source: EventSource, plan: BodyPlan) -> int:
        span = plan.end - plan.start
        if plan.where:
            offset = source.offset(plan.start // 60)
            span = sum(
                max(0, min(plan.end, hi - offset) - max(plan.start, lo - offset))
                for lo, hi in plan.where
            )
        lines = span / 60 * source.config.events_per_minute
        if plan.names is not None:
            weights = [1.0 / (rank + 1) for rank in range(len(source.config.event_names))]
            lines *= sum(weights[i] for i in plan.names if i < len(weights)) / sum(weights)
        if plan.limit is not None:
            lines = min(lines, plan.limit)
        return int(lines)

    def place(self, lines: list[bytes], written: int, last: bool) -> list[bytes]:
        base, self.seen = self.seen, self.seen + len(lines)
        if self.made == self.count or not (last or self.positions[self.made] < self.seen):
            return lines
        out: list[bytes] = []
        for i, line in enumerate(lines):
            final = last and i == len(lines) - 1
            while self.made < self.count and (final or self.positions[self.made] <= base + i):
                out.append(self._line(written))
            out.append(line)
        return out

    def _line(self, written: int) -> bytes:
        # Readable JSON that Mixpanel could not have stored as an event: skipped, and no reason
        # to doubt the rest (unreadable lines are a fault of their own: Fault.invalid_utf8).
        kind, self.made = self.made % 4, self.made + 1
        head, tag = b'{"event":%s,"properties":{' % self.name, b"%08x" % self.rng.getrandbits(32)
        if kind == 0:  # no time
            return b'%s"distinct_id":"u-%s","$insert_id":"bad-%s"}}\n' % (head, tag, tag)
        if kind == 1:  # no event name
            return b'{"properties":{"time":%d,"distinct_id":"u-%s"}}\n' % (written, tag)
        if kind == 2:  # a time that is not a number
            return b'%s"time":"soon","distinct_id":"u-%s"}}\n' % (head, tag)
        # properties that are not an object
        return b'{"event":%s,"properties":"u-%s"}\n' % (self.name, tag)
