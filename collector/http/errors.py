"""The one table from the collector's errors to HTTP statuses, and the JSON answer of an error."""

from __future__ import annotations

from typing import Any

from collector.errors import (
    AuthUnavailable,
    BadRequest,
    CollectorError,
    Forbidden,
    NotConfigured,
    StateStoreUnavailable,
    StoreError,
    Unauthenticated,
    UpstreamRefused,
    UpstreamUnavailable,
)

# The most specific class wins (BudgetExhausted is an UpstreamUnavailable: 503 too).
STATUS: dict[type[CollectorError], int] = {
    BadRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    UpstreamRefused: 502,
    UpstreamUnavailable: 503,
    StateStoreUnavailable: 503,
    # A store that failed where no answer could be had without it: a last resort (the ledger
    # answers from the export instead and says so in `ledger.error`; the state and budget
    # stores have errors of their own).
    StoreError: 503,
    NotConfigured: 503,
    AuthUnavailable: 503,
}


def status_of(exc: CollectorError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


def error_answer(exc: CollectorError) -> tuple[dict[str, Any], int]:
    """The answer's body and status: what happened and what to do, its code, its figures."""
    return {"error": exc.message, "code": exc.code, **exc.details()}, status_of(exc)
