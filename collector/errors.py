"""The collector's own exceptions, caught by meaning. They know nothing of HTTP: one table in
`collector.http.errors` maps each to a status and an answer.

Every error carries a message that says what happened and what to do, a stable `code`, and
`details()`: the fields an answer adds (the export figures so far, Mixpanel's own error, when a
query is free again).
"""

from __future__ import annotations

from typing import Any


class CollectorError(Exception):
    """Base of every error here."""

    code = "internal_error"

    def __init__(self, message: str, *, export: Any = None) -> None:
        super().__init__(message)
        self.message = message
        # The export figures gathered before the failure, so an error still shows how far it got.
        self.export = export

    def details(self) -> dict[str, Any]:
        return {} if self.export is None else {"export": self.export}


class ConfigError(CollectorError):
    """A setting is missing, malformed or contradicts another; raised at start-up."""

    code = "config_error"


class BadRequest(CollectorError):
    """The caller's parameters are wrong; nothing was asked of Mixpanel."""

    code = "bad_request"


class UpstreamRefused(CollectorError):
    """Mixpanel answered 4xx (auth, plan, bad query): retrying cannot fix it."""

    code = "upstream_refused"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        upstream_error: str,
        export: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, export=export)
        self.upstream_status = upstream_status
        self.upstream_error = upstream_error

    def details(self) -> dict[str, Any]:
        upstream = {"status": self.upstream_status, "error": self.upstream_error}
        return {**super().details(), "upstream": upstream}


class UpstreamUnavailable(CollectorError):
    """Nothing usable could be read: every attempt failed (network, 5xx, 429, deadline)."""

    code = "upstream_unavailable"

    def __init__(self, message: str, *, export: Any = None, retry_in: float | None = None) -> None:
        super().__init__(message, export=export)
        self.retry_in = retry_in  # when Mixpanel said a query is welcome again, if it did

    def details(self) -> dict[str, Any]:
        out = super().details()
        if self.retry_in is not None:
            out["retry_in_seconds"] = round(self.retry_in, 1)
        return out


class BudgetExhausted(UpstreamUnavailable):
    """The Export query budget (this process's, or the project's with BUDGET_STORE) is spent:
    asking now would earn a 429."""

    code = "budget_exhausted"

    def __init__(
        self,
        message: str,
        *,
        retry_in: float,
        export: dict[str, Any] | None = None,
        store_failed: bool = False,
    ):
        super().__init__(message, export=export, retry_in=retry_in)
        # The shared budget's store (BUDGET_STORE) could not be checked: not a spent budget,
        # and waiting does not make it come back.
        self.store_failed = store_failed


class StateStoreUnavailable(CollectorError):
    """The alert rules' state could not be read, trusted or written (STATE_STORE)."""

    code = "state_store_unavailable"

    def __init__(
        self,
        message: str,
        *,
        store: str,
        detail: dict[str, Any] | None = None,
        export: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, export=export)
        self.store = store
        self.detail = detail or {}

    def details(self) -> dict[str, Any]:
        return {"store": self.store, **self.detail, **super().details()}


class NotConfigured(CollectorError):
    """A feature was asked for whose settings are not given (no rules for `/check`)."""

    code = "not_configured"


class Unauthenticated(CollectorError):
    """No valid Google-signed identity token came with the request."""

    code = "unauthenticated"


class Forbidden(CollectorError):
    """The token is valid but its identity may not call the service."""

    code = "forbidden"


class AuthUnavailable(CollectorError):
    """The token could not be checked now (Google's certificates out of reach)."""

    code = "auth_unavailable"


class StoreError(CollectorError):
    """The rule state could not be read or written."""

    code = "store_error"


class StoreConflict(StoreError):
    """The document changed since it was loaded."""

    code = "store_conflict"


class StoreTimeout(StoreError):
    """The store did not answer within the time the request could give it."""

    code = "store_timeout"


class CorruptState(StoreError):
    """The stored document is not a JSON object; it is left as it is for a person to look at."""

    code = "corrupt_state"


class NotifyError(CollectorError):
    """A notification was not delivered. The message names the notifier and what failed."""

    code = "notify_failed"

    def __init__(
        self,
        message: str,
        *,
        notifier: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.notifier = notifier
        self.status = status  # the receiver's HTTP status, if it answered
        self.retry_after = retry_after
