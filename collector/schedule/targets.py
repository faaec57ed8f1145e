"""Every job's target checked by the service's own parameter parser, before anything is
scheduled: a job the service would answer with 404 or 400 would spend nothing but would page
nobody either, every run, until someone read its logs (`/distinct-user?minute=15`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from collector.config import Settings
from collector.errors import BadRequest
from collector.http.params import check_request, merge_params, metric_request
from collector.metrics.registry import REGISTRY
from collector.schedule.jobs import JobSpec, JobSpecError

Parser = Callable[[dict[str, list[str]], Settings, datetime], Any]


def _check(params: dict[str, list[str]], settings: Settings, now: datetime) -> Any:
    asked = check_request(params)
    if asked.dry_run:
        raise BadRequest("a scheduled dry run would spend Export queries and change nothing")
    return asked


def _parser(name: str) -> Parser:
    return lambda p, s, now: metric_request(name, p, s, now)


# The service's endpoints a job can call, each with the parser its route uses: every metric's
# (the registry's) and /check.
PARSERS: dict[str, Parser] = {
    **{m.path: _parser(m.name) for m in REGISTRY.values()},
    "/check": _check,
}


def check_target(spec: JobSpec, settings: Settings, now: datetime | None = None) -> JobSpec:
    """`spec`, if the service would accept its path and query; else JobSpecError saying why."""
    where = f"job {spec.name!r}: {spec.target}"
    parser = PARSERS.get(spec.path)
    if parser is None:
        raise JobSpecError(
            f"{where}: the service has no endpoint {spec.path} (it would answer 404); "
            f"jobs can call {', '.join(PARSERS)}"
        )
    params: dict[str, list[str]] = {}
    for key, value in spec.query:
        params.setdefault(key, []).append(value)
    try:
        parser(merge_params(params, None), settings, now or datetime.now(UTC))
    except BadRequest as exc:
        message = exc.message
        if "LEDGER_STORE" in message and not settings.ledger_store:
            message += " (here: --ledger-store, the service's LEDGER_STORE)"
        raise JobSpecError(f"{where}: the service would refuse it (400): {message}") from None
    return spec
