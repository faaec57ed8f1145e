"""Reliability under faults, load and shutdown: the figures of docs/reliability.md.

    python -m bench.reliability [--chaos N] [--load-seconds S] [--shutdowns N] [--seed N]
                                [--plot docs/reliability.png]

Each run works against the embedded simulator on loopback (127.0.0.1 only):

- chaos: N random scenarios (a fault for each successive attempt, a window, an event filter, a
  metric, gzip or not) through the app in-process; every answer is checked against the contract
  and the simulator's ground truth (`contract_violations`). tests/test_contract.py draws the same
  scenarios with hypothesis.
- load: real gunicorn with the shipped gunicorn.conf.py and concurrent clients for S seconds
  through random faults: answers checked like chaos, latencies against the deadline, worker
  restarts, worker RSS drift, and every log line and body scanned for the configured secrets.
- shutdown: SIGTERM to gunicorn with slow reads in flight: how long until each request answers
  and until the process exits (Cloud Run kills it 10 s after SIGTERM).

It prints the figures as Markdown tables and draws them as one PNG (`--plot`, matplotlib from
requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.reliability.plot import plot
from collector.simulator import Simulator
from tests.reliability.chaos import ChaosFigures, run_chaos
from tests.reliability.common import small_sim_config
from tests.reliability.load import LoadFigures, run_load
from tests.reliability.shutdown import ShutdownFigures, run_shutdown, shutdown_problems

# -- the full run -----------------------------------------------------------------------------


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items())) or "-"


def print_chaos(f: ChaosFigures, seed: int) -> None:
    print(f"\n## chaos (seed {seed})\n\n| figure | value |\n|---|---|")
    print(f"| scenarios run | {f.examples:,} in {f.seconds:.0f} s |")
    print(f"| faults scripted | {sum(f.faults.values()):,} ({_counts(f.faults)}) |")
    print(f"| answers | {_counts(f.answers)} |")
    print(f"| slowest answer (deadline 1.2 s) | {f.worst_seconds:.2f} s |")
    print(f"| contract violations | {len(f.violations)} |")
    for sc, problems in f.violations[:10]:
        print(f"\nVIOLATION {problems}\n  {sc}")


def print_load(f: LoadFigures, entry: str) -> None:
    print(f"\n## load ({entry})\n\n| figure | value |\n|---|---|")
    print(
        f"| run | {f.seconds:.0f} s, {f.clients} clients, {f.workers} workers x "
        f"{f.threads} threads, deadline {f.deadline:g} s |"
    )
    print(f"| requests | {f.requests:,} ({f.requests / f.seconds:.1f}/s) |")
    print(f"| Export queries | {f.queries:,} |")
    print(f"| faults injected | {sum(f.faults.values()):,} ({_counts(f.faults)}) |")
    print(f"| answers | {_counts(f.answers)} |")
    print(f"| contract violations | {len(f.violations)} |")
    print(f"| worst export.seconds (server) | {f.worst_server:.3f} s |")
    ranked = sorted(f.latencies) or [0.0]
    p50, p95 = ranked[len(ranked) // 2], ranked[int(len(ranked) * 0.95)]
    print(f"| client latency p50 / p95 / worst | {p50:.3f} / {p95:.3f} / {f.worst_client:.3f} s |")
    print(f"| workers booted / restarts | {f.booted} / {f.restarts} |")
    rss = ", ".join(
        f"{f.rss_start[p]:.0f} -> {f.rss_end.get(p, float('nan')):.0f}" for p in f.rss_start
    )
    print(f"| worker RSS MiB (after warm-up -> end) | {rss or '-'} |")
    print(f"| largest RSS drift | {f.rss_drift:+.1f} MiB |")
    marks = [
        min(f.rss_series, key=lambda s, q=q: abs(s[0] - q * f.seconds))
        for q in (0.1, 0.25, 0.5, 0.75, 1.0)
        if f.rss_series
    ]
    series = ", ".join(f"{t:.0f} s: {mib:.0f}" for t, mib in marks)
    print(f"| largest worker RSS MiB over the run | {series or '-'} |")
    print(f"| log problems | {', '.join(f.log_problems) or 'none'} |")
    print(
        f"| secret scan | {f.scanned_lines:,} log lines, {f.scanned_bodies:,} bodies: "
        f"{f.secret_hits} hits |"
    )
    for v in f.violations[:10]:
        print(f"VIOLATION {v}")


def print_shutdowns(runs: list[ShutdownFigures]) -> None:
    print("\n## shutdown\n\n| run | answers (status: seconds after SIGTERM) | exit | ok |")
    print("|---|---|---|---|")
    for i, f in enumerate(runs, 1):
        answers = ", ".join(f"{s}: {t:.2f}" for s, _, t in sorted(f.answers, key=lambda a: a[2]))
        print(
            f"| {i} | {answers} | code {f.exit_code} after {f.exit_seconds:.2f} s | "
            f"{not shutdown_problems(f)} |"
        )
    for f in runs:
        for p in shutdown_problems(f):
            print(f"PROBLEM {p}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--chaos", type=int, default=1000, help="chaos scenarios (1000)")
    parser.add_argument("--load-seconds", type=float, default=120, help="load run length (120)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--shutdowns", type=int, default=5, help="SIGTERM runs (5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--plot",
        type=Path,
        default=Path("docs/reliability.png"),
        help="where to draw the figures as a PNG (docs/reliability.png)",
    )
    parser.add_argument(
        "--hourly-budget",
        action="store_true",
        help="load main:app as shipped, 60 queries/hour per worker (default: no hourly budget)",
    )
    args = parser.parse_args(argv)
    if args.clients > args.threads:
        parser.error("--clients must not exceed --threads (gthread queueing)")
    problems = 0
    logs = Path(tempfile.mkdtemp(prefix="reliability-"))
    print(f"logs: {logs}", file=sys.stderr)
    chaos, load, runs = None, None, []
    if args.chaos:
        chaos = run_chaos(args.chaos, args.seed)
        print_chaos(chaos, args.seed)
        problems += len(chaos.violations)
    with Simulator(small_sim_config()) as sim:
        if args.load_seconds:
            entry = (
                "main:app" if args.hourly_budget else "tests.reliability.common:unbudgeted_app()"
            )
            load = run_load(
                sim,
                logs / "load.log",
                seconds=args.load_seconds,
                clients=args.clients,
                workers=args.workers,
                threads=args.threads,
                seed=args.seed,
                entry=entry,
            )
            print_load(load, entry)
            problems += len(load.violations) + load.restarts + load.secret_hits
            problems += len(load.log_problems)
        runs = [run_shutdown(sim, logs / f"shutdown-{i}.log") for i in range(args.shutdowns)]
        if runs:
            print_shutdowns(runs)
            problems += sum(len(shutdown_problems(f)) for f in runs)
    print(f"plot: {plot(args.plot, chaos, load, runs)}", file=sys.stderr)
    print(f"\nproblems: {problems}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
