"""Recognising a legacy project-timezone project from its data.

Projects created before 2023 export `time` as the project's wall clock read as UTC, while
`mp_processing_time_ms` is stamped at ingestion in true UTC. On a UTC project the gap between
them is the ingestion lag: seconds, sometimes hours for offline devices, never the same whole
number of hours on nearly every row. On a project-zone project nearly every row shows the zone
offset (7 h on a US/Pacific project in summer). Left on `MIXPANEL_PROJECT_TIMEZONE=UTC`, such a
project counts the wrong hours, so the answer says so.
"""

from __future__ import annotations

import logging
from collections import Counter

import msgspec

from collector.export.decode import MILLISECONDS_ABOVE, Buffer

log = logging.getLogger("collector.export")

SAMPLE_ROWS = 200
PROBE_BYTES = 256 * 1024  # of a block: plenty for the sample rows
QUARTER_HOUR = 900  # zone offsets are whole quarter hours
TOLERANCE_SECONDS = 120  # ingestion lag of a live event, on top of the offset
# Offsets in use are whole or half hours, but for a few at :45 (Nepal, Eucla, Chatham).
QUARTER_OFFSETS = frozenset({5 * 4 + 3, 8 * 4 + 3, 12 * 4 + 3})
AGREEING = 0.25  # share of the sample that must show the same offset
MAX_OFFSET = 14 * 3600

_warned: set[int] = set()  # offsets already logged by this process


class _Props(msgspec.Struct, gc=False):
    time: int | float | None = None
    processed: int | float | None = msgspec.field(name="mp_processing_time_ms", default=None)


class _Row(msgspec.Struct, gc=False):
    properties: _Props | None = None


_decoder = msgspec.json.Decoder(_Row)


class OffsetProbe:
    """Collects (processing - time) gaps of the first rows of a run; says if they show a zone."""

    def __init__(self, rows: int = SAMPLE_ROWS) -> None:
        self.rows = rows
        self.gaps: list[float] = []

    @property
    def full(self) -> bool:
        return len(self.gaps) >= self.rows

    def feed(self, block: Buffer) -> None:
        for line in bytes(block[:PROBE_BYTES]).split(b"\n"):
            if self.full:
                return
            try:
                props = _decoder.decode(line).properties
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                continue  # blank, cut at the probe's edge, or not an event: not a sample
            if props is None or props.time is None or props.processed is None:
                continue
            t = float(props.time)
            if t > MILLISECONDS_ABOVE:
                t /= 1000.0
            self.gaps.append(props.processed / 1000.0 - t)

    def offset(self) -> int | None:
        """The project zone's UTC offset in seconds (east positive) the rows show, or None."""
        found = self._estimate()
        return None if found is None else found[0]

    def _estimate(self) -> tuple[int, int] | None:
        """(offset, rows showing it), or None.

        The offset shows as the gap most rows share to within a few minutes: imported or
        offline events lag by anything, live ones by seconds. It must beat the rows near no
        gap at all (a UTC project's live events) and hold for a fair share of the sample.
        """
        if not self.gaps:
            return None
        near: Counter[int] = Counter(
            q
            for q in {round(gap / QUARTER_HOUR) for gap in self.gaps}
            for gap in self.gaps
            if abs(gap - q * QUARTER_HOUR) <= TOLERANCE_SECONDS
        )
        if not near:
            return None
        quarter, rows = near.most_common(1)[0]
        gap = quarter * QUARTER_HOUR
        if gap == 0 or abs(gap) > MAX_OFFSET or rows <= near.get(0, 0):
            return None
        if quarter % 2 and -quarter not in QUARTER_OFFSETS:
            return None  # no zone is at that offset: a lag that happens to look like one
        if rows < AGREEING * len(self.gaps):
            return None
        return -gap, rows  # `time` = UTC + offset: processing - time = -offset (+ the lag)

    def warning(self) -> str | None:
        """The answer's warning if the rows show a project zone; logged once per process."""
        found = self._estimate()
        if found is None:
            return None
        offset, rows = found
        hours = abs(offset) / 3600
        sign = "+" if offset >= 0 else "-"
        zone = f"UTC{sign}{int(hours):02d}:{int(abs(offset) % 3600 // 60):02d}"
        text = (
            f"the data looks like a project in a {zone} time zone: on {rows} of the first "
            f"{len(self.gaps)} rows, mp_processing_time_ms is {hours:g} h "
            f"{'after' if offset < 0 else 'before'} time. Projects created before 2023 export "
            "days and times in the project's time zone: set MIXPANEL_PROJECT_TIMEZONE to it "
            "(an IANA name such as America/Los_Angeles), or every window is shifted by "
            f"{hours:g} h"
        )
        if offset not in _warned:
            _warned.add(offset)
            log.warning(text, extra={"json_fields": {"project_zone_offset_seconds": offset}})
        return text
