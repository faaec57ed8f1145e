"""Sending alert notifications: a Slack incoming webhook, a signed generic JSON webhook, or a
structured log entry (`log`: Cloud Logging alerts on it, and it needs no secret).

A notifier sends one notification or raises `NotifyError`; it never retries beyond honouring one
short Slack `Retry-After`, because a failed notification stays pending in the rule state and the
next `/check` run sends it again. Webhook URLs and signing keys are secrets: no error message, repr
or chained traceback built here contains them.

A send has a total timeout, not a timeout per socket read: a receiver that trickles its answer
a byte at a time would pass every read timeout. A watchdog (collector.export.deadline) shuts the
socket when the time is up, and on SIGTERM within the drain's grace. A 2xx status is delivery:
the body of a successful answer is not waited for.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import requests
import urllib3

from collector.alerting.message import notification_text, slack_message
from collector.alerting.notification import (
    Notification,
    Notifier,
    NotifierConfig,
    http_url,
    sign,
)
from collector.errors import NotifyError
from collector.export.deadline import Deadline
from collector.export.transport import new_session, watchdog
from collector.logs import redact
from collector.shutdown import draining, pause

USER_AGENT = "rt-mp-collector"
LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
SNIPPET_BYTES = 2048  # of an error answer's body, for the message; the rest is not read


@dataclass(frozen=True)
class Answer:
    """What a receiver answered: the status, the headers, and the start of an error's body."""

    status_code: int
    headers: Mapping[str, str]
    text: str = ""


class _Poster:
    """One POST within a total deadline, with errors turned into `NotifyError`s that never show
    the URL or the key."""

    def __init__(self, config: NotifierConfig, kind: str, timeout: float) -> None:
        if config.type != kind:
            raise ValueError(f"notifier '{config.name}' has type '{config.type}', not '{kind}'")
        if config.url is None:
            raise ValueError(f"notifier '{config.name}' needs a URL (url_env)")
        url = config.url.reveal()
        parsed = urlparse(url)
        if not http_url(url):
            raise ValueError(f"notifier '{config.name}': the URL is not an http(s) URL")
        self.name = config.name
        self.label = f"{kind} notifier '{config.name}'"
        self._url = url
        self.timeout = timeout
        self._secrets = [url, parsed.path, parsed.query]
        if config.signing_key is not None:
            self._secrets.append(config.signing_key.reveal())

    def deadline(self, timeout: float | None) -> Deadline:
        return Deadline(self.timeout if timeout is None else min(timeout, self.timeout))

    def post(self, body: bytes, headers: Mapping[str, str], deadline: Deadline) -> Answer:
        failure = None
        # A session per POST: the watchdog can only shut sockets opened while it watches.
        session = new_session()
        session.headers["User-Agent"] = USER_AGENT
        try:
            with watchdog(deadline):
                left = max(0.001, deadline.remaining())
                resp = session.post(
                    self._url,
                    data=body,
                    headers={"Content-Type": "application/json", **headers},
                    timeout=(left, left),
                    stream=True,
                )
                with resp:
                    ok = 200 <= resp.status_code < 300
                    return Answer(resp.status_code, resp.headers, "" if ok else _snippet(resp))
        except (requests.RequestException, OSError) as exc:
            if deadline.drained:
                failure = (
                    f"cut short after {deadline.elapsed():.1f}s: the instance is shutting down"
                )
            elif deadline.expired() or isinstance(exc, requests.Timeout):
                failure = f"no answer within {deadline.seconds:g}s (timeout)"
            else:
                failure = f"could not connect ({type(exc).__name__})"
        finally:
            session.close()
        # Raised outside the except block so the requests error, whose text holds the URL, is not
        # chained onto ours.
        raise NotifyError(f"{self.label}: {failure}", notifier=self.name)

    def error(self, resp: Answer, what: str = "") -> NotifyError:
        text = f"{self.label}: HTTP {resp.status_code}"
        snippet = self.short_text(resp)
        if snippet:
            text += f" {snippet}"
        return NotifyError(text + what, notifier=self.name, status=resp.status_code)

    def short_text(self, resp: Answer) -> str:
        # Redacted before it is cut short, so a secret cannot survive in part.
        text = redact(resp.text, [s for s in self._secrets if s])
        return " ".join(text.split())[:120]


def _snippet(resp: requests.Response) -> str:
    """The start of an error answer's body; nothing if it does not come in time."""
    try:
        raw = resp.raw.read(SNIPPET_BYTES, decode_content=True)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError):
        return ""  # cut by the watchdog, or the receiver closed early
    return raw.decode(resp.encoding or "utf-8", "replace")


