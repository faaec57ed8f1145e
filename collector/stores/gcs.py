"""The blob store under a Cloud Storage prefix, and what the client's failures mean.

A version is the object's generation; a conditional write is an upload with `ifGenerationMatch`,
which Cloud Storage applies atomically. The client retries a failed upload, so a 412 can also
mean that our own first attempt landed and only its answer was lost: every conditional write
tags its object with a random write id, and a 412 on an object that carries ours is a success,
not a conflict — for every user of the store (the ledger, the budget, the rule state).

A store on Cloud Storage can fail in more ways than the API's own errors: no credentials where
the process runs (`google.auth`), a connection refused or reset before any answer (`requests`),
a retry that ran out of time. Each is a `StoreError` naming the store and what to do, so that a
request answers with what happened (never a 500) and a command prints one line.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from google.api_core import exceptions as api_errors
from google.api_core.retry import Retry
from google.auth import exceptions as auth_errors
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from collector.errors import StoreConflict, StoreError
from collector.stores.blob import check_name

TIMEOUT_SECONDS = 10.0  # one request to Cloud Storage
# All the retries of one operation: the client's default goes on for two minutes, and a request
# has less to spend.
RETRY_SECONDS = 30.0
RETRY = DEFAULT_RETRY.with_timeout(RETRY_SECONDS)
WRITE_ID_KEY = "collector-write-id"  # who wrote a generation: our own write behind a 412

# What a call may raise besides the API's answers; NotFound and PreconditionFailed are
# GoogleAPIErrors too, so callers catch those first.
FAILURES = (api_errors.GoogleAPIError, auth_errors.GoogleAuthError, requests.RequestException)

NO_CREDENTIALS_HINT = (
    "on Cloud Run the service's own identity is used; elsewhere run "
    "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
)


class GcsBlobStore:
    """Objects under a prefix of a bucket; a version is the object's generation."""

    local = False

    def __init__(self, bucket: str, prefix: str = "", client: storage.Client | None = None):
        self.bucket_name = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._client = client

    def describe(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")

    def __repr__(self) -> str:
        return f"GcsBlobStore({self.describe()!r})"

    @property
    def client(self) -> storage.Client:
        # Created on first use, so building the app needs neither credentials nor the network;
        # without credentials, `failures` names the object that could not be reached.
        if self._client is None:
            self._client = storage.Client()
        return self._client

    def _blob(self, name: str) -> storage.Blob:
        check_name(name)
        return self.client.bucket(self.bucket_name).blob(self.prefix + name)

    def get(self, name: str, *, seconds: float | None = None) -> tuple[bytes, int] | None:
        timeout, retry = limits(seconds)
        with failures(lambda: f"cannot read {self.describe()}/{name}"):
            blob = self._blob(name)
            try:
                # One request: the answer carries the generation of the bytes it returns.
                data = blob.download_as_bytes(timeout=timeout, retry=retry)
            except api_errors.NotFound:
                return None
        return data, int(blob.generation)

    def put(
        self,
        name: str,
        data: bytes,
        *,
        if_version: Any = None,
        seconds: float | None = None,
        content_type: str = "application/octet-stream",
    ) -> int:
        timeout, retry = limits(seconds)
        write_id = uuid.uuid4().hex
        kwargs: dict[str, Any] = {}
        if if_version is not None:
            kwargs["if_generation_match"] = int(if_version)
        with failures(lambda: f"cannot write {self.describe()}/{name}"):
            blob = self._blob(name)
            blob.metadata = {WRITE_ID_KEY: write_id}
            try:
                # A conditional upload is safe to retry: a repeat of a write that landed is a
                # 412, recognised below by its write id.
                blob.upload_from_string(
                    data,
                    content_type=content_type,
                    timeout=timeout,
                    retry=retry if if_version is not None else None,
                    **kwargs,
                )
                return int(blob.generation)
            except api_errors.PreconditionFailed:
                landed = self._generation_written_by(name, write_id, seconds)
        if landed is None:
            raise StoreConflict(f"{self.describe()}/{name} changed since it was read")
        return landed

    def names(self, prefix: str = "", *, seconds: float | None = None) -> list[str]:
        timeout, retry = limits(seconds)
        with failures(lambda: f"cannot list {self.describe()}"):
            blobs = self.client.list_blobs(
                self.bucket_name, prefix=self.prefix + prefix, timeout=timeout, retry=retry
            )
            return sorted(b.name[len(self.prefix) :] for b in blobs)

    def delete(self, name: str, *, seconds: float | None = None) -> None:
        timeout, retry = limits(seconds)
        with failures(lambda: f"cannot delete {self.describe()}/{name}"):
            try:
                self._blob(name).delete(timeout=timeout, retry=retry)
            except api_errors.NotFound:
                return

    def _generation_written_by(self, name: str, write_id: str, seconds: float | None) -> int | None:
        """The generation of `name` if this write id wrote it (our retried write landed)."""
        timeout, retry = limits(seconds)
        current = self.client.bucket(self.bucket_name).get_blob(
            self.prefix + name, timeout=timeout, retry=retry
        )
        if current is not None and (current.metadata or {}).get(WRITE_ID_KEY) == write_id:
            return int(current.generation)
        return None


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
