"""Claims on pending notifications, so that each is delivered by one run at most.

A run claims the pending notifications of its rules inside the same conditional save that
records its transitions (`store.update`: the file lock and version, or Cloud Storage's
`ifGenerationMatch`). Of two overlapping runs, one saves first; the other reloads, sees the
claims and leaves those notifications alone. A claim is a lease,
`{"run": <run id>, "until": <ISO time>}`: a run that dies holding claims (a crash, a kill) leaves
them to expire, and the first run after `until` takes them over.

A claimed notification is settled as soon as its delivery is known: removed once delivered,
released with its error (and one more attempt counted) when not. Claims a run did not use (its
time ran out, or SIGTERM came) are released at once, for the next run.

Pure functions of the document; `collector.alerting.deliver` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from collector.window import iso


def claim(
    doc: dict[str, Any], rules: Iterable[str], run: str, now: datetime, until: datetime
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Claim every pending notification of `rules` that no other run holds a live lease on.

    Returns copies of the claimed entries, in order, and {id: until} of those held elsewhere.
    """
    claimed: list[dict[str, Any]] = []
    held: dict[str, str] = {}
    states = doc.get("rules", {})
    for name in rules:
        for entry in states.get(name, {}).get("pending", []):
            lease = entry.get("claim")
            if lease and lease["run"] != run and _aware(lease["until"]) > now:
                held[entry["id"]] = lease["until"]
                continue
            entry["claim"] = {"run": run, "until": iso(until)}
            claimed.append(dict(entry))
    return claimed, held


def settle(doc: dict[str, Any], run: str, notification_id: str, error: str | None) -> None:
    """Record one delivery: gone if delivered (whoever holds it now); else, if still ours,
    released with the error for the next run."""
    for state in doc.get("rules", {}).values():
        kept = []
        for entry in state.get("pending", []):
            if entry.get("id") == notification_id:
                if error is None:
                    continue
                if _ours(entry, run):
                    entry = _unclaimed(entry)
                    entry["attempts"] = int(entry.get("attempts", 0)) + 1
                    entry["last_error"] = error
            kept.append(entry)
        state["pending"] = kept


def release(doc: dict[str, Any], run: str, ids: Iterable[str]) -> None:
    """Give back this run's claims on `ids`, which it did not try to deliver."""
    wanted = set(ids)
    for state in doc.get("rules", {}).values():
        state["pending"] = [
            _unclaimed(e) if e.get("id") in wanted and _ours(e, run) else e
            for e in state.get("pending", [])
        ]


def _ours(entry: dict[str, Any], run: str) -> bool:
    return (entry.get("claim") or {}).get("run") == run


def _unclaimed(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "claim"}


def _aware(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
