"""The `notifiers:` section of the rules file: each notifier's type and fields, and the
environment variables that hold its URL and key (secrets: never in the file, never in a
message)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from collector.alerting.notification import NotifierConfig, http_url
from collector.alerting.problems import Problems, shown
from collector.config import Secret

# Each notifier type and the fields it takes: `log` needs no secret.
NOTIFIER_FIELDS = {
    "log": ("type",),
    "slack": ("type", "url_env"),
    "webhook": ("type", "url_env", "signing_key_env"),
}
SECRET_FIELDS = ("url_env", "signing_key_env")
# What each notifier's variables hold, for the message that asks for them.
HOLDS = {
    ("slack", "url_env"): "the Slack incoming webhook's URL",
    ("webhook", "url_env"): "the webhook's URL",
    ("webhook", "signing_key_env"): "the webhook's signing key",
}
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def check_notifiers(
    raw: Any, env: Mapping[str, str], problems: Problems
) -> tuple[tuple[str, ...], dict[str, NotifierConfig]]:
    """The names declared (usable or not) and the notifiers that can be built."""
    if raw is None:
        return (), {}
    if not isinstance(raw, dict):
        problems.add("", f"'notifiers' is {shown(raw)}: give a mapping of name to settings")
        return (), {}
    out: dict[str, NotifierConfig] = {}
    for name, spec in raw.items():
        config = _notifier(str(name), spec, env, problems)
        if config is not None:
            out[str(name)] = config
    return tuple(str(name) for name in raw), out


def _notifier(
    name: str, spec: Any, env: Mapping[str, str], problems: Problems
) -> NotifierConfig | None:
    where = f"notifier {shown(name)}"
    if not isinstance(spec, dict):
        give = "a mapping with a 'type' (log, slack or webhook)"
        problems.add(where, f"the notifier is {shown(spec)}: give {give}")
        return None
    kind = spec.get("type")
    known = NOTIFIER_FIELDS.get(kind) if isinstance(kind, str) else None
    rest = list(spec)
    if kind == "log":
        hint = "a log notifier writes a log entry: it has no URL or key"
        for key in (k for k in rest if k in SECRET_FIELDS):
            problems.add(where, f"unknown field '{key}' ({hint})")
        rest = [k for k in rest if k not in SECRET_FIELDS]
    whose = f"a {kind} notifier's fields" if known else "a notifier's fields"
    problems.unknown(where, rest, known or ("type", *SECRET_FIELDS), whose)
    if "type" not in spec:
        problems.missing(where, "type", "one of " + ", ".join(NOTIFIER_FIELDS))
        return None
    if known is None:
        problems.wrong(where, "type", kind, "one of " + ", ".join(NOTIFIER_FIELDS), NOTIFIER_FIELDS)
        return None
    if kind == "log":  # a structured log entry: nothing to reach, no secret
        return NotifierConfig(name, kind)
    url = _secret(spec, kind, "url_env", env, where, problems)
    key = (
        _secret(spec, kind, "signing_key_env", env, where, problems) if kind == "webhook" else None
    )
    if url is None or (kind == "webhook" and key is None):
        return None
    return NotifierConfig(name, kind, url, key)


def _secret(
    spec: dict[Any, Any],
    kind: str,
    field: str,
    env: Mapping[str, str],
    where: str,
    problems: Problems,
) -> Secret | None:
    """The value of the variable a notifier names in `field`; its problem if there is none."""
    holds = HOLDS[(kind, field)]
    if field not in spec:
        problems.missing(where, field, f"the name of the environment variable that holds {holds}")
        return None
    var = spec[field]
    if not isinstance(var, str) or not ENV_NAME.match(var):
        problems.wrong(
            where, field, var, "the name of an environment variable (like SLACK_WEBHOOK_URL)"
        )
        return None
    value = env.get(var, "").strip()
    if not value:
        problems.add(
            where, f"environment variable {var} (its '{field}') is not set: set it to {holds}"
        )
        return None
    if field == "url_env" and not http_url(value):  # the message never shows the value
        problems.add(
            where, f"environment variable {var} (its '{field}') does not hold an http(s) URL"
        )
        return None
    return Secret(value)
