"""One metric's answer, whichever way it was had (one Export read, or the slice ledger): a typed
value built in one place and turned into JSON once, at the edge (`as_dict`).

`Answering` is what answers: `collector.metrics.answering.ExportAnswering` (every window read
from the export) or `collector.ledger.service.LedgerService` (kept slices, only new ones read),
chosen once in `create_app`. Routes ask it for one request; a `/check` asks it for all its rules'
windows at once (`answer_all`), so that each implementation reads them in as few queries as it
can.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from collector.errors import CollectorError
from collector.window import Window


@dataclass(frozen=True)
class MetricRequest:
    """What is asked: a metric over a window, optionally of some event names only."""

    metric: str
    window: Window
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class LedgerFigures:
    """How the slice ledger answered: what it read now and what it had, the queries, how old
    the oldest read is (`as_of`), and what went wrong with its store, if anything."""

    store: str
    slice_minutes: int
    slices_read_now: int
    slices_from_ledger: int
    edges_read: int
    queries: int
    as_of: str
    error: str | None = None
    warning: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The `ledger` object of the JSON answer (`error`, `warning` only when there is one)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("error", "warning")}
        out.update({k: v for k in ("error", "warning") if (v := getattr(self, k)) is not None})
        return out


@dataclass
class MetricAnswer:
    """An answer: the value and what it is worth (`complete`, `note`), how it was had (`export`
    figures, and `ledger` figures when the ledger answered), and the metric's own details (its
    aggregator's result beside `value`: `by_event`, or `estimate` and `relative_error`)."""

    request: MetricRequest
    value: int | float
    complete: bool
    export: dict[str, Any]
    details: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None
    hint: str | None = None
    ledger: LedgerFigures | None = None

    @property
    def metric(self) -> str:
        """The metric's name."""
        return self.request.metric

    def as_dict(self) -> dict[str, Any]:
        """The JSON answer, in the order the README shows."""
        body: dict[str, Any] = {"metric": self.metric, "value": self.value, **self.details}
        body["complete"] = self.complete
        body["window"] = self.request.window.as_dict()
        if self.request.events:
            body["event"] = list(self.request.events)
        if self.hint is not None:
            body["hint"] = self.hint
        if self.note is not None:
            body["note"] = self.note
        body["export"] = self.export
        if self.ledger is not None:
            body["ledger"] = self.ledger.as_dict()
        return body

    @classmethod
    def of(
        cls, request: MetricRequest, result: Mapping[str, Any], complete: bool, **rest: Any
    ) -> MetricAnswer:
        """From an aggregator's `result()` (its `value` and its details)."""
        details = {k: v for k, v in result.items() if k != "value"}
        return cls(request, result["value"], complete, details=details, **rest)


@dataclass(frozen=True)
class Ask:
    """Windows a caller needs together (a rule's window and its baselines), named by `label`."""

    label: str
    requests: tuple[MetricRequest, ...]


@dataclass
class Answers:
    """What `answer_all` found: each ask's answers (in its requests' order) or the error that
    left it without one, the figures of every read, the Export queries they spent, and which
    read answered each ask."""

    by_label: dict[str, list[MetricAnswer] | CollectorError]
    exports: list[dict[str, Any]]
    queries: int
    query_of: dict[str, int] = field(default_factory=dict)  # label: its read, in `exports`


class Answering(Protocol):
    """What answers metric requests."""

    def answer(self, request: MetricRequest) -> MetricAnswer:
        """One request, read within its own deadline; CollectorError if nothing usable was."""
        ...

    def answer_all(self, asks: Sequence[Ask]) -> Answers:
        """Every ask's windows, read within one deadline in as few queries as can be."""
        ...
