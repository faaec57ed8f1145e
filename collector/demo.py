"""The demo: the real service against the embedded simulator, through a mix of faults.

    python -m collector.demo [--seed N] [--events-per-minute N]

Needs no credentials and no network: the simulator and the service both run on loopback. Each
scenario scripts the simulator's faults, calls the service over HTTP like Cloud Scheduler would,
and prints the answer beside the simulator's ground truth. Exits non-zero if any answer breaks
the contract (a complete answer that is not exact, a partial one above the truth).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from collector.app import create_app
from collector.cli.args import positive, whole
from collector.cli.table import cell
from collector.config import Settings
from collector.demo_rules import run_incident
from collector.simulator import Fault, SimConfig, Simulator
from collector.window import Window, parse_instant

DEMO_USER, DEMO_SECRET, DEMO_PROJECT = "demo-sa", "demo-secret-not-real", "1"
# A quieter project for the ledger part: a day of it reads in a second.
SIM_LEDGER = SimConfig(
    seed=7,
    events_per_minute=20,
    users=2000,
    username=DEMO_USER,
    secret=DEMO_SECRET,
    project_id=DEMO_PROJECT,
)


@dataclass(frozen=True)
class Scenario:
    title: str
    path: str
    params: dict[str, Any]
    faults: tuple[Fault, ...] = ()


def scenarios(window: Window, day: str) -> list[Scenario]:
    w = {"from": window.start.isoformat(), "to": window.end.isoformat()}
    cut = 150_000
    return [
        Scenario("clean stream", "/distinct-users", w),
        Scenario("connection reset mid-body, retried", "/events", w, (Fault.reset(cut),)),
        Scenario(
            "429 with Retry-After: 1, retried",
            "/distinct-users",
            w,
            (Fault.status(429, retry_after=1),),
        ),
        Scenario(
            "Mixpanel 'terminated early', retried",
            "/events",
            {**w, "event": ["Sign Up", "Purchase"]},
            (Fault.terminated_early(cut),),
        ),
        Scenario("body cut with no error, retried", "/distinct-users", w, (Fault.cut_silent(cut),)),
        Scenario(
            "gzip corrupted, then a 503, retried",
            "/events",
            w,
            (Fault.gzip_corrupt(cut), Fault.status(503)),
        ),
        Scenario("active users for a whole day", "/active-users", {"date": day}),
        Scenario(
            "every attempt cut: partial",
            "/events",
            w,
            tuple(Fault.reset(cut * (i + 1)) for i in range(3)),
        ),
        Scenario(
            "server trickles past the deadline",
            "/distinct-users",
            w,
            (Fault.trickle(cut, interval=0.05),) * 3,
        ),
        Scenario("Mixpanel refuses (403)", "/events", w, (Fault.status(403),)),
    ]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # the report below says what each request did


def _serve(settings: Settings) -> tuple[str, Any]:
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def _truth(sim: Simulator, body: dict[str, Any], params: dict[str, Any]) -> int | None:
    window = body.get("window")
    if not window:
        return None
    truth = sim.truth(
        parse_instant(window["from"], "from"),
        parse_instant(window["to"], "to"),
        params.get("event"),
    )
    return truth.events if body["metric"] == "events" else truth.distinct_users


def _check(body: dict[str, Any], truth: int | None) -> str:
    if truth is None or "value" not in body:
        return "ok"
    if body["complete"]:
        return "ok" if body["value"] == truth else "WRONG: complete but not exact"
    return "ok" if body["value"] <= truth else "WRONG: partial above the truth"


def _why(body: dict[str, Any]) -> str:
    """Why an answer is not complete: why its read stopped and its last error, else its note
    (its value can equal the truth and still not be proven whole)."""
    errors = body.get("export", {}).get("errors", [])
    if not errors:
        return f"not complete, a lower bound: {body.get('note', '')}"
    last = errors[-1]
    return f"not complete, a lower bound: {last['next'].removeprefix('stop: ')}: {last['message']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m collector.demo",
        description="Run the collector against the embedded Mixpanel simulator through faults.",
    )
    parser.add_argument("--seed", type=whole, default=2026, help="simulator seed (default 2026)")
    parser.add_argument(
        "--events-per-minute",
        type=positive,
        default=200,
        help="simulated event rate (default 200, ~12k events an hour)",
    )
    args = parser.parse_args(argv)

    sim = Simulator(
        SimConfig(
            seed=args.seed,
            events_per_minute=args.events_per_minute,
            users=5000,
            username=DEMO_USER,
            secret=DEMO_SECRET,
            project_id=DEMO_PROJECT,
        )
    )
    sim.start()
    env = {
        "MIXPANEL_EXPORT_URL": sim.url,
        "MIXPANEL_SERVICE_ACCOUNT_USERNAME": DEMO_USER,
        "MIXPANEL_SERVICE_ACCOUNT_SECRET": DEMO_SECRET,
        "MIXPANEL_PROJECT_ID": DEMO_PROJECT,
        "EXPORT_DEADLINE_SECONDS": "4",
        "EXPORT_READ_TIMEOUT_SECONDS": "2",
        "EXPORT_MAX_ATTEMPTS": "3",
        "EXPORT_BACKOFF_BASE_SECONDS": "0.2",
        "EXPORT_BACKOFF_CAP_SECONDS": "1",
        "LOG_LEVEL": "error",  # the report below is the demo's output
    }
    settings = Settings.from_env(env)
    base, server = _serve(settings)
    start = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    window = Window(start, start + timedelta(hours=1))
    day = start.date().isoformat()

    print(f"simulator: {sim.url}   service: {base}")
    print(
        f"settings:  seed {args.seed}, {args.events_per_minute} events/min, deadline "
        f"{settings.export_deadline_seconds:g} s, read timeout "
        f"{settings.export_read_timeout_seconds:g} s, up to {settings.export_max_attempts} "
        f"attempts, backoff {settings.export_backoff_base_seconds:g}-"
        f"{settings.export_backoff_cap_seconds:g} s"
    )
    print(f"window:    {window.as_dict()['from']} .. {window.as_dict()['to']}\n")
    header = (
        f"{'scenario':40} {'endpoint':16} {'HTTP':>4} {'value':>7} {'truth':>7} "
        f"{'complete':>8} {'attempts':>8}  {'errors':28} check"
    )
    print(header)
    print("-" * len(header))
    failures = 0
    try:
        for sc in scenarios(window, day):
            sim.clear_faults()
            sim.script(list(sc.faults))
            response = requests.post(base + sc.path, json=sc.params, timeout=30)
            body = response.json()
            truth = _truth(sim, body, sc.params)
            verdict = _check(body, truth)
            failures += verdict != "ok"
            export = body.get("export", {})
            kinds = ",".join(e["kind"] for e in export.get("errors", [])) or "-"
            print(
                f"{cell(sc.title, 40)} {sc.path:16} {response.status_code:>4} "
                f"{body.get('value', '-')!s:>7} {truth if truth is not None else '-'!s:>7} "
                f"{body.get('complete', '-')!s:>8} {export.get('attempts', '-')!s:>8}  "
                f"{cell(kinds, 28)} {verdict}"
            )
            if response.status_code >= 400:
                print(f"{'':40} -> {cell(body.get('error', ''), 110).rstrip()}")
            elif body.get("complete") is False:
                print(f"{'':40} -> {cell(_why(body), 110).rstrip()}")
    finally:
        server.shutdown()
        sim.stop()
    print(
        f"\n{'every answer kept the contract' if not failures else f'{failures} broke it'}: "
        "complete answers equal the truth, partial ones never exceed it."
    )
    failures += _ledger(env)
    failures += run_incident({k: v for k, v in env.items() if k != "MIXPANEL_EXPORT_URL"})
    return 1 if failures else 0


def _ledger(env: dict[str, str]) -> int:
    """The slice ledger: the same day's distinct users twice, the second time from kept
    slices; each answer beside the full export's truth. The number of answers that broke it."""
    with tempfile.TemporaryDirectory() as store, Simulator(SIM_LEDGER) as sim:
        settings = Settings.from_env({**env, "MIXPANEL_EXPORT_URL": sim.url, "LEDGER_STORE": store})
        base, server = _serve(settings)
        print("\nthe slice ledger (LEDGER_STORE): the last 24 hours' distinct users, twice")
        print(
            f"{'call':8} {'value':>7} {'truth':>7} {'complete':>8} {'queries':>7} "
            f"{'bytes':>10} {'slices read':>11} {'from ledger':>11}  check"
        )
        broke = 0
        try:
            for call in ("first", "second"):
                body = requests.get(base + "/distinct-users?days=1", timeout=60).json()
                truth = _truth(sim, body, {})
                verdict = _check(body, truth)
                broke += verdict != "ok"
                ledger = body["ledger"]
                print(
                    f"{call:8} {body['value']:>7} {truth!s:>7} {body['complete']!s:>8} "
                    f"{ledger['queries']:>7} {body['export']['bytes']:>10,} "
                    f"{ledger['slices_read_now']:>11} {ledger['slices_from_ledger']:>11}  {verdict}"
                )
        finally:
            server.shutdown()
    return broke


if __name__ == "__main__":
    sys.exit(main())
