"""The declared jobs: a plain list of `JobSpec` values, whoever produces it.

The command line (`--job`), a jobs file and the service's rules file (its `jobs:` list) feed
it, without touching the planning or the Scheduler calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from collector.schedule.cron import CronError, parse_cron

METHODS = ("GET", "POST")
# Scheduler job ids allow letters, digits, hyphens and underscores, up to 500 characters.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_FILE_KEYS = {"name", "path", "query", "schedule", "method", "description"}


class JobSpecError(ValueError):
    """A declared job cannot be scheduled as written."""


@dataclass(frozen=True)
class JobSpec:
    """One scheduled request to the service."""

    name: str  # without the prefix; the Scheduler job id is prefix + name
    path: str  # "/distinct-users"
    schedule: str  # unix-cron, in the sync's time zone
    query: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    description: str = ""

    @property
    def target(self) -> str:
        """Path and query string, as appended to the service URL."""
        return self.path + ("?" + urlencode(self.query) if self.query else "")


def parse_job(text: str, method: str = "GET") -> JobSpec:
    """`NAME=PATH?QUERY@CRON`, e.g. `users-15m=/distinct-users?minutes=15@*/15 * * * *`."""
    name, eq, rest = text.partition("=")
    target, at, schedule = rest.partition("@")
    if not (eq and at and name.strip() and target.strip() and schedule.strip()):
        raise JobSpecError(
            f"--job {text!r}: expected NAME=PATH?QUERY@CRON, for example "
            "'users-15m=/distinct-users?minutes=15@*/15 * * * *'"
        )
    path, _, query = target.strip().partition("?")
    spec = JobSpec(
        name=name.strip(),
        path=path,
        schedule=" ".join(schedule.split()),
        query=tuple(parse_qsl(query, keep_blank_values=True)),
        method=method.upper(),
    )
    return check_job(spec)


def load_jobs_file(path: Path, method: str = "GET", *, optional: bool = False) -> list[JobSpec]:
    """A YAML (or JSON) file: `jobs:` followed by a list of name/path/query/schedule entries.

    `optional` is for the service's rules file, which may or may not declare `jobs:`.
    """
    try:
        from collector.yaml_file import YamlFileError, read_yaml  # only needed for a file
    except ImportError:
        raise JobSpecError("--jobs-file needs PyYAML: pip install pyyaml") from None

    kind = "rules file" if optional else "jobs file"
    try:
        data = read_yaml(path)
    except OSError as exc:
        raise JobSpecError(f"cannot read {kind} {path} ({exc.strerror})") from None
    except YamlFileError as exc:
        raise JobSpecError(f"invalid {kind} {exc.at(path)}") from None
    entries = data.get("jobs") if isinstance(data, Mapping) else data
    if optional and entries is None:
        return []
    if not isinstance(entries, list):
        raise JobSpecError(f"{path}: expected a list of jobs under 'jobs:'")
    return [_from_mapping(entry, path, index, method) for index, entry in enumerate(entries)]


def check_job(spec: JobSpec) -> JobSpec:
    where = f"job {spec.name!r}"
    if not _NAME.match(spec.name):
        raise JobSpecError(f"{where}: a name is 1-100 letters, digits, '-' or '_'")
    if not spec.path.startswith("/") or "#" in spec.path or "?" in spec.path:
        raise JobSpecError(f"{where}: path {spec.path!r} must start with '/' (query separately)")
    if spec.method not in METHODS:
        raise JobSpecError(f"{where}: method {spec.method!r} must be one of {', '.join(METHODS)}")
    try:
        parse_cron(spec.schedule)
    except CronError as exc:
        raise JobSpecError(f"{where}: {exc}") from None
    return spec


def check_unique(specs: Iterable[JobSpec]) -> list[JobSpec]:
    seen: set[str] = set()
    out = []
    for spec in specs:
        if spec.name in seen:
            raise JobSpecError(f"job {spec.name!r} is declared twice")
        seen.add(spec.name)
        out.append(spec)
    return out


def _from_mapping(entry: Any, path: Path, index: int, method: str) -> JobSpec:
    where = f"{path}: job #{index + 1}"
    if not isinstance(entry, Mapping):
        raise JobSpecError(f"{where}: expected a mapping with name, path and schedule")
    unknown = set(entry) - _FILE_KEYS
    if unknown:
        raise JobSpecError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(_FILE_KEYS)}")
    missing = [key for key in ("name", "path", "schedule") if not entry.get(key)]
    if missing:
        raise JobSpecError(f"{where}: missing {', '.join(missing)}")
    target, _, inline = str(entry["path"]).partition("?")
    query = list(parse_qsl(inline, keep_blank_values=True)) + _query_pairs(
        entry.get("query"), where
    )
    return check_job(
        JobSpec(
            name=str(entry["name"]),
            path=target,
            schedule=" ".join(str(entry["schedule"]).split()),
            query=tuple(query),
            method=str(entry.get("method", method)).upper(),
            description=str(entry.get("description", "")),
        )
    )


def _query_pairs(query: Any, where: str) -> list[tuple[str, str]]:
    if query is None:
        return []
    if isinstance(query, str):
        return parse_qsl(query, keep_blank_values=True)
    if not isinstance(query, Mapping):
        raise JobSpecError(f"{where}: query must be a mapping or a query string")
    pairs = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((str(key), _text(item)))
    return pairs


def _text(value: Any) -> str:
    # YAML reads `true` as a bool; the service expects the lower-case word.
    return str(value).lower() if isinstance(value, bool) else str(value)
