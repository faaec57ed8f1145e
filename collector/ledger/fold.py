"""One ledger answer while it is built (its parts folded in as they are had), and what went wrong
with the store on the way (`collector.ledger.service` runs both)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from collector.errors import StoreConflict, StoreError, StoreTimeout
from collector.ledger.state import SliceState
from collector.metrics.aggregators import DistinctUsers
from collector.metrics.answer import MetricRequest
from collector.metrics.name_hint import NamesSeen
from collector.metrics.registry import metric

log = logging.getLogger("collector.ledger")

PARTIAL_NOTE = (
    "partial: some slices of the window could not be read to their end, so every count is a "
    "lower bound (never more than the truth); see export.errors and ledger"
)


class Fold:
    """An answer built part by part: each slice or rollup is folded in as soon as it is had,
    then let go (a month of rollups is never held at once)."""

    def __init__(self, request: MetricRequest, exact_cap: int) -> None:
        self.request, self.exact_cap = request, exact_cap
        self.reset()

    def reset(self) -> None:
        """Nothing folded yet (again)."""
        request, exact_cap = self.request, self.exact_cap
        self.events = metric(request.metric).counts == "events"
        self.wanted = set(request.events) if request.events else None
        self.by_event: dict[str, int] = {}
        self.users = DistinctUsers(exact_cap)
        self.parts = 0
        self.complete = True
        self.as_of: float | None = None
        self.seen = NamesSeen(request.events)  # for the hint of a name that matched nothing

    def fold(self, part: SliceState) -> None:
        self.parts += 1
        self.seen.see(part.names)
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


class StoreGuard:
    """What went wrong with the ledger's store during one answer; after a failure nothing more
    is written (every write would wait out the store's retries and fail the same way)."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.error: str | None = None
        self.warning: str | None = None

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
        if isinstance(exc, StoreConflict):
            advice = "many writers of the same objects at once: the next answers keep it"
        elif isinstance(exc, StoreTimeout):
            advice = f"LEDGER_STORE ({self.store}) answers too slowly"
        else:
            advice = (
                f"check that LEDGER_STORE ({self.store}) exists and that this service's "
                "identity may read and write it"
            )
        self.error = (
            f"the ledger could not be {'read' if what == 'read' else 'written'} "
            f"({exc.message}): {consequence}; {advice}"
        )
        log.error("%s", self.error, extra={"json_fields": {"ledger_store_error": what}})

    def slow(self) -> None:
        self.warning = (
            f"LEDGER_STORE ({self.store}) answered slowly: loading stopped at half the deadline "
            "and the rest of the window was read from the export"
        )
