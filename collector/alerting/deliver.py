"""Delivering what a run claimed: one total deadline for all its notifications, each settled in
the store as soon as its delivery is known.

`NOTIFY_DEADLINE_SECONDS` bounds the whole delivery of a run, and each send gets what is left
of it, at most `NOTIFY_TIMEOUT_SECONDS` (collector.alerting.notify enforces both as totals).
What does not fit is released and stays pending for the next run; the answer says so.

On SIGTERM (Cloud Run sends it on every deploy and scale-down, and kills 10 s later) no new
notification is taken; the one in flight is cut by the drain within its grace
(collector.shutdown); what was delivered is settled, the rest released, and the run answers.
The one case no store can close: a receiver got a notification and the process died before
settling it. The claim then expires and the next run sends it again, with the same
`X-Collector-Notification-Id`, so a receiver that remembers the ids it has seen can drop it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.alerting.claims import release, settle
from collector.alerting.notification import Notification, Notifier
from collector.errors import NotifyError, StoreError
from collector.export.deadline import Deadline
from collector.shutdown import draining
from collector.stores import DocumentStore as StateStore
from collector.stores import update

log = logging.getLogger("collector.alerting")


@dataclass
class Delivery:
    """What happened to the notifications of one run, by id."""

    deadline_seconds: float
    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # tried and not delivered: the error
    deferred: dict[str, str] = field(default_factory=dict)  # claimed, not tried: why
    held: dict[str, str] = field(default_factory=dict)  # claimed by another run that is live
    stopped: str | None = None  # "deadline", "shutdown" or "store"
    seconds: float = 0.0
    store_error: StoreError | None = None
    unsettled: str | None = None  # sent (or tried), but the store could not record it

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivered": len(self.delivered),
            "failed": len(self.failed),
            "deferred": len(self.deferred),
            "held_by_other_runs": len(self.held),
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
            "deadline_seconds": self.deadline_seconds,
        }


class Deliverer:
    """Sends claimed notifications through their notifiers and settles each in the store."""

    def __init__(
        self, store: StateStore, notifiers: Mapping[str, Notifier], deadline_seconds: float
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.deadline_seconds = deadline_seconds

    def run(self, run: str, claimed: list[dict[str, Any]], held: Mapping[str, str]) -> Delivery:
        started = time.monotonic()
        budget = Deadline(self.deadline_seconds)
        out = Delivery(self.deadline_seconds)
        out.held = {i: f"another run is delivering it (claimed until {u})" for i, u in held.items()}
        for i, raw in enumerate(claimed):
            stop = self._stop(budget)
            if stop:
                out.stopped, why = stop
                out.deferred.update({r["id"]: why for r in claimed[i:]})
                break
            n = Notification.from_dict(raw)
            error = self._send(n, budget)
            if error is None:
                out.delivered.append(n.id)
            else:
                out.failed[n.id] = error
            try:
                update(self.store, lambda doc, n=n, error=error: settle(doc, run, n.id, error))
            except StoreError as exc:
                # Nothing more is sent: a delivery that cannot be recorded may be repeated.
                out.store_error, out.stopped, out.unsettled = exc, "store", n.id
                out.deferred.update({r["id"]: "the state store failed" for r in claimed[i + 1 :]})
                break
        unused = [r["id"] for r in claimed if r["id"] in out.deferred]
        if unused and out.store_error is None:
            try:
                update(self.store, lambda doc: release(doc, run, unused))
            except StoreError as exc:  # they wait for their claims to expire instead
                out.store_error = exc
        out.seconds = time.monotonic() - started
        return out

    def _stop(self, budget: Deadline) -> tuple[str, str] | None:
        if draining():
            return "shutdown", "the instance is shutting down (SIGTERM); the next run sends it"
        if budget.remaining() <= 0:
            return "deadline", (
                f"this run's {self.deadline_seconds:g}s for notifications "
                "(NOTIFY_DEADLINE_SECONDS) were spent; the next run sends it"
            )
        return None

    def _send(self, n: Notification, budget: Deadline) -> str | None:
        """None once delivered, else what went wrong."""
        notifier = self.notifiers.get(n.notifier)
        if notifier is None:
            return f"notifier '{n.notifier}' is not configured any more"
        try:
            notifier.send(n, timeout=budget.remaining())
        except NotifyError as exc:
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
            return str(exc)
        return None
