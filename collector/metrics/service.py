"""A metric request in, a response body out: one Export read folded into the right aggregator."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from collector.export.batch import Batch, Row
from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.window import Window

METRICS = ("distinct_users", "events", "active_users")


@dataclass(frozen=True)
class MetricRequest:
    metric: str
    window: Window
    events: tuple[str, ...] = ()


class _Both:
    """Distinct users plus event de-duplication, so every metric reports `duplicates`."""

    def __init__(self, exact_cap: int = 0) -> None:
        self.users = DistinctUsers(exact_cap)
        self.counts = EventCounts()

    def new_attempt(self) -> None:
        self.users.new_attempt()
        self.counts.new_attempt()

    def add(self, rows: Batch | Iterable[Row]) -> None:
        batch = Batch.of(rows)
        self.users.add(batch)
        self.counts.add(batch)

    def duplicates(self) -> int:
        return self.counts.duplicates()

    def result(self) -> dict[str, Any]:
        return self.users.result()


def compute(request: MetricRequest, reader: ExportReader) -> dict[str, Any]:
    if request.metric not in METRICS:
        raise ValueError(f"unknown metric {request.metric!r}")
    cap = reader.settings.exact_distinct_cap
    sink: _Both | EventCounts = EventCounts() if request.metric == "events" else _Both(cap)
    report = reader.read(ExportQuery(request.window, request.events), sink)
    body: dict[str, Any] = {"metric": request.metric}
    body.update(sink.result())
    body["complete"] = report.complete
    body["window"] = request.window.as_dict()
    if request.events:
        body["event"] = list(request.events)
    if not report.complete:
        body["note"] = report.note
    body["export"] = report.as_dict()
    return body
