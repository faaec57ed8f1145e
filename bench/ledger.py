"""The slice ledger against the full re-export: what an answer costs once the ledger is warm.

    python -m bench.ledger [--events-per-day N] [--users N] [--mau-days N]
                           [--mau-events-per-day N] [--mau-users N]

Part 1, one busy day: the ledger is filled by an `/active-users` at 23:50 (the whole day so
far), then `/active-users` at 23:55 is answered twice — from the ledger, and by the full
re-export a service without it makes — and compared: Export queries, bytes read, seconds, and
the value (which must agree). The ledger's bytes for the day are listed. Part 2, a month: the
ledger is filled for `--mau-days` days (as `collector backfill` would), then a distinct-users
answer over all of them is timed. Everything runs against the embedded simulator on loopback,
with the ledger in a temporary directory; time is simulated (the clock is set, not waited).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from collector.config import Settings
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.ledger.backfill import fill_day
from collector.ledger.service import LedgerService
from collector.ledger.slices import Slicing
from collector.ledger.store import Ledger
from collector.metrics.answer import MetricRequest
from collector.metrics.answering import ExportAnswering
from collector.simulator import SimConfig, Simulator
from collector.stores.directory import DirBlobStore
from collector.window import Window

DAY = date(2026, 10, 1)  # the simulated calendar


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def _sim(events_per_day: int, users: int, today: date) -> Simulator:
    return Simulator(
        SimConfig(
            seed=3,
            events_per_minute=events_per_day / 1440,
            users=users,
            username="bench",
            secret="bench-secret",
            project_id="1",
            api_secret="bench-secret",
            malformed_per_query=0,
            today=today,
        )
    )


def _service(sim: Simulator, root: Path, clock: Clock) -> tuple[LedgerService, ExportReader]:
    settings = Settings.from_env(
        {
            "MIXPANEL_API_SECRET": "bench-secret",
            "MIXPANEL_EXPORT_URL": sim.url,
            "EXPORT_DEADLINE_SECONDS": "3000",
            "EXPORT_PROGRESS_SECONDS": "3600",
            "LOG_LEVEL": "error",
        }
    )
    reader = ExportReader(settings, QueryBudget(60, 3), now=clock)
    ledger = Ledger(DirBlobStore(root), Slicing(5), 35)
    return LedgerService(ledger, reader, settings.exact_distinct_cap, clock, 7), reader


def _timed(fn: Any) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    body = fn()
    return body, time.perf_counter() - started


def one_day(events_per_day: int, users: int, root: Path) -> list[dict[str, Any]]:
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    clock = Clock(start + timedelta(hours=23, minutes=50))
    with _sim(events_per_day, users, DAY + timedelta(days=1)) as sim:
        service, reader = _service(sim, root, clock)
        fill, fill_s = _timed(
            lambda: service.compute(MetricRequest("active_users", Window(start, clock()))).as_dict()
        )
        print(f"  filled the day so far: {fill['export']['events']:,} events", file=sys.stderr)
        clock.moment = start + timedelta(hours=23, minutes=55)
        request = MetricRequest("active_users", Window(start, clock()))
        ledger, ledger_s = _timed(lambda: service.compute(request).as_dict())
        kept_only = MetricRequest("active_users", Window(start, clock() - timedelta(minutes=5)))
        kept, kept_s = _timed(lambda: service.compute(kept_only).as_dict())
        full, full_s = _timed(lambda: ExportAnswering(reader, 2_000_000).answer(request).as_dict())
    size = service.ledger.size()
    return [
        {"answer": "fill at 23:50", **_row(fill, fill_s, fill["ledger"]["queries"])},
        {"answer": "ledger at 23:55", **_row(ledger, ledger_s, ledger["ledger"]["queries"])},
        {"answer": "full re-export at 23:55", **_row(full, full_s, full["export"]["attempts"])},
        {"answer": "ledger alone (00:00-23:50)", **_row(kept, kept_s, kept["ledger"]["queries"])},
        {"answer": "ledger bytes for the day", "bytes": size},
    ]


def _row(body: dict[str, Any], seconds: float, queries: int) -> dict[str, Any]:
    return {
        "value": body["value"],
        "complete": body["complete"],
        "queries": queries,
        "events": body["export"]["events"],
        "bytes": body["export"]["bytes"],
        "seconds": seconds,
    }


def month(days: int, events_per_day: int, users: int, root: Path) -> dict[str, Any]:
    today = DAY + timedelta(days=days)
    clock = Clock(datetime(today.year, today.month, today.day, 0, 30, tzinfo=UTC))
    with _sim(events_per_day, users, today) as sim:
        service, _ = _service(sim, root, clock)
        started = time.perf_counter()
        for k in range(1, days + 1):
            fill_day(service, today - timedelta(days=k), time.sleep)
        fill_s = time.perf_counter() - started
        end = datetime(today.year, today.month, today.day, tzinfo=UTC)
        window = Window(end - timedelta(days=days), end)
        answer, answer_s = _timed(
            lambda: service.compute(MetricRequest("distinct_users", window)).as_dict()
        )
        truth = sim.truth(window.start, window.end).distinct_users
    return {
        "days": days,
        "fill_seconds": fill_s,
        "value": answer["value"],
        "truth": truth,
        "queries": answer["ledger"]["queries"],
        "seconds": answer_s,
        "ledger_bytes": service.ledger.size(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ledger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--mau-days", type=int, default=28)
    parser.add_argument("--mau-events-per-day", type=int, default=100_000)
    parser.add_argument("--mau-users", type=int, default=50_000)
    args = parser.parse_args(argv)
    if (
        min(args.events_per_day, args.users, args.mau_days, args.mau_events_per_day, args.mau_users)
        < 1
    ):
        parser.error("every count must be 1 or more")
    root = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    try:
        rows = one_day(args.events_per_day, args.users, root / "day")
        mau = month(args.mau_days, args.mau_events_per_day, args.mau_users, root / "month")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\none day: {args.events_per_day:,} events, {args.users:,} users in the pool\n")
    print("| answer | value | complete | Export queries | events read | bytes read | seconds |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows[:4]:
        print(
            f"| {r['answer']} | {r['value']:,} | {r['complete']} | {r['queries']} | "
            f"{r['events']:,} | {r['bytes']:,} | {r['seconds']:.2f} |"
        )
    ledger, full = rows[1], rows[2]
    print(
        f"\nat 23:55 the ledger read {full['bytes'] / max(ledger['bytes'], 1):,.0f}x fewer bytes "
        f"and answered {full['seconds'] / ledger['seconds']:,.0f}x sooner; ledger for the day: "
        f"{rows[4]['bytes'] / 1e6:,.1f} MB"
    )
    print(
        f"\n{mau['days']} days of {args.mau_events_per_day:,} events ({args.mau_users:,} users): "
        f"filled in {mau['fill_seconds']:.1f} s, ledger {mau['ledger_bytes'] / 1e6:,.1f} MB; "
        f"distinct users over all of them: {mau['value']:,} (truth {mau['truth']:,}) in "
        f"{mau['seconds']:.2f} s with {mau['queries']} Export queries"
    )
    agree = ledger["value"] == full["value"] and mau["value"] == mau["truth"]
    if not agree:
        print("DISAGREE: the ledger's answers differ from the truth", file=sys.stderr)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
