"""Which environment variables are this service's, so that a misspelt one stops start-up.

Every variable whose name starts with one of the service's prefixes must be a setting the
service reads; anything else under those prefixes is a typo (`EXPORT_DEADLINE_SECOND`) that
would otherwise be ignored while the default applies. Two kinds of names are legitimate
without being settings: gunicorn's own (`GUNICORN_CMD_ARGS`), and the variables a rules file
names for its notifiers' secrets (`url_env: NOTIFY_SLACK_URL`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from collector.suggest import closest
from collector.yaml_file import YamlFileError, read_yaml

PREFIXES = (
    "MIXPANEL_",
    "EXPORT_",
    "BUDGET_",
    "WINDOW_",
    "MAX_WINDOW_",
    "EXACT_",
    "LOG_",
    "COLLECTOR_",
    "STATE_",
    "AUTH_OIDC_",
    "GUNICORN_",
    "NOTIFY_",
    "LEDGER_",
)
# Read by the gunicorn configuration (collector/gunicorn_config.py), not by Settings; and
# gunicorn's own, which it reads itself.
GUNICORN_NAMES = frozenset(
    {
        "GUNICORN_HOST",
        "GUNICORN_WORKERS",
        "GUNICORN_THREADS",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "GUNICORN_LOGLEVEL",
        "GUNICORN_CMD_ARGS",
    }
)
SECRET_FIELDS = ("url_env", "signing_key_env")


def unknown_settings(
    env: Mapping[str, str], known: Iterable[str], allowed: Iterable[str] = ()
) -> list[str]:
    """One problem per variable that looks like a setting and is none, with the closest name."""
    names = sorted(set(known) | GUNICORN_NAMES)
    legitimate = set(names) | set(allowed)
    problems = []
    for name in sorted(env):
        if not name.startswith(PREFIXES) or name in legitimate:
            continue
        meant = closest(name, names)
        hint = (
            f"did you mean {meant}?"
            if meant
            else "no setting has that name (the README's Configuration lists them); unset it"
        )
        problems.append(f"{name} is not a setting of this service: {hint}")
    return problems


def rules_file_variables(path: str | None) -> set[str]:
    """The variables a rules file names for its notifiers' secrets.

    Read leniently: a file that cannot be read or parsed is reported by the rules loader, with
    the field to fix, so here it only names nothing.
    """
    if not path:
        return set()
    try:
        raw = read_yaml(path)
    except (OSError, YamlFileError):
        return set()
    notifiers: Any = raw.get("notifiers") if isinstance(raw, dict) else None
    if not isinstance(notifiers, dict):
        return set()
    return {
        spec[field]
        for spec in notifiers.values()
        if isinstance(spec, dict)
        for field in SECRET_FIELDS
        if isinstance(spec.get(field), str)
    }
