"""The words of a notification: one plain line (the log notifier, a dry run, Slack's fallback
text) and Slack's Block Kit message. Pure functions of the notification."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # notify imports this module for its senders
    from collector.alerting.notification import Notification

KIND_LABELS = {
    "firing": "FIRING",
    "reminder": "Reminder",
    "resolved": "Resolved",
    "data_incomplete": "Data incomplete",
}
KIND_ICONS = {"firing": "🔴", "reminder": "🔁", "resolved": "✅", "data_incomplete": "⚠️"}
PARTIAL = "lower bound (partial export)"


def notification_text(n: Notification) -> str:
    """`[FIRING] rule (severity, state): metric value, threshold ...; window ...; data ...`."""
    label = KIND_LABELS.get(n.kind, n.kind)
    text = (
        f"[{label}] {n.rule} ({n.severity}, {n.state}): {n.metric} {describe_value(n)}, "
        f"threshold {describe_threshold(n)}; window {n.window_from} → {n.window_to}; "
        f"data {'complete' if n.complete else PARTIAL}"
    )
    return text + (f". {n.detail}" if n.detail else "")


def slack_message(n: Notification) -> dict[str, Any]:
    """The Slack payload: Block Kit `blocks`, and `text` for notifications and old clients."""
    label = KIND_LABELS.get(n.kind, n.kind)
    icon = KIND_ICONS.get(n.kind, "")
    value = describe_value(n)
    threshold = describe_threshold(n)
    window = f"{n.window_from} → {n.window_to}"
    data = "complete" if n.complete else PARTIAL
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(f"{icon} {label}: {n.rule}".strip(), 150)},
        }
    ]
    if n.detail:
        blocks.append({"type": "section", "text": _mrkdwn(_escape(n.detail), 3000)})
    facts = [
        ("Severity", n.severity),
        ("State", n.state),
        ("Metric", n.metric),
        ("Value", value),
        ("Threshold", threshold),
        ("Data", data),
        ("Window (UTC)", window),
    ]
    blocks.append(
        {
            "type": "section",
            "fields": [_mrkdwn(f"*{name}:*\n{_escape(text)}", 2000) for name, text in facts],
        }
    )
    context = [f"Rule `{_escape(n.rule)}` · notification `{_escape(n.id)}`"]
    if n.logs_url:
        context.insert(0, f"<{_link(n.logs_url)}|View logs>")
    blocks.append({"type": "context", "elements": [_mrkdwn(" · ".join(context), 2000)]})

    text = _escape(notification_text(n))
    if n.logs_url:
        text += f" Logs: <{_link(n.logs_url)}|View logs>"
    return {"text": _cut(text, 3000), "blocks": blocks}


def describe_value(n: Notification) -> str:
    if n.value is None:
        return "no value"
    shown = number(n.value)
    return shown if n.complete else f"{shown} ({PARTIAL})"


def describe_threshold(n: Notification) -> str:
    return condition_text(n.condition, n.threshold)


def condition_text(condition: str, threshold: float) -> str:
    """`above 5,000`, `below 10`, `drop of 50%`, `rise of 20%`."""
    t = number(threshold)
    return {
        "above": f"above {t}",
        "below": f"below {t}",
        "drop_pct": f"drop of {t}%",
        "rise_pct": f"rise of {t}%",
    }.get(condition, f"{condition} {t}")


def number(x: float) -> str:
    """A value for a person: thousands separated, a whole number without decimals."""
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.6g}"


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _cut(text, limit)}


def _escape(text: str) -> str:
    # Slack's mrkdwn gives &, < and > meaning; everything else is shown as written.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str) -> str:
    return _escape(url).replace("|", "%7C")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