class SlackNotifier:
    """A Slack incoming webhook: Block Kit blocks plus a plain `text` fallback."""

    def __init__(
        self,
        config: NotifierConfig,
        *,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = pause,
        max_retry_after: float = 5.0,
    ) -> None:
        self._post = _Poster(config, "slack", timeout)
        self.name = config.name
        self._sleep = sleep  # returns early on SIGTERM
        self._max_retry_after = max_retry_after

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r})"

    def send(self, n: Notification, timeout: float | None = None) -> None:
        body = json.dumps(slack_message(n), separators=(",", ":")).encode()
        deadline = self._post.deadline(timeout)
        resp = self._post.post(body, {}, deadline)
        if resp.status_code == 429:
            wait = _retry_after(resp)
            # The wait and the retry must both fit in this notification's time.
            left = deadline.remaining()
            if wait is None or wait > self._max_retry_after or wait >= left:
                shown = "none given" if wait is None else f"{wait:g}s"
                limit = min(self._max_retry_after, round(left, 1))
                raise NotifyError(
                    f"{self._post.label}: HTTP 429 rate limited, Retry-After {shown} "
                    f"exceeds the {limit:g}s this run waits",
                    notifier=self.name,
                    status=429,
                    retry_after=wait,
                )
            self._sleep(wait)
            if draining():
                raise NotifyError(
                    f"{self._post.label}: HTTP 429 rate limited; not retried, the instance is "
                    "shutting down",
                    notifier=self.name,
                    status=429,
                    retry_after=wait,
                )
            resp = self._post.post(body, {}, deadline)
            if resp.status_code == 429:
                again = _retry_after(resp)
                raise NotifyError(
                    f"{self._post.label}: HTTP 429 rate limited again after waiting "
                    f"{wait:g}s (Retry-After {'none given' if again is None else f'{again:g}s'})",
                    notifier=self.name,
                    status=429,
                    retry_after=again,
                )
        if not 200 <= resp.status_code < 300:
            raise self._post.error(resp)


class WebhookNotifier:
    """A generic JSON webhook: the notification as compact JSON, signed with HMAC-SHA256.

    Headers: `X-Collector-Timestamp` (unix seconds) and `X-Collector-Signature`
    (`sha256=<hex HMAC of "<timestamp>.<body>">`); check them with `verify_signature`.
    `X-Collector-Notification-Id` lets a receiver drop a notification it already has, since a
    notification whose answer was lost is sent again by the next run.
    """

    def __init__(
        self,
        config: NotifierConfig,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if config.signing_key is None or not config.signing_key.reveal():
            raise ValueError(f"webhook notifier '{config.name}' needs a signing key")
        self._post = _Poster(config, "webhook", timeout)
        self.name = config.name
        self._key = config.signing_key
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r})"

    def send(self, n: Notification, timeout: float | None = None) -> None:
        body = json.dumps(n.as_dict(), separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(self._clock()))
        headers = {
            "X-Collector-Timestamp": timestamp,
            "X-Collector-Signature": sign(body, timestamp, self._key.reveal()),
            "X-Collector-Notification-Id": n.id,
        }
        resp = self._post.post(body, headers, self._post.deadline(timeout))
        if not 200 <= resp.status_code < 300:
            wait = _retry_after(resp) if resp.status_code == 429 else None
            extra = f" (Retry-After {wait:g}s)" if wait is not None else ""
            err = self._post.error(resp, extra)
            err.retry_after = wait
            raise err


class LogNotifier:
    """One structured log entry per notification, on the `collector.notify` logger.

    Its level follows the rule's severity (a resolution is INFO), and its fields are the
    notification's with `notification: true`, so a log-based metric or alert can select
    them (`jsonPayload.notification=true AND jsonPayload.kind="firing"`). Writing a log line
    cannot fail the way a webhook can: a notification is delivered once it is written.
    """

    def __init__(self, config: NotifierConfig, **_: Any) -> None:
        self.name = config.name
        self._log = logging.getLogger("collector.notify")

    def __repr__(self) -> str:
        return f"LogNotifier(name={self.name!r})"

    def send(self, n: Notification, timeout: float | None = None) -> None:
        level = logging.INFO if n.kind == "resolved" else LOG_LEVELS.get(n.severity, 30)
        fields = {"notification": True, **n.as_dict()}
        # `severity` is Cloud Logging's own field (the entry's level), as in rule evaluations.
        fields["rule_severity"] = fields.pop("severity")
        self._log.log(level, "%s", notification_text(n), extra={"json_fields": fields})


def build_notifier(config: NotifierConfig, **kwargs: Any) -> Notifier:
    """The notifier for a config; keyword arguments go to its constructor."""
    kinds: dict[str, Any] = {
        "slack": SlackNotifier,
        "webhook": WebhookNotifier,
        "log": LogNotifier,
    }
    if config.type not in kinds:
        raise ValueError(f"notifier '{config.name}' has unknown type '{config.type}'")
    return kinds[config.type](config, **kwargs)  # type: ignore[no-any-return]


def _retry_after(resp: Answer) -> float | None:
    raw = resp.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # absent, or an HTTP date: treated as "too long to wait here"
