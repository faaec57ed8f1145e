"""Answers from the ledger: a window is the union of its slices, and only what is missing is read.

For a request's window:
1. the whole slices inside it that are over (`Slicing.whole`) come from the ledger: a settled
   day's rollup, or the hour objects' slices;
2. a slice the ledger lacks, holds only partially, or must refresh (late events) is read, and
   so is any unaligned edge of the window; ranges that touch are read in one Export query;
3. fresh slice states are kept (merged with what another reader kept meanwhile); edges are not;
4. the answer is computed from all the parts: counts add, user sets unite.

`complete` is true only if every part's read was complete; `ledger.as_of` is the oldest read
among the parts used, so a caller sees how old the oldest data is.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from collector.blobs import DirBlobStore, blob_store_from_url
from collector.config import Settings
from collector.errors import ConfigError, StoreError, UpstreamRefused, UpstreamUnavailable
from collector.export.deadline import Deadline
from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.ledger.reads import Figures, Parts, Range, at, queries, touching
from collector.ledger.slices import Slicing, day_start
from collector.ledger.state import SliceCollector, SliceState, reread
from collector.ledger.store import DAY, Ledger
from collector.metrics.aggregators import DistinctUsers
from collector.metrics.service import MetricRequest
from collector.window import Window, iso

log = logging.getLogger("collector.ledger")

PARTIAL_NOTE = (
    "partial: some slices of the window could not be read to their end, so every count is a "
    "lower bound (never more than the truth); see export.errors and ledger"
)


class _Answer:
    """An answer built part by part: each slice or rollup is folded in as soon as it is had,
    then let go (a month of rollups is never held at once)."""

    def __init__(self, request: MetricRequest, exact_cap: int) -> None:
        self.events = request.metric == "events"
        self.wanted = set(request.events) if request.events else None
        self.by_event: dict[str, int] = {}
        self.users = DistinctUsers(exact_cap)
        self.parts = 0
        self.complete = True
        self.as_of: float | None = None

    def fold(self, part: SliceState) -> None:
        self.parts += 1
        self.complete = self.complete and part.complete
        self.as_of = part.read_at if self.as_of is None else min(self.as_of, part.read_at)
        wanted = self.wanted
        if self.events:
            for name, n in zip(part.names, part.counts.tolist(), strict=True):
                if n and (wanted is None or name in wanted):
                    self.by_event[name] = self.by_event.get(name, 0) + n
            return
        hashes = part.users
        if wanted is not None:
            codes = [i for i, name in enumerate(part.names) if name in wanted]
            hashes = hashes[np.isin(part.codes, codes)]
        self.users.add_hashes(np.unique(hashes))

    def value(self) -> dict[str, Any]:
        if self.events:
            ordered = dict(sorted(self.by_event.items(), key=lambda kv: (-kv[1], kv[0])))
            return {"value": sum(ordered.values()), "by_event": ordered}
        return self.users.result()


class _StoreGuard:
    """What went wrong with the ledger's store during one answer; after a failure nothing more
    is written (every write would wait out the store's retries and fail the same way)."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def failed(self, what: str, exc: StoreError) -> None:
        if self.error is not None:
            return
        if what == "read":
            consequence = "the window was read from the export instead, and nothing was kept"
        else:
            consequence = "the answer stands, but what was read now was not kept"
        self.error = (
            f"the ledger could not be {'read' if what == 'read' else 'written'} "
            f"({exc.message}): {consequence}; check that LEDGER_STORE ({self.store}) exists and "
            "that this service's identity may read and write it"
        )
        log.error("%s", self.error, extra={"json_fields": {"ledger_store_error": what}})


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

    def compute(
        self,
        request: MetricRequest,
        memo: dict[tuple[int, int], SliceState] | None = None,
        deadline: Deadline | None = None,
    ) -> dict[str, Any]:
        """The answer to `request` from kept slices and what must be read. `memo` keeps the
        edges read for one caller's several windows (a `/check` of many rules) so that each is
        read once; `deadline` is the caller's run's, shared by every read (one of
        EXPORT_DEADLINE_SECONDS of its own without it).

        The ledger is a store of what was read, never the only way to an answer: if it cannot
        be read, the window is read from the export; if it cannot be written, the answer
        stands and nothing is kept. Either way `ledger.error` says so."""
        started = time.monotonic()
        deadline = deadline or self.reader.deadline()
        now = self.now().timestamp()
        slicing = self.ledger.slicing
        start, end = int(request.window.start_ts), int(request.window.end_ts)
        whole = slicing.whole(start, end, now)
        answer = _Answer(request, self.exact_cap)
        guard = _StoreGuard(self.ledger.describe())
        loaded = None
        if whole:
            try:
                loaded = self.ledger.load(
                    whole[0], whole[-1] + slicing.seconds, answer.fold, deadline
                )
            except StoreError as exc:
                guard.failed("read", exc)
                answer = _Answer(request, self.exact_cap)  # rollups folded before it failed
        in_days = loaded.day_starts if loaded else set()
        ranges: list[Range] = []
        old: dict[int, SliceState] = {}
        for s in whole:
            if day_start(s) in in_days:
                continue
            kept = loaded.slices.get(s) if loaded else None
            if kept is not None and kept.complete and not slicing.due(s, kept.read_at, now):
                answer.fold(kept)
                continue
            if kept is not None:
                old[s] = kept
            ranges.append(Range(s, s + slicing.seconds, keep=guard.ok))
        edges = [(start, whole[0]), (whole[-1] + slicing.seconds, end)] if whole else [(start, end)]
        for a, b in edges:
            if a < b and memo is not None and (a, b) in memo:
                answer.fold(memo[(a, b)])
            elif a < b:
                ranges.append(Range(a, b, keep=False))
        from_ledger = answer.parts
        figures = Figures()
        reads = sorted(ranges, key=lambda r: r.start)
        fresh, missing = self._read(request, reads, now, figures, deadline, guard)
        for r in missing:  # not read: what the ledger had is still the best there is
            if r.start in old:
                answer.fold(old[r.start])
        # A re-read slice answers as it is kept: a partial re-read cannot lower a complete read.
        for f in fresh:
            answer.fold(reread(old.get(f.start), f) if f.start in old else f)
        if memo is not None:
            kept_starts = {r.start for r in ranges if r.keep}
            memo.update(((f.start, f.end), f) for f in fresh if f.start not in kept_starts)
        if not answer.parts and figures.error is not None:
            raise figures.error
        for day in range(day_start(start), end, DAY):
            if guard.ok and start <= day and day + DAY <= end and day not in in_days:
                try:
                    self.ledger.roll_up(day, now, deadline)
                except StoreError as exc:
                    guard.failed("write", exc)
        complete = not missing and answer.complete
        body: dict[str, Any] = {"metric": request.metric}
        body.update(answer.value())
        body["complete"] = complete
        body["window"] = request.window.as_dict()
        if request.events:
            body["event"] = list(request.events)
        if not complete:
            body["note"] = PARTIAL_NOTE
        body["export"] = figures.as_dict(time.monotonic() - started)
        body["ledger"] = {
            "store": self.ledger.describe(),
            "slice_minutes": slicing.minutes,
            "slices_read_now": sum(1 for r in ranges if r.keep and r not in missing),
            "slices_from_ledger": from_ledger,
            "edges_read": sum(1 for r in ranges if not r.keep and r not in missing),
            "queries": figures.queries,
            "as_of": iso(datetime.fromtimestamp(answer.as_of or now, UTC)),
        }
        if guard.error is not None:
            body["ledger"]["error"] = guard.error
        return body

    # -- reading what is missing ----------------------------------------------------------------

    def _read(
        self,
        request: MetricRequest,
        ranges: list[Range],
        now: float,
        figures: Figures,
        deadline: Deadline,
        guard: _StoreGuard,
    ) -> tuple[list[SliceState], list[Range]]:
        """Read the ranges, as few queries as possible: touching ranges are one piece of time,
        and up to MAX_PIECES pieces go in one query (one `where` of them all). The states
        read, and the ranges that could not be."""
        fresh: list[SliceState] = []
        missing: list[Range] = []
        for chunk in queries(touching(ranges), self.max_query_seconds):
            group = [r for piece in chunk for r in piece]
            collectors = [SliceCollector(r.start, r.end) for r in group]
            # Slices kept serve every later question: they hold every event name.
            names = () if any(r.keep for r in group) else request.events
            windows = tuple(Window(at(p[0].start), at(p[-1].end)) for p in chunk)
            cover = Window(windows[0].start, windows[-1].end)
            query = ExportQuery(cover, names, windows if len(windows) > 1 else ())
            try:
                report = self.reader.read(query, Parts(collectors), deadline)
            except UpstreamRefused:
                raise  # the query or the credentials are wrong: no slice can help
            except UpstreamUnavailable as exc:
                figures.failed(exc)
                missing.extend(group)
                continue
            figures.add(report.as_dict())
            states = [c.state(report.complete, now) for c in collectors]
            fresh.extend(states)
            keep = [s for s, r in zip(states, group, strict=True) if r.keep]
            if keep and guard.ok:
                try:
                    self.ledger.save(keep, deadline)
                except StoreError as exc:
                    guard.failed("write", exc)
        return fresh, missing


def build_ledger(
    settings: Settings, reader: ExportReader, now: Callable[[], datetime]
) -> LedgerService | None:
    """The ledger of LEDGER_STORE, or None when it is off; a store that cannot be written stops
    start-up (every answer would read the export and keep nothing)."""
    if not settings.ledger_store:
        return None
    blobs = blob_store_from_url(settings.ledger_store, "LEDGER_STORE")
    if isinstance(blobs, DirBlobStore):
        try:
            blobs.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=blobs.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"LEDGER_STORE={settings.ledger_store}: cannot write there ({exc.strerror}); "
                "give a directory this service's user can write, or gs://<bucket>/<prefix>"
            ) from None
    slicing = Slicing(
        settings.ledger_slice_minutes,
        settings.ledger_refresh_hours,
        settings.window_lag_minutes,
    )
    ledger = Ledger(blobs, slicing, settings.ledger_retention_days)
    return LedgerService(ledger, reader, settings.exact_distinct_cap, now, settings.max_window_days)
