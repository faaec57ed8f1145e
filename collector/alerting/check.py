"""A `/check` run: one export pass, pure decisions, then notify and remember.

1. The state store is checked before anything is spent (`preflight`): a store that cannot be
   read, used or written answers 503 and no Export query goes out.
2. One export pass observes every rule; `decide` turns observations into transitions.
3. The transitions are saved with the notifications they owe as pending, and in the same
   conditional save this run claims the pending notifications of its rules (`claims`); a
   conflicting save re-applies the pure transitions to the fresh document, so overlapping runs
   never overwrite each other and never both claim a notification.
4. The claimed notifications are delivered within one deadline, each settled as soon as its
   delivery is known (`deliver`); what fails or does not fit stays pending for the next run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from collector.alerting.claims import claim
from collector.alerting.decide import (
    RuleState,
    transition,
)
from collector.alerting.deliver import Deliverer, Delivery
from collector.alerting.dry_run import preview
from collector.alerting.notification import Notification, Notifier
from collector.alerting.observe import Outcome, observe
from collector.alerting.plan import rule_windows
from collector.alerting.preflight import preflight, read_state, unavailable
from collector.alerting.rules import RuleSet
from collector.alerting.state import validate
from collector.config import Settings
from collector.errors import StoreError
from collector.metrics.answer import Answering
from collector.stores import DocumentStore as StateStore
from collector.stores import update
from collector.window import iso

log = logging.getLogger("collector.alerting")


class Checker:
    """Runs the alert rules: `run(names)` is one `/check` (or `python -m collector check`)."""

    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        answering: Answering,
        store: StateStore,
        notifiers: Mapping[str, Notifier],
        now: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.answering = answering  # the export's, or the ledger's: chosen once, in create_app
        self.store = store
        self.notifiers = notifiers
        self.now = now

    def run(self, names: list[str], *, dry_run: bool = False) -> dict[str, Any]:
        """Evaluate, record, notify. A dry run evaluates the same way against the stored state
        and says what it would record and send, but saves nothing and sends nothing."""
        now = self.now()
        selected = self.rules.named(names)
        if dry_run:
            # Only read: a dry run writes nothing, not even the preflight's unchanged copy.
            doc = read_state(self.store, "a dry run spent no Export query and changed nothing")
        else:
            preflight(self.store)  # read, used and written back before any query is spent
        # In the file's order, as /rules lists them, whatever order `rule=` names them in.
        order = {rule.name: i for i, rule in enumerate(self.rules.rules)}
        selected = sorted(selected, key=lambda rule: order[rule.name])
        outcomes, answers = observe([rule_windows(r, now) for r in selected], self.answering)
        exports, queries = answers.exports, answers.queries
        run = uuid.uuid4().hex[:12]
        if dry_run:
            owed, claimed, held = self._record(doc, outcomes, now, run)  # on a copy: not saved
            return preview(
                [self._describe(o, owed, Delivery(0)) for o in outcomes],
                claimed,
                held,
                checked_at=iso(now),
                export=exports,
                store=self.store.describe(),
            )
        try:
            owed, claimed, held = update(
                self.store, lambda doc: self._record(doc, outcomes, now, run)
            )
        except StoreError as exc:
            raise unavailable(
                self.store,
                exc,
                "the rules were evaluated but their new state could not be saved, so nothing "
                "was notified; the next /check evaluates them again",
                queries=queries,
                export=exports,
            ) from None
        delivery = Deliverer(self.store, self.notifiers, self.settings.notify_deadline_seconds).run(
            run, claimed, held
        )
        if delivery.store_error is not None:
            raise unavailable(
                self.store,
                delivery.store_error,
                _unsettled(delivery),
                queries=queries,
                export=exports,
            )
        rules_out = [self._describe(o, owed, delivery) for o in outcomes]
        for entry in rules_out:
            _log_evaluation(entry)
        return {
            "checked_at": iso(now),
            "rules": rules_out,
            "queries": queries,
            "export": exports,
            "notifications": delivery.as_dict(),
            "store": self.store.describe(),
        }

    # -- phase 1: transitions, saved with what they owe and this run's claims -----------

    def _record(
        self, doc: dict[str, Any], outcomes: list[Outcome], now: datetime, run: str
    ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
        validate(doc, self.store.describe())  # it may have changed since the preflight
        states = doc.setdefault("rules", {})
        owed_by_rule: dict[str, dict[str, Any]] = {}
        for o in outcomes:
            rule = o.rw.rule
            prev = RuleState.from_dict(states.get(rule.name))
            new, owed = transition(rule, prev, o.ev, now, self.rules.incomplete_after_runs)
            pending = list(new.pending)
            for kind in owed:
                for target in rule.notify:
                    pending.append(self._notification(o, kind, target, now).as_dict())
            new = replace(new, pending=tuple(pending))
            before = states.get(rule.name, {})
            # When the rule entered the state it is in (None: an older document did not say).
            same = before.get("last_state") == o.ev.state
            since = before.get("state_since") if same else iso(now)
            states[rule.name] = {
                **before,  # fields of a later version are kept
                **new.as_dict(),
                "last_state": o.ev.state,
                "state_since": since,
                "last_value": o.obs.value,
                "last_complete": o.obs.complete,
                "checked_at": iso(now),
            }
            owed_by_rule[rule.name] = {"owed": owed, "firing": new.firing}
        # In the same conditional save: of two overlapping runs, one claims each notification.
        claimed_at = self.now()
        claimed, held = claim(
            doc, [o.rw.rule.name for o in outcomes], run, claimed_at, claimed_at + self._lease()
        )
        return owed_by_rule, claimed, held

    def _lease(self) -> timedelta:
        """How long a claim lasts: the run's whole delivery, and a minute to settle it. A run
        that dies holding claims delays them by this much, no more."""
        s = self.settings
        return timedelta(seconds=s.notify_deadline_seconds + s.notify_timeout_seconds + 60)

    def _notification(self, o: Outcome, kind: str, target: str, now: datetime) -> Notification:
        rule = o.rw.rule
        return Notification(
            id=f"{rule.name}:{kind}:{iso(now)}:{target}",
            notifier=target,
            rule=rule.name,
            kind=kind,
            severity=rule.severity,
            state=o.ev.state,
            metric=rule.metric,
            condition=rule.condition,
            threshold=rule.threshold,
            value=o.obs.value,
            complete=o.obs.complete,
            window_from=iso(o.rw.current.start),
            window_to=iso(o.rw.current.end),
            created_at=iso(now),
            logs_url=self._logs_url(rule.name),
            detail=o.ev.detail,
        )

    def _logs_url(self, rule: str) -> str | None:
        project = self.settings.google_cloud_project
        if not project:
            return None
        query = quote(f'jsonPayload.rule_evaluation=true AND jsonPayload.name="{rule}"')
        return f"https://console.cloud.google.com/logs/query;query={query}?project={project}"

    def _describe(
        self, o: Outcome, owed: dict[str, dict[str, Any]], delivery: Delivery
    ) -> dict[str, Any]:
        rule = o.rw.rule
        out: dict[str, Any] = {
            "name": rule.name,
            "metric": rule.metric,
            "condition": rule.condition,
            "threshold": rule.threshold,
            "severity": rule.severity,
            "state": o.ev.state,
            "value": o.obs.value,
            "complete": o.obs.complete,
            "detail": o.ev.detail,
            "window": o.rw.current.as_dict(),
            "query": o.query,
        }
        if rule.events:
            out["events"] = list(rule.events)
        if o.rw.previous is not None:
            out["previous"] = {"window": o.rw.previous.as_dict(), "value": o.obs.previous}
        out["firing"] = owed[rule.name]["firing"]
        out["owed"] = owed[rule.name]["owed"]
        prefix = f"{rule.name}:"  # notification ids start with their rule's name
        out["notified"] = sorted(i for i in delivery.delivered if i.startswith(prefix))
        out["notify_errors"] = {i: e for i, e in delivery.failed.items() if i.startswith(prefix)}
        waiting = {**delivery.deferred, **delivery.held}
        out["notify_deferred"] = {i: e for i, e in waiting.items() if i.startswith(prefix)}
        return out


def _unsettled(delivery: Delivery) -> str:
    done = len(delivery.delivered) - (delivery.unsettled in delivery.delivered)
    text = f"{done} notification(s) were delivered and recorded"
    if delivery.unsettled in delivery.delivered:
        text += (
            f"; {delivery.unsettled} was delivered but could not be recorded, so it is sent "
            "again once its claim expires (receivers can drop repeats by "
            "X-Collector-Notification-Id)"
        )
    if delivery.deferred:
        text += f"; {len(delivery.deferred)} not sent stay pending for a later run"
    return text


def _log_evaluation(entry: dict[str, Any]) -> None:
    """One entry per rule evaluation, for log-based alerting without any webhook."""
    fields = ("name", "metric", "state", "firing", "value", "threshold", "condition", "complete")
    log.info(
        "rule %s: %s",
        entry["name"],
        entry["state"],
        extra={
            "json_fields": {
                "rule_evaluation": True,
                **{k: entry[k] for k in fields},
                # `severity` is Cloud Logging's own field (the entry's level).
                "rule_severity": entry["severity"],
            }
        },
    )
