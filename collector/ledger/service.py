"""Answers from the ledger: a window is the union of its slices, and only what is missing is read.

For a request's window:
1. the whole slices inside it that are over (`Slicing.whole`) come from the ledger: a settled
   day's rollup, or the hour objects' slices;
2. a slice the ledger lacks, holds only partially, or must refresh (late events) is read, and
   so is any unaligned edge of the window; ranges that touch are read in one Export query;
3. fresh slice states are kept (merged with what another reader kept meanwhile); edges are not;
4. the answer is computed from all the parts: counts add, user sets unite.

`complete` is true only if every part's read was complete; `ledger.as_of` is the oldest read
among the parts used, so a caller sees how old the oldest data is. A caller with several windows
(a `/check`) first `prefetch`es what all of them lack, in one query, and then answers each from
the ledger and the run's memo of what was read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.config import Settings
from collector.errors import StoreError, UpstreamRefused, UpstreamUnavailable
from collector.export.deadline import Deadline
from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.ledger.fold import PARTIAL_NOTE, Fold, StoreGuard
from collector.ledger.reads import Figures, Parts, Range, at, merged, queries, touching
from collector.ledger.run import answer_all
from collector.ledger.slices import Slicing, day_start
from collector.ledger.state import SliceCollector, SliceState, reread
from collector.ledger.store import DAY, Ledger
from collector.metrics.answer import Answers, Ask, LedgerFigures, MetricAnswer, MetricRequest
from collector.stores import open_store
from collector.window import Window, iso

Memo = dict[tuple[int, int], SliceState]  # what one run has read, by (start, end)


@dataclass
class _Plan:
    """What one window needs beyond what was folded into its answer."""

    ranges: list[Range] = field(default_factory=list)  # to read: slices and edges
    old: dict[int, SliceState] = field(default_factory=dict)  # kept, but due or partial
    in_days: set[int] = field(default_factory=set)  # days answered by a rollup
    from_ledger: int = 0


class LedgerService:
    """Metric answers from the ledger, reading only the slices it lacks."""

    def __init__(
        self,
        ledger: Ledger,
        reader: ExportReader,
        exact_cap: int = 0,
        now: Callable[[], datetime] | None = None,
        max_query_days: int = 7,
    ) -> None:
        self.ledger = ledger
        self.reader = reader
        self.exact_cap = exact_cap
        self.now = now or reader.now
        self.max_query_seconds = max_query_days * DAY

    def answer(self, request: MetricRequest) -> MetricAnswer:
        """One request, within a deadline of its own (`Answering`)."""
        return self.compute(request)

    def answer_all(self, asks: Sequence[Ask]) -> Answers:
        """Every ask's windows, what they lack read first in one query (`Answering`;
        `collector.ledger.run`)."""
        return answer_all(self, asks, self.max_query_seconds // DAY)

    def compute(
        self,
        request: MetricRequest,
        memo: Memo | None = None,
        deadline: Deadline | None = None,
        unread: UpstreamUnavailable | None = None,
    ) -> MetricAnswer:
        """The answer to `request` from kept slices and what must be read. `memo` holds what the
        caller's run has read already (`prefetch`, and the edges of earlier windows);
        `deadline` is the run's, shared by every read (one of EXPORT_DEADLINE_SECONDS of its
        own without it). With `unread` (the run's read failed so), nothing more is read: the
        answer is what the ledger and `memo` hold, a lower bound, or that error.

        The ledger is a store of what was read, never the only way to an answer: if it cannot
        be read, the window is read from the export; if it cannot be written, the answer
        stands and nothing is kept. Either way `ledger.error` says so."""
        started = time.monotonic()
        deadline = deadline or self.reader.deadline()
        now = self.now().timestamp()
        guard = StoreGuard(self.ledger.describe())
        fold = Fold(request, self.exact_cap)
        plan = self._plan(request, now, deadline, guard, memo or {}, fold)
        figures = Figures()
        if unread is None:
            fresh, missing = self._read(request.events, plan.ranges, now, figures, deadline, guard)
        else:
            fresh, missing, figures.error = [], plan.ranges, unread
        for r in missing:  # not read: what the ledger had is still the best there is
            if r.start in plan.old:
                fold.fold(plan.old[r.start])
        # A re-read slice answers as it is kept: a partial re-read cannot lower a complete read.
        for f in fresh:
            fold.fold(reread(plan.old.get(f.start), f) if f.start in plan.old else f)
        if memo is not None:
            memo.update(((f.start, f.end), f) for f in fresh)
        if not fold.parts and figures.error is not None:
            raise figures.error
        self._roll_up(request, plan, now, deadline, guard)
        return self._answer(request, fold, plan, missing, figures, guard, now, started)

    def prefetch(
        self, requests: list[MetricRequest], memo: Memo, deadline: Deadline
    ) -> tuple[dict[str, Any], UpstreamUnavailable | None]:
        """Read what any of `requests` lacks in as few queries as there can be (usually one),
        keep its slices, and put every part read in `memo`: a run's windows are then answered
        from the ledger and the memo without a query each. Edges of different windows may
        overlap each other and the slices; each is read as a part of its own. The figures of
        the reads, and the error if one failed (then nothing more should be read this run:
        `compute(..., unread=error)`); UpstreamRefused if the export refused them."""
        started = time.monotonic()
        now = self.now().timestamp()
        guard = StoreGuard(self.ledger.describe())
        slices: dict[int, Range] = {}
        edges: set[tuple[int, int]] = set()
        for request in requests:
            for r in self._plan(request, now, deadline, guard, memo, None).ranges:
                if r.edge:
                    edges.add((r.start, r.end))
                else:
                    slices[r.start] = r
        figures = Figures()
        spans = [(r.start, r.end) for r in slices.values()] + sorted(edges)
        for chunk in queries(touching(merged(spans)), self.max_query_seconds):
            lo, hi = chunk[0][0].start, chunk[-1][-1].end
            parts = [SliceCollector(r.start, r.end) for r in slices.values() if lo <= r.start < hi]
            overlays = [SliceCollector(a, b) for a, b in sorted(edges) if lo <= a < hi]
            states = self._query((), chunk, Parts(parts, overlays), figures, deadline, now)
            if states is None:
                break  # the export is failing: the next run tries again, not this one
            kept = states[: len(parts)]
            memo.update(((s.start, s.end), s) for s in states)
            if guard.ok and any(slices[s.start].keep for s in kept):
                try:
                    self.ledger.save([s for s in kept if slices[s.start].keep], deadline)
                except StoreError as exc:
                    guard.failed("write", exc)
        out = figures.as_dict(time.monotonic() - started)
        out["queries"] = figures.queries
        if guard.error is not None:
            out["ledger_error"] = guard.error
        return out, figures.error

    # -- planning -------------------------------------------------------------------------------

    def _plan(
        self,
        request: MetricRequest,
        now: float,
        deadline: Deadline,
        guard: StoreGuard,
        memo: Memo,
        into: Fold | None,
    ) -> _Plan:
        """Fold into `into` what the ledger and `memo` have of the window (nothing folded
        without one), and say what must be read."""
        fold = into.fold if into is not None else (lambda _: None)
        slicing = self.ledger.slicing
        start, end = int(request.window.start_ts), int(request.window.end_ts)
        whole = slicing.whole(start, end, now)
        plan = _Plan()

        def fold_day(rollup: SliceState) -> None:
            fold(rollup)
            plan.from_ledger += DAY // slicing.seconds  # a rollup stands for its day's slices

        loaded = None
        if whole:
            try:
                loaded = self.ledger.load(whole[0], whole[-1] + slicing.seconds, fold_day, deadline)
            except StoreError as exc:
                guard.failed("read", exc)
                plan.from_ledger = 0
                if into is not None:
                    into.reset()  # rollups folded before it failed
            if loaded is not None and loaded.cut:
                guard.slow()
        plan.in_days = loaded.day_starts if loaded else set()
        for s in whole:
            if day_start(s) in plan.in_days:
                continue
            kept = loaded.slices.get(s) if loaded else None
            read = memo.get((s, s + slicing.seconds))
            if read is not None:  # read by this run already
                fold(reread(kept, read) if kept is not None else read)
                plan.from_ledger += 1
            elif kept is not None and kept.complete and not slicing.due(s, kept.read_at, now):
                fold(kept)
                plan.from_ledger += 1
            else:
                if kept is not None:
                    plan.old[s] = kept
                plan.ranges.append(Range(s, s + slicing.seconds, keep=guard.ok))
        ends = [(start, whole[0]), (whole[-1] + slicing.seconds, end)] if whole else [(start, end)]
        for a, b in ends:
            if a < b and (a, b) in memo:
                fold(memo[(a, b)])
            elif a < b:
                plan.ranges.append(Range(a, b, keep=False, edge=True))
        plan.ranges.sort(key=lambda r: r.start)
        return plan

    # -- reading what is missing ----------------------------------------------------------------

    def _read(
        self,
        events: tuple[str, ...],
        ranges: list[Range],
        now: float,
        figures: Figures,
        deadline: Deadline,
        guard: StoreGuard,
    ) -> tuple[list[SliceState], list[Range]]:
        """Read the ranges, as few queries as possible: touching ranges are one piece of time,
        and up to MAX_PIECES pieces go in one query (one `where` of them all). The states
        read, and the ranges that could not be."""
        fresh: list[SliceState] = []
        missing: list[Range] = []
        for chunk in queries(touching(ranges), self.max_query_seconds):
            group = [r for piece in chunk for r in piece]
            # Slices kept serve every later question: they hold every event name.
            names = () if any(r.keep for r in group) else events
            collectors = [SliceCollector(r.start, r.end) for r in group]
            states = self._query(names, chunk, Parts(collectors), figures, deadline, now)
            if states is None:
                missing.extend(group)
                continue
            fresh.extend(states)
            keep = [s for s, r in zip(states, group, strict=True) if r.keep]
            if keep and guard.ok:
                try:
                    self.ledger.save(keep, deadline)
                except StoreError as exc:
                    guard.failed("write", exc)
        return fresh, missing

    def _query(
        self,
        names: tuple[str, ...],
        chunk: list[list[Range]],
        sink: Parts,
        figures: Figures,
        deadline: Deadline,
        now: float,
    ) -> list[SliceState] | None:
        """One Export query of the chunk's pieces into `sink`: the states of its parts and
        overlays, in that order, or None if nothing could be read."""
        windows = tuple(Window(at(p[0].start), at(p[-1].end)) for p in chunk)
        cover = Window(windows[0].start, windows[-1].end)
        query = ExportQuery(cover, names, windows if len(windows) > 1 else ())
        try:
            report = self.reader.read(query, sink, deadline)
        except UpstreamRefused:
            raise  # the query or the credentials are wrong: no slice can help
        except UpstreamUnavailable as exc:
            figures.failed(exc)
            return None
        figures.add(report.as_dict())
        return [c.state(report.complete, now) for c in (*sink.parts, *sink.overlays)]

    # -- after the reads ------------------------------------------------------------------------

    def _roll_up(
        self, request: MetricRequest, plan: _Plan, now: float, deadline: Deadline, guard: StoreGuard
    ) -> None:
        start, end = int(request.window.start_ts), int(request.window.end_ts)
        for day in range(day_start(start), end, DAY):
            if guard.ok and start <= day and day + DAY <= end and day not in plan.in_days:
                try:
                    self.ledger.roll_up(day, now, deadline)
                except StoreError as exc:
                    guard.failed("write", exc)

    def _answer(
        self,
        request: MetricRequest,
        fold: Fold,
        plan: _Plan,
        missing: list[Range],
        figures: Figures,
        guard: StoreGuard,
        now: float,
        started: float,
    ) -> MetricAnswer:
        complete = not missing and fold.complete
        read = [r for r in plan.ranges if r not in missing]
        ledger = LedgerFigures(
            store=self.ledger.describe(),
            slice_minutes=self.ledger.slicing.minutes,
            slices_read_now=sum(1 for r in read if not r.edge),
            slices_from_ledger=plan.from_ledger,
            edges_read=sum(1 for r in read if r.edge),
            queries=figures.queries,
            as_of=iso(datetime.fromtimestamp(fold.as_of or now, UTC)),
            error=guard.error,
            warning=guard.warning,
        )
        return MetricAnswer.of(
            request,
            fold.value(),
            complete,
            export=figures.as_dict(time.monotonic() - started),
            note=None if complete else PARTIAL_NOTE,
            hint=fold.seen.hint(),
            ledger=ledger,
        )


def build_ledger(
    settings: Settings, reader: ExportReader, now: Callable[[], datetime]
) -> LedgerService | None:
    """The ledger of LEDGER_STORE, or None when it is off; a store that cannot be written stops
    start-up (every answer would read the export and keep nothing)."""
    if not settings.ledger_store:
        return None
    blobs = open_store(settings.ledger_store, "LEDGER_STORE")
    slicing = Slicing(
        settings.ledger_slice_minutes,
        settings.ledger_refresh_hours,
        settings.window_lag_minutes,
    )
    ledger = Ledger(blobs, slicing, settings.ledger_retention_days)
    return LedgerService(ledger, reader, settings.exact_distinct_cap, now, settings.max_window_days)
