"""A `/check` run: one export pass, pure decisions, then notify and remember.

State is updated in two phases so that overlapping runs never overwrite each other and a
notification is never lost: first the transitions are saved with the notifications they owe as
pending (a conflicting save re-applies the pure transitions to the fresh document), then the
pending notifications are delivered and the delivered ones removed in a second conditional save.
A notification whose delivery fails stays pending and is retried by the next run.

Before its Export query a run loads the state, checks its shape and writes it back unchanged:
a store that cannot be read, trusted or written answers 503 `state_store_unavailable` without
spending a query, and its state is never reset to make the run go through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from collector.alerting.decide import (
    Evaluation,
    Observation,
    RuleState,
    evaluate,
    transition,
)
from collector.alerting.notify import Notification, Notifier, NotifyError
from collector.alerting.plan import (
    Fanout,
    QueryGroup,
    RuleWindows,
    Slot,
    plan_queries,
    rule_windows,
)
from collector.alerting.rules import Rule, RuleSet
from collector.alerting.state import validate
from collector.alerting.store import CorruptState, GcsStateStore, StateStore, StoreError, update
from collector.config import Settings
from collector.errors import CollectorError, StateStoreUnavailable
from collector.export.query import ExportQuery
from collector.export.reader import ExportReader
from collector.window import iso

log = logging.getLogger("collector.alerting")
NOTIFICATION_FIELDS = tuple(f.name for f in fields(Notification))


@dataclass
class _Outcome:
    rw: RuleWindows
    obs: Observation
    ev: Evaluation
    group: int


class Checker:
    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        reader: ExportReader,
        store: StateStore,
        notifiers: Mapping[str, Notifier],
        now: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.reader = reader
        self.store = store
        self.notifiers = notifiers
        self.now = now

    def run(self, names: list[str]) -> dict[str, Any]:
        now = self.now()
        selected = self.rules.named(names)
        self._preflight()
        groups = plan_queries(
            [rule_windows(r, now) for r in selected], self.settings.max_window_days
        )
        outcomes, exports = self._observe(groups)
        try:
            owed = update(self.store, lambda doc: self._apply(doc, outcomes, now))
        except StoreError as exc:
            raise self._unavailable(
                exc,
                "the rules were evaluated but their new state could not be saved, so nothing "
                "was notified; the next /check evaluates them again",
                queries=len(groups),
                export=exports,
            ) from None
        delivered, failed = self._deliver([o.rw.rule for o in outcomes])
        if delivered or failed:
            try:
                update(self.store, lambda doc: _settle(doc, delivered, failed))
            except StoreError as exc:
                raise self._unavailable(
                    exc,
                    f"{len(delivered)} notification(s) were delivered but could not be "
                    "recorded: they will be sent again (receivers can drop repeats by "
                    "X-Collector-Notification-Id)",
                    queries=len(groups),
                    export=exports,
                ) from None
        rules_out = [self._describe(o, owed, delivered, failed) for o in outcomes]
        for entry in rules_out:
            log.info(
                "rule %s: %s",
                entry["name"],
                entry["state"],
                extra={
                    "json_fields": {
                        "rule_evaluation": True,
                        **{
                            k: entry[k]
                            for k in (
                                "name",
                                "metric",
                                "state",
                                "firing",
                                "value",
                                "threshold",
                                "condition",
                                "complete",
                            )
                        },
                        # `severity` is Cloud Logging's own field (the entry's level).
                        "rule_severity": entry["severity"],
                    }
                },
            )
        return {
            "checked_at": iso(now),
            "rules": rules_out,
            "queries": len(groups),
            "export": exports,
            "store": self.store.describe(),
        }

    # -- the store, checked before anything is spent --------------------------------------

    def _preflight(self) -> None:
        """Load, check and write back the state unchanged: proves it readable, sound and
        writable before the run spends an Export query."""
        where = self.store.describe()
        try:
            update(self.store, lambda doc: validate(doc, where))
        except StoreError as exc:
            raise self._unavailable(
                exc, "no Export query was spent and no rule state changed", queries=0
            ) from None

    def _unavailable(
        self,
        exc: StoreError,
        outcome: str,
        *,
        queries: int,
        export: list[dict[str, Any]] | None = None,
    ) -> StateStoreUnavailable:
        where = self.store.describe()
        text = str(exc)
        if not isinstance(exc, CorruptState):  # a corrupt document's message says what to do
            text += "; " + (
                "the service's account needs roles/storage.objectUser on the bucket, and the "
                "bucket must exist"
                if isinstance(self.store, GcsStateStore)
                else "the service's user must be able to read and write it and its directory"
            )
        log.error("state store %s: %s", where, text, extra={"json_fields": {"store": where}})
        return StateStoreUnavailable(
            f"rule state store unavailable: {text} ({outcome})",
            store=where,
            detail={"queries": queries},
            export=export,
        )

    # -- observe: one export per group ----------------------------------------------------

    def _observe(self, groups: list[QueryGroup]) -> tuple[list[_Outcome], list[dict[str, Any]]]:
        outcomes: list[_Outcome] = []
        exports: list[dict[str, Any]] = []
        cap = self.settings.exact_distinct_cap
        for index, group in enumerate(groups):
            slots = {}
            for rw in group.members:
                slots[(rw.rule.name, "current")] = Slot(
                    rw.rule.metric, rw.current, rw.rule.events, cap
                )
                if rw.previous is not None:
                    slots[(rw.rule.name, "previous")] = Slot(
                        rw.rule.metric, rw.previous, rw.rule.events, cap
                    )
            fanout = Fanout(slots.values(), group.window, group.events)
            figures: dict[str, Any] = {
                "window": group.window.as_dict(),
                "rules": [m.rule.name for m in group.members],
            }
            try:
                report = self.reader.read(ExportQuery(group.window, group.events), fanout)
                figures.update(complete=report.complete, **report.as_dict())
                error = None
            except CollectorError as exc:
                figures.update(
                    complete=False, error=exc.message, code=exc.code, **(exc.export or {})
                )
                report, error = None, exc.message
            exports.append(figures)
            for rw in group.members:
                if report is None:
                    obs = Observation(None, False, error=error)
                else:
                    prev = slots.get((rw.rule.name, "previous"))
                    obs = Observation(
                        float(slots[(rw.rule.name, "current")].value()),
                        report.complete,
                        float(prev.value()) if prev else None,
                        report.complete,
                    )
                outcomes.append(_Outcome(rw, obs, evaluate(rw.rule, obs), index))
        return outcomes, exports

    # -- phase 1: transitions, saved with what they owe ---------------------------------

    def _apply(
        self, doc: dict[str, Any], outcomes: list[_Outcome], now: datetime
    ) -> dict[str, dict[str, Any]]:
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
            states[rule.name] = {
                **new.as_dict(),
                "last_state": o.ev.state,
                "last_value": o.obs.value,
                "last_complete": o.obs.complete,
                "checked_at": iso(now),
            }
            owed_by_rule[rule.name] = {"owed": owed, "firing": new.firing}
        return owed_by_rule

    def _notification(self, o: _Outcome, kind: str, target: str, now: datetime) -> Notification:
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

    # -- phase 2: deliver what is pending, then settle ----------------------------------

    def _deliver(self, rules: list[Rule]) -> tuple[set[str], dict[str, str]]:
        doc, _ = self.store.load()
        delivered: set[str] = set()
        failed: dict[str, str] = {}
        states = doc.get("rules", {})
        for rule in rules:
            for raw in states.get(rule.name, {}).get("pending", []):
                n = Notification.from_dict({k: raw[k] for k in NOTIFICATION_FIELDS if k in raw})
                notifier = self.notifiers.get(n.notifier)
                if notifier is None:
                    failed[n.id] = f"notifier '{n.notifier}' is not configured any more"
                    continue
                try:
                    notifier.send(n)
                    delivered.add(n.id)
                except NotifyError as exc:
                    failed[n.id] = str(exc)
                    log.warning(
                        "notification %s to %s failed: %s",
                        n.kind,
                        n.notifier,
                        exc,
                        extra={
                            "json_fields": {
                                "rule": n.rule,
                                "notifier": n.notifier,
                                "kind": n.kind,
                                "error": str(exc),
                            }
                        },
                    )
        return delivered, failed

    def _describe(
        self,
        o: _Outcome,
        owed: dict[str, dict[str, Any]],
        delivered: set[str],
        failed: dict[str, str],
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
            "query": o.group,
        }
        if rule.events:
            out["events"] = list(rule.events)
        if o.rw.previous is not None:
            out["previous"] = {"window": o.rw.previous.as_dict(), "value": o.obs.previous}
        out["firing"] = owed[rule.name]["firing"]
        out["owed"] = owed[rule.name]["owed"]
        prefix = f"{rule.name}:"
        out["notified"] = sorted(i for i in delivered if i.startswith(prefix))
        out["notify_errors"] = {i: e for i, e in failed.items() if i.startswith(prefix)}
        return out


def _settle(doc: dict[str, Any], delivered: set[str], failed: dict[str, str]) -> None:
    for state in doc.get("rules", {}).values():
        kept = []
        for raw in state.get("pending", []):
            if raw.get("id") in delivered:
                continue
            if raw.get("id") in failed:
                raw = {
                    **raw,
                    "attempts": int(raw.get("attempts", 0)) + 1,
                    "last_error": failed[raw["id"]],
                }
            kept.append(raw)
        state["pending"] = kept
