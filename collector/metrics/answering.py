"""Answers read from the export: one request, one Export read folded into its metric's aggregator;
many windows at once (a `/check`), one read per group of windows that fit one query, each row
fanned out to every window it belongs to (`collector.metrics.fanout`).

Asks are grouped greedily by start: an ask joins the current query while the query's span stays
within MAX_WINDOW_DAYS; otherwise it opens the next one. All the reads of one `answer_all` share
one deadline, so a run reads for EXPORT_DEADLINE_SECONDS at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from collector.errors import CollectorError
from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.metrics.aggregators import EventCounts
from collector.metrics.answer import Answers, Ask, MetricAnswer, MetricRequest
from collector.metrics.fanout import Fanout, Slot
from collector.metrics.name_hint import NamesSeen, Watched
from collector.metrics.registry import metric
from collector.window import Window


class ExportAnswering:
    """Every window read from the export."""

    def __init__(self, reader: ExportReader, exact_cap: int = 0, max_query_days: int = 7) -> None:
        self.reader = reader
        self.exact_cap = exact_cap
        self.max_query_days = max_query_days

    def answer(self, request: MetricRequest) -> MetricAnswer:
        """Read the request's window once and answer it.

        `duplicates` is reported for `/events` only, where it is exact: the user metrics keep
        no event keys (they would cost more memory than the users themselves).
        """
        sink = metric(request.metric).aggregator(self.exact_cap)
        seen = NamesSeen(request.events)
        watched = Watched(sink, seen) if request.events else sink
        report = self.reader.read(ExportQuery(request.window, request.events), watched)
        if isinstance(sink, EventCounts):
            report.duplicates = sink.duplicates()
        return MetricAnswer.of(
            request,
            sink.result(),
            report.complete,
            export=report.as_dict(),
            note=None if report.complete else report.note,
            hint=seen.hint(),
        )

    def answer_all(self, asks: Sequence[Ask]) -> Answers:
        """Each group of asks that fits one query read once, its rows fanned out to every
        window of the group."""
        deadline = self.reader.deadline()
        answers = Answers({}, [], 0)
        for index, group in enumerate(query_groups(asks, self.max_query_days)):
            answers.query_of.update((ask.label, index) for ask in group.asks)
            slots = {
                (ask.label, k): Slot(r.metric, r.window, r.events, self.exact_cap)
                for ask in group.asks
                for k, r in enumerate(ask.requests)
            }
            fanout = Fanout(slots.values(), group.window, group.events)
            figures: dict[str, Any] = {
                "window": group.window.as_dict(),
                "rules": [ask.label for ask in group.asks],
            }
            try:
                report = self.reader.read(ExportQuery(group.window, group.events), fanout, deadline)
            except CollectorError as exc:
                figures.update(
                    complete=False, error=exc.message, code=exc.code, **(exc.export or {})
                )
                answers.exports.append(figures)
                answers.queries += 1  # one query a group, as the schedule's plan counts it
                for ask in group.asks:
                    answers.by_label[ask.label] = exc
                continue
            report.duplicates = fanout.duplicates()
            export = report.as_dict()
            figures.update(complete=report.complete, **export)
            answers.exports.append(figures)
            answers.queries += 1
            for ask in group.asks:
                answers.by_label[ask.label] = [
                    MetricAnswer.of(
                        r,
                        slots[(ask.label, k)].agg.result(),
                        report.complete,
                        export=export,
                        note=None if report.complete else report.note,
                    )
                    for k, r in enumerate(ask.requests)
                ]
        return answers


@dataclass(frozen=True)
class QueryGroup:
    """Asks read by one Export query: its window, and its event names if every ask names some."""

    window: Window
    events: tuple[str, ...]  # () = every event
    asks: tuple[Ask, ...]


def query_groups(asks: Sequence[Ask], max_days: int) -> list[QueryGroup]:
    """The asks in groups that fit one query each (see the module), in order of start."""
    groups: list[list[Ask]] = []
    limit = timedelta(days=max_days)
    for ask in sorted(asks, key=lambda a: (_span(a).start, _span(a).end)):
        if groups:
            current = groups[-1]
            start = min(_span(a).start for a in current)
            end = max(max(_span(a).end for a in current), _span(ask).end)
            if end - start <= limit:
                current.append(ask)
                continue
        groups.append([ask])
    return [_group(members) for members in groups]


def _span(ask: Ask) -> Window:
    return Window(
        min(r.window.start for r in ask.requests), max(r.window.end for r in ask.requests)
    )


def _group(asks: list[Ask]) -> QueryGroup:
    window = Window(min(_span(a).start for a in asks), max(_span(a).end for a in asks))
    # The query can name events only if every request names some; one over all events (or
    # active_users) needs the whole stream.
    requests = [r for a in asks for r in a.requests]
    if all(r.events for r in requests):
        events = tuple(sorted({e for r in requests for e in r.events}))
    else:
        events = ()
    return QueryGroup(window, events, tuple(asks))
