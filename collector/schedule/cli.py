"""`python -m collector.schedule`: make the Cloud Scheduler jobs match the declared ones."""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.cloud import scheduler_v1

from collector.config import Settings
from collector.schedule.budget import (
    EXPORT_QUERIES_PER_HOUR,
    Budget,
    run_spread_seconds,
    worst_hour,
)
from collector.schedule.jobs import JobSpec, JobSpecError, check_unique, load_jobs_file, parse_job
from collector.schedule.plan import Action, Target, desired_job, job_id, job_summary, plan
from collector.schedule.sync import SyncError, apply, list_jobs, make_client
from collector.schedule.targets import check_target

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
# Scheduler's limits for an HTTP target.
MIN_ATTEMPT_DEADLINE, MAX_ATTEMPT_DEADLINE, MAX_RETRIES = 15, 30 * 60, 5
DEADLINE_MARGIN = 60  # seconds between the service's deadline and Scheduler giving up

_SETTING_DEFAULTS = {f.name: f.default for f in fields(Settings)}

DESCRIPTION = """\
Make the Cloud Scheduler jobs that call the collector match a declared list:
create missing jobs, update changed ones, delete jobs that carry the prefix but
are no longer declared. Jobs without the prefix are never touched. Every job's
path and query are checked by the service's own parameter parser, and a schedule
over the query budget is refused, before anything else. The plan is printed
first; --dry-run stops there. Applying needs Application Default Credentials
(gcloud auth application-default login); a dry run without them still plans and
checks the budget, and only cannot compare with the jobs that exist (it says so).
"""

