"""What a notification is, who sends one, and how a receiver checks a signed one.

`Notification` is what the rule state keeps until it is delivered (so it serialises, and reads
back documents of older versions); `Notifier` is what sends it (`collector.alerting.notify`);
`verify_signature` is the receiver's side of the signed webhook, here so that a receiver needs
nothing of the senders.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Protocol
from urllib.parse import urlparse

from collector.config import Secret


@dataclass(frozen=True)
class Notification:
    id: str
    notifier: str
    rule: str
    kind: str
    severity: str
    state: str
    metric: str
    condition: str
    threshold: float
    value: float | None
    complete: bool
    window_from: str
    window_to: str
    created_at: str
    logs_url: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Notification:
        """Rebuild from `as_dict()` output; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise ValueError(f"notification is missing {', '.join(missing)}")
        values = {k: v for k, v in d.items() if k in known}
        values["threshold"] = _numeric(values["threshold"], "threshold")
        if values["value"] is not None:
            values["value"] = _numeric(values["value"], "value")
        values["complete"] = bool(values["complete"])
        return cls(**values)


def _numeric(value: Any, name: str) -> int | float:
    """A number as stored: a whole number stays one (a count of 317 is not 317.0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        number = float(value)  # a numeric string from an older document; else ValueError
        return int(number) if number.is_integer() else number
    return value


def http_url(url: str) -> bool:
    """Whether a notifier can post to `url`: an http(s) URL with a host."""
    parsed = urlparse(url)
    return parsed.scheme in {"http", "https"} and bool(parsed.netloc)


@dataclass(frozen=True)
class NotifierConfig:
    name: str
    type: str
    url: Secret | None = None  # none for `log`
    signing_key: Secret | None = None


class Notifier(Protocol):
    """Sends one notification within `timeout` seconds in all (its own default if None)."""

    name: str

    def send(self, n: Notification, timeout: float | None = None) -> None: ...


def verify_signature(
    body: bytes,
    timestamp: str,
    signature: str,
    key: str,
    *,
    now: float,
    tolerance: float = 300,
) -> bool:
    """True if `signature` is ours for this body and timestamp, and the timestamp is recent.

    A receiver passes the raw request body and the `X-Collector-Timestamp` and
    `X-Collector-Signature` headers; the tolerance bounds how long a captured request can be
    replayed.
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - sent_at) > tolerance:
        return False
    expected = sign(body, str(sent_at), key)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def sign(body: bytes, timestamp: str, key: str) -> str:
    """The `X-Collector-Signature` of a body sent at `timestamp`."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
