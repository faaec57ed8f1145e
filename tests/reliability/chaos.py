"""Chaos: random fault scenarios through the app, each answer checked against the contract."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from collector.app import create_app
from collector.config import Settings
from collector.simulator import Fault, Simulator, Truth
from tests.helpers import service_env
from tests.reliability.common import METRICS, NAMES, NOT_MADE, PATHS, small_sim_config

# -- faults and scenarios ---------------------------------------------------------------------

FAULT_KINDS = (
    "none",
    "reset",
    "cut_chunked",
    "cut_length",
    "cut_silent",
    "terminated_early",
    "stall",
    "trickle",
    "stall_headers",
    "http_5xx",
    "http_429",
    "gzip_corrupt",
    "duplicate_lines",
    "leak",
    "marker",
    "html",
    "invalid_utf8",
    "unframed",
)
MARKERS = (
    "terminated early",
    "export terminated early",
    "Export Terminated Early",
    "[terminated early]",
)


def make_fault(kind: str, at: int, level: int) -> Fault:
    """One fault: `at` body bytes in, `level` (0-3) picks its other parameter."""
    level %= 4
    if kind == "none":
        return Fault.none()
    if kind == "stall":
        return Fault.stall(at, seconds=30)  # ended by the read timeout or the deadline
    if kind == "trickle":
        return Fault.trickle(at, interval=(0.01, 0.05, 0.1, 0.3)[level])
    if kind == "stall_headers":
        return Fault.stall_headers(30)
    if kind == "http_5xx":
        return Fault.status((500, 502, 503, 504)[level])
    if kind == "http_429":
        # No header, "retry now", longer than a short deadline, unparseable.
        return Fault.status(429, retry_after=(None, 0, 2, "soon")[level])
    if kind == "duplicate_lines":
        return Fault.duplicate_lines((0.1, 0.5, 0.9, 1.0)[level])
    if kind == "leak":
        return Fault.leak(out_of_window=level != 1, other_events=level != 2)
    if kind == "marker":  # every form seen; at level 3, the whole body is the marker
        return Fault.terminated_early(
            at, marker=MARKERS[level], newline=level != 1, alone=level == 3
        )
    if kind == "html":
        return Fault.html(framing=("chunked", "length", "close", "chunked")[level])
    if kind == "invalid_utf8":
        return Fault.invalid_utf8(
            level + 1, field=("event", "distinct_id", "$insert_id", "event")[level]
        )
    if kind == "unframed":
        return Fault.unframed(at if level else 0)
    return getattr(Fault, kind)(at)  # reset, cut_*, terminated_early, gzip_corrupt


def fault_label(fault: Fault) -> str:
    if fault.kind == "status":
        return "http_429" if fault.status_code == 429 else f"http_{fault.status_code // 100}xx"
    return fault.kind


def random_fault(rng: random.Random, at_most: int = 60_000) -> Fault:
    return make_fault(rng.choice(FAULT_KINDS), rng.randrange(at_most + 1), rng.randrange(4))


@dataclass(frozen=True)
class Scenario:
    script: tuple[Fault, ...]  # the Nth attempt meets the Nth fault; later ones none
    metric: str = "events"
    offset: int = 0  # minutes after the base hour
    minutes: int = 30
    names: tuple[str, ...] = ()
    gzip: bool = True


def random_scenario(rng: random.Random) -> Scenario:
    return Scenario(
        script=tuple(random_fault(rng) for _ in range(rng.randrange(5))),
        metric=rng.choice(METRICS),
        offset=rng.randrange(181),
        minutes=rng.randrange(1, 121),
        names=tuple(rng.sample(NAMES, rng.randrange(4))),
        gzip=rng.random() < 0.5,
    )


def base_hour(now: datetime | None = None) -> datetime:
    """06:00 UTC yesterday: settled, and every window after it stays within yesterday."""
    day = ((now or datetime.now(UTC)) - timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, 6, tzinfo=UTC)


@dataclass
class Outcome:
    metric: str
    status: int
    body: dict[str, Any]
    elapsed: float  # seconds as the client saw them
    truth: Truth
    deadline: float
    margin: float  # how far past the deadline an answer may come (framework and transport)


def request_for(metric: str, start: datetime, minutes: int, names: tuple[str, ...]) -> dict:
    """Query parameters for one metric request; active_users asks for the start's whole day."""
    if metric == "active_users":
        return {"date": start.date().isoformat()}
    end = start + timedelta(minutes=minutes)
    params: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat()}
    if names:
        params["event"] = list(names)
    return params


def truth_for(sim: Simulator, metric: str, params: Mapping[str, Any]) -> Truth:
    if metric == "active_users":
        day = date.fromisoformat(params["date"])
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return sim.truth(start, start + timedelta(days=1))
    names = params.get("event")
    return sim.truth(
        datetime.fromisoformat(params["from"]), datetime.fromisoformat(params["to"]), names
    )


def run_scenario(sim: Simulator, sc: Scenario, deadline: float = 1.2, **env: str) -> Outcome:
    """One scenario through the app in-process (routes, reader, aggregators), fresh budget."""
    sim.clear_faults()
    sim.script(sc.script)
    settings = Settings.from_env(
        service_env(
            sim,
            EXPORT_DEADLINE_SECONDS=str(deadline),
            EXPORT_READ_TIMEOUT_SECONDS="0.4",
            EXPORT_CONNECT_TIMEOUT_SECONDS="0.5",
            EXPORT_BACKOFF_BASE_SECONDS="0.01",
            EXPORT_BACKOFF_CAP_SECONDS="0.05",
            EXPORT_GZIP=str(sc.gzip).lower(),
            LOG_FORMAT="text",
            LOG_LEVEL="error",
            **env,
        )
    )
    client = create_app(settings).test_client()
    start = base_hour() + timedelta(minutes=sc.offset)
    params = request_for(sc.metric, start, sc.minutes, sc.names)
    started = time.monotonic()
    response = client.get(PATHS[sc.metric], query_string=params)
    elapsed = time.monotonic() - started
    sim.clear_faults()
    return Outcome(
        sc.metric,
        response.status_code,
        response.get_json(),
        elapsed,
        truth_for(sim, sc.metric, params),
        deadline,
        margin=0.5,
    )


