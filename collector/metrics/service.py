"""A metric request in, a response body out: one Export read folded into the right aggregator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.metrics import METRICS
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.metrics.name_hint import NamesSeen, Watched
from collector.window import Window


@dataclass(frozen=True)
class MetricRequest:
    metric: str
    window: Window
    events: tuple[str, ...] = ()


def compute(request: MetricRequest, reader: ExportReader, exact_cap: int = 0) -> dict[str, Any]:
    """Read the request's window once and answer it; `exact_cap` is EXACT_DISTINCT_CAP.

    `duplicates` is reported for `/events` only, where it is exact: the user metrics keep no
    event keys (they would cost more memory than the users themselves).
    """
    if request.metric not in METRICS:
        raise ValueError(f"unknown metric {request.metric!r}")
    sink: EventCounts | DistinctUsers = (
        EventCounts() if request.metric == "events" else DistinctUsers(exact_cap)
    )
    seen = NamesSeen(request.events)
    watched = Watched(sink, seen) if request.events else sink
    report = reader.read(ExportQuery(request.window, request.events), watched)
    if isinstance(sink, EventCounts):
        report.duplicates = sink.duplicates()
    body: dict[str, Any] = {"metric": request.metric}
    body.update(sink.result())
    body["complete"] = report.complete
    body["window"] = request.window.as_dict()
    if request.events:
        body["event"] = list(request.events)
    seen.add_hint(body)
    if not report.complete:
        body["note"] = report.note
    body["export"] = report.as_dict()
    return body