EPILOG = """\
examples:
  python -m collector.schedule --project my-project --location europe-west1 \\
      --service-url https://rt-mp-collector-abc123-ew.a.run.app \\
      --invoker-sa rt-mp-invoker@my-project.iam.gserviceaccount.com \\
      --job 'users-15m=/distinct-users?minutes=15@*/15 * * * *' \\
      --job 'events-hourly=/events?minutes=60&lag=5@5 * * * *' --dry-run

  jobs file (YAML):
    jobs:
      - name: users-15m
        path: /distinct-users
        query: {minutes: 15}
        schedule: "*/15 * * * *"
        method: GET            # optional, default --http-method

budget: the worst case of a rolling hour is the sum over jobs of
  runs in the hour x (1 + retries) x queries per run,
and must stay within Mixpanel's 60 Export queries per hour. A run that starts shortly before the
hour can still query inside it, so each job's hour is widened by how long one run can last.

exit status: 0 done (or dry run shown), 1 a Scheduler call failed, 2 bad arguments or a plan
over the query budget (nothing was changed).
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout and never splits a word like 'rt-mp-' or a path at a hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    # String defaults go through `type`, so a malformed environment value is a usage error.
    max_attempts = env.get("EXPORT_MAX_ATTEMPTS") or str(_SETTING_DEFAULTS["export_max_attempts"])
    deadline = (
        env.get("EXPORT_DEADLINE_SECONDS") or f"{_SETTING_DEFAULTS['export_deadline_seconds']:g}"
    )
    p = argparse.ArgumentParser(
        prog="python -m collector.schedule",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument("--project", required=True, help="Google Cloud project id")
    p.add_argument("--location", required=True, help="Cloud Scheduler region, e.g. europe-west1")
    p.add_argument(
        "--service-url",
        required=True,
        help="the Cloud Run service's base URL (https://...run.app); also the OIDC audience",
    )
    p.add_argument(
        "--invoker-sa",
        required=True,
        help="service account whose OIDC token calls the service (needs roles/run.invoker)",
    )
    p.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="NAME=PATH?QUERY@CRON",
        help="a job to keep, e.g. 'users-15m=/distinct-users?minutes=15@*/15 * * * *' (repeatable)",
    )
    p.add_argument("--jobs-file", type=Path, help="YAML file with a 'jobs:' list (see below)")
    p.add_argument(
        "--rules",
        type=Path,
        default=Path(env["COLLECTOR_RULES"]) if env.get("COLLECTOR_RULES") else None,
        help="the service's rules file: its 'jobs:' list is declared too "
        "(default: $COLLECTOR_RULES when set)",
    )
    p.add_argument(
        "--http-method",
        choices=("GET", "POST"),
        default="GET",
        type=str.upper,
        help="method of jobs that do not name one (default GET; parameters stay in the query)",
    )
    p.add_argument(
        "--time-zone", default="Etc/UTC", help="time zone of every cron (default %(default)s)"
    )
    p.add_argument(
        "--prefix",
        default="rt-mp-",
        help="job id prefix that marks jobs as managed (default %(default)s)",
    )
    p.add_argument(
        "--service-deadline",
        type=float,
        default=deadline,
        help="the service's EXPORT_DEADLINE_SECONDS (default %(default)s, from the environment "
        "when set)",
    )
    p.add_argument(
        "--attempt-deadline",
        type=_seconds,
        help=f"how long Scheduler waits for one attempt, e.g. 180s or 3m: at least the service "
        f"deadline, {MIN_ATTEMPT_DEADLINE}s to {MAX_ATTEMPT_DEADLINE // 60}m (default: service "
        f"deadline + {DEADLINE_MARGIN}s)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=0,
        help=f"Scheduler retries of a failed run, 0-{MAX_RETRIES} (default 0: the service "
        "already retries inside a run, and every Scheduler retry can spend --queries-per-run "
        "again)",
    )
    p.add_argument(
        "--min-backoff", type=_seconds, default=60, help="first retry wait (default 60s)"
    )
    p.add_argument(
        "--max-backoff", type=_seconds, default=600, help="longest retry wait (default 600s)"
    )
    p.add_argument(
        "--queries-per-run",
        type=int,
        default=max_attempts,
        help="Export queries one run can spend at worst: the service's EXPORT_MAX_ATTEMPTS "
        "(default %(default)s, from the environment when set)",
    )
    p.add_argument(
        "--queries-per-hour",
        type=int,
        default=EXPORT_QUERIES_PER_HOUR,
        help="budget the schedule must fit in (default and maximum: Mixpanel's 60 per hour; "
        "lower it to leave room for manual queries)",
    )
    p.add_argument(
        "--max-window-days",
        type=int,
        default=env.get("MAX_WINDOW_DAYS") or str(_SETTING_DEFAULTS["max_window_days"]),
        help="the service's MAX_WINDOW_DAYS, for checking job windows (default %(default)s, "
        "from the environment when set)",
    )
    p.add_argument(
        "--ledger-store",
        default=env.get("LEDGER_STORE", ""),
        help="the service's LEDGER_STORE: with one, jobs may ask for days=N and longer windows "
        "(default: from the environment when set)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and change nothing; needs no credentials (without them the "
        "existing jobs are not compared)",
    )
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    client: scheduler_v1.CloudSchedulerClient | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser(os.environ if env is None else env).parse_args(argv)
    try:
        target, specs = _inputs(args)
    except (JobSpecError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_REFUSED
    budget = worst_hour(
        specs,
        retries=target.retries,
        queries_per_run=args.queries_per_run,
        spread_seconds=run_spread_seconds(
            args.service_deadline, target.retries, target.max_backoff
        ),
        limit=args.queries_per_hour,
        prefix=target.prefix,
    )

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    if not budget.fits:  # before anything is asked of Scheduler, credentials included
        _say_budget(say, budget)
        print(
            f"error: refused: this schedule can spend {budget.worst_case} Export queries in one "
            f"hour, over the budget of {budget.limit}. Run jobs less often, lower --retries, or "
            "lower the service's EXPORT_MAX_ATTEMPTS (and --queries-per-run). Nothing was changed.",
            file=err,
        )
        return EXIT_REFUSED
    desired = [desired_job(spec, target) for spec in specs]
    try:
        client = client or make_client()
    except SyncError as exc:
        if not args.dry_run:
            print(f"error: {exc}", file=err)
            return EXIT_FAILED
        _say_offline(say, target, desired, exc)
        _say_budget(say, budget)
        say("dry run: nothing changed")
        return EXIT_OK
    try:
        existing = list_jobs(client, target)
    except SyncError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    actions = plan(desired, existing, target.prefix)
    say(f"plan for {target.parent} (jobs with prefix {target.prefix!r}):")
    for action in actions:
        say("  " + action.line())
    if not actions:
        say("  nothing declared and nothing to delete")
    _say_budget(say, budget)
    if args.dry_run:
        say("dry run: nothing changed")
        return EXIT_OK
    try:
        apply(client, target, [a for a in actions if a.kind != "unchanged"], say)
    except SyncError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    say("done")
    return EXIT_OK


def _say_budget(say: Callable[[str], None], budget: Budget) -> None:
    say(
        f"Export queries in the worst rolling hour: {budget.worst_case} of {budget.limit} "
        f"(one run can query for up to {budget.spread_minutes} min)"
    )
    for cost in budget.costs:
        say("  " + cost.line())


def _say_offline(
    say: Callable[[str], None], target: Target, desired: list[scheduler_v1.Job], why: SyncError
) -> None:
    """The plan without Scheduler's side: the declared jobs, and why nothing was compared."""
    say(f"plan for {target.parent} (jobs with prefix {target.prefix!r}), declared jobs only:")
    for job in desired:
        say("  " + Action("declared", job_id(job.name), job, note=job_summary(job)).line())
    if not desired:
        say("  nothing declared")
    say(
        f"  existing jobs were not compared ({str(why).split(':')[0]}): with Application "
        "Default Credentials (gcloud auth application-default login) the plan also says which "
        "jobs it would create, update, leave unchanged or delete"
    )


