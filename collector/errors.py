"""The collector's own exceptions, caught by meaning and mapped once to HTTP in `collector.http`."""

from __future__ import annotations

from typing import Any


class CollectorError(Exception):
    """Base: every error here carries a message that says what happened and what to do."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, export: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The export figures gathered before the failure, so an error still shows how far it got.
        self.export = export

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.export is not None:
            out["export"] = self.export
        return out


class ConfigError(CollectorError):
    """A setting is missing, malformed or contradicts another; raised at start-up."""

    code = "config_error"


class BadRequest(CollectorError):
    """The caller's parameters are wrong; nothing was asked of Mixpanel."""

    status = 400
    code = "bad_request"


class UpstreamRefused(CollectorError):
    """Mixpanel answered 4xx (auth, plan, bad query): retrying cannot fix it."""

    status = 502
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

    def body(self) -> dict[str, Any]:
        out = super().body()
        out["upstream"] = {"status": self.upstream_status, "error": self.upstream_error}
        return out


class UpstreamUnavailable(CollectorError):
    """Nothing usable could be read: every attempt failed (network, 5xx, 429, deadline)."""

    status = 503
    code = "upstream_unavailable"


class BudgetExhausted(UpstreamUnavailable):
    """The per-process Export query budget is spent; asking now would earn a 429."""

    code = "budget_exhausted"

    def __init__(self, message: str, *, retry_in: float, export: dict[str, Any] | None = None):
        super().__init__(message, export=export)
        self.retry_in = retry_in

    def body(self) -> dict[str, Any]:
        out = super().body()
        out["retry_in_seconds"] = round(self.retry_in, 1)
        return out


class StateStoreUnavailable(CollectorError):
    """The alert rules' state could not be read, trusted or written (STATE_STORE)."""

    status = 503
    code = "state_store_unavailable"

    def __init__(
        self,
        message: str,
        *,
        store: str,
        detail: dict[str, Any] | None = None,
        export: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.store = store
        self.detail = detail or {}
        self.export_figures = export

    def body(self) -> dict[str, Any]:
        out = {**super().body(), "store": self.store, **self.detail}
        if self.export_figures is not None:
            out["export"] = self.export_figures
        return out
