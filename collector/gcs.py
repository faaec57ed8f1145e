"""The Cloud Storage client every store shares, and what its failures mean.

A store on Cloud Storage can fail in more ways than the API's own errors: no credentials where
the process runs (`google.auth`), a connection refused or reset before any answer (`requests`),
a retry that ran out of time. Each is a `StoreError` naming the store and what to do, so that a
request answers with what happened (never a 500) and a command prints one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from google.api_core import exceptions as api_errors
from google.api_core.retry import Retry
from google.auth import exceptions as auth_errors
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from collector.errors import StoreError

TIMEOUT_SECONDS = 10.0  # one request to Cloud Storage
# All the retries of one operation: the client's default goes on for two minutes, and a request
# has less to spend.
RETRY_SECONDS = 30.0
RETRY = DEFAULT_RETRY.with_timeout(RETRY_SECONDS)

# What a call may raise besides the API's answers; NotFound and PreconditionFailed are
# GoogleAPIErrors too, so callers catch those first.
FAILURES = (api_errors.GoogleAPIError, auth_errors.GoogleAuthError, requests.RequestException)

NO_CREDENTIALS_HINT = (
    "on Cloud Run the service's own identity is used; elsewhere run "
    "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
)


def make_client(store: str) -> storage.Client:
    """A client with the process's default credentials; StoreError naming `store` if there
    are none."""
    try:
        return storage.Client()
    except auth_errors.DefaultCredentialsError as exc:
        raise StoreError(f"cannot reach {store}: {_no_credentials(exc)}") from None


def limits(seconds: float | None) -> tuple[float, Retry]:
    """The timeout of one request and the retry of one operation, within `seconds` if given
    (what the caller may still spend waiting on the store)."""
    if seconds is None:
        return TIMEOUT_SECONDS, RETRY
    seconds = max(seconds, 0.1)
    return min(TIMEOUT_SECONDS, seconds), DEFAULT_RETRY.with_timeout(min(RETRY_SECONDS, seconds))


@contextmanager
def failures(what: Callable[[], str]) -> Iterator[None]:
    """Turn any failure of the calls inside into StoreError("<what()>: <the failure>")."""
    try:
        yield
    except StoreError:
        raise
    except auth_errors.DefaultCredentialsError as exc:
        raise StoreError(f"{what()}: {_no_credentials(exc)}") from None
    except FAILURES as exc:
        raise StoreError(f"{what()}: {short(exc)}") from exc


def _no_credentials(exc: Exception) -> str:
    # The library's first sentence says which (none found, or a key file that is not there);
    # the rest is a link.
    reason = str(exc).split(". ", 1)[0].rstrip(".")[:200]
    return f"no usable Google credentials ({reason}): {NO_CREDENTIALS_HINT}"


def short(exc: Exception) -> str:
    """The failure in one line: its kind, code and message."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    text = f"{type(exc).__name__}" + (f" {code}" if code else "") + f": {message}"
    return text[:300]
