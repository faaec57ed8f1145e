"""What the rules' windows hold: read once per query group, or answered by the slice ledger.

`observe` reads each group of rules that fit one Export query once and fans its rows out to
every rule window (`collector.metrics.fanout`); `observe_ledger` asks the ledger for each window,
so a window read by an earlier rule or run costs nothing. Either way, each rule gets an
`Observation` (its value, its baseline's, their completeness) and the pure evaluation of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.alerting.decide import Evaluation, Observation, evaluate
from collector.alerting.plan import QueryGroup, RuleWindows
from collector.errors import CollectorError
from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.ledger.service import LedgerService, Memo
from collector.metrics.fanout import Fanout, Slot
from collector.metrics.service import MetricRequest
from collector.window import Window


@dataclass
class Outcome:
    """One rule's observation and its evaluation, and which query group it came from."""

    rw: RuleWindows
    obs: Observation
    ev: Evaluation
    group: int


def observe(
    groups: list[QueryGroup], reader: ExportReader, cap: int
) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Each query group read once, its rows fanned out to every rule window of the group; all
    the groups' reads share one deadline, so the run reads for EXPORT_DEADLINE_SECONDS at most."""
    deadline = reader.deadline()
    outcomes: list[Outcome] = []
    exports: list[dict[str, Any]] = []
    for index, group in enumerate(groups):
        slots = {}
        for rw in group.members:
            slots[(rw.rule.name, "current")] = Slot(rw.rule.metric, rw.current, rw.rule.events, cap)
            for k, window in enumerate(rw.baselines):
                slots[(rw.rule.name, f"baseline{k}")] = Slot(
                    rw.rule.metric, window, rw.rule.events, cap
                )
        fanout = Fanout(slots.values(), group.window, group.events)
        figures: dict[str, Any] = {
            "window": group.window.as_dict(),
            "rules": [m.rule.name for m in group.members],
        }
        try:
            report = reader.read(ExportQuery(group.window, group.events), fanout, deadline)
            report.duplicates = fanout.duplicates()
            figures.update(complete=report.complete, **report.as_dict())
            error = None
        except CollectorError as exc:
            figures.update(complete=False, error=exc.message, code=exc.code, **(exc.export or {}))
            report, error = None, exc.message
        exports.append(figures)
        for rw in group.members:
            if report is None:
                obs = Observation(None, False, error=error)
            else:
                base = [
                    slots[(rw.rule.name, f"baseline{k}")].value() for k in range(len(rw.baselines))
                ]
                # Counts stay whole numbers: the answer says 317, not 317.0.
                obs = Observation(
                    slots[(rw.rule.name, "current")].value(),
                    report.complete,
                    _average(base),
                    report.complete,
                )
            outcomes.append(Outcome(rw, obs, evaluate(rw.rule, obs), index))
    return outcomes, exports


def observe_ledger(
    groups: list[QueryGroup], ledger: LedgerService
) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Each rule window answered by the ledger: a window read by an earlier rule (or run)
    costs nothing, so baselines a day or a week back are cheap. What any window lacks is read
    first, in one query where it can (`prefetch`); every read shares one deadline, so the run
    reads for EXPORT_DEADLINE_SECONDS at most."""
    deadline = ledger.reader.deadline()
    members = [(index, rw) for index, group in enumerate(groups) for rw in group.members]
    requests = {
        (rw.rule.name, k): MetricRequest(rw.rule.metric, window, rw.rule.events)
        for _, rw in members
        for k, window in enumerate((rw.current, *rw.baselines))
    }
    if not requests:
        return [], []
    memo: Memo = {}
    exports: list[dict[str, Any]] = []
    refused: CollectorError | None = None
    unread = None  # the run's read failed: the windows answer from what is kept, no more reads
    try:
        read, unread = ledger.prefetch(list(requests.values()), memo, deadline)
    except CollectorError as exc:  # refused: no window can be answered
        refused, read = exc, {"queries": (exc.export or {}).get("attempts", 0)}
    span = Window(
        min(r.window.start for r in requests.values()), max(r.window.end for r in requests.values())
    )
    exports.append({"window": span.as_dict(), "rules": [rw.rule.name for _, rw in members], **read})
    outcomes: list[Outcome] = []
    for index, rw in members:
        answers = []
        error = refused.message if refused is not None else None
        for k in range(1 + len(rw.baselines)):
            if error is not None:
                break
            request = requests[(rw.rule.name, k)]
            try:
                body = ledger.compute(request, memo, deadline, unread)
            except CollectorError as exc:
                error = exc.message
                exports.append(
                    {
                        "window": request.window.as_dict(),
                        "rules": [rw.rule.name],
                        "complete": False,
                        "error": exc.message,
                        "code": exc.code,
                        # The run's failed read is counted once, with the read.
                        "queries": 0 if exc is unread else (exc.export or {}).get("attempts", 0),
                    }
                )
                break
            answers.append(body)
            exports.append(
                {
                    "window": request.window.as_dict(),
                    "rules": [rw.rule.name],
                    "complete": body["complete"],
                    "queries": body["ledger"]["queries"],
                    **body["export"],
                    "ledger": body["ledger"],
                }
            )
        if error is not None:
            obs = Observation(None, False, error=error)
        else:
            current, base = answers[0], answers[1:]
            obs = Observation(
                current["value"],
                current["complete"],
                _average([b["value"] for b in base]),
                all(b["complete"] for b in base),
            )
        outcomes.append(Outcome(rw, obs, evaluate(rw.rule, obs), index))
    return outcomes, exports


def _average(values: list[int]) -> float | int | None:
    """The baseline: one window's value as it is, or the mean of several."""
    if not values:
        return None
    return values[0] if len(values) == 1 else sum(values) / len(values)
