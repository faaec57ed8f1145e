"""Many aggregators fed from one stream: each gets only the rows of its own window and events.

A `/check` reads the rules that fit one query from one Export stream; every rule's window (and
the previous window of a drop/rise rule) is a `Slot`, and `Fanout` is the sink that routes each
batch to the slots it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.export.batch import Batch, Row
from collector.metrics.aggregators import DistinctUsers, EventCounts
from collector.metrics.registry import metric as metric_named
from collector.window import Window


class Slot:
    """One rule window's aggregator inside a shared stream."""

    def __init__(
        self, metric: str, window: Window, events: tuple[str, ...], exact_cap: int = 0
    ) -> None:
        self.metric = metric
        self.start, self.end = window.start_ts, window.end_ts
        self.names = frozenset(events) if events else None
        self.agg: EventCounts | DistinctUsers = metric_named(metric).aggregator(exact_cap)

    def value(self) -> int:
        return self.agg.value()


class Fanout:
    """An aggregator that feeds many slots from one stream (same shape as the others).

    Slots that would count the same thing share one aggregator: `distinct_users` and
    `active_users` over the same window, or two rules over the same window and events. Each
    shared set is then built once, which at millions of events is most of a run's memory. A
    slot that counts every event of the whole query also gives the query's `duplicates`.
    """

    def __init__(
        self, slots: Iterable[Slot], window: Window | None = None, events: tuple[str, ...] = ()
    ) -> None:
        self.slots = list(slots)
        shared: dict[tuple[object, ...], EventCounts | DistinctUsers] = {}
        for slot in self.slots:
            key = (type(slot.agg), slot.start, slot.end, slot.names)
            slot.agg = shared.setdefault(key, slot.agg)
        # Every row fed is inside the query's window and events (the reader filters them).
        whole = None
        if window is not None:
            whole = shared.get(
                (EventCounts, window.start_ts, window.end_ts, frozenset(events) or None)
            )
        self.counts = whole if isinstance(whole, EventCounts) else None
        self._feeds = [(start, end, names, agg) for (_, start, end, names), agg in shared.items()]

    def new_attempt(self) -> None:
        for *_, agg in self._feeds:
            agg.new_attempt()

    def add(self, rows: Batch | Iterable[Row]) -> None:
        batch = Batch.of(rows)
        for start, end, names, agg in self._feeds:
            agg.add(batch.within(start, end, names))

    def duplicates(self) -> int | None:
        """Rows of the query read but not counted, if a slot counts the whole query."""
        return None if self.counts is None else self.counts.duplicates()
