"""What the rules' windows hold: each rule's window and baselines asked of the answering (the
export, or the slice ledger) all at once, so that it reads them in as few queries as it can;
each rule gets an `Observation` (its value, its baseline's, their completeness) and the pure
evaluation of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.alerting.decide import Evaluation, Observation, evaluate
from collector.alerting.plan import RuleWindows
from collector.errors import CollectorError
from collector.metrics.answer import Answering, Answers, Ask, MetricRequest


@dataclass
class Outcome:
    """One rule's observation and its evaluation, and which read (an index into the run's
    `export` figures) answered it."""

    rw: RuleWindows
    obs: Observation
    ev: Evaluation
    query: int


def observe(windows: list[RuleWindows], answering: Answering) -> tuple[list[Outcome], Answers]:
    """Every rule's windows answered in one `answer_all`; the outcomes in `windows`' order."""
    asks = [
        Ask(
            rw.rule.name,
            tuple(
                MetricRequest(rw.rule.metric, window, rw.rule.events)
                for window in (rw.current, *rw.baselines)
            ),
        )
        for rw in windows
    ]
    answers = answering.answer_all(asks)
    outcomes = []
    for rw in windows:
        found = answers.by_label[rw.rule.name]
        if isinstance(found, CollectorError):
            obs = Observation(None, False, error=found.message)
        else:
            current, *base = found
            # Counts stay whole numbers: the answer says 317, not 317.0.
            obs = Observation(
                current.value,
                current.complete,
                _average([b.value for b in base]),
                all(b.complete for b in base),
            )
        query = answers.query_of.get(rw.rule.name, 0)
        outcomes.append(Outcome(rw, obs, evaluate(rw.rule, obs), query))
    return outcomes, answers


def _average(values: list[int | float]) -> float | int | None:
    """The baseline: one window's value as it is, or the mean of several."""
    if not values:
        return None
    return values[0] if len(values) == 1 else sum(values) / len(values)
