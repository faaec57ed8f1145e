"""Command line: `python -m collector check` evaluates the alert rules once, like `/check`.

    python -m collector check [--rule NAME ...] [--rules FILE]

Settings come from the environment as for the service (MIXPANEL_*, COLLECTOR_RULES,
STATE_STORE, ...). Prints the same JSON as `/check`. Exit status: 0 every rule decided or held,
3 at least one rule in ERROR, 2 a configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime

from collector.app import build_checker
from collector.config import Settings
from collector.errors import CollectorError
from collector.export.budget import QueryBudget
from collector.export.reader import ExportReader
from collector.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m collector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="evaluate the alert rules once and print the result")
    check.add_argument(
        "--rule",
        action="append",
        default=[],
        help="evaluate only this rule (repeatable; default: every rule)",
    )
    check.add_argument("--rules", help="rules file (default: $COLLECTOR_RULES)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.rules:
            settings = replace(settings, collector_rules=args.rules)
        if not settings.collector_rules:
            print("no rules: set COLLECTOR_RULES or pass --rules FILE", file=sys.stderr)
            return 2
        setup_logging(replace(settings, log_format="text"), stream=sys.stderr)
        budget = QueryBudget(settings.export_queries_per_hour, settings.export_queries_per_second)
        now = lambda: datetime.now(UTC)  # noqa: E731
        checker = build_checker(settings, ExportReader(settings, budget), now)
        assert checker is not None
        body = checker.run(args.rule)
    except CollectorError as exc:
        print(json.dumps(exc.body(), indent=2), file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2))
    return 3 if any(r["state"] == "ERROR" for r in body["rules"]) else 0


if __name__ == "__main__":
    sys.exit(main())
