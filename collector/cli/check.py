"""`collector check` (or `python -m collector check`): the alert rules evaluated once, like
`/check`.

    collector check [--dry-run] [--rule NAME ...] [--rules FILE]

--dry-run evaluates the same way and prints each decision and the notifications that would go
out, but saves nothing and sends nothing; it reads STATE_STORE if set (else it starts from an
empty state, as a first run would).

Settings come from the environment as for the service (MIXPANEL_*, COLLECTOR_RULES,
STATE_STORE, NOTIFY_*, ...). Prints the same JSON as `/check` on stdout; a run that cannot
happen prints one line on stderr instead, starting with "error:".

Exit status:
  0  every rule decided or held its state, and every notification due was delivered
  2  a configuration or usage error: a setting, the rules file, STATE_STORE missing or not
     writable, an unknown --rule (nothing was queried)
  3  at least one rule is in ERROR: its Export query failed
  4  a notification was not delivered (its notifier failed, or it did not fit in
     NOTIFY_DEADLINE_SECONDS); it stays pending and the next run sends it
  5  the state store (STATE_STORE) cannot be read, used or written; the line says what to
     fix and what was done (found before the query: nothing was spent, no state changed)
  1  an unexpected error (the line says what happened)
When both 3 and 4 apply, the status is 3. A dry run sends nothing, so it never exits 4.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from collector.alerting.dry_run import EmptyState
from collector.app import build_budget, build_checker
from collector.cli.args import command
from collector.errors import BadRequest, CollectorError, ConfigError, StateStoreUnavailable
from collector.export.reader import ExportReader
from collector.logs import setup_logging
from collector.metrics.answering import ExportAnswering
from collector.startup import load_settings
from collector.stores import open_document

OK, UNEXPECTED, CONFIG, RULE_ERROR, NOT_NOTIFIED, STORE = 0, 1, 2, 3, 4, 5


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `check` subcommand."""
    check = command(
        sub, "check", "evaluate the alert rules once and print the result", __doc__, run
    )
    check.add_argument(
        "--rule",
        action="append",
        default=[],
        help="evaluate only this rule (repeatable; default: every rule)",
    )
    check.add_argument("--rules", help="rules file (default: $COLLECTOR_RULES)")
    check.add_argument(
        "--dry-run",
        action="store_true",
        help="evaluate and show each decision and the notifications that would go out; save "
        "nothing, send nothing (STATE_STORE is read if set, else an empty state is assumed)",
    )


def run(args: argparse.Namespace) -> int:
    """One evaluation of the rules; the exit status of the module's docstring."""
    env = dict(os.environ)
    if args.rules:
        env["COLLECTOR_RULES"] = args.rules  # validated with the rest, STATE_STORE included
    try:
        settings = load_settings(env, state_store_required=not args.dry_run)
        if not settings.collector_rules:
            return _fail("no rules: set COLLECTOR_RULES or pass --rules FILE", CONFIG)
        setup_logging(replace(settings, log_format="text"), stream=sys.stderr)
        budget = build_budget(settings)
        now = lambda: datetime.now(UTC)  # noqa: E731
        store = None  # the service's: checked writable at start-up
        if args.dry_run:  # read only: not even a lock file is made
            store = (
                open_document(settings.state_store, "STATE_STORE", check=False)
                if settings.state_store
                else EmptyState()
            )
        # From the export, as before the ledger: the command keeps nothing it reads.
        reader = ExportReader(settings, budget)
        answering = ExportAnswering(reader, settings.exact_distinct_cap, settings.max_window_days)
        checker = build_checker(settings, answering, now, store=store)
        assert checker is not None
        body = checker.run(args.rule, dry_run=args.dry_run)
    except StateStoreUnavailable as exc:
        return _fail(exc.message, STORE)
    except (ConfigError, BadRequest) as exc:
        return _fail(_from_flag(exc.message, args.rules), CONFIG)
    except CollectorError as exc:
        return _fail(exc.message, UNEXPECTED)
    print(json.dumps(body, indent=2))
    return _status(body)


def _from_flag(message: str, rules: str | None) -> str:
    """The settings' message names COLLECTOR_RULES; a file given as --rules is named so."""
    if not rules:
        return message
    message = message.replace(f"COLLECTOR_RULES={rules}", f"--rules {rules}")
    return message.replace("COLLECTOR_RULES is set", "--rules is given")


def _status(body: dict[str, Any]) -> int:
    if any(r["state"] == "ERROR" for r in body["rules"]):
        return RULE_ERROR
    figures = body["notifications"]
    if figures.get("failed") or figures.get("deferred"):
        return NOT_NOTIFIED
    return OK


def _fail(message: str, status: int) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return status