# -- the contract -----------------------------------------------------------------------------


def contract_violations(o: Outcome, *, in_time: bool = True) -> list[str]:
    """Everything in one answer that breaks the contract; empty when it holds. Without
    `in_time`, how long it took is not judged (a loaded machine can miss a time bound that the
    service keeps: the build's test step leaves such bounds out, tests/test_build_step.py)."""
    found: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            found.append(what)

    body = o.body or {}
    if in_time:
        expect(o.elapsed <= o.deadline + o.margin, f"answered after {o.elapsed:.2f} s")
    if o.status not in (200, 503):
        return [*found, f"status {o.status}: {json.dumps(body)[:300]}"]
    export = body.get("export")
    if export is None:
        return [*found, f"{o.status} without export figures: {json.dumps(body)[:300]}"]
    complete = bool(body.get("complete"))
    found += export_violations(export, complete, o.deadline if in_time else None)
    if o.status == 503:
        expect(body.get("code") in {"upstream_unavailable", "budget_exhausted"}, "503 code")
        expect(export["lines"] == 0, "503 although lines were read")
        return found

    value = body["value"]
    exact = o.truth.events if o.metric == "events" else o.truth.distinct_users
    if complete:
        expect(value == exact, f"complete value {value} != truth {exact}")
        expect("note" not in body, "complete answer with a partial note")
    else:
        expect(value <= exact, f"partial value {value} > truth {exact}")
        expect("lower bound" in body.get("note", ""), "partial answer without its note")
    if o.metric == "events":
        # `duplicates` is exact for /events: rows read minus rows counted.
        dedup = export["events"] - export["duplicates"]
        by_event = body["by_event"]
        expect(dedup == value, f"events-duplicates {dedup} != value {value}")
        expect(sum(by_event.values()) == value, "by_event does not add up to value")
        if complete:
            expect(by_event == o.truth.by_event, f"by_event {by_event} != {o.truth.by_event}")
        else:
            over = {k: n for k, n in by_event.items() if n > o.truth.by_event.get(k, 0)}
            expect(not over, f"partial by_event over the truth: {over}")
    return found


def export_violations(
    export: Mapping[str, Any], complete: bool, deadline: float | None
) -> list[str]:
    """The `export` figures add up: lines, attempts against errors, bytes, and time within
    `deadline` (not judged without one)."""
    found: list[str] = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            found.append(what)

    lines, events, skipped, bad = (export[k] for k in ("lines", "events", "skipped", "bad_lines"))
    expect(lines == events + skipped + bad, f"lines {lines} != {events}+{skipped}+{bad}")
    if deadline is not None:
        expect(export["seconds"] <= deadline + 0.3, f"export.seconds {export['seconds']}")
    errors, attempts = export["errors"], export["attempts"]
    made = [e for e in errors if e["attempt"] is not None]
    not_made = errors[len(made) :]
    expect([e["attempt"] for e in made] == list(range(1, len(made) + 1)), "attempt numbering")
    expect(attempts == len(made) + complete, f"attempts {attempts} != {len(made)} + {complete}")
    expect(
        len(not_made) <= 1
        and all(
            e["attempt"] is None and e["kind"] in NOT_MADE and e["bytes"] == 0 for e in not_made
        ),
        f"unexpected entries after the last attempt: {not_made}",
    )
    expect(all(e["next"] == "retry" for e in errors[:-1]), "a stop before the last error")
    if complete:
        expect(all(e["next"] == "retry" for e in errors), "complete after a stop")
    else:
        expect(bool(errors) and errors[-1]["next"].startswith("stop"), "partial without a stop")
    expect(sum(e["bytes"] for e in errors) <= export["bytes"], "error bytes exceed bytes")
    expect(sum(e["events"] for e in errors) <= events, "error events exceed events")
    return found


@dataclass
class ChaosFigures:
    examples: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    violations: list[tuple[Scenario, list[str]]] = field(default_factory=list)
    worst_seconds: float = 0.0
    seconds: float = 0.0


def answer_kind(status: int, body: Mapping[str, Any]) -> str:
    if status == 200:
        return "complete" if body.get("complete") else "partial"
    return f"{status} {body.get('code', '')}".strip()


def run_chaos(examples: int, seed: int, deadline: float = 1.2) -> ChaosFigures:
    rng = random.Random(seed)
    figures = ChaosFigures()
    started = time.monotonic()
    with Simulator(small_sim_config()) as sim:
        for _ in range(examples):
            sc = random_scenario(rng)
            outcome = run_scenario(sim, sc, deadline)
            figures.examples += 1
            figures.answers[answer_kind(outcome.status, outcome.body)] += 1
            figures.faults.update(fault_label(f) for f in sc.script)
            figures.worst_seconds = max(figures.worst_seconds, outcome.elapsed)
            if problems := contract_violations(outcome):
                figures.violations.append((sc, problems))
    figures.seconds = time.monotonic() - started
    return figures
