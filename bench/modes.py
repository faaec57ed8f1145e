"""One measured reading mode, run in its own process so its peak RSS is its own.

python -m bench.modes MODE URL BODY_FILE DAY
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from collector.export.reader import ExportReader

# The service's read size (collector.export.attempt.CHUNK_BYTES; a test keeps them equal), not
# imported: the raw and baseline modes must not load the collector into their peak RSS.
CHUNK = 2 * 1024 * 1024


def peak_rss_mib() -> float:
    # VmHWM is this address space's high-water mark; ru_maxrss would carry the parent's
    # peak across fork and exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def window_of(day: str) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    return start, start + timedelta(days=1)


def baseline(url: str, day: str) -> tuple[int, int, int]:
    """The predecessor's reader, reproduced: iter_lines, json.loads per line, a set of ids."""
    start, end = window_of(day)
    lo, hi = start.timestamp(), end.timestamp()
    users: set[str] = set()
    events = 0
    nbytes = 0
    params = {"from_date": day, "to_date": day}
    with requests.get(url, params=params, auth=("u", "s"), stream=True, timeout=60) as r:
        for line in r.iter_lines():
            if not line:
                continue
            nbytes += len(line) + 1
            try:
                ev = json.loads(line)
                props = ev["properties"]
                if lo <= props["time"] < hi:
                    # Counted by Mixpanel's rules, so that the modes can be checked against
                    # each other: an event needs no user, and "" is no user.
                    if props.get("distinct_id", ""):
                        users.add(props["distinct_id"])
                    events += 1
            except (ValueError, KeyError, TypeError):
                continue
    return events, nbytes, len(users)


def raw(url: str, day: str) -> tuple[int, int, int]:
    """The transfer limit: the same stream, no parsing at all."""
    nbytes = newlines = 0
    headers = {"Accept-Encoding": "identity"}
    with requests.get(
        url, params={"from_date": day}, stream=True, timeout=60, headers=headers
    ) as r:
        for chunk in r.iter_content(CHUNK):
            nbytes += len(chunk)
            newlines += chunk.count(b"\n")
    return newlines, nbytes, 0


def decode_in_memory(body: Path, day: str) -> tuple[int, int, int]:
    """The decode limit: this project's decoder over the same bytes, already in memory."""
    from collector.export.decode import BodyEnd, EventFilter, LineSplitter, LineStats
    from collector.window import ProjectTime, Window

    data = body.read_bytes()
    start, end = window_of(day)
    flt = EventFilter(Window(start, end), None, ProjectTime("UTC"))
    stats = LineStats()
    splitter = LineSplitter()
    rows = 0
    t0 = time.perf_counter()
    view = memoryview(data)
    for i in range(0, len(data), CHUNK):
        for block in splitter.feed(bytes(view[i : i + CHUNK])):
            rows += len(flt.decode_block(block, stats, BodyEnd()))
    decode_in_memory.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    return rows, len(data), 0


def _reader(url: str, gzip: bool) -> ExportReader:
    from collector.config import Settings
    from collector.export.budget import QueryBudget
    from collector.export.reader import ExportReader

    settings = Settings.from_env(
        {
            "MIXPANEL_API_SECRET": "bench-secret",
            "MIXPANEL_EXPORT_URL": url,
            "EXPORT_DEADLINE_SECONDS": "3000",
            "EXPORT_GZIP": str(gzip).lower(),
            "EXPORT_PROGRESS_SECONDS": "3600",
            "LOG_LEVEL": "error",
        }
    )
    return ExportReader(settings, QueryBudget(60, 3))


def metric(url: str, day: str, name: str, gzip: bool) -> tuple[int, int, int]:
    from collector.metrics.answer import MetricRequest
    from collector.metrics.answering import ExportAnswering
    from collector.window import Window

    reader = _reader(url, gzip)
    start, end = window_of(day)
    # Timed from here: a service has its modules loaded before the first request.
    t0 = time.perf_counter()
    answering = ExportAnswering(reader, 2_000_000)
    body = answering.answer(MetricRequest(name, Window(start, end))).as_dict()
    metric.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    # The answer as the route sends it (msgspec, straight to bytes): part of the worker's peak.
    from collector.http.routes import encode_answer

    encode_answer(body)
    assert body["complete"], body
    return body["export"]["events"], body["export"]["bytes"], body["value"]


def check(url: str, day: str, gzip: bool) -> tuple[int, int, int]:
    """The read of a `/check` with five rules over one day: one stream, every rule's aggregator.

    The rules' slots are those a rules file would give: distinct users, events and active users
    of the day, the day's purchases, and the users of its last hour. Deciding, notifying and
    saving state are left out: they cost nothing next to the read.
    """
    from collector.export.query import ExportQuery
    from collector.metrics.fanout import Fanout, Slot
    from collector.window import Window

    reader = _reader(url, gzip)
    start, end = window_of(day)
    day_window, last_hour = Window(start, end), Window(end - timedelta(hours=1), end)
    slots = [
        Slot("distinct_users", day_window, ()),
        Slot("events", day_window, ()),
        Slot("active_users", day_window, ()),
        Slot("events", day_window, ("Purchase",)),
        Slot("distinct_users", last_hour, ()),
    ]
    t0 = time.perf_counter()
    report = reader.read(ExportQuery(day_window, ()), Fanout(slots, day_window))
    check.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    assert report.complete, report
    return report.events, report.bytes, slots[0].value()


def main() -> None:
    mode, url, body_file, day, gzip = sys.argv[1:6]
    t0 = time.perf_counter()
    if mode == "baseline":
        events, nbytes, value = baseline(url, day)
    elif mode == "raw":
        events, nbytes, value = raw(url, day)
    elif mode == "decode":
        events, nbytes, value = decode_in_memory(Path(body_file), day)
    elif mode == "check":
        events, nbytes, value = check(url, day, gzip == "1")
    else:
        events, nbytes, value = metric(url, day, mode, gzip == "1")
    timed = {"decode": decode_in_memory, "check": check}.get(mode, metric)
    seconds = getattr(timed, "seconds", None) or (time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "mode": mode,
                "events": events,
                "bytes": nbytes,
                "value": value,
                "seconds": seconds,
                "peak_rss_mib": round(peak_rss_mib(), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
