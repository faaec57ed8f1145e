"""A dry run of `/check`: the same evaluation against the stored state, and what a real run
would record and send, with nothing saved and nothing sent.

The state is read once and never written (no preflight write, no transition saved, no claim
taken); the transitions are applied to that copy only, so the notifications listed are exactly
the ones the next real run would claim now, given the same data. No rule-evaluation log entry
is written either: those drive log-based alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.alerting.message import notification_text
from collector.alerting.notification import Notification
from collector.errors import StoreError

SENT_FIELDS = ("notified", "notify_errors", "notify_deferred")  # a dry run sends nothing


def preview(
    rules: list[dict[str, Any]],
    claimed: list[dict[str, Any]],
    held: Mapping[str, str],
    *,
    checked_at: str,
    export: list[dict[str, Any]],
    store: str,
) -> dict[str, Any]:
    """The dry run's answer: each rule's decision and the notifications it would send."""
    would = [Notification.from_dict(raw) for raw in claimed]
    for rule in rules:
        for field in SENT_FIELDS:
            rule.pop(field, None)
        rule["would_notify"] = [
            {
                "id": n.id,
                "notifier": n.notifier,
                "kind": n.kind,
                "text": notification_text(n),
            }
            for n in would
            if n.rule == rule["name"]
        ]
        rule["held_by_other_runs"] = sorted(i for i in held if i.startswith(f"{rule['name']}:"))
    return {
        "dry_run": True,
        "checked_at": checked_at,
        "rules": rules,
        "queries": len(export),
        "export": export,
        "notifications": {"would_send": len(would), "sent": 0, "held_by_other_runs": len(held)},
        "store": store,
        "saved": False,
    }


class EmptyState:
    """No STATE_STORE, for a dry run only: every rule starts from OK with nothing owed, as on a
    service's first run. Nothing is ever saved to it."""

    def load(self) -> tuple[dict[str, Any], None]:
        return {}, None

    def save(self, doc: dict[str, Any], version: Any) -> Any:
        raise StoreError("no STATE_STORE: a dry run saves nothing")

    def describe(self) -> str:
        return "none (no STATE_STORE: evaluated from an empty state)"