def _inputs(args: argparse.Namespace) -> tuple[Target, list[JobSpec]]:
    """Validate every argument against Scheduler's and the service's limits."""
    url = urlsplit(args.service_url)
    if url.scheme != "https" or not url.netloc or url.path not in ("", "/") or url.query:
        raise ValueError(
            f"--service-url {args.service_url!r} must be the service's https base URL, "
            "with no path or query"
        )
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.gserviceaccount\.com", args.invoker_sa):
        raise ValueError(f"--invoker-sa {args.invoker_sa!r} is not a service account email")
    try:
        ZoneInfo(args.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--time-zone {args.time_zone!r} is not an IANA time zone") from None
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.prefix):
        # An empty prefix would claim every job in the location, and delete the undeclared ones.
        raise ValueError(f"--prefix {args.prefix!r} must be 1 or more letters, digits, '-' and '_'")
    deadline = args.attempt_deadline
    if deadline is None:
        deadline = min(MAX_ATTEMPT_DEADLINE, int(args.service_deadline) + DEADLINE_MARGIN)
    if not MIN_ATTEMPT_DEADLINE <= deadline <= MAX_ATTEMPT_DEADLINE:
        raise ValueError(
            f"--attempt-deadline {deadline}s is outside Scheduler's "
            f"{MIN_ATTEMPT_DEADLINE}s-{MAX_ATTEMPT_DEADLINE}s"
        )
    if deadline < args.service_deadline:
        raise ValueError(
            f"--attempt-deadline {deadline}s is shorter than the service's deadline "
            f"({args.service_deadline:g}s): Scheduler would give up on runs that are still "
            "going to answer"
        )
    if not 0 <= args.retries <= MAX_RETRIES:
        raise ValueError(f"--retries {args.retries} must be 0 to {MAX_RETRIES}")
    if args.min_backoff > args.max_backoff:
        raise ValueError("--min-backoff must not be longer than --max-backoff")
    if args.queries_per_run < 1:
        raise ValueError("--queries-per-run must be at least 1")
    if not 1 <= args.queries_per_hour <= EXPORT_QUERIES_PER_HOUR:
        raise ValueError(f"--queries-per-hour must be 1 to {EXPORT_QUERIES_PER_HOUR}")
    specs = [parse_job(text, args.http_method) for text in args.job]
    if args.jobs_file:
        specs += load_jobs_file(args.jobs_file, args.http_method)
    if args.rules:
        specs += load_jobs_file(args.rules, args.http_method, optional=True)
    target = Target(
        project=args.project,
        location=args.location,
        service_url=args.service_url.rstrip("/"),
        invoker_sa=args.invoker_sa,
        time_zone=args.time_zone,
        prefix=args.prefix,
        attempt_deadline=deadline,
        retries=args.retries,
        min_backoff=args.min_backoff,
        max_backoff=args.max_backoff,
    )
    settings = Settings(
        export_url="", max_window_days=args.max_window_days, ledger_store=args.ledger_store
    )
    return target, [check_target(spec, settings) for spec in check_unique(specs)]


def _seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*(s|m)?", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 180, 180s or 3m")
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)
