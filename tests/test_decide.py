"""Decisions on partial data, as properties over random values and outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from collector.alerting.decide import (
    ALERTING,
    NO_DATA,
    OK,
    Observation,
    RuleState,
    evaluate,
    transition,
)
from collector.alerting.rules import Rule

values = st.integers(min_value=0, max_value=10**9).map(float)


def rule(condition: str, threshold: float, **kw: object) -> Rule:
    return Rule(
        name="r", metric="events", condition=condition, threshold=threshold, window_minutes=60, **kw
    )  # type: ignore[arg-type]


@given(truth=values, seen=st.floats(0, 1), threshold=values)
def test_below_never_alerts_from_a_partial_value(truth, seen, threshold) -> None:
    partial = float(int(truth * seen))  # a lower bound of the truth
    ev = evaluate(rule("below", threshold), Observation(partial, complete=False))
    assert ev.state != ALERTING
    if ev.state == OK:  # an all-clear on partial data must be true of the truth too
        assert truth >= threshold


@given(truth=values, seen=st.floats(0, 1), threshold=values)
def test_above_never_clears_from_a_partial_value(truth, seen, threshold) -> None:
    partial = float(int(truth * seen))
    ev = evaluate(rule("above", threshold), Observation(partial, complete=False))
    assert ev.state != OK
    if ev.state == ALERTING:  # an alarm on partial data must be true of the truth too
        assert truth > threshold


@given(
    value=values,
    previous=values,
    complete=st.booleans(),
    prev_complete=st.booleans(),
    condition=st.sampled_from(["drop_pct", "rise_pct"]),
    pct=st.integers(1, 100),
)
def test_ratio_rules_decide_only_on_two_complete_windows(
    value, previous, complete, prev_complete, condition, pct
) -> None:
    ev = evaluate(rule(condition, pct), Observation(value, complete, previous, prev_complete))
    if not (complete and prev_complete):
        assert ev.state == NO_DATA
    else:
        assert ev.state in (OK, ALERTING)


@given(value=values, threshold=values, condition=st.sampled_from(["above", "below"]))
def test_complete_values_always_decide(value, threshold, condition) -> None:
    ev = evaluate(rule(condition, threshold), Observation(value, complete=True))
    expected = (value > threshold) if condition == "above" else (value < threshold)
    assert ev.state == (ALERTING if expected else OK)


def test_drop_and_rise_percentages() -> None:
    assert evaluate(rule("drop_pct", 50), Observation(40, True, 100, True)).state == ALERTING
    assert evaluate(rule("drop_pct", 50), Observation(60, True, 100, True)).state == OK
    assert evaluate(rule("rise_pct", 20), Observation(121, True, 100, True)).state == ALERTING
    assert evaluate(rule("rise_pct", 20), Observation(5, True, 0, True)).state == ALERTING
    assert evaluate(rule("drop_pct", 20), Observation(0, True, 0, True)).state == OK
    assert evaluate(rule("above", 1), Observation(None, False, error="boom")).state == "ERROR"


T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)


def run(r: Rule, states: list[str], incomplete_after: int = 3) -> list[list[str]]:
    from collector.alerting.decide import Evaluation

    state, owed_all = RuleState(), []
    for i, s in enumerate(states):
        state, owed = transition(
            r, state, Evaluation(s, ""), T0 + timedelta(minutes=15 * i), incomplete_after
        )
        owed_all.append(owed)
    return owed_all


def test_fires_after_for_runs_reminds_and_resolves_once() -> None:
    r = rule("above", 1, for_runs=2, repeat_minutes=30)
    owed = run(r, [ALERTING, ALERTING, ALERTING, ALERTING, OK, OK])
    assert owed == [[], ["firing"], [], ["reminder"], ["resolved"], []]


def test_no_data_holds_the_state_and_a_long_streak_is_reported_once() -> None:
    r = rule("above", 1, for_runs=1, repeat_minutes=0)
    owed = run(r, [ALERTING, NO_DATA, "ERROR", NO_DATA, NO_DATA, ALERTING, OK])
    # firing once; NO_DATA neither resolves nor re-fires; the 3rd undecided run says so once.
    assert owed == [["firing"], [], [], ["data_incomplete"], [], [], ["resolved"]]


@given(st.lists(st.sampled_from([OK, ALERTING, NO_DATA, "ERROR"]), max_size=40))
def test_firing_and_resolved_alternate(states) -> None:
    r = rule("above", 1, for_runs=2, repeat_minutes=0)
    kinds = [k for owed in run(r, states) for k in owed if k in ("firing", "resolved")]
    assert kinds == ["firing", "resolved"] * (len(kinds) // 2) + ["firing"] * (len(kinds) % 2)
